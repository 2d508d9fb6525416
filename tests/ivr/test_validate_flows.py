"""Broken flow files: every error kind with its exact FILE:LINE:COLUMN, all errors at once."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.action_names import ACTION_SPECS
from ivr.errors import FlowError
from ivr.schema import CollectStep, FlowSet, MenuStep, SubflowStep
from ivr.validate import check_flows, check_text, load_flows, load_flows_text, validate_flowset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
SHIPPED = Path(__file__).resolve().parents[2] / "call_flows.yaml"
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


def _expectations(path: Path) -> list[tuple[int, int, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match[1]), int(match[2]), match[3]))
    return found


BROKEN = sorted(FIXTURES.glob("*.yaml"))


def test_every_fixture_declares_its_errors() -> None:
    assert len(BROKEN) >= 25
    for path in BROKEN:
        assert _expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_fixture_reports_exact_errors(path: Path) -> None:
    issues = check_flows(path)
    got = [(i.line, i.column, i.message) for i in issues]
    expected = _expectations(path)
    assert len(got) == len(expected), "\n".join(str(i) for i in issues)
    for (line, column, message), (want_line, want_column, want_text) in zip(
        got, expected, strict=True
    ):
        assert (line, column) == (want_line, want_column), message
        assert message.startswith(want_text), (message, want_text)
    for issue in issues:
        assert str(issue).startswith(f"{path}:{issue.line}:{issue.column}: ")


def test_load_flows_raises_with_all_issues() -> None:
    path = FIXTURES / "many_errors.yaml"
    with pytest.raises(FlowError) as caught:
        load_flows(path)
    issues = caught.value.issues
    assert len(issues) == 6
    assert [i.line for i in issues] == sorted(i.line for i in issues)
    # the message of the exception lists every issue, one per line
    assert str(caught.value).count("\n") == 5
    kinds = str(caught.value)
    for fragment in (
        "unknown variable",
        "used twice",
        "unknown step",
        "no outcome",
        "unknown field",
        "duplicate key",
    ):
        assert fragment in kinds


def test_dangling_target_names_the_target_and_line() -> None:
    issues = check_flows(FIXTURES / "unknown_target.yaml")
    assert str(issues[0]).endswith(
        "unknown_target.yaml:9:15: step main.hello: unknown step 'goodby' (did you mean 'goodbye'?)"
    )


def test_missing_file_is_an_issue_not_a_traceback(tmp_path: Path) -> None:
    issues = check_flows(tmp_path / "nope.yaml")
    assert [(i.line, i.column, i.message) for i in issues] == [(1, 1, "file not found")]
    with pytest.raises(FlowError):
        load_flows(tmp_path / "nope.yaml")


def test_not_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "cp1251.yaml"
    path.write_bytes("флоу: 1".encode("cp1251"))
    (issue,) = check_flows(path)
    assert "not UTF-8" in issue.message


def test_directory_is_reported(tmp_path: Path) -> None:
    (issue,) = check_flows(tmp_path)
    assert "directory" in issue.message


# ------------------------------------------------------------------------------ shipped file


@pytest.fixture(scope="module")
def shipped() -> FlowSet:
    return load_flows(SHIPPED)


def test_shipped_flows_validate(shipped: FlowSet) -> None:
    assert check_flows(SHIPPED) == []
    assert {"hotline", "debt_reminder", "identify", "readings", "operator"} <= set(shipped.flows)


def test_shipped_hotline_main_menu(shipped: FlowSet) -> None:
    menu = shipped.step("hotline", "main_menu")
    assert isinstance(menu, MenuStep)
    keys = {o.key: o.goto for o in menu.options}
    assert keys == {
        "1": "readings",
        "2": "balance",
        "3": "payment_links",
        "4": "outages",
        "0": "operator:check_hours",
    }
    readings = shipped.step("hotline", "readings")
    assert isinstance(readings, SubflowStep)
    assert readings.flow == "readings"


def test_shipped_debt_reminder_options(shipped: FlowSet) -> None:
    menu = shipped.step("debt_reminder", "tell_debt")
    assert isinstance(menu, MenuStep)
    assert [o.key for o in menu.options] == ["1", "2", "3", "9"]
    assert shipped.flows["debt_reminder"].params == ("account_number", "holder_name")
    verify = shipped.step("debt_reminder", shipped.flows["debt_reminder"].steps["greet"].next)  # type: ignore[union-attr]
    assert isinstance(verify, CollectStep)
    assert verify.value == "yes_no"


def test_shipped_flows_use_only_declared_actions(shipped: FlowSet) -> None:
    used = {
        getattr(step, "name", None) for _, _, step in shipped.iter_steps() if step.type == "action"
    }
    assert used <= set(ACTION_SPECS)
    # every declared action is used by some shipped flow (no dead declarations)
    used |= {"check_account_number", "create_case"}
    assert set(ACTION_SPECS) <= used


def test_shipped_readings_confirms_every_value(shipped: FlowSet) -> None:
    ask = shipped.step("readings", "ask_reading")
    assert isinstance(ask, CollectStep)
    assert ask.confirm == "always"
    assert ask.value == "meter_reading"
    assert ask.finish_on_key is None
    assert shipped.defaults.finish_on_key == "#"


# ------------------------------------------------------------------------------ units


def test_check_text_returns_flowset_only_when_valid() -> None:
    flowset, issues = check_text(SHIPPED.read_text(encoding="utf-8"), "x.yaml")
    assert issues == []
    assert flowset is not None
    flowset, issues = check_text("version: 1\nflows: {}\n", "x.yaml")
    assert flowset is None
    assert [str(i) for i in issues] == [
        "x.yaml:2:8: flows: Dictionary should have at least 1 item after validation, not 0"
    ]


def test_load_flows_text_valid_minimal() -> None:
    flowset = load_flows_text(
        "flows:\n  main:\n    start: bye\n    steps:\n      bye: {type: hangup}\n"
    )
    assert flowset.flows["main"].start == "bye"
    assert validate_flowset(flowset) == []


def test_merge_keys_and_anchors_are_supported() -> None:
    text = """
