"""``contactcenter dnc …`` and ``contactcenter consent …`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from contactcenter.cli import main
from crm_store.db import Database
from crm_store.models import AuditLog


@pytest.fixture
def runner(database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner on the test database (emptied after the test by ``db``)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner()


def test_dnc_add_list_remove_with_the_acting_user(runner: CliRunner, db: Database) -> None:
    result = runner.invoke(
        main, ["dnc", "add", "8 916 123-45-67", "--reason", "жалоба", "--by", "anna"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "+79161234567 (any): added"
    result = runner.invoke(main, ["dnc", "add", "+79161234567", "--reason", "ещё раз"])
    assert result.output.strip() == "+79161234567 (any): already listed"
    result = runner.invoke(main, ["dnc", "list"])
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    assert "+79161234567\tany\tsupervisor" in line
    assert line.endswith("cli:anna — жалоба")
    result = runner.invoke(main, ["dnc", "list", "--json", "--phone", "89161234567"])
    listed = json.loads(result.output)
    assert listed["next_cursor"] is None
    assert [i["reason"] for i in listed["items"]] == ["жалоба"]
    result = runner.invoke(main, ["dnc", "remove", "+79161234567", "--reason", "просьба"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "+79161234567 (any): removed"
    result = runner.invoke(main, ["dnc", "remove", "+79161234567", "--reason", "просьба"])
    assert result.output.strip() == "not on the list: nothing removed"
    with db.transaction() as s:
        actors = [a.actor for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    # Without --by the OS user acts.
    assert actors[0] == "cli:anna"
    assert actors[1].startswith("cli")
    assert actors[1] != "cli:anna"


def test_dnc_errors_are_one_clear_line(runner: CliRunner) -> None:
    result = runner.invoke(main, ["dnc", "add", "12345", "--reason", "x"])
    assert result.exit_code == 1
    assert result.output.startswith("error: некорректный номер телефона")
    result = runner.invoke(main, ["dnc", "add", "+79161234567"])
    assert result.exit_code == 2
    assert "--reason" in result.output
    result = runner.invoke(main, ["dnc", "add", "+79161234567", "--reason", " "])
    assert result.exit_code == 1
    assert "причину" in result.output


def test_dnc_import_reports_rows(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "stop.csv"
    path.write_text("+79161234567\nкакой-то текст\n+79161234568,просил не звонить\n")
    result = runner.invoke(main, ["dnc", "import", str(path), "--channel", "voice"])
    assert result.exit_code == 0, result.output
    assert "Добавлено в стоп-лист: 2" in result.output
    assert "  строка 2: некорректный номер телефона" in result.output
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\x00\x00")
    result = runner.invoke(main, ["dnc", "import", str(binary)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Импорт невозможен: файл не похож на текстовый CSV")


def test_consent_grant_withdraw_list(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        ["consent", "grant", "89161234567", "--purpose", "marketing", "--reason", "анкета"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "+79161234567 marketing: granted"
    result = runner.invoke(
        main,
        ["consent", "withdraw", "+79161234567", "--purpose", "marketing", "--reason", "звонок"],
    )
    assert result.output.strip() == "+79161234567 marketing: withdrawn"
    result = runner.invoke(main, ["consent", "list", "--json"])
    [item] = json.loads(result.output)["items"]
    assert (item["status"], item["reason"]) == ("withdrawn", "звонок")
    result = runner.invoke(main, ["consent", "grant", "x", "--purpose", "nope", "--reason", "r"])
    assert result.exit_code == 2
    assert "nope" in result.output
