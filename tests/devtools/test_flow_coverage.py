"""Flow coverage: recording visited steps of simulated calls, and the coverage report."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from flask import Flask

from contactcenter.cli import main
from contactcenter.config import Settings
from crm_store.db import Database
from devtools.flow_coverage import (
    ENV_VAR,
    CallRun,
    CoverageError,
    CoverageRecorder,
    CoverageReport,
    analyse,
    build_report,
    load_runs,
    render,
)
from devtools.simulator import Simulator
from ivr import load_flows
from ivr.loader import parse_yaml
from tests.twiml_testapp import PUBLIC, TOKEN, make_twiml_app, twiml
from webhooks import create_app, services_of

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "flows" / "coverage" / "small.yaml"
HOTLINE = ROOT / "call_flows.yaml"


@pytest.fixture(autouse=True)
def _no_coverage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests choose their own data files (the suite may run with --flow-coverage)."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def _report(runs: list[CallRun], flows_file: Path = SMALL) -> CoverageReport:
    text = flows_file.read_text(encoding="utf-8")
    _data, source, _issues = parse_yaml(text, str(flows_file))
    return analyse(load_flows(flows_file), source, flows_file, runs)


def _visited(report: CoverageReport, flow: str) -> set[str]:
    return {s.step for s in report.flow(flow).steps if s.visits}


def _untaken(report: CoverageReport, flow: str) -> set[tuple[str, str, int]]:
    return {(b.step, b.target, b.line) for b in report.flow(flow).branches if not b.taken}


# --------------------------------------------------------------------------- recording


def test_recorder_appends_parts_that_load_merges_in_order(tmp_path: Path) -> None:
    recorder = CoverageRecorder(tmp_path / "sub" / "cov.jsonl")
    recorder.record("CA2", 1, ["hotline:bye"], flows_file=str(SMALL))
    recorder.record("CA1", 0, ["hotline:greet", "hotline:menu"], flows_file=None)
    recorder.record("CA2", 0, ["hotline:greet"], flows_file=str(SMALL))
    recorder.record("CA2", 0, ["hotline:greet"], flows_file=str(SMALL))  # a duplicate part
    runs = {run.call: run for run in load_runs(tmp_path / "sub" / "cov.jsonl")}
    assert runs["CA1"] == CallRun("CA1", ("hotline:greet", "hotline:menu"), None)
    assert runs["CA2"] == CallRun("CA2", ("hotline:greet", "hotline:bye"), str(SMALL.resolve()))


def test_parallel_processes_share_one_file(tmp_path: Path) -> None:
    target = tmp_path / "shared.jsonl"
    code = textwrap.dedent(
        """
        import sys
        from devtools.flow_coverage import CoverageRecorder
        recorder = CoverageRecorder(sys.argv[1])
        for i in range(200):
            recorder.record(f"CA{sys.argv[2]}-{i}", 0, ["a:" + "x" * 3000] * 3, flows_file=None)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(target), str(n)], cwd=ROOT)
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    runs = load_runs(target)
    assert len(runs) == 800
    assert all(len(run.steps) == 3 for run in runs)


def test_directory_target_gets_one_file_per_process(tmp_path: Path) -> None:
    recorder = CoverageRecorder(f"{tmp_path}/cov/")
    recorder.record("CA1", 0, ["hotline:greet"], flows_file=None)
    files = list((tmp_path / "cov").glob("flow-coverage-*.jsonl"))
    assert len(files) == 1
    assert files[0].name.endswith(f"-{__import__('os').getpid()}.jsonl")
    (tmp_path / "cov" / "other.jsonl").write_text(
        json.dumps({"v": 1, "call": "CA2", "part": 0, "steps": ["x:y"], "flows": None}) + "\n",
        encoding="utf-8",
    )
    assert sorted(run.call for run in load_runs(tmp_path / "cov")) == ["CA1", "CA2"]
    recorder.clear()
    assert [p.name for p in (tmp_path / "cov").iterdir()] == ["other.jsonl"]


