"""Fixtures of the CRM store tests: a fresh empty database, and small object factories."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crm_store.db import Database
from crm_store.models import Account, Consumer, Meter

TEST_DB = os.environ.get("TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A brand-new, never-migrated database of the backend under test."""
    if TEST_DB == "postgresql":
        name = f"cc_empty_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def account(db: Database) -> Account:
    """A persisted account (Moscow time) of a persisted consumer, with no meters."""
    with db.transaction() as s:
        consumer = Consumer(full_name="Иванов Иван Иванович")
        acc = Account(
            consumer=consumer,
            number_raw="РА07-12345",
            number="РА0712345",
            service_address="г. Москва, ул. Ленина, д. 1, кв. 2",
            region="Москва",
            timezone="Europe/Moscow",
        )
        s.add(acc)
    return acc


@pytest.fixture
def meter(db: Database, account: Account) -> Meter:
    """A two-zone (день/ночь) six-digit meter on ``account``."""
    with db.transaction() as s:
        m = Meter(account_id=account.id, serial="SN-001", capacity=6, zones=["день", "ночь"])
        s.add(m)
    return m
