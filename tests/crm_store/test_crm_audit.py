"""Audit log: inserts, updates and deletes of customer data are recorded automatically."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from crm_store.audit import acting_as, audit_suspended, current_actor
from crm_store.db import Database
from crm_store.models import (
    Account,
    AccountPhone,
    AuditLog,
    Charge,
    Consent,
    Consumer,
    Meter,
    PhoneNumber,
)


def _log(db: Database) -> list[AuditLog]:
    with db.transaction() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


def test_insert_update_delete_with_before_and_after(db: Database) -> None:
    with acting_as("ivr"), db.transaction() as s:
        consumer = Consumer(full_name="Петров П. П.")
        s.add(Account(consumer=consumer, number_raw="1", number="1", timezone="Asia/Omsk"))
    with acting_as("operator:anna"), db.transaction() as s:
        acc = s.scalars(select(Account)).one()
        acc.status = "restricted"
    with db.transaction() as s:
        acc = s.scalars(select(Account)).one()
        s.delete(acc)

    rows = [r for r in _log(db) if r.entity == "account"]
    assert [(r.action, r.actor) for r in rows] == [
        ("insert", "ivr"),
        ("update", "operator:anna"),
        ("delete", "system"),
    ]
    ins, upd, dele = rows
    assert ins.before is None
    assert ins.after is not None
    assert ins.after["timezone"] == "Asia/Omsk"
    assert ins.entity_id == str(ins.after["id"])
    assert upd.before is not None
    assert upd.after is not None
    assert (upd.before["status"], upd.after["status"]) == ("active", "restricted")
    assert dele.before is not None
    assert dele.before["status"] == "restricted"
    assert dele.after is None
    assert all(r.at.tzinfo is not None for r in rows)


def test_no_entry_for_a_flush_without_changes(db: Database, account: Account) -> None:
    before = len(_log(db))
    with db.transaction() as s:
        acc = s.get(Account, account.id)
        assert acc is not None
        acc.status = acc.status  # same value: no net change
    assert len(_log(db)) == before


def test_session_actor_wins_over_context(db: Database) -> None:
    with acting_as("ivr"), db.transaction() as s:
        s.info["actor"] = "web"
        s.add(PhoneNumber(e164="+79031234567", source="web"))
    assert [r.actor for r in _log(db)] == ["web"]
    assert current_actor() == "system"


def test_all_customer_entities_are_audited_others_not(db: Database, account: Account) -> None:
    with db.transaction() as s:
        phone = PhoneNumber(e164="+79031234568")
        s.add(phone)
        s.flush()
        s.add(AccountPhone(account_id=account.id, phone_id=phone.id))
        s.add(Meter(account_id=account.id, serial="X", capacity=5, zones=["день"]))
        s.add(
            Consent(
                contact="phone",
                value="+79031234568",
                purpose="marketing",
                source="ivr",
                given_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        s.add(
            Charge(
                account_id=account.id,
                period=datetime(2026, 1, 1, tzinfo=UTC).date(),
                amount=1,
                due_date=datetime(2026, 2, 10, tzinfo=UTC).date(),
            )
        )
    entities = {r.entity for r in _log(db)}
    assert {"consumer", "account", "phone_number", "account_phone", "meter", "consent"} <= entities
    assert "charge" not in entities
    link = next(r for r in _log(db) if r.entity == "account_phone")
    assert link.entity_id == f"{account.id}:{link.after['phone_id'] if link.after else ''}"


def test_suspended_session_writes_nothing(db: Database) -> None:
    with db.transaction() as s:
        with audit_suspended(s):
            s.add(Consumer(full_name="Bulk"))
            s.flush()
        s.add(Consumer(full_name="Audited"))
    assert [r.after["full_name"] for r in _log(db) if r.after] == ["Audited"]
