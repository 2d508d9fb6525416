"""The line-tracking YAML loader: positions, duplicate keys, syntax errors, error mapping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from ivr.errors import FlowError, FlowIssue
from ivr.loader import SourceMap, format_path, parse_yaml, schema_issues
from ivr.schema import FlowSet

TEXT = """\
version: 1
flows:
  main:
    start: a
    steps:
      a:
        type: say
        prompts:
          - "Привет"
          - {play: "/x.wav"}
        next: b
      b: {type: hangup}
"""


def test_positions_of_keys_and_values() -> None:
    data, source, issues = parse_yaml(TEXT, "f.yaml")
    assert issues == []
    assert data["flows"]["main"]["steps"]["a"]["next"] == "b"
    assert source.value_position(("flows", "main", "steps", "a", "next")) == (11, 15)
    assert source.key_position(("flows", "main", "steps", "a", "next")) == (11, 9)
    assert source.value_position(("flows", "main", "steps", "a", "prompts", 1, "play")) == (10, 20)
    assert source.key_position(("flows", "main", "steps", "b")) == (12, 7)
    # unknown paths fall back to the nearest ancestor
    assert source.value_position(("flows", "main", "steps", "a", "nothing")) == (7, 9)
    assert SourceMap().value_position(("x",)) == (1, 1)


def test_duplicate_keys_at_every_level() -> None:
    text = "a: 1\nb:\n  c: 1\n  c: 2\na: 3\n"
    data, _, issues = parse_yaml(text, "d.yaml")
    assert [str(i) for i in issues] == [
        "d.yaml:4:3: duplicate key 'c' (first defined at line 3)",
        "d.yaml:5:1: duplicate key 'a' (first defined at line 1)",
    ]
    assert data == {"a": 1, "b": {"c": 1}}  # the first definition wins, never silently the last


def test_int_and_str_keys_are_distinct() -> None:
    _, _, issues = parse_yaml("1: a\n'1': b\n", "k.yaml")
    assert issues == []


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: [1, 2\n", 2, 1),
        ("a: b: c\n", 1, 5),
        ("a:\n\tb: 1\n", 2, 1),
        ("a: 'x\n", 2, 1),
        ("- a\nb: 1\n", 2, 1),
    ],
)
def test_syntax_errors_have_positions(text: str, line: int, column: int) -> None:
    data, _, issues = parse_yaml(text, "s.yaml")
    assert data is None
    (issue,) = issues
    assert (issue.line, issue.column) == (line, column)
    assert issue.message.startswith("YAML syntax error: ")


def test_multiple_documents_are_an_error() -> None:
    data, _, issues = parse_yaml("a: 1\n---\nb: 2\n", "m.yaml")
    assert data is None
    assert "single document" in issues[0].message


def test_floats_become_decimal_and_bad_values_are_reported() -> None:
    data, _, issues = parse_yaml("a: 0.1\nb: 1_000.5\nc: .inf\nd: 2026-03-15\n", "v.yaml")
    assert data["a"] == Decimal("0.1")
    assert data["b"] == Decimal("1000.5")
    assert data["c"] is None
    assert [(i.line, i.message) for i in issues] == [(3, "not a finite number: '.inf'")]
    assert str(data["d"]) == "2026-03-15"


def test_unsafe_tags_are_refused() -> None:
    _, _, issues = parse_yaml("a: !!python/object:os.system ls\n", "u.yaml")
    assert issues
    assert issues[0].line == 1


def test_merge_key_errors() -> None:
    _, _, issues = parse_yaml("a:\n  <<: 5\n", "m.yaml")
    assert [(i.line, i.column) for i in issues] == [(2, 7)]
    assert "merge key" in issues[0].message


def test_non_scalar_keys() -> None:
    _, _, issues = parse_yaml("? [1, 2]\n: x\n", "k.yaml")
    assert "plain value" in issues[0].message


def test_schema_errors_map_to_positions() -> None:
    text = TEXT.replace("next: b", "next: b\n        voice: 5").replace(
        '{play: "/x.wav"}', '{play: "x.wav"}'
    )
    data, source, _ = parse_yaml(text, "p.yaml")
    with pytest.raises(ValidationError) as caught:
        FlowSet.model_validate(data)
    issues = schema_issues(caught.value, data, source, "p.yaml")
    assert [(i.line, i.column) for i in issues] == [(10, 20), (12, 16)]
    assert issues[0].message.startswith("flows.main.steps.a.prompts[1].play: 'x.wav' is not a text")
    assert issues[1].message == "flows.main.steps.a.voice: Input should be a valid string"


def test_flow_error_sorts_and_prints_issues() -> None:
    error = FlowError([FlowIssue("f", 5, 1, "b"), FlowIssue("f", 2, 3, "a")])
    assert str(error) == "f:2:3: a\nf:5:1: b"
    assert [i.line for i in error.issues] == [2, 5]


def test_format_path() -> None:
    assert format_path(("flows", "main", "options", 1, "key")) == "flows.main.options[1].key"
    assert format_path(()) == ""


def test_text_positions_inside_strings() -> None:
    text = 'a: "x {v}"\nb: x {v}\nc: "\\u0445 {v}"\nd: |\n  x {v}\n'
    _, source, _ = parse_yaml(text, "t.yaml")
    assert source.text_position(("a",), 2) == (1, 7)  # after the opening quote
    assert source.text_position(("b",), 2) == (2, 6)  # plain scalar
    # an escape shifts characters against columns: fall back to the string's own position
    assert source.text_position(("c",), 2) == (3, 4)
    assert source.text_position(("d",), 2) == (4, 4)  # block scalars are not mapped