def test_bad_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="no coverage data at"):
        load_runs(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": 1, "call": "CA1", "part": 0, "steps": [], "flows": null}\n{oops\n')
    with pytest.raises(CoverageError, match=r"bad\.jsonl:2: not JSON"):
        load_runs(bad)
    bad.write_text('{"v": 1, "call": "CA1", "part": "0", "steps": [], "flows": null}\n')
    with pytest.raises(CoverageError, match=r"bad\.jsonl:1: a record needs"):
        load_runs(bad)
    with pytest.raises(CoverageError, match="empty"):
        CoverageRecorder(" ")


# --------------------------------------------------------------------------- analysis


def test_analysis_counts_steps_branches_and_subflow_returns() -> None:
    runs = [
        CallRun("CA1", ("hotline:greet", "hotline:menu", "hotline:info", "hotline:bye")),
        CallRun(
            "CA2",
            (
                "hotline:greet",
                "hotline:menu",
                "hotline:menu",  # a re-prompt: not a branch
                "hotline:survey",
                "survey:ask",
                "survey:declined",
                "hotline:bye",  # the subflow's `declined` branch
            ),
        ),
        CallRun("CA3", ("hotline:greet", "fallback", "hotline:silent", "hotline:info")),
        CallRun("CA4", ("hotline:greet",), flows="/elsewhere/flows.yaml"),
    ]
    report = _report(runs)
    assert (report.calls, report.skipped_calls) == (3, 1)
    assert _visited(report, "hotline") == {"greet", "menu", "info", "survey", "silent", "bye"}
    assert _visited(report, "survey") == {"ask", "declined"}
    assert _untaken(report, "hotline") == {
        ("menu", "hotline:silent", 29),  # no_input
        ("menu", "hotline:bye", 22),  # no_match to the default operator target: the step's line
        ("survey", "hotline:thanks", 37),  # next
        ("thanks", "hotline:bye", 43),
        ("silent", "hotline:bye", 47),
    }
    assert _untaken(report, "survey") == {
        ("ask", "hotline:bye", 54),
        ("ask", "survey:done", 59),
    }
    assert report.unknown_steps == {"fallback": 1}
    assert report.other_transitions == {("hotline:silent", "hotline:info"): 1}
    menu = report.flow("hotline").steps[1]
    assert (menu.step, menu.visits, menu.line) == ("menu", 3, 22)
    # 6/7 + 6/11 in hotline, 2/3 + 1/3 in survey
    assert (report.steps_visited, report.steps_total) == (8, 10)
    assert (report.branches_taken, report.branches_total) == (7, 14)
    assert report.percent == pytest.approx(100 * 15 / 24)


def test_text_markdown_and_json_renderings() -> None:
    report = _report([CallRun("CA1", ("hotline:greet", "hotline:menu", "hotline:info"))])
    text = render(report, "text")
    assert "hotline       3/7  43%" in text
    assert "small.yaml:44  silent (say)" in text
    assert "small.yaml:60  ask → declined [2]" in text
    assert "small.yaml:22  menu → bye [no_match]" in text
    markdown = render(report, "markdown")
    assert "| hotline | 3/7  43% | 2/11  18% |" in markdown
    assert "- untaken branch `survey → survey:ask [call]`, line 36" in markdown
    data = json.loads(render(report, "json"))
    assert data["steps"] == {"visited": 3, "total": 10}
    hotline = data["flows"][0]
    assert hotline["name"] == "hotline"
    assert {b["target"]: b["taken"] for b in hotline["branches"] if b["step"] == "menu"} == {
        "hotline:info": 1,
        "hotline:survey": 0,
        "hotline:silent": 0,
        "hotline:bye": 0,
    }
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "html")


# --------------------------------------------------------------------------- simulated calls


@pytest.fixture
def small_app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    app = create_app(settings.with_overrides(flows_file=str(SMALL)))
    yield app
    services_of(app).db.dispose()


