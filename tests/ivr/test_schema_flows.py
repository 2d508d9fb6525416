"""The flow schema: step models, defaults, JSON Schema, and the branch expression language."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ivr.errors import ExpressionError
from ivr.expressions import parse_expression
from ivr.schema import (
    CollectStep,
    ConfirmBelow,
    FlowSet,
    MenuStep,
    PlayPrompt,
    PromptRef,
    SayStep,
    TransferStep,
    flow_json_schema,
    split_target,
)


def _flowset(steps: dict[str, Any], **top: Any) -> FlowSet:
    return FlowSet.model_validate(
        {"flows": {"main": {"start": next(iter(steps)), "steps": steps}}, **top}
    )


def test_defaults() -> None:
    flowset = _flowset({"bye": {"type": "hangup"}})
    d = flowset.defaults
    assert (d.language, d.voice, d.finish_on_key) == ("ru-RU", "Polly.Tatyana", "#")
    assert d.universal.operator_key == "0"
    assert d.universal.repeat_key == "*"
    assert "оператор" in d.universal.operator_keywords


def test_single_prompt_item_becomes_a_list() -> None:
    flowset = _flowset(
        {
            "a": {"type": "say", "prompts": "Привет", "next": "b"},
            "b": {"type": "say", "prompts": {"play": "https://x.example/a.wav"}, "next": "c"},
            "c": {"type": "hangup", "prompts": ["Пока", {"prompt": "bye"}]},
        },
        prompts={"bye": "До свидания"},
    )
    a, b, c = (flowset.step("main", n) for n in "abc")
    assert isinstance(a, SayStep)
    assert a.prompts == ("Привет",)
    assert isinstance(b, SayStep)
    assert b.prompts == (PlayPrompt(play="https://x.example/a.wav"),)
    assert c.prompts == ("Пока", PromptRef(prompt="bye"))  # type: ignore[union-attr]


def test_models_are_frozen_and_forbid_extra() -> None:
    flowset = _flowset({"bye": {"type": "hangup"}})
    with pytest.raises(ValidationError):
        flowset.defaults.timeout = 10  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        _flowset({"bye": {"type": "hangup", "colour": "red"}})


def test_menu_keys_from_yaml_ints() -> None:
    flowset = _flowset(
        {
            "m": {
                "type": "menu",
                "prompts": "x",
                "options": [{"key": 1, "goto": "m"}, {"key": "*", "goto": "m"}],
            }
        }
    )
    menu = flowset.step("main", "m")
    assert isinstance(menu, MenuStep)
    assert [o.key for o in menu.options] == ["1", "*"]
    assert menu.input == "both"


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"type": "menu", "prompts": "x", "options": [{"goto": "m"}]}, "needs a key or keywords"),
        ({"type": "menu", "prompts": "x", "options": [{"key": "12", "goto": "m"}]}, "pattern"),
        (
            {
                "type": "collect",
                "value": "digits",
                "into": "x",
                "prompts": "x",
                "next": "m",
                "min_length": 5,
                "max_length": 2,
            },
            "min_length is greater",
        ),
        (
            {
                "type": "collect",
                "value": "digits",
                "into": "x",
                "prompts": "x",
                "next": "m",
                "capture": "stream",
            },
            "capture applies to speech",
        ),
        (
            {
                "type": "collect",
                "value": "yes_no",
                "into": "x",
                "prompts": "x",
                "next": "m",
                "max_length": 1,
            },
            "do not apply to yes_no",
        ),
        ({"type": "transfer", "to": "number"}, "needs 'number'"),
        (
            {"type": "transfer", "to": "queue", "number": "+74950000000"},
            "applies to transfers to a number",
        ),
        ({"type": "transfer", "to": "number", "number": "84950000000"}, "E.164"),
        ({"type": "sms", "template": "x", "to": "мне", "next": "m"}, "'to' must be caller"),
        ({"type": "say", "prompts": [{"play": "ftp://x"}], "next": "m"}, "pattern"),
        ({"type": "say", "prompts": [{"bogus": 1}], "next": "m"}, "a prompt item must be"),
        ({"type": "say", "prompts": "x", "next": "bad target!"}, "pattern"),
        ({"type": "goto", "target": "a:b:c"}, "pattern"),
    ],
)
def test_step_errors(step: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        _flowset({"m": step})


def test_collect_fields() -> None:
    flowset = _flowset(
        {
            "c": {
                "type": "collect",
                "value": "account_number",
                "input": "both",
                "capture": "stream",
                "into": "acc",
                "validate": "check_account_number",
                "confirm": {"below_confidence": 0.8},
                "prompts": "x",
                "next": "c",
            }
        }
    )
    step = flowset.step("main", "c")
    assert isinstance(step, CollectStep)
    assert step.validate_with == "check_account_number"
    assert step.confirm == ConfirmBelow(below_confidence=0.8)


def test_transfer_variable_number() -> None:
    flowset = _flowset(
        {"t": {"type": "transfer", "to": "number", "number": "{grid_company_phone}"}}
    )
    step = flowset.step("main", "t")
    assert isinstance(step, TransferStep)
    assert step.context == ("account_number", "intent", "path")


def test_split_target() -> None:
    assert split_target("next", "main") == ("main", "next")
    assert split_target("operator:start", "main") == ("operator", "start")


def test_json_schema() -> None:
    schema = flow_json_schema()
    text = json.dumps(schema, ensure_ascii=False)
    assert schema["title"].startswith("IVR call flows")
    for kind in (
        "SayStep",
        "MenuStep",
        "CollectStep",
        "ActionStep",
        "BranchStep",
        "GotoStep",
        "SubflowStep",
        "ReturnStep",
        "TransferStep",
        "RecordStep",
        "SmsStep",
        "HangupStep",
    ):
        assert kind in schema["$defs"], kind
    assert '"validate"' in text  # the YAML spelling of CollectStep.validate_with
    say = schema["$defs"]["SayStep"]
    assert say["additionalProperties"] is False
    assert "next" in say["required"]
    # prompts accept a single item or a list
    assert "anyOf" in say["properties"]["prompts"]
    # keys may be written as YAML integers
    key_types = {v.get("type") for v in schema["$defs"]["MenuOption"]["properties"]["key"]["anyOf"]}
    assert key_types == {"integer", "string", "null"}


# ------------------------------------------------------------------------------ expressions


@pytest.mark.parametrize(
    ("expr", "variables", "result"),
    [
        ("debt > 0", {"debt": Decimal("10.5")}, True),
        ("debt > 0", {"debt": Decimal(0)}, False),
        ("debt > 0", {}, False),
        ("debt >= 100 and has_debt", {"debt": 100, "has_debt": True}, True),
        ("debt >= 100 and has_debt", {"debt": 100, "has_debt": False}, False),
        ("not has_debt or debt < 1", {"has_debt": True, "debt": Decimal("0.5")}, True),
        ("zone in ['день', 'ночь']", {"zone": "ночь"}, True),
        ("zone not in ['день', 'ночь']", {"zone": "пик"}, True),
        ("reading == '0045'", {"reading": "0045"}, True),
        ("reading == 45", {"reading": "0045"}, True),
        ("x == null", {}, True),
        ("x != null", {"x": 0}, True),
        ("answer == true", {"answer": True}, True),
        ("answer == true", {"answer": 1}, False),
        ("answer", {"answer": "да"}, True),
        ("(a or b) and not c", {"a": False, "b": True, "c": False}, True),
        ("count > 2", {"count": "abc"}, False),
        ("name < 'Б'", {"name": "А"}, True),
        ("x < 5", {"x": None}, False),
        ("-1 < x", {"x": 0}, True),
        ("'abc' in s", {"s": "xxabcxx"}, True),
        ("a == 1 or a == 2 or a == 3", {"a": 3}, True),
    ],
)
def test_expression_evaluation(expr: str, variables: dict[str, Any], result: bool) -> None:
    assert parse_expression(expr).test(variables) is result


def test_expression_variables() -> None:
    assert parse_expression("a > 1 and (b or not c) and d in [1, 2]").variables() == {
        "a",
        "b",
        "c",
        "d",
    }


@pytest.mark.parametrize(
    ("expr", "position"),
    [
        ("", 0),
        ("a >", 3),
        ("a > > 1", 4),
        ("a and", 5),
        ("(a", 2),
        ("a b", 2),
        ("a = 1", 2),
        ("__import__('os')", 10),
        ("a in 5", 2),
        ("[1, 2", 5),
        ("x.y", 1),
        ("'unterminated", 0),
    ],
)
def test_expression_errors(expr: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(expr)
    assert caught.value.position == position


def test_expression_too_long_or_deep() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        parse_expression("a or " * 200 + "a")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_expression("(" * 60 + "a" + ")" * 60)


_names = st.sampled_from(["a", "b", "debt", "zone", "x_1"])
_literals = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["true", "false", "null", "'день'", '"ночь"', "1.5"]),
)
_operands = st.one_of(_names, _literals)
_comparisons = st.builds(
    lambda left, op, right: f"{left} {op} {right}",
    _operands,
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    _operands,
)


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(st.one_of(_comparisons, _names))
    kind = draw(st.sampled_from(["and", "or", "not", "paren"]))
    if kind == "not":
        return f"not {draw(_expressions(depth + 1))}"
    if kind == "paren":
        return f"({draw(_expressions(depth + 1))})"
    return f"{draw(_expressions(depth + 1))} {kind} {draw(_expressions(depth + 1))}"


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=3),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10, max_value=10),
)


@settings(max_examples=300, deadline=None)
@given(_expressions(), st.dictionaries(_names, _values))
def test_generated_expressions_parse_and_evaluate_to_bool(
    expr: str, variables: dict[str, Any]
) -> None:
    parsed = parse_expression(expr)
    assert isinstance(parsed.test(variables), bool)
    assert parsed.variables() <= {"a", "b", "debt", "zone", "x_1"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_expression_error(text: str) -> None:
    error: ExpressionError | None = None
    try:
        parsed = parse_expression(text)
    except ExpressionError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.position <= len(text)
    else:
        assert isinstance(parsed.test({}), bool)
