"""Idempotent writes stay single under concurrent webhooks (PostgreSQL: real row locks).

Session A inserts and holds its transaction open; session B (another thread) runs the same
call, passes the "already there?" check (A is uncommitted), blocks on the unique index, and
must return A's row after A commits instead of failing or duplicating.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.consent import add_do_not_contact
from crm_store.db import Database
from crm_store.interactions import start_interaction
from crm_store.models import DoNotContact, Interaction, Meter, MeterReading
from crm_store.readings import Accepted, submit_reading

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("TEST_DB", "sqlite") != "postgresql",
        reason="SQLite serialises writers; row-level races need PostgreSQL",
    ),
]


def _race(db: Database, call: Callable[[Session], Any]) -> tuple[Any, Any]:
    """Run ``call`` in session A (held open) and concurrently in session B."""
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with db.transaction() as s:
                results["b"] = call(s)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(exc)

    with db.transaction() as s:
        results["a"] = call(s)
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)  # let B pass its check and block on the unique index
    thread.join(timeout=30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return results["a"], results["b"]


def test_concurrent_start_of_the_same_call(db: Database) -> None:
    a, b = _race(
        db,
        lambda s: (
            start_interaction(s, channel="voice", direction="inbound", provider_sid="CA-race").id
        ),
    )
    assert a == b
    with db.transaction() as s:
        assert s.scalar(select(func.count(Interaction.id))) == 1


def test_concurrent_submission_of_the_same_reading(db: Database, meter: Meter) -> None:
    at = datetime(2026, 3, 20, 9, tzinfo=UTC)

    def submit(s: Session) -> tuple[int | None, bool]:
        result = submit_reading(s, meter.id, "день", "000154", "ivr_dtmf", submitted_at=at)
        assert isinstance(result.decision, Accepted)
        return (result.reading.id if result.reading else None), result.decision.duplicate

    (id_a, dup_a), (id_b, dup_b) = _race(db, submit)
    assert id_a == id_b
    assert (dup_a, dup_b) == (False, True)
    with db.transaction() as s:
        assert s.scalar(select(func.count(MeterReading.id))) == 1


def test_concurrent_opt_out(db: Database) -> None:
    a, b = _race(
        db, lambda s: add_do_not_contact(s, "+79031234567", channel="sms", reason="sms_stop").id
    )
    assert a == b
    with db.transaction() as s:
        assert s.scalar(select(func.count(DoNotContact.id))) == 1
