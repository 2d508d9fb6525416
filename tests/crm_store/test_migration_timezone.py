"""Migration 0004: an account's time zone may be unknown (NULL); data survives both ways."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_store import migrate
from crm_store.db import Database, make_engine
from crm_store.models import Account, Consumer

T = {"t": "2026-03-01 00:00:00+00:00"}


def _insert_account(url: str, account_id: int, zone: str | None) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO consumers (id, kind, full_name, created_at, updated_at) "
                    "VALUES (:id, 'person', 'Иванов', :t, :t)"
                ),
                {"id": account_id, **T},
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (id, consumer_id, number_raw, number, "
                    "service_address, region, timezone, status, e_receipt, created_at, "
                    "updated_at) VALUES (:id, :id, :n, :n, '', '', :zone, 'active', false, "
                    ":t, :t)"
                ),
                {"id": account_id, "n": f"000{account_id}", "zone": zone, **T},
            )
    finally:
        engine.dispose()


def _zones(url: str) -> dict[int, str | None]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, timezone FROM accounts ORDER BY id")).all()
        return {row[0]: row[1] for row in rows}
    finally:
        engine.dispose()


def test_upgrade_keeps_zones_and_allows_null_downgrade_fills_moscow(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url, "0003")
    _insert_account(empty_database_url, 1, "Asia/Kamchatka")
    with pytest.raises(IntegrityError):
        _insert_account(empty_database_url, 2, None)

    migrate.upgrade(empty_database_url)
    migrate.check(empty_database_url)
    _insert_account(empty_database_url, 2, None)
    assert _zones(empty_database_url) == {1: "Asia/Kamchatka", 2: None}

    migrate.downgrade(empty_database_url, "0003")
    assert _zones(empty_database_url) == {1: "Asia/Kamchatka", 2: "Europe/Moscow"}
    with pytest.raises(IntegrityError):
        _insert_account(empty_database_url, 3, None)

    migrate.upgrade(empty_database_url)
    migrate.check(empty_database_url)
    assert _zones(empty_database_url) == {1: "Asia/Kamchatka", 2: "Europe/Moscow"}


def test_account_without_zone_is_stored_as_null_and_uses_supplier_clock(db: Database) -> None:
    with db.transaction() as s:
        account = Account(consumer=Consumer(full_name="Петров Пётр"), number_raw="77", number="77")
        s.add(account)
        s.flush()
        account_id = account.id
    with db.session() as s:
        stored = s.get(Account, account_id)
        assert stored is not None
        assert stored.timezone is None
        assert stored.local_timezone == "Europe/Moscow"
        assert stored.zoneinfo.key == "Europe/Moscow"


@pytest.mark.parametrize("bad", ["", "Etc/Unknown", "Mars/Olympus", "Europe/"])
def test_a_set_zone_is_still_validated(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Account(number_raw="1", number="1", timezone=bad)
