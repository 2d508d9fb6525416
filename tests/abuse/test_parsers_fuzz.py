"""Fuzzing the parsers that read text from outside: the flow loader (any text → a flow set
or a :class:`FlowError` with positions) and the Russian number understanding (any
utterance → a value or None), never another exception."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contactcenter.config import PROJECT_ROOT
from ivr.errors import FlowError
from ivr.schema import FlowSet
from ivr.validate import load_flows_text
from speech.lang import get_pack
from speech.numbers import grammar_words, parse_digits, parse_number, parse_yes_no
from tests.abuse.strategies import HOSTILE, any_text, fuzz

FLOWS_FILE = PROJECT_ROOT / "call_flows.yaml"
YAML_BITS = (
    ":", "- ", "  ", "\n", "{", "}", "[", "]", "&a", "*a", "!!python/object:os.system",
    "!!binary", "<<: *a", "'", '"', "#", "|", ">", "---", "...", "~", "null", "1e9",
    "flows:", "steps:", "next:", "goto:", "version: 1", "defaults:", "prompt:", "say:",
)  # fmt: skip


@cache
def _real_flows() -> list[str]:
    return FLOWS_FILE.read_text(encoding="utf-8").splitlines(keepends=True)


def _check_loader(text: str) -> None:
    try:
        flowset = load_flows_text(text, "fuzz.yaml")
    except FlowError as exc:
        assert exc.issues, "a FlowError names at least one problem"  # noqa: PT017
        lines = text.count("\n") + 2
        for issue in exc.issues:
            assert issue.file == "fuzz.yaml"
            assert 1 <= issue.line <= lines, issue
            assert issue.column >= 1, issue
            assert issue.message.strip(), issue
    else:
        assert isinstance(flowset, FlowSet)


@fuzz(150)
@given(
    st.one_of(any_text, st.lists(st.sampled_from(YAML_BITS + HOSTILE), max_size=30).map("".join))
)
def test_any_text_loads_or_fails_with_located_issues(text: str) -> None:
    _check_loader(text)


@st.composite
def mutated_flows(draw: st.DrawFn) -> str:
    """The real flow file with a few lines deleted, duplicated, swapped or garbled."""
    lines = list(_real_flows())
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "garble", "indent", "truncate"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = "   " + lines[index]
        elif action == "truncate":
            lines = lines[: index + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
        else:
            cut = draw(st.integers(0, len(lines[index])))
            junk = draw(st.sampled_from(YAML_BITS + HOSTILE))
            lines[index] = lines[index][:cut] + junk + lines[index][cut:]
        if not lines:
            break
    return "".join(lines)


@fuzz(25)
@given(mutated_flows())
def test_a_damaged_flow_file_fails_with_located_issues(text: str) -> None:
    _check_loader(text)


def test_the_real_flow_file_loads() -> None:
    assert isinstance(load_flows_text("".join(_real_flows())), FlowSet)


@cache
def _russian_words() -> list[str]:
    words = set()
    for kind in ("digits", "number", "yes_no"):
        words.update(grammar_words(kind, "ru"))
    pack = get_pack("ru")
    words.update(pack.decimal_words | pack.no_words | pack.yes_words | pack.correction_words)
    return sorted(words)


utterances = st.one_of(
    any_text,
    st.lists(
        st.one_of(
            st.sampled_from(_russian_words()),
            st.sampled_from(HOSTILE),
            st.integers(-(10**30), 10**30).map(str),
            st.sampled_from(["ё", "-", ",", ".", "½", "٣", "𝟘", "\u0301", "1,5", "1.5e3"]),
        ),
        max_size=25,
    ).map(" ".join),
)


@fuzz(300)
@given(utterances)
def test_any_utterance_is_a_number_or_none(text: str) -> None:
    digits = parse_digits(text, "ru")
    assert digits is None or (digits.isascii() and digits.isdigit())
    number = parse_number(text, "ru")
    assert number is None or (isinstance(number, Decimal) and number.is_finite())
    assert parse_yes_no(text, "ru") in (True, False, None)


def test_a_null_document_is_a_located_issue() -> None:
    """Regression: «~», «null» or a bare anchor gave a FlowError listing no problem."""
    for text in ("~", "null\n", "&anchor", "--- \n"):
        with pytest.raises(FlowError) as caught:
            load_flows_text(text, "null.yaml")
        assert [str(i) for i in caught.value.issues] == [
            "null.yaml:1:1: the top level must be a mapping (version, defaults, flows)"
        ]
