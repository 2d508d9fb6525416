"""Simulator scripts (steps and expectations) and the ``simulate call`` command."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

import devtools.cli
from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import Account, Consumer, Meter, MeterReading
from devtools.flow_coverage import ENV_VAR, load_runs
from devtools.sandbox.audio import pcm_to_wav
from devtools.script import ScriptError, find_reading, load_script, parse_script, run_script
from devtools.simulator import Simulator
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml


def _hotline() -> TwimlApp:
    state = make_twiml_app()

    def incoming(_form: dict[str, str]) -> tuple[str, dict[str, str]]:
        return twiml(
            '<Gather numDigits="1" action="/voice/menu"><Say>Нажмите 1 для показаний</Say></Gather>'
        ), {"X-IVR-Step": "hotline:menu"}

    def menu(form: dict[str, str]) -> tuple[str, dict[str, str]]:
        if form.get("Digits") == "1":
            return twiml('<Record action="/voice/recorded" maxLength="10"/>'), {
                "X-IVR-Step": "hotline:reading"
            }
        return twiml("<Say>Неверный выбор</Say><Hangup/>"), {}

    state.on("/voice/incoming", incoming)
    state.on("/voice/menu", menu)
    state.on("/voice/recorded", twiml("<Say>Показания приняты</Say><Hangup/>"))
    return state


def _wav(tmp_path: Path) -> Path:
    path = tmp_path / "reading.wav"
    path.write_bytes(pcm_to_wav((np.ones(8000) * 2000).astype(np.int16)))
    return path


def test_script_runs_steps_and_checks_expectations(tmp_path: Path) -> None:
    _wav(tmp_path)
    script_file = tmp_path / "call.yaml"
    script_file.write_text(
        "capture: record\n"
        "steps:\n"
        "  - expect_step: hotline:menu\n"
        "  - press: 1\n"
        "  - say: reading.wav\n"
        "  - expect_heard: ПОКАЗАНИЯ приняты\n"
        "  - expect_step: hotline:reading\n"
        "  - expect_step: hotline:operator\n"
        "  - expect_heard: до свидания\n"
        "  - expect_ended: true\n",
        encoding="utf-8",
    )
    state = _hotline()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        result = run_script(sim, load_script(script_file))
    assert [c.ok for c in result.checks] == [True, True, True, False, False, True]
    assert "hotline:menu, hotline:reading" in result.checks[3].detail
    assert not result.ok
    assert result.call.recordings[0]["duration"] == 1


def test_capture_mismatch_and_input_after_end_fail(tmp_path: Path) -> None:
    wav = _wav(tmp_path)
    script = parse_script(
        {"capture": "stream", "steps": [{"press": "1"}, {"say": str(wav)}, {"press": "2"}, "wait"]}
    )
    state = _hotline()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        result = run_script(sim, script)
    failures = [c for c in result.checks if not c.ok]
    assert "Media Streams" in failures[0].description
    assert "already ended" in failures[1].detail


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"steps": ["jump"]}, "unknown step"),
        ({"steps": [{"press": "1", "say": "x"}]}, "expected one of"),
        ({"steps": [{"expect_reading": {"account": "1"}}]}, "needs a mapping with 'value'"),
        ({"steps": [{"expect_reading": {"value": "abc"}}]}, "must be an integer"),
        ({"capture": "tape"}, "capture must be"),
        ({"steps": [{"say_text": "да", "text": "x"}]}, "'text' goes only with 'say'"),
        ({"caller": "x"}, "unknown keys"),
    ],
)
def test_invalid_scripts(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(raw)


def test_load_script_errors(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="No such file"):
        load_script(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [", encoding="utf-8")
    with pytest.raises(ScriptError, match="invalid YAML"):
        load_script(bad)


def test_find_reading_in_the_crm(db: Database) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    with db.transaction() as s:
        account = Account(
            consumer=Consumer(full_name="Иванов И. И."),
            number_raw="7700112233",
            number="7700112233",
            timezone="Europe/Moscow",
        )
        meter = Meter(account=account, serial="SN-1", capacity=6, zones=["T1"])
        s.add(meter)
        s.flush()
        s.add(
            MeterReading(
                meter_id=meter.id,
                zone="T1",
                value=12345,
                period=date(2026, 1, 1),
                source="ivr_dtmf",
            )
        )
    assert find_reading(db, since, 12345, "7700112233", "T1")
    assert find_reading(db, since, 12345, None, None)
    assert not find_reading(db, since, 12345, "7700112234", None)
    assert not find_reading(db, since, 54321, None, None)
    assert not find_reading(db, datetime.now(UTC) + timedelta(minutes=1), 12345, None, None)


def test_cli_simulate_call_against_a_running_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _hotline()
    server = make_server("127.0.0.1", 0, state.app, threaded=True)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    state.public = base  # the server validates signatures against its own public URL
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("FLOWS_FILE", str(tmp_path / "flows.yaml"))
    monkeypatch.delenv(ENV_VAR, raising=False)  # only --coverage-file records
    coverage = tmp_path / "coverage.jsonl"
    try:
        runner = CliRunner()
        ok = runner.invoke(
            main,
            [
                "simulate",
                "call",
                "--url",
                base,
                "--from",
                "89161234501",
                "--press",
                "2",
                "--coverage-file",
                str(coverage),
            ],
        )
        fail = runner.invoke(
            main,
            [
                "simulate",
                "call",
                "--url",
                base,
                "--script",
                str(_script(tmp_path)),
            ],
        )
        bad = runner.invoke(main, ["simulate", "call", "--url", base, "--press", "x"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert ok.exit_code == 0, ok.output
    assert "+79161234501" in ok.output
    assert "Неверный выбор" in ok.output
    # With --url the steps are recorded against the local FLOWS_FILE.
    [run] = load_runs(coverage)
    assert (run.steps, run.flows) == (("hotline:menu",), str(tmp_path / "flows.yaml"))
    assert fail.exit_code == 1, fail.output
    assert "ok   heard «показания приняты»" in fail.output
    assert "FAIL heard «нет такой фразы»" in fail.output
    assert state.rejected == []
    assert bad.exit_code == 2  # refused before any call is placed
    assert "DTMF" in bad.output


def _script(tmp_path: Path) -> Path:
    _wav(tmp_path)
    path = tmp_path / "expect.yaml"
    path.write_text(
        "steps:\n  - press: 1\n  - say: reading.wav\n  - expect_heard: показания приняты\n"
        "  - expect_heard: нет такой фразы\n",
        encoding="utf-8",
    )
    return path


def test_cli_simulate_call_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database
) -> None:
    state = _hotline()

    def create_app(app_settings: Settings, *, config: dict[str, object] | None = None) -> Flask:
        assert config == {"SPEECH_CAPTURE": "record"}
        state.app.extensions["services"] = Services(app_settings)
        return state.app

    monkeypatch.setattr(devtools.cli, "create_app", create_app)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(
        main,
        ["simulate", "call", "--press", "1", "--say", str(_wav(tmp_path)), "--capture", "record"],
    )
    assert result.exit_code == 0, result.output
    assert "Показания приняты" in result.output
    assert "STEP       hotline:reading" in result.output
    assert "CRM changes: none" in result.output


def test_cli_bad_script_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    result = CliRunner().invoke(
        main,
        ["simulate", "call", "--url", "http://127.0.0.1:9", "--script", str(tmp_path / "no.yaml")],
    )
    assert result.exit_code == 2
    assert "No such file" in result.output


def test_cli_simulate_call_runs_the_shipped_hotline(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, redis_client: object
) -> None:
    """The 'done when' of issue 4: the hotline through the real webhooks, in-process."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    result = CliRunner().invoke(
        main, ["simulate", "call", "--from", "+79161234501", "--press", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("call CA")
    assert any(" STEP " in line and "hotline:" in line for line in lines)
    assert any(" SAY " in line for line in lines)
    assert any(" INPUT " in line and "pressed 1" in line for line in lines)
    assert "application error" not in result.output
    assert any("CRM changes:" in line for line in lines)