flows:
  main:
    start: ask
    steps:
      ask: &ask
        type: collect
        value: digits
        into: code
        prompts: "Введите код"
        next: ask2
        no_input: {then: bye}
        no_match: {then: bye}
        universal: false
      ask2:
        <<: *ask
        into: code2
        next: bye
      bye: {type: hangup}
"""
    flowset = load_flows_text(text)
    step = flowset.step("main", "ask2")
    assert isinstance(step, CollectStep)
    assert step.into == "code2"
    assert step.next == "bye"


def test_recursive_alias_is_an_issue() -> None:
    _, issues = check_text("a: &x [1, *x]\n", "r.yaml")
    assert any(i.message == "recursive alias or nesting too deep" for i in issues)


def test_floats_are_read_as_decimal() -> None:
    flowset = load_flows_text(
        "defaults: {variables: {fee: 12.10}}\n"
        "flows:\n  main:\n    start: bye\n    steps:\n      bye: {type: hangup}\n"
    )
    assert flowset.defaults.variables["fee"] == Decimal("12.10")


def test_way_out_through_subflow_return() -> None:
    text = """
defaults: {operator_target: "main:bye"}
flows:
  main:
    start: call
    steps:
      call: {type: subflow, flow: sub, next: bye}
      bye: {type: hangup}
  sub:
    start: loop
    steps:
      loop: {type: say, prompts: "...", next: again}
      again: {type: goto, target: loop}
"""
    _, issues = check_text(text, "w.yaml")
    messages = [i.message for i in issues]
    assert any("sub.loop (say) has no way out" in m for m in messages)
    assert any("sub.again (goto) has no way out" in m for m in messages)
    assert not any("main.call" in m for m in messages)


def test_input_step_always_has_a_way_out_via_operator() -> None:
    text = """
defaults: {operator_target: "main:op"}
flows:
  main:
    start: menu
    steps:
      menu:
        type: menu
        prompts: "1"
        options: [{key: 1, goto: menu}]
      op: {type: transfer}
"""
    flowset = load_flows_text(text)
    assert "menu" in flowset.flows["main"].steps


def test_universal_disabled_and_no_escalation_has_no_way_out() -> None:
    text = """
defaults: {operator_target: "main:op"}
flows:
  main:
    start: menu
    steps:
      menu:
        type: menu
        universal: false
        prompts: "1"
        options: [{key: 1, goto: menu}]
        no_input: {then: menu}
        no_match: {then: menu}
      op: {type: transfer}
"""
    _, issues = check_text(text, "u.yaml")
    messages = [i.message for i in issues]
    assert any("main.menu (menu) has no way out" in m for m in messages)
    assert any("main.op is unreachable" in m for m in messages)


_LINES = SHIPPED.read_text(encoding="utf-8").splitlines()
_TYPES = ["menu", "collect", "action", "branch", "goto", "subflow", "return", "transfer", "record"]


@st.composite
def _mutated_shipped_file(draw: st.DrawFn) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "swap", "char", "type", "copy"]))
        if op == "delete":
            del lines[i]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "char":
            k = draw(st.integers(0, len(lines[i])))
            lines[i] = (
                lines[i][:k] + draw(st.sampled_from(list(":{}[]-#'\"*&!|> \tx0"))) + lines[i][k:]
            )
        elif op == "type":
            lines[i] = lines[i].replace("type: say", f"type: {draw(st.sampled_from(_TYPES))}")
        else:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
    return "\n".join(lines)


@settings(max_examples=30, deadline=None)
@given(_mutated_shipped_file())
def test_mutated_files_give_issues_never_tracebacks(text: str) -> None:
    flowset, issues = check_text(text, "m.yaml")
    assert (flowset is None) == bool(issues)
    for issue in issues:
        assert issue.line >= 1
        assert issue.column >= 1
        assert issue.message
