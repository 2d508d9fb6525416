"""The ``db`` and ``users`` CLI groups, through click's CliRunner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from contactcenter.cli import main
from crm_store import migrate
from crm_store.db import Database, make_engine
from crm_store.users import authenticate_password, authenticate_token


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_db_upgrade_current_check_downgrade(
    runner: CliRunner, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    head = migrate.head()
    result = runner.invoke(main, ["db", "current"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("none")

    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"database at revision {head}" in result.output

    result = runner.invoke(main, ["db", "check"])
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output

    result = runner.invoke(main, ["db", "current"])
    assert result.output.strip() == f"{head} (head)"

    result = runner.invoke(main, ["db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert migrate.current(empty_database_url) is None


def test_db_check_fails_on_drift(
    runner: CliRunner, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_audit_log_at"))
    engine.dispose()
    result = runner.invoke(main, ["db", "check"])
    assert result.exit_code == 1
    assert "schema drift" in result.output


def test_db_unknown_revision_is_a_clear_error(
    runner: CliRunner, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    result = runner.invoke(main, ["db", "upgrade", "nosuchrev"])
    assert result.exit_code == 1
    assert "migration error" in result.output
    assert "Traceback" not in result.output


def test_db_bad_database_url_names_the_variable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    result = runner.invoke(main, ["db", "current"])
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.output


def test_users_create_token_list(
    runner: CliRunner, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    result = runner.invoke(
        main,
        [
            "users",
            "create",
            "Anna",
            "--role",
            "operator",
            "--role",
            "supervisor",
            "--password-stdin",
            "--display-name",
            "Анна",
        ],
        input="correct horse battery\n",
    )
    assert result.exit_code == 0, result.output
    assert "created user anna (operator, supervisor)" in result.output

    result = runner.invoke(main, ["users", "create", "anna", "--role", "admin"])
    assert result.exit_code == 1
    assert "already exists" in result.output

    result = runner.invoke(main, ["users", "token", "anna"])
    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[0]
    assert token.startswith("cc_")

    with db.transaction() as s:
        user = authenticate_token(s, token)
        assert user is not None
        assert user.username == "anna"
        assert authenticate_password(s, "anna", "correct horse battery") is not None
        assert authenticate_password(s, "anna", "wrong password!") is None

    result = runner.invoke(main, ["users", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.split("\t")[:4] == ["anna", "operator,supervisor", "active", "token"]


def test_users_errors(runner: CliRunner, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    result = runner.invoke(main, ["users", "token", "ghost"])
    assert result.exit_code == 1
    assert "no user 'ghost'" in result.output
    result = runner.invoke(main, ["users", "create", "bob", "--role", "king"])
    assert result.exit_code == 2  # click rejects the choice
    result = runner.invoke(main, ["users", "create", "1bob", "--role", "admin"])
    assert result.exit_code == 1
    assert "username" in result.output
    result = runner.invoke(
        main, ["users", "create", "bob", "--role", "admin", "--password-stdin"], input="short\n"
    )
    assert result.exit_code == 1
    assert "at least" in result.output
    result = runner.invoke(main, ["users", "list"])
    assert result.output.strip() == "no users"
