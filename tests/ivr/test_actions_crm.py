"""IVR actions against the CRM, called directly with an ActionContext."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from sqlalchemy import select

from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import Account, MeterReading
from ivr.action_context import ActionContext, ActionResult, CallContext
from ivr.action_names import ACTION_SPECS
from ivr.actions import missing_implementations, operator_hours, registry
from ivr.errors import ActionFailed

from .test_hotline_calls import IN_WINDOW, add_customer


@pytest.fixture
def services(settings: Settings, db: Database) -> Iterator[Services]:
    built = Services(settings)
    yield built
    built.db.dispose()


def run(
    services: Services,
    name: str,
    *,
    args: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    now: datetime = IN_WINDOW,
    arg_sources: dict[str, str] | None = None,
) -> ActionResult:
    ctx = ActionContext(
        name=name,
        args=args or {},
        variables={"caller_phone": "+79161234567", "path": ["hotline:greet"], **(variables or {})},
        call=CallContext("CA" + "5" * 32, "+79161234567", "+78001234567"),
        now=now,
        interaction_id=None,
        deps=services,
        state=state or {},
        arg_sources=arg_sources or {},
    )
    return registry()[name](ctx)


def test_every_declared_action_is_implemented() -> None:
    assert missing_implementations() == []
    assert set(registry()) == set(ACTION_SPECS)


@pytest.mark.parametrize(
    ("value", "outcome", "message"),
    [
        ("7700112233", "valid", None),
        ("123", "invalid", "Номер слишком короткий."),
        ("1" * 33, "invalid", "Номер слишком длинный."),
        ("12a456", "invalid", "Номер должен состоять только из цифр."),
    ],
)
def test_check_account_number(
    services: Services, value: str, outcome: str, message: str | None
) -> None:
    result = run(services, "check_account_number", args={"value": value})
    assert result.outcome == outcome
    assert result.variables.get("message") == message


def test_find_account_by_number_or_ivr_code(services: Services, db: Database) -> None:
    add_customer(db, "7700112233", address="улица Ленина, дом пять")
    with db.transaction() as s:
        s.scalars(select(Account)).one().ivr_code = "4455"
    assert run(services, "find_account", args={"number": "7700112233"}).variables == {
        "account_number": "7700112233",
        "address": "улица Ленина, дом пять",
        "account_attempts": 1,
    }
    assert run(services, "find_account", args={"number": "4455"}).outcome == "found"
    assert run(services, "find_account", args={"number": "1111"}).outcome == "not_found"
    assert run(services, "find_account", args={"number": ""}).outcome == "not_found"


def test_choose_account_rejects_positions_outside_the_list(
    services: Services, db: Database
) -> None:
    add_customer(db, "1000000001", address="улица Первая")
    state = {"choices": ["1000000001"]}
    assert run(services, "choose_account", args={"choice": "1"}, state=state).outcome == "chosen"
    assert run(services, "choose_account", args={"choice": "2"}, state=state).outcome == "invalid"
    assert run(services, "choose_account", args={"choice": "x"}, state=state).outcome == "invalid"
    assert run(services, "choose_account", args={"choice": "1"}).outcome == "invalid"


def test_actions_needing_an_account_fail_clearly_without_one(services: Services) -> None:
    with pytest.raises(ActionFailed, match="no account identified"):
        run(services, "balance")


def test_readings_session_saves_voice_readings_with_confidence(
    services: Services, db: Database
) -> None:
    add_customer(db, "7700112233", address="улица Ленина", history={"день": 100, "ночь": 50})
    variables: dict[str, Any] = {"account_number": "7700112233"}
    started = run(services, "start_readings", variables=variables)
    assert started.outcome == "ok"
    assert started.variables == {
        "meters_count": 1,
        "next_period": False,
        "window_closes": date(2026, 11, 25),
    }
    state = dict(started.state or {})
    zone = run(services, "next_meter_zone", variables=variables, state=state)
    assert zone.variables == {"meter_serial": "0123456", "zone_label": "день", "last_value": 100}
    state = dict(zone.state or {})
    assert (
        run(
            services, "check_reading", args={"value": "150"}, variables=variables, state=state
        ).outcome
        == "accepted"
    )
    saved = run(
        services,
        "save_reading",
        args={"value": "150"},
        variables={**variables, "reading_source": "speech", "reading_confidence": 0.83},
        state=state,
        arg_sources={"value": "reading"},
    )
    assert saved.outcome == "saved"
    state = dict(saved.state or {})
    night = run(services, "next_meter_zone", variables=variables, state=state)
    assert night.variables["zone_label"] == "ночь"
    state = dict(night.state or {})
    lower = run(services, "check_reading", args={"value": "40"}, variables=variables, state=state)
    assert (lower.outcome, lower.variables) == ("lower_than_last", {"last_value": 50})
    saved = run(
        services,
        "save_reading",
        args={"value": "40", "confirmed_lower": True},
        variables={**variables, "reading_source": "dtmf"},
        state=state,
        arg_sources={"value": "reading"},
    )
    done = run(services, "next_meter_zone", variables=variables, state=dict(saved.state or {}))
    assert (done.outcome, done.variables) == ("done", {"readings_count": 2})
    with db.transaction() as s:
        rows = s.scalars(
            select(MeterReading)
            .where(MeterReading.period == date(2026, 11, 1))
            .order_by(MeterReading.id)
        ).all()
        assert [(r.zone, r.value, r.source, r.confidence, r.override) for r in rows] == [
            ("день", 150, "ivr_voice", pytest.approx(0.83), False),
            ("ночь", 40, "ivr_dtmf", None, True),
        ]


def test_reading_actions_need_a_readings_session(services: Services, db: Database) -> None:
    add_customer(db, "7700112233", address="улица Ленина")
    with pytest.raises(ActionFailed, match="no readings session"):
        run(
            services,
            "check_reading",
            args={"value": "1"},
            variables={"account_number": "7700112233"},
        )


def test_late_readings_go_to_the_next_period(services: Services, db: Database) -> None:
    add_customer(db, "7700112233", address="улица Ленина")
    late = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    variables = {"account_number": "7700112233"}
    state = dict(run(services, "start_readings", variables=variables, now=late).state or {})
    state = dict(
        run(services, "next_meter_zone", variables=variables, state=state, now=late).state or {}
    )
    assert (
        run(
            services,
            "save_reading",
            args={"value": "10"},
            variables=variables,
            state=state,
            now=late,
        ).outcome
        == "saved"
    )
    with db.transaction() as s:
        assert s.scalars(select(MeterReading.period)).one() == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 11, 20), (time(8), time(17))),  # Friday
        (date(2026, 11, 7), None),  # Saturday
        (date(2026, 11, 22), (time(8), time(17))),  # Sunday inside the 21st-25th
        (date(2026, 11, 23), (time(8), time(21))),  # Monday inside the 21st-25th
    ],
)
def test_operator_hours(settings: Settings, day: date, hours: tuple[time, time] | None) -> None:
    assert operator_hours(day, settings) == hours


def test_operator_hours_come_from_settings_and_the_production_calendar(
    settings: Settings,
) -> None:
    assert operator_hours(date(2026, 11, 4), settings) is None  # День народного единства
    assert operator_hours(date(2027, 1, 5), settings) is None  # January holidays
    custom = settings.with_overrides(
        operator_hours=(time(9), time(18)),
        operator_peak_hours=(time(7), time(22)),
        operator_peak_days=(0, 0),
        operator_holidays=frozenset({date(2026, 11, 20)}),
    )
    assert operator_hours(date(2026, 11, 19), custom) == (time(9), time(18))
    assert operator_hours(date(2026, 11, 20), custom) is None
    assert operator_hours(date(2026, 11, 23), custom) == (time(9), time(18))  # no peak
    assert operator_hours(date(2026, 11, 22), custom) is None


@pytest.mark.parametrize(
    ("now", "outcome", "opens"),
    [
        (datetime(2026, 11, 23, 15, 0, tzinfo=UTC), "open", None),  # 18:00 MSK on the 23rd
        (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), "closed", time(8)),  # 18:00 MSK on the 20th
        (datetime(2026, 11, 20, 3, 0, tzinfo=UTC), "closed", time(8)),  # 06:00 MSK
    ],
)
def test_operator_availability(
    services: Services, now: datetime, outcome: str, opens: time | None
) -> None:
    result = run(services, "operator_availability", now=now)
    assert result.outcome == outcome
    assert result.variables.get("opens_at") == opens
    if outcome == "closed":
        # 18:00 on Friday the 20th: Saturday the 21st is a peak day; 06:00: today
        assert result.variables["opens_day"] in {"сегодня", "завтра"}


def test_log_contact_result_needs_a_result(services: Services) -> None:
    with pytest.raises(ActionFailed, match="empty result"):
        run(services, "log_contact_result", args={"result": ""})
    assert run(services, "verify_person", args={"confirmed": False}).outcome == "wrong_party"


def test_contract_violations_and_crm_errors_become_action_failures(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ivr.actions
    from crm_store.errors import NotFound

    monkeypatch.setitem(
        ivr.actions._IMPLEMENTATIONS, "outage_info", lambda ctx: ActionResult("planned", {})
    )
    with pytest.raises(ActionFailed, match="missing variables outage_text"):
        run(services, "outage_info")

    def missing(ctx: ActionContext) -> ActionResult:
        raise NotFound("account 1 does not exist")

    monkeypatch.setitem(ivr.actions._IMPLEMENTATIONS, "balance", missing)
    with pytest.raises(ActionFailed, match="NotFound"):
        run(services, "balance")
