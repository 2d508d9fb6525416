"""Cases with SLA over a working calendar; consent by purpose; do-not-contact."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from crm_store.cases import (
    SlaPolicy,
    WorkingCalendar,
    add_note,
    change_status,
    open_case,
    overdue_cases,
)
from crm_store.consent import (
    add_do_not_contact,
    consent_in_force,
    consent_status,
    consent_statuses,
    do_not_contact_values,
    grant_consent,
    is_do_not_contact,
    remove_do_not_contact,
    withdraw_consent,
)
from crm_store.db import Database
from crm_store.errors import InvalidInput, InvalidTransition
from crm_store.models import Account, Case

MSK = WorkingCalendar()  # Europe/Moscow, 09:00-18:00, Monday-Friday


def msk(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    """A Moscow wall-clock time as aware UTC (Moscow is UTC+3 all year)."""
    return datetime(y, m, d, hh - 3, mm, tzinfo=UTC)


# ---------------------------------------------------------------- working calendar
def test_working_time_within_one_day() -> None:
    # Monday 2 March 2026, 10:00 + 4 h → 14:00
    assert MSK.add_working_time(msk(2026, 3, 2, 10), timedelta(hours=4)) == msk(2026, 3, 2, 14)


def test_working_time_ending_at_close_stays_on_the_day() -> None:
    assert MSK.add_working_time(msk(2026, 3, 2, 10), timedelta(hours=8)) == msk(2026, 3, 2, 18)


def test_working_time_skips_the_night_and_the_weekend() -> None:
    # Friday 6 March 16:00 + 4 h: 2 h on Friday, 2 h on Monday → Monday 11:00
    assert MSK.add_working_time(msk(2026, 3, 6, 16), timedelta(hours=4)) == msk(2026, 3, 9, 11)
    # Saturday evening counts from Monday's opening
    assert MSK.add_working_time(msk(2026, 3, 7, 20), timedelta(hours=1)) == msk(2026, 3, 9, 10)


def test_working_time_with_holidays_and_other_hours() -> None:
    holidays = {date(2026, 3, 9)}
    cal = WorkingCalendar(
        timezone="Asia/Vladivostok",
        day_start=time(8),
        day_end=time(17),
        is_working_day=lambda d: d.weekday() < 5 and d not in holidays,
    )
    start = datetime(2026, 3, 6, 6, 0, tzinfo=UTC)  # Friday 16:00 in Vladivostok (UTC+10)
    # 1 h on Friday, Monday 9 March is a holiday, 1 h on Tuesday → Tuesday 09:00 local
    assert cal.add_working_time(start, timedelta(hours=2)) == datetime(2026, 3, 9, 23, tzinfo=UTC)


def test_calendar_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="day_start"):
        WorkingCalendar(day_start=time(18), day_end=time(9))
    with pytest.raises(ValueError, match="no working time"):
        WorkingCalendar(is_working_day=lambda d: False).add_working_time(
            msk(2026, 3, 2, 10), timedelta(hours=1)
        )


# ---------------------------------------------------------------- cases
def test_open_case_sets_sla_and_history(db: Database, account: Account) -> None:
    with db.transaction() as s:
        case = open_case(
            s,
            case_type="callback",
            subject="Перезвонить по долгу",
            account_id=account.id,
            actor="ivr",
            now=msk(2026, 3, 6, 16),
        )
        assert case.sla_due_at == msk(2026, 3, 9, 11)  # 4 working hours over the weekend
        assert [(e.from_status, e.to_status, e.actor) for e in case.events] == [
            (None, "open", "ivr")
        ]


def test_custom_sla_policy_and_no_sla_for_unlisted_types(db: Database) -> None:
    policy = SlaPolicy(response_times={"complaint": timedelta(hours=1)})
    with db.transaction() as s:
        c = open_case(
            s, case_type="complaint", subject="Жалоба", now=msk(2026, 3, 2, 9), policy=policy
        )
        v = open_case(
            s, case_type="voicemail", subject="Сообщение", now=msk(2026, 3, 2, 9), policy=policy
        )
        assert c.sla_due_at == msk(2026, 3, 2, 10)
        assert v.sla_due_at is None


def test_status_transitions_are_recorded_and_checked(db: Database) -> None:
    with db.transaction() as s:
        case = open_case(s, case_type="already_paid", subject="Уже оплатил", now=msk(2026, 3, 2, 9))
        change_status(s, case.id, "in_progress", actor="anna", now=msk(2026, 3, 2, 10))
        change_status(s, case.id, "resolved", actor="anna", note="платёж найден")
        change_status(s, case.id, "in_progress", actor="boris", note="клиент не согласен")
        change_status(s, case.id, "closed", actor="boris", now=msk(2026, 3, 3, 12))
        add_note(s, case.id, actor="boris", note="итог сообщён клиенту")
        assert case.closed_at == msk(2026, 3, 3, 12)
        with pytest.raises(InvalidTransition):
            change_status(s, case.id, "open", actor="anna")
        with pytest.raises(InvalidInput):
            open_case(s, case_type="prank", subject="x")
        with pytest.raises(InvalidInput):
            add_note(s, case.id, actor="anna", note="  ")
    with db.transaction() as s:
        stored = s.get(Case, case.id)
        assert stored is not None
        assert [(e.from_status, e.to_status) for e in stored.events] == [
            (None, "open"),
            ("open", "in_progress"),
            ("in_progress", "resolved"),
            ("resolved", "in_progress"),
            ("in_progress", "closed"),
            (None, None),
        ]
        assert stored.events[2].note == "платёж найден"


def test_overdue_cases(db: Database) -> None:
    with db.transaction() as s:
        late = open_case(s, case_type="outage", subject="Нет света", now=msk(2026, 3, 2, 9))
        open_case(s, case_type="complaint", subject="Жалоба", now=msk(2026, 3, 2, 9))
        done = open_case(s, case_type="callback", subject="Звонок", now=msk(2026, 3, 2, 9))
        change_status(s, done.id, "resolved", actor="anna")
    with db.transaction() as s:
        assert [c.id for c in overdue_cases(s, msk(2026, 3, 2, 17))] == [late.id]


# ---------------------------------------------------------------- consent
def test_consent_in_force_by_purpose_and_time(db: Database) -> None:
    phone = "+79031234567"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.transaction() as s:
        grant_consent(
            s,
            contact="phone",
            value="8 903 123-45-67",
            purpose="service_notice",
            source="contract",
            at=t0,
        )
        grant_consent(s, contact="phone", value=phone, purpose="marketing", source="web", at=t0)
        withdraw_consent(
            s,
            contact="phone",
            value=phone,
            purpose="marketing",
            source="sms",
            at=t0 + timedelta(days=10),
        )
    with db.transaction() as s:
        # marketing SMS to a contact with only service consent is blocked (domain §5.8)
        later = t0 + timedelta(days=20)
        assert consent_in_force(s, phone, "service_notice", later)
        assert not consent_in_force(s, phone, "marketing", later)
        assert consent_status(s, phone, "marketing", later) == "withdrawn"
        assert consent_in_force(s, phone, "marketing", t0 + timedelta(days=5))
        assert consent_status(s, phone, "marketing", t0 - timedelta(days=1)) == "none"
        assert consent_status(s, phone, "debt_notice", later) == "none"
        assert consent_statuses(s, [phone, "+79990000000"], later) == {
            phone: {"service_notice": "granted", "marketing": "withdrawn"}
        }


def test_grant_again_after_withdrawal_and_idempotence(db: Database) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.transaction() as s:
        a = grant_consent(
            s, contact="email", value="Ivan@Example.RU", purpose="e_receipt", source="web", at=t0
        )
        b = grant_consent(
            s,
            contact="email",
            value="ivan@example.ru",
            purpose="e_receipt",
            source="web",
            at=t0 + timedelta(hours=1),
        )
        assert a.id == b.id
        assert a.value == "ivan@example.ru"
        withdraw_consent(
            s,
            contact="email",
            value="ivan@example.ru",
            purpose="e_receipt",
            source="web",
            at=t0 + timedelta(days=1),
        )
        grant_consent(
            s,
            contact="email",
            value="ivan@example.ru",
            purpose="e_receipt",
            source="operator",
            at=t0 + timedelta(days=2),
        )
        assert consent_in_force(s, "ivan@example.ru", "e_receipt", t0 + timedelta(days=3))
        assert not consent_in_force(s, "ivan@example.ru", "e_receipt", t0 + timedelta(days=1))


def test_withdraw_without_grant_records_a_refusal(db: Database) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with db.transaction() as s:
        r1 = withdraw_consent(
            s, contact="phone", value="+79031234567", purpose="robot_calls", source="ivr", at=t0
        )
        r2 = withdraw_consent(
            s,
            contact="phone",
            value="+79031234567",
            purpose="robot_calls",
            source="ivr",
            at=t0 + timedelta(minutes=1),
        )
        assert r1.id == r2.id
        assert not r1.granted
        assert consent_status(s, "+79031234567", "robot_calls", t0 + timedelta(days=1)) == (
            "withdrawn"
        )


def test_consent_input_errors(db: Database) -> None:
    with db.transaction() as s:
        with pytest.raises(InvalidInput, match="purpose"):
            grant_consent(s, contact="phone", value="+79031234567", purpose="spam", source="x")
        with pytest.raises(InvalidInput, match="почты"):
            grant_consent(s, contact="email", value="not-an-email", purpose="marketing", source="x")
        with pytest.raises(InvalidInput, match="телефона"):
            consent_in_force(s, "12345", "marketing")


# ---------------------------------------------------------------- do not contact
def test_do_not_contact_by_channel(db: Database) -> None:
    with db.transaction() as s:
        a = add_do_not_contact(s, "8 903 123 45 67", channel="sms", reason="sms_stop")
        b = add_do_not_contact(s, "+79031234567", channel="sms", reason="sms_stop")
        assert a.id == b.id
        add_do_not_contact(s, "+79161112233", channel="any", reason="supervisor", created_by="anna")
        assert is_do_not_contact(s, "+79031234567", "sms")
        assert not is_do_not_contact(s, "+79031234567", "voice")
        assert is_do_not_contact(s, "+79161112233", "voice")
        assert do_not_contact_values(
            s, ["+79031234567", "+79161112233", "+79990000000"], "voice"
        ) == {"+79161112233"}
        assert remove_do_not_contact(s, "+79031234567", "sms")
        assert not remove_do_not_contact(s, "+79031234567", "sms")
        assert not is_do_not_contact(s, "+79031234567", "sms")
        with pytest.raises(InvalidInput):
            add_do_not_contact(s, "+79031234567", channel="sms", reason="because")
