"""``contactcenter flows`` through click's CliRunner: exit codes, output, graph drawings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from contactcenter.cli import main
from ivr.graph import render_dot, render_mermaid, step_edges
from ivr.schema import FlowSet
from ivr.validate import load_flows

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "call_flows.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "flows"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_ok(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flows", "check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{SHIPPED}: OK"


def test_check_default_file_from_settings(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWS_FILE", str(FIXTURES / "unknown_target.yaml"))
    result = runner.invoke(main, ["flows", "check"])
    assert result.exit_code == 1
    assert "unknown_target.yaml:9:15: step main.hello: unknown step 'goodby'" in result.output


def test_check_reports_every_issue_and_fails(runner: CliRunner) -> None:
    path = FIXTURES / "many_errors.yaml"
    result = runner.invoke(main, ["flows", "check", str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 7
    assert lines[0].startswith(f"{path}:10:33: ")
    assert lines[-1] == f"{path}: 6 problems"


def test_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["flows", "check", str(tmp_path / "x.yaml")])
    assert result.exit_code == 1
    assert "x.yaml:1:1: file not found" in result.output
    assert "Traceback" not in result.output


def test_schema(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flows", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "IVR call flows (call_flows.yaml)"
    assert "SayStep" in schema["$defs"]


def test_graph_mermaid(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flows", "graph", str(SHIPPED), "--flow", "hotline"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("flowchart TD\n")
    assert "START((start)) --> hotline__greet" in out
    assert 'hotline__main_menu -->|"1"| hotline__readings' in out
    assert 'hotline__main_menu -->|"0"| operator__check_hours' in out
    assert 'hotline__goodbye(["goodbye (hangup)"])' in out
    assert 'hotline__identify -.->|"call"| identify__lookup' in out


def test_graph_dot(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        [
            "flows",
            "graph",
            str(SHIPPED),
            "--flow",
            "debt_reminder",
            "--format",
            "dot",
            "--implicit",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith('digraph "debt_reminder" {')
    assert '"debt_reminder__tell_debt" -> "debt_reminder__opt_out" [label="9"];' in out
    assert (
        '"debt_reminder__verify" -> "debt_reminder__not_reached" [label="no_input", style=dashed];'
        in out
    )
    assert out.rstrip().endswith("}")


def test_graph_unknown_flow_and_invalid_file(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flows", "graph", str(SHIPPED), "--flow", "nope"])
    assert result.exit_code == 2
    assert "no flow 'nope'" in result.output
    result = runner.invoke(main, ["flows", "graph", str(FIXTURES / "unreachable.yaml")])
    assert result.exit_code == 1
    assert "unreachable.yaml:10:7:" in result.output


def test_graph_bad_format(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flows", "graph", str(SHIPPED), "--format", "png"])
    assert result.exit_code == 2


# ------------------------------------------------------------------------------ graph module


@pytest.fixture(scope="module")
def shipped() -> FlowSet:
    return load_flows(SHIPPED)


def test_every_step_drawn(shipped: FlowSet) -> None:
    for name, flow in shipped.flows.items():
        mermaid = render_mermaid(shipped, name)
        dot = render_dot(shipped, name)
        for step in flow.steps:
            assert f"{name}__{step}" in mermaid
            assert f'"{name}__{step}"' in dot


def test_edges_of_input_steps(shipped: FlowSet) -> None:
    edges = step_edges(shipped.step("hotline", "after_service"), shipped.defaults)
    kinds = [(e.kind, e.label, e.target) for e in edges]
    assert ("option", "1", "main_menu") in kinds
    assert ("escalation", "no_input", "goodbye") in kinds
    assert ("escalation", "no_match", "operator:check_hours") in kinds
    assert ("operator", "оператор", "operator:check_hours") in kinds
    closed = step_edges(shipped.step("operator", "closed_menu"), shipped.defaults)
    assert not any(e.kind == "operator" for e in closed)  # universal: false
