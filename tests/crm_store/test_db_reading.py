"""``Database.reading``: one read outside any transaction (the bearer-token check's path)."""

from __future__ import annotations

import sqlite3

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.db import Database
from crm_store.models import User
from crm_store.users import create_user


def _autocommit(session: Session) -> bool:
    """Whether the driver's connection under ``session`` runs without transactions."""
    raw = session.connection().connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection):
        return raw.isolation_level is None
    return bool(raw.autocommit)  # type: ignore[union-attr]


def test_a_read_runs_in_autocommit_and_sees_committed_rows(db: Database) -> None:
    with db.transaction() as s:
        create_user(s, "reader", roles=["supervisor"], password="Secret-pass-123")
    with db.reading() as s:
        assert _autocommit(s)
        assert s.scalar(select(func.count()).select_from(User).where(User.username == "reader"))
    # The pooled connection goes back as it was: the next transaction is a real one.
    with db.transaction() as s:
        assert not _autocommit(s)
