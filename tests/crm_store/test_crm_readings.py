"""Reading validation (domain.md §2.3 and acceptance tests §5 items 5–7) and submission."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from contactcenter.config import Settings
from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import Account, AuditLog, Meter, MeterReading
from crm_store.readings import (
    Accepted,
    NeedsConfirmation,
    ReadingDecision,
    ReadingPolicy,
    Rejected,
    billing_period,
    check_reading,
    max_plausible,
    months_between,
    submit_reading,
    validate_reading,
    verification_notice,
    zone_history,
)

IN_WINDOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, 20 March
PAD = ReadingPolicy(length_mode="pad")


def decide(raw: str | int, **kw: Any) -> ReadingDecision:
    args: dict[str, Any] = {
        "capacity": 6,
        "zone": "день",
        "zones": ["день", "ночь"],
        "timezone": "Europe/Moscow",
        "submitted_at": IN_WINDOW,
    }
    args.update(kw)
    return validate_reading(raw, **args)


def accepted(decision: ReadingDecision) -> Accepted:
    assert isinstance(decision, Accepted), decision
    return decision


# ---------------------------------------------------------------- digits and length (§5.5)
def test_full_length_value_with_leading_zeros_is_accepted() -> None:
    result = accepted(decide("000154"))
    assert (result.value, result.digits, result.period) == (154, "000154", date(2026, 3, 1))
    assert result.consumption is None
    assert not result.rollover
    assert result.message == "Показания приняты."
    assert result.status == "accepted"


def test_short_value_is_rejected_in_strict_mode() -> None:
    result = decide("154")
    assert isinstance(result, Rejected)
    assert result.reason == "too_short"
    assert "6 цифр" in result.message


def test_short_value_is_zero_padded_in_pad_mode() -> None:
    result = accepted(decide("154", policy=PAD))
    assert (result.value, result.digits) == (154, "000154")


@pytest.mark.parametrize("policy", [ReadingPolicy(), PAD])
def test_longer_than_capacity_is_always_rejected(policy: ReadingPolicy) -> None:
    result = decide("1234567", policy=policy)
    assert isinstance(result, Rejected)
    assert result.reason == "too_long"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12a456", "not_digits"),
        ("12-456", "not_digits"),
        ("１２３４５６", "not_digits"),  # full-width digits are not ASCII digits
        ("-12345", "not_digits"),
        ("12345,6", "decimal_part"),
        ("1234.56", "decimal_part"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_non_digits_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    result = decide(raw)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert result.message
    assert result.status == "rejected"


def test_spaces_between_digit_groups_and_int_input_are_accepted() -> None:
    assert accepted(decide(" 012 345 ")).value == 12345
    assert accepted(decide(154, policy=PAD)).digits == "000154"


# ---------------------------------------------------------------- meter and account state
def test_remote_read_meter_refuses_manual_readings() -> None:
    result = decide("000154", remote_read=True)
    assert isinstance(result, Rejected)
    assert result.reason == "remote_read"
    assert "автоматически" in result.message


def test_unknown_zone_and_closed_account_are_rejected() -> None:
    unknown = decide("000154", zone="пик")
    assert isinstance(unknown, Rejected)
    assert unknown.reason == "unknown_zone"
    assert "день, ночь" in unknown.message
    closed = decide("000154", account_status="closed")
    assert isinstance(closed, Rejected)
    assert closed.reason == "account_closed"


# ---------------------------------------------------------------- monotonic and rollover (§5.6)
def test_lower_than_previous_needs_confirmation_then_override() -> None:
    result = decide("004990", previous=5000, previous_period=date(2026, 2, 1))
    assert isinstance(result, NeedsConfirmation)
    assert result.reason == "lower_than_previous"
    assert (result.value, result.previous) == (4990, 5000)
    assert "4990" in result.message
    assert "5000" in result.message
    assert result.status == "needs_confirmation"
    confirmed = accepted(
        decide("004990", previous=5000, previous_period=date(2026, 2, 1), confirmed=True)
    )
    assert confirmed.override
    assert confirmed.anomaly
    assert confirmed.consumption is None
    assert not confirmed.rollover


def test_rollover_gives_consumption_across_the_wrap() -> None:
    result = accepted(decide("00010", capacity=5, previous=99990, previous_period=date(2026, 2, 1)))
    assert result.rollover
    assert result.consumption == 20
    assert not result.override


def test_rollover_needs_a_previous_value_near_the_top() -> None:
    result = decide("00010", capacity=5, previous=80000, previous_period=date(2026, 2, 1))
    assert isinstance(result, NeedsConfirmation)
    assert result.reason == "lower_than_previous"


def test_rollover_with_implausible_consumption_needs_confirmation() -> None:
    # 99990 → 50000 would be 50010 kWh in a month: not a believable wrap.
    result = decide("50000", capacity=5, previous=99990, previous_period=date(2026, 2, 1))
    assert isinstance(result, NeedsConfirmation)
    assert result.reason == "lower_than_previous"


def test_equal_value_means_zero_consumption() -> None:
    assert accepted(decide("005000", previous=5000)).consumption == 0


# ---------------------------------------------------------------- plausibility
def test_plausibility_against_average() -> None:
    # average 200 kWh/month: bound is max(3 × 200, 500) = 600
    ok = accepted(decide("001600", previous=1000, average_monthly=200.0))
    assert ok.consumption == 600
    high = decide("001601", previous=1000, average_monthly=200.0)
    assert isinstance(high, NeedsConfirmation)
    assert high.reason == "implausible"
    assert "601 киловатт-час," in high.message
    forced = accepted(decide("001601", previous=1000, average_monthly=200.0, confirmed=True))
    assert (forced.consumption, forced.override, forced.anomaly) == (601, True, True)


def test_plausibility_floor_for_small_consumers() -> None:
    # average 10 kWh/month: 3 × 10 = 30, but the floor is 500
    assert accepted(decide("001500", previous=1000, average_monthly=10.0)).consumption == 500
    assert isinstance(decide("001501", previous=1000, average_monthly=10.0), NeedsConfirmation)


def test_no_history_uses_the_absolute_cap() -> None:
    assert accepted(decide("004000", previous=1000)).consumption == 3000
    assert isinstance(decide("004001", previous=1000), NeedsConfirmation)


def test_bound_scales_with_months_since_previous_reading() -> None:
    previous_period = date(2025, 12, 1)  # three periods before March
    assert months_between(previous_period, date(2026, 3, 1)) == 3
    assert max_plausible(200.0, 3) == 1800
    ok = decide("002800", previous=1000, previous_period=previous_period, average_monthly=200.0)
    assert accepted(ok).consumption == 1800


# ---------------------------------------------------------------- the window (§5.7)
def test_reading_on_the_26th_goes_to_the_next_period() -> None:
    result = accepted(decide("000154", submitted_at=datetime(2026, 3, 26, 9, 0, tzinfo=UTC)))
    assert result.period == date(2026, 4, 1)
    assert result.next_period
    assert "следующем расчётном периоде" in result.message
    assert "апрель 2026" in result.message


def test_window_end_day_is_inclusive_and_in_local_time() -> None:
    # 20:30 UTC on the 25th: still the 25th in Moscow, already the 26th in Vladivostok.
    moment = datetime(2026, 3, 25, 20, 30, tzinfo=UTC)
    assert accepted(decide("000154", submitted_at=moment)).period == date(2026, 3, 1)
    far_east = accepted(decide("000154", submitted_at=moment, timezone="Asia/Vladivostok"))
    assert far_east.period == date(2026, 4, 1)


def test_late_december_reading_goes_to_january() -> None:
    result = accepted(decide("000154", submitted_at=datetime(2026, 12, 28, 9, tzinfo=UTC)))
    assert result.period == date(2027, 1, 1)


def test_before_the_window_is_rejected_with_the_opening_date() -> None:
    result = decide("000154", submitted_at=datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert isinstance(result, Rejected)
    assert result.reason == "window_closed"
    assert "с 15 по 25" in result.message
    assert "15 марта" in result.message


def test_before_the_window_can_be_accepted_for_the_current_period() -> None:
    policy = ReadingPolicy(before_window="accept_current")
    result = accepted(
        decide("000154", submitted_at=datetime(2026, 3, 10, 9, tzinfo=UTC), policy=policy)
    )
    assert result.period == date(2026, 3, 1)
    assert not result.next_period


def test_window_can_be_disabled_and_configured_from_settings() -> None:
    open_always = ReadingPolicy(enforce_window=False)
    late = datetime(2026, 3, 30, 9, tzinfo=UTC)
    assert billing_period(late, "Europe/Moscow", open_always) == (date(2026, 3, 1), False)
    policy = ReadingPolicy.from_settings(
        Settings(reading_window_start_day=20, reading_window_end_day=26), length_mode="pad"
    )
    assert (policy.window_start_day, policy.window_end_day, policy.length_mode) == (20, 26, "pad")
    assert billing_period(datetime(2026, 3, 26, 9, tzinfo=UTC), "Europe/Moscow", policy) == (
        date(2026, 3, 1),
        False,
    )


@pytest.mark.parametrize(
    ("late_policy", "early", "late"),
    [
        ("accept", (date(2026, 3, 1), False), (date(2026, 4, 1), True)),
        ("refuse", "window_closed", "window_closed"),
    ],
)
def test_late_policy_from_settings_decides_readings_outside_the_window(
    late_policy: str, early: object, late: object
) -> None:
    """READING_LATE_POLICY: accept takes early readings for this period and late ones for
    the next; refuse rejects both (with a message that promises nothing)."""
    policy = ReadingPolicy.from_settings(Settings(reading_late_policy=late_policy))
    for when, expected in (
        (datetime(2026, 3, 10, 9, tzinfo=UTC), early),
        (datetime(2026, 3, 27, 9, tzinfo=UTC), late),
    ):
        timing = billing_period(when, "Europe/Moscow", policy)
        if isinstance(timing, Rejected):
            assert timing.reason == expected
            assert "следующ" not in timing.message
        else:
            assert timing == expected
    refused = billing_period(
        datetime(2026, 3, 27, 9, tzinfo=UTC), "Europe/Moscow", ReadingPolicy(after_window="reject")
    )
    assert isinstance(refused, Rejected)
    assert "с 15 по 25 апреля" in refused.message


def test_invalid_policy_and_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="start day"):
        ReadingPolicy(window_start_day=26, window_end_day=25)
    with pytest.raises(ValueError, match="length_mode"):
        ReadingPolicy(length_mode="loose")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="tz-aware"):
        billing_period(datetime(2026, 3, 20, 12), "Europe/Moscow")  # noqa: DTZ001
    with pytest.raises(InvalidInput, match="time zone"):
        billing_period(IN_WINDOW, "Mars/Olympus")


# ---------------------------------------------------------------- submission (database)
def _read(db: Database) -> list[MeterReading]:
    with db.transaction() as s:
        return list(s.scalars(select(MeterReading).order_by(MeterReading.id)))


def test_submit_stores_and_is_idempotent(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        first = submit_reading(
            s, meter.id, "день", "001000", "ivr_dtmf", submitted_at=IN_WINDOW, confidence=0.93
        )
    assert isinstance(first.decision, Accepted)
    assert first.reading is not None
    with db.transaction() as s:
        again = submit_reading(s, meter.id, "день", "001000", "ivr_voice", submitted_at=IN_WINDOW)
    assert isinstance(again.decision, Accepted)
    assert again.decision.duplicate
    assert again.reading is not None
    assert again.reading.id == first.reading.id
    rows = _read(db)
    assert len(rows) == 1
    row = rows[0]
    assert (row.value, row.zone, row.period, row.source) == (
        1000,
        "день",
        date(2026, 3, 1),
        "ivr_dtmf",
    )
    assert row.confidence == pytest.approx(0.93)
    assert row.submitted_at == IN_WINDOW


def test_correction_in_the_same_period_is_compared_with_the_earlier_period(
    db: Database, meter: Meter
) -> None:
    with db.transaction() as s:
        submit_reading(
            s, meter.id, "день", "001000", "import", submitted_at=datetime(2026, 2, 20, tzinfo=UTC)
        )
        submit_reading(s, meter.id, "день", "001200", "ivr_dtmf", submitted_at=IN_WINDOW)
        fixed = submit_reading(s, meter.id, "день", "001150", "ivr_dtmf", submitted_at=IN_WINDOW)
    assert isinstance(fixed.decision, Accepted)
    assert fixed.decision.consumption == 150
    assert [r.value for r in _read(db)] == [1000, 1200, 1150]


def test_submit_lower_value_asks_then_stores_override(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        submit_reading(
            s, meter.id, "ночь", "005000", "import", submitted_at=datetime(2026, 2, 20, tzinfo=UTC)
        )
    with db.transaction() as s:
        ask = submit_reading(s, meter.id, "ночь", "004990", "ivr_voice", submitted_at=IN_WINDOW)
    assert isinstance(ask.decision, NeedsConfirmation)
    assert ask.reading is None
    assert len(_read(db)) == 1
    with db.transaction() as s:
        done = submit_reading(
            s, meter.id, "ночь", "004990", "ivr_voice", submitted_at=IN_WINDOW, confirmed=True
        )
    assert isinstance(done.decision, Accepted)
    assert done.reading is not None
    assert (done.reading.override, done.reading.anomaly) == (True, True)
    # A later resubmission of the confirmed value is a duplicate, not a new question.
    with db.transaction() as s:
        again = submit_reading(s, meter.id, "ночь", "004990", "ivr_voice", submitted_at=IN_WINDOW)
    assert isinstance(again.decision, Accepted)
    assert again.decision.duplicate


def test_submit_rollover_is_stored_with_consumption(db: Database, account: Account) -> None:
    with db.transaction() as s:
        m = Meter(account_id=account.id, serial="OLD-5", capacity=5, zones=["день"])
        s.add(m)
        s.flush()
        submit_reading(
            s, m.id, "день", "99990", "import", submitted_at=datetime(2026, 2, 20, tzinfo=UTC)
        )
        result = submit_reading(s, m.id, "день", "00010", "ivr_dtmf", submitted_at=IN_WINDOW)
    assert isinstance(result.decision, Accepted)
    assert result.reading is not None
    assert (result.reading.rollover, result.reading.consumption) == (True, 20)


def test_submit_uses_the_zone_average_for_plausibility(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        for month, value in enumerate((1000, 1100, 1200, 1300, 1400), start=10):
            year, mon = (2025, month) if month <= 12 else (2026, month - 12)
            submit_reading(
                s,
                meter.id,
                "день",
                f"{value:06d}",
                "import",
                submitted_at=datetime(year, mon, 20, 9, tzinfo=UTC),
            )
        history = zone_history(s, meter.id, "день", date(2026, 3, 1))
    assert history.previous == 1400
    assert history.previous_period == date(2026, 2, 1)
    assert history.average_monthly == pytest.approx(100.0)
    with db.transaction() as s:
        # bound: max(3 × 100, 500) = 500
        high = submit_reading(s, meter.id, "день", "001901", "web", submitted_at=IN_WINDOW)
        assert isinstance(high.decision, NeedsConfirmation)
        assert high.decision.reason == "implausible"
        ok = submit_reading(s, meter.id, "день", "001900", "web", submitted_at=IN_WINDOW)
        assert isinstance(ok.decision, Accepted)
        assert ok.decision.consumption == 500


def test_submit_late_reading_is_stored_for_next_period(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        result = submit_reading(
            s, meter.id, "день", "000154", "sms", submitted_at=datetime(2026, 3, 26, 9, tzinfo=UTC)
        )
    assert isinstance(result.decision, Accepted)
    assert _read(db)[0].period == date(2026, 4, 1)


def test_submit_rejections_store_nothing(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        assert isinstance(
            submit_reading(s, meter.id, "день", "15a", "ivr_dtmf", submitted_at=IN_WINDOW).decision,
            Rejected,
        )
        m = s.get(Meter, meter.id)
        assert m is not None
        m.remote_read = True
        s.flush()
        remote = submit_reading(s, meter.id, "день", "000154", "ivr_dtmf", submitted_at=IN_WINDOW)
        assert isinstance(remote.decision, Rejected)
        assert remote.decision.reason == "remote_read"
    assert _read(db) == []


def test_submit_bad_references_raise(db: Database, meter: Meter) -> None:
    with db.transaction() as s:
        with pytest.raises(NotFound):
            submit_reading(s, 999_999, "день", "000154", "web")
        with pytest.raises(InvalidInput, match="source"):
            submit_reading(s, meter.id, "день", "000154", "pigeon")
        with pytest.raises(InvalidInput, match="confidence"):
            submit_reading(s, meter.id, "день", "000154", "web", confidence=1.5)


def test_submitted_reading_is_audited_with_the_actor(db: Database, meter: Meter) -> None:
    with acting_as("ivr"), db.transaction() as s:
        submit_reading(s, meter.id, "день", "000154", "ivr_voice", submitted_at=IN_WINDOW)
    with db.transaction() as s:
        count = s.scalar(
            select(func.count()).where(
                AuditLog.entity == "meter_reading",
                AuditLog.actor == "ivr",
                AuditLog.action == "insert",
            )
        )
    assert count == 1


def test_check_reading_decides_without_storing(db: Database, meter: Meter) -> None:
    feb = datetime(2026, 2, 20, tzinfo=UTC)
    with db.transaction() as s:
        submit_reading(s, meter.id, "день", "005000", "import", submitted_at=feb)
        lower = check_reading(s, meter.id, "день", "004990", submitted_at=IN_WINDOW)
        assert isinstance(lower, NeedsConfirmation)
        ok = check_reading(s, meter.id, "день", "005100", submitted_at=IN_WINDOW)
        assert isinstance(ok, Accepted)
        assert (ok.consumption, ok.duplicate) == (100, False)
        same = check_reading(s, meter.id, "день", "005000", submitted_at=feb)
        assert isinstance(same, Accepted)
        assert same.duplicate
    assert len(_read(db)) == 1


@pytest.mark.parametrize(
    ("due", "level", "days"),
    [
        (None, None, None),
        (date(2026, 7, 1), None, None),  # 103 days away
        (date(2026, 6, 18), "due_90", 90),
        (date(2026, 5, 19), "due_60", 60),
        (date(2026, 4, 19), "due_30", 30),
        (date(2026, 3, 20), "due_30", 0),
        (date(2026, 3, 19), "expired", -1),
    ],
)
def test_verification_notice(due: date | None, level: str | None, days: int | None) -> None:
    notice = verification_notice(due, date(2026, 3, 20))
    if level is None:
        assert notice is None
        return
    assert notice is not None
    assert (notice.level, notice.days_left) == (level, days)
    assert "поверк" in notice.message
    if level == "expired":
        assert "истёк 19 марта 2026 года" in notice.message


@pytest.mark.parametrize(("capacity", "phrase"), [(4, "4 цифры"), (5, "5 цифр"), (9, "9 цифр")])
def test_length_messages_agree_with_the_number(capacity: int, phrase: str) -> None:
    short = decide("1", capacity=capacity)
    assert isinstance(short, Rejected)
    assert f"все {phrase} до запятой" in short.message
    long = decide("1" * (capacity + 1), capacity=capacity)
    assert isinstance(long, Rejected)
    assert f"показывает {phrase} до запятой" in long.message
