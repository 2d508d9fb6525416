"""IVR actions for an account whose time zone is unknown: the supplier's Moscow clock.

The reading window (15th-25th by default) and billing periods of an account with
``timezone = None`` are counted in Moscow time (``crm_store.models.SUPPLIER_TIMEZONE``);
a known zone still wins. Each case is checked against a Kamchatka account at the same
instant, where the local date differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import Account, Meter, MeterReading
from ivr.action_context import ActionContext, ActionResult, CallContext
from ivr.actions import registry

from .test_hotline_calls import add_customer

# 14 November 2026, 20:30 UTC: 23:30 on the 14th in Moscow (window not open yet),
# 08:30 on the 15th in Kamchatka (window open).
EVE_OF_WINDOW = datetime(2026, 11, 14, 20, 30, tzinfo=UTC)
# 25 November 2026, 20:30 UTC: still the 25th in Moscow, already the 26th in Kamchatka.
LAST_EVENING = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)


@pytest.fixture
def services(settings: Settings, db: Database) -> Iterator[Services]:
    built = Services(settings)
    yield built
    built.db.dispose()


@pytest.fixture
def refusing(settings: Settings, db: Database) -> Iterator[Services]:
    """A supplier that refuses readings outside the window (its edge is observable)."""
    built = Services(settings.with_overrides(reading_late_policy="refuse"))
    yield built
    built.db.dispose()


def _customer(db: Database, number: str, zone: str | None) -> dict[str, Any]:
    add_customer(db, number, address="улица Ленина", debt=Decimal("1500.00"))
    with db.transaction() as s:
        s.scalars(select(Account).where(Account.number == number)).one().timezone = zone
    return {"account_number": number}


def run(
    services: Services,
    name: str,
    now: datetime,
    variables: dict[str, Any],
    *,
    args: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> ActionResult:
    ctx = ActionContext(
        name=name,
        args=args or {},
        variables={"caller_phone": "+79161234567", "path": ["hotline:greet"], **variables},
        call=CallContext("CA" + "7" * 32, "+79161234567", "+78001234567"),
        now=now,
        interaction_id=None,
        deps=services,
        state=state or {},
        arg_sources={},
    )
    return registry()[name](ctx)


def test_reading_window_of_an_unknown_zone_is_on_moscow_time(
    refusing: Services, db: Database
) -> None:
    services = refusing
    unknown = _customer(db, "7700000001", None)
    kamchatka = _customer(db, "7700000002", "Asia/Kamchatka")
    closed = run(services, "start_readings", EVE_OF_WINDOW, unknown)
    assert closed.outcome == "window_closed"
    assert closed.variables == {
        "window_opens": date(2026, 11, 15),
        "window_closes": date(2026, 11, 25),
    }
    assert run(services, "start_readings", EVE_OF_WINDOW, kamchatka).outcome == "ok"


def _save(services: Services, variables: dict[str, Any], now: datetime) -> None:
    state = dict(run(services, "start_readings", now, variables).state or {})
    state = dict(run(services, "next_meter_zone", now, variables, state=state).state or {})
    saved = run(services, "save_reading", now, variables, args={"value": "10"}, state=state)
    assert saved.outcome == "saved"


def test_billing_period_of_an_unknown_zone_is_on_moscow_time(
    services: Services, db: Database
) -> None:
    _save(services, _customer(db, "7700000001", None), LAST_EVENING)
    _save(services, _customer(db, "7700000002", "Asia/Kamchatka"), LAST_EVENING)
    with db.session() as s:
        periods = dict(
            s.execute(
                select(Account.number, MeterReading.period)
                .join(Meter, Meter.id == MeterReading.meter_id)
                .join(Account, Account.id == Meter.account_id)
            ).all()
        )
    # Moscow: the 25th, inside the window. Kamchatka: the 26th, a late reading.
    assert periods == {"7700000001": date(2026, 11, 1), "7700000002": date(2026, 12, 1)}


def test_balance_works_without_a_zone(services: Services, db: Database) -> None:
    result = run(services, "balance", LAST_EVENING, _customer(db, "7700000001", None))
    assert result.outcome == "ok"
    assert result.variables["debt"] == Decimal("1500.00")
