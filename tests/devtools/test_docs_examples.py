"""The documented first steps: the example scripts and campaigns work on any day."""

from __future__ import annotations

import logging
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contactcenter.cli import main
from contactcenter.config import Settings
from crm_store.db import Database
from devtools.demo import seed_demo
from devtools.script import ScriptError, load_script, parse_script
from ivr import capture
from ivr.startup import load_flowset

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("PUBLIC_BASE_URL", settings.public_base_url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", settings.webhook_auth_token)


def test_readings_example_passes_outside_the_reading_window(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, redis_client: Any
) -> None:
    seed_demo(db, consumers=100, seed=1)
    _env(monkeypatch, settings)
    # A configured window that has not opened yet today (readings are refused before it):
    # the example must still pass. Demo accounts are in Moscow time or east of it.
    today = datetime.now(UTC).day
    if today >= 30:
        pytest.skip("no later day of the month to open the window on")
    monkeypatch.setenv("READING_WINDOW_START_DAY", str(today + 2))
    monkeypatch.setenv("READING_WINDOW_END_DAY", str(today + 2))
    script = str(EXAMPLES / "readings_by_keypad.yaml")
    result = CliRunner().invoke(main, ["simulate", "call", "--script", script])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    assert "Показания приняты" in result.output


def test_script_reading_window_is_validated() -> None:
    assert load_script(EXAMPLES / "readings_by_keypad.yaml").reading_window == (1, 31)
    assert parse_script({"steps": []}).reading_window is None
    for bad in ([25, 15], [0, 31], "1-31", [1]):
        with pytest.raises(ScriptError, match="reading_window"):
            parse_script({"reading_window": bad})


def test_readme_try_a_call_targets_the_running_server() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    banner = (ROOT / "scripts" / "run_dev.sh").read_text(encoding="utf-8")
    assert "simulate call --url $PUBLIC_BASE_URL" in banner
    line = next(x for x in readme.splitlines() if "contactcenter simulate call --url" in x)
    assert "--url http://127.0.0.1:5000" in line


def test_simulate_refuses_an_invalid_key_at_once(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    _env(monkeypatch, settings)
    for keys in ("x", "1a", ""):
        result = CliRunner().invoke(main, ["simulate", "call", "--press", keys])
        assert result.exit_code == 2, result.output
        assert "DTMF keys are 0-9, * and #" in result.output
    with pytest.raises(ScriptError, match="DTMF"):
        parse_script({"steps": [{"press": "12x"}]})
    assert parse_script({"steps": [{"press": "7700112233#"}, {"press": "*"}]}).steps


def test_missing_speech_model_is_warned_once_per_process(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    flowset = load_flowset(settings.flows_file)
    capture._WARNED_MISSING.clear()
    with caplog.at_level(logging.INFO, logger="ivr.capture"):
        for _ in range(3):
            model = capture.setup_speech(flowset, settings)
            assert model.reason  # no model in the test environment
    about = [r for r in caplog.records if "speech model" in r.getMessage()]
    assert len(about) == 3
    assert [r.levelno for r in about] == [logging.WARNING, logging.INFO, logging.INFO]


def test_ensure_services_says_what_it_changes_and_a_dry_run_changes_nothing(
    tmp_path: Path,
) -> None:
    # A machine without Redis or PostgreSQL tools: only the basic commands the script uses.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "grep", "seq", "sleep", "mkdir", "ls", "sort", "tail", "sed", "cat"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    hba = tmp_path / "etc" / "15" / "main" / "pg_hba.conf"
    hba.parent.mkdir(parents=True)
    hba.write_text("local all postgres peer\n", encoding="utf-8")
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, str(ROOT / "scripts" / "ensure_services.sh"), "--postgres", "--dry-run"],
        env={"PATH": str(bin_dir), "PG_ETC": str(tmp_path / "etc")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ensure_services: installing redis-server with" in out
    assert "ensure_services: starting redis-server" in out
    assert "ensure_services: installing postgresql with" in out
    assert f"ensure_services: adding to {hba}" in out
    assert "host all all 127.0.0.1/32 trust" in out
    assert out.rstrip().endswith("dry run: nothing changed")
    assert hba.read_text(encoding="utf-8") == "local all postgres peer\n"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pg_hba.conf" in readme
    assert "ensure_services.sh --postgres --dry-run" in readme
