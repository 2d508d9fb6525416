"""crm_store.db: pooled PostgreSQL connections are checked before use only after sitting idle
(what pool_pre_ping did on every checkout, a round trip each)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

import crm_store.db
from crm_store.db import Database, make_engine
from tests.conftest import TEST_DB

pytestmark = pytest.mark.skipif(
    TEST_DB != "postgresql", reason="SQLite connections are files: nothing to ping"
)


def test_a_busy_connection_is_not_pinged(database_url: str) -> None:
    engine = make_engine(database_url)
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        sent.append(sql)

    try:
        for _ in range(5):
            with engine.connect() as conn:
                conn.execute(text("SELECT 2"))
        assert sent == ["SELECT 2"] * 5
    finally:
        engine.dispose()


def test_an_idle_connection_killed_by_the_server_is_replaced_unnoticed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            victim = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        other = make_engine(database_url)
        with other.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        other.dispose()
        monkeypatch.setattr(crm_store.db, "PING_IDLE_S", 0.0)  # it has sat idle long enough
        with db.transaction() as s:
            fresh = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert fresh != victim
    finally:
        db.dispose()
