"""Migrations build the schema from an empty database and match the models (no drift)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from crm_store import migrate
from crm_store.db import make_engine
from crm_store.models import Base


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_empty_database_then_check_finds_no_drift(empty_database_url: str) -> None:
    assert migrate.current(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == migrate.head()
    assert _tables(empty_database_url) == set(Base.metadata.tables)
    migrate.check(empty_database_url)


def test_downgrade_to_base_and_up_again(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    assert migrate.current(empty_database_url) is None
    assert _tables(empty_database_url) == set()
    migrate.upgrade(empty_database_url, "head")
    migrate.check(empty_database_url)


def test_check_reports_drift(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_audit_log_at"))
    engine.dispose()
    with pytest.raises(migrate.MigrationDriftError):
        migrate.check(empty_database_url)


def test_shared_test_database_is_at_head(database_url: str) -> None:
    assert migrate.current(database_url) == migrate.head()


def test_upgrade_keeps_existing_rows(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0001")
    engine = make_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO consumers (id, kind, full_name, created_at, updated_at) "
                "VALUES (1, 'person', 'Иванов', :t, :t)"
            ),
            {"t": "2026-03-01 00:00:00+00:00"},
        )
        conn.execute(
            text(
                "INSERT INTO accounts (id, consumer_id, number_raw, number, service_address, "
                "region, timezone, status, e_receipt, created_at, updated_at) VALUES "
                "(1, 1, '1', '0001', '', '', 'Europe/Moscow', 'active', false, :t, :t)"
            ),
            {"t": "2026-03-01 00:00:00+00:00"},
        )
        conn.execute(
            text(
                "INSERT INTO meters (id, account_id, serial, capacity, zones, remote_read, "
                "created_at) VALUES (1, 1, 'S', 6, '[\"день\"]', false, :t)"
            ),
            {"t": "2026-03-01 00:00:00+00:00"},
        )
        conn.execute(
            text(
                "INSERT INTO meter_readings (meter_id, zone, value, period, source, anomaly, "
                "override, rollover, submitted_at) VALUES "
                "(1, 'день', 154, '2026-03-01', 'import', false, false, false, :t)"
            ),
            {"t": "2026-03-01 00:00:00+00:00"},
        )
    engine.dispose()
    migrate.upgrade(empty_database_url)
    migrate.check(empty_database_url)
    engine = make_engine(empty_database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM meter_readings")).scalar_one() == 154
    engine.dispose()