def test_simulated_calls_record_exact_coverage(
    small_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "cov.jsonl"
    monkeypatch.setenv(ENV_VAR, str(data))
    with Simulator.for_app(small_app) as sim:
        sim.call().press("1")
        call = sim.call().press("2")
        assert call.steps == ["hotline:greet", "hotline:menu", "hotline:survey", "survey:ask"]
        assert len(load_runs(data)) == 2  # written as the call goes, not only at its end
        call.press("1")
        assert call.ended
    report = build_report(SMALL, data)
    assert report.calls == 2
    assert _visited(report, "hotline") == {"greet", "menu", "info", "survey", "thanks", "bye"}
    assert _visited(report, "survey") == {"ask", "done"}
    assert _untaken(report, "hotline") == {
        ("menu", "hotline:silent", 29),
        ("menu", "hotline:bye", 22),
        ("survey", "hotline:bye", 39),
        ("silent", "hotline:bye", 47),
    }
    assert _untaken(report, "survey") == {
        ("ask", "hotline:bye", 54),
        ("ask", "survey:declined", 60),
    }
    assert not report.unknown_steps
    assert not report.other_transitions


def test_simulate_call_and_coverage_commands(small_app: Flask, tmp_path: Path) -> None:
    data = tmp_path / "cov"
    env = {
        "DATABASE_URL": services_of(small_app).settings.database_url,
        "REDIS_URL": services_of(small_app).settings.redis_url,
        "PUBLIC_BASE_URL": PUBLIC,
        "FLOWS_FILE": str(SMALL),
    }
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["simulate", "call", "--from", "+79161234501", "--wait", "--coverage-file", f"{data}/"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "Вас не слышно" in result.output
    result = runner.invoke(main, ["simulate", "coverage", "--data", str(data)], env=env)
    assert result.exit_code == 0, result.output
    assert "hotline       4/7  57%      3/11  27%" in result.output
    assert "small.yaml:30  info (say)" in result.output
    result = runner.invoke(
        main,
        ["simulate", "coverage", "--data", str(data), "--format", "json", "--fail-under", "50"],
        env=env,
    )
    assert result.exit_code == 1
    assert "below --fail-under 50%" in result.output
    assert json.loads(result.output[: result.output.rindex("}") + 1])["calls"] == 1
    result = runner.invoke(
        main, ["simulate", "coverage", "--data", str(data), "--fail-under", "20"], env=env
    )
    assert result.exit_code == 0
    missing = runner.invoke(main, ["simulate", "coverage", "--data", str(tmp_path / "no")], env=env)
    assert missing.exit_code == 2
    assert "no coverage data" in missing.output
    broken = ROOT / "tests" / "fixtures" / "flows" / "unknown_target.yaml"
    bad = runner.invoke(
        main, ["simulate", "coverage", "--data", str(data), "--flows", str(broken)], env=env
    )
    assert bad.exit_code == 2
    assert "invalid flow file" in bad.output


def test_hotline_coverage_sanity(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    app = create_app(settings)
    data = tmp_path / "cov.jsonl"
    try:
        with Simulator.for_app(app, coverage=data) as sim:
            sim.call(from_="+79161234501").press("7700112233#").press("1")
            sim.call(from_="+79161234502").press("0")
    finally:
        services_of(app).db.dispose()
    report = build_report(HOTLINE, data)
    assert report.calls == 2
    assert {"greet", "identify"} <= _visited(report, "hotline")
    assert {"lookup", "ask_account", "find_account"} <= _visited(report, "identify")
    identify_call = next(
        b for b in report.flow("hotline").branches if b.step == "identify" and "call" in b.kinds
    )
    assert identify_call.taken == 2
    assert not report.unknown_steps
    assert 0 < report.percent < 50
    assert report.flow("debt_reminder").steps_visited == 0


def test_other_apps_are_not_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "cov.jsonl"
    monkeypatch.setenv(ENV_VAR, str(data))
    state = make_twiml_app()
    state.on("/voice/incoming", (twiml("<Hangup/>"), {"X-IVR-Step": "hotline:greet"}))
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        assert sim.call().steps == ["hotline:greet"]
    assert not data.exists()
    with Simulator(state.app, TOKEN, PUBLIC, flows_file=SMALL) as sim:
        sim.call()
    assert load_runs(data) == [CallRun(sim.calls[0].sid, ("hotline:greet",), str(SMALL))]


# --------------------------------------------------------------------------- recognizer output


def test_transcript_shows_what_the_recognizer_heard() -> None:
    state = make_twiml_app()
    state.on(
        "/voice/incoming",
        (
            twiml('<Gather input="speech" action="/voice/heard"><Say>Назовите</Say></Gather>'),
            {"X-IVR-Step": "hotline:ask"},
        ),
    )
    state.on(
        "/voice/heard",
        (
            twiml("<Say>Принято</Say><Hangup/>"),
            {"X-IVR-Recognized": quote("две тысячи;", safe="") + ";confidence=0.87"},
        ),
    )
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        call.say_text("две тысячи")
    assert call.recognized == [{"text": "две тысячи;", "confidence": 0.87}]
    assert "RECOGNIZED heard: две тысячи; (confidence 0.87)" in call.transcript_text()


def test_malformed_confidence_is_left_out() -> None:
    state = make_twiml_app()
    state.on(
        "/voice/incoming",
        (twiml("<Hangup/>"), {"X-IVR-Recognized": "%D0%B4%D0%B0;confidence=high"}),
    )
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
    assert call.recognized == [{"text": "да"}]
    assert "RECOGNIZED heard: да\n" in call.transcript_text()


# --------------------------------------------------------------------------- pytest plugin


def test_pytest_plugin_exports_the_variable_and_clears_old_data(tmp_path: Path) -> None:
    data = tmp_path / "cov.jsonl"
    data.write_text("stale\n", encoding="utf-8")
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            from devtools.flow_coverage import CoverageRecorder

            def test_records():
                recorder = CoverageRecorder.from_env()
                assert recorder is not None
                recorder.record("CA1", 0, ["hotline:greet"], flows_file=None)
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "devtools.flow_coverage_plugin",
            "--flow-coverage=cov.jsonl",
            "test_sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"flow coverage data: {data}" in result.stdout
    assert load_runs(data) == [CallRun("CA1", ("hotline:greet",), None)]
