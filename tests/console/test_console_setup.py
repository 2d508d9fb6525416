"""The console's set-up: demo users (sandbox only), vendored libraries, package data."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from contactcenter.config import PROJECT_ROOT, ConfigError, Settings
from crm_store.db import Database
from devtools.cli import demo_group
from devtools.demo.users import DEMO_PASSWORD, DEMO_USERS, seed_demo_users
from tests.console.conftest import client_login

VENDOR = PROJECT_ROOT / "web" / "console" / "static" / "vendor"


def test_demo_users_are_created_once_and_never_in_production(
    settings: Settings, db: Database, console_client: FlaskClient
) -> None:
    first = seed_demo_users(db, settings)
    assert [(u.username, new) for u, new in first] == [(u.username, True) for u in DEMO_USERS]
    again = seed_demo_users(db, settings)
    assert [new for _u, new in again] == [False] * len(DEMO_USERS)
    with pytest.raises(ConfigError, match="sandbox only"):
        seed_demo_users(db, settings.with_overrides(telephony="twilio"))
    assert client_login(console_client, "demo.admin", DEMO_PASSWORD).status_code == 302


def test_demo_users_command(settings: Settings, db: Database, monkeypatch: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(demo_group, ["users"])
    assert result.exit_code == 0, result.output
    assert "demo.moscow" in result.output
    assert DEMO_PASSWORD in result.output
    monkeypatch.setenv("TELEPHONY", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "x" * 32)
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+74951234567")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://ivr.example.ru")
    refused = CliRunner().invoke(demo_group, ["users"])
    assert refused.exit_code == 1
    assert "sandbox only" in refused.output


def test_vendored_libraries_are_served_and_packaged(console_client: FlaskClient) -> None:
    versions = (VENDOR / "VERSIONS").read_text(encoding="utf-8")
    for name in ("htmx.min.js", "chart.umd.min.js"):
        assert (VENDOR / name).stat().st_size > 10_000
        assert name in versions
        with console_client.get(f"/console/static/vendor/{name}") as answer:
            assert answer.status_code == 200
            assert answer.mimetype in ("text/javascript", "application/javascript")
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert "no-store" not in answer.headers.get("Cache-Control", "")
    assert (VENDOR / "htmx.LICENSE").is_file()
    assert (VENDOR / "chart.js.LICENSE.md").is_file()
    for name in ("console.js", "console.css"):
        with console_client.get(f"/console/static/{name}") as answer:
            assert answer.status_code == 200
    data = tomllib.loads(Path(PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data["tool"]["setuptools"]["package-data"]["web.console"]
    package = PROJECT_ROOT / "web" / "console"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    wanted = {
        *package.glob("templates/console/*.html"),
        *package.glob("static/*.*"),
        *(p for p in (package / "static" / "vendor").iterdir()),
    }
    assert wanted <= shipped


def test_ensure_services_installs_chromium_for_the_browser_tests(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "grep", "seq", "sleep", "mkdir", "ls", "sort", "tail", "sed", "cat"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    bash = shutil.which("bash")
    assert bash is not None
    script = str(PROJECT_ROOT / "scripts" / "ensure_services.sh")

    def dry_run(*args: str) -> str:
        result = subprocess.run(
            [bash, script, *args, "--dry-run"],
            env={"PATH": str(bin_dir), "CHROMIUM": str(tmp_path / "no-chromium")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "ensure_services: installing chromium with" in dry_run("--browser")
    assert "chromium" not in dry_run()
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "ensure_services.sh --postgres --browser" in makefile
