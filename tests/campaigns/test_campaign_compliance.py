"""Contact policy: windows in local time, production calendar, caps, consent (domain §5)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.compliance import (
    Allowed,
    Channel,
    ConsentState,
    ContactFacts,
    ContactPolicy,
    DailyWindow,
    FrequencyCaps,
    Purpose,
    Skip,
    SkipReason,
    check_contact,
    is_within_window,
    next_window_opening,
    zones_for_contact,
)
from campaigns.errors import CalendarError, PolicyError
from contactcenter.calendar_ru import default_calendar, load_calendar
from contactcenter.phones import is_russian_mobile

UTC = dt.UTC
MOSCOW_LANDLINE = "+74951234567"
MOBILE = "+79031234567"

# One zone per MSK offset, Kaliningrad (UTC+2) to Kamchatka (UTC+12).
RUSSIAN_ZONES = [
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Srednekolymsk",
    "Asia/Kamchatka",
]


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    """A local wall-clock time in ``zone`` as an aware UTC datetime."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def call(now: dt.datetime, zone: str, **kw: object) -> Allowed | Skip:
    kw.setdefault("phone", MOBILE)
    facts = ContactFacts(account_timezone=zone, **kw)  # type: ignore[arg-type]
    return check_contact(now=now, channel=Channel.VOICE, purpose=Purpose.DEBT_NOTICE, facts=facts)


def sms(now: dt.datetime, zone: str, **kw: object) -> Allowed | Skip:
    facts = ContactFacts(phone=MOBILE, account_timezone=zone, **kw)  # type: ignore[arg-type]
    return check_contact(now=now, channel=Channel.SMS, purpose=Purpose.DEBT_NOTICE, facts=facts)


# --- acceptance test 1: windows -------------------------------------------------------


@pytest.mark.parametrize("zone", RUSSIAN_ZONES)
def test_weekday_2159_allowed_2200_blocked_in_every_zone(zone: str) -> None:
    # Tuesday 2026-12-01 is a working day.
    assert isinstance(call(local(zone, 2026, 12, 1, 21, 59), zone), Allowed)
    blocked = call(local(zone, 2026, 12, 1, 22, 0), zone)
    assert isinstance(blocked, Skip)
    assert blocked.reason is SkipReason.OUTSIDE_WINDOW
    # The next opening is 08:00 local on Wednesday.
    assert blocked.retry_at == local(zone, 2026, 12, 2, 8, 0)
    assert isinstance(call(local(zone, 2026, 12, 1, 7, 59), zone), Skip)
    assert isinstance(call(local(zone, 2026, 12, 1, 8, 0), zone), Allowed)


@pytest.mark.parametrize("zone", RUSSIAN_ZONES)
@pytest.mark.parametrize(
    "day",
    [
        dt.date(2026, 12, 5),  # Saturday
        dt.date(2026, 12, 6),  # Sunday
        dt.date(2026, 6, 12),  # Friday, Russia Day
        dt.date(2026, 1, 9),  # Friday, day off moved from 3 January by decree
        dt.date(2026, 3, 9),  # Monday, automatic move of 8 March (a Sunday)
    ],
)
def test_weekend_and_holiday_0859_and_2000_blocked(zone: str, day: dt.date) -> None:
    ymd = (day.year, day.month, day.day)
    for hour, minute in ((8, 59), (20, 0), (21, 59)):
        decision = call(local(zone, *ymd, hour, minute), zone)
        assert isinstance(decision, Skip), (day, hour, minute)
        assert decision.reason is SkipReason.OUTSIDE_WINDOW
    assert isinstance(call(local(zone, *ymd, 9, 0), zone), Allowed)
    assert isinstance(call(local(zone, *ymd, 19, 59), zone), Allowed)


def test_moved_working_saturday_uses_working_day_window() -> None:
    # Saturday 2025-11-01 was a working day (ПП № 1335), Monday 2025-11-03 was not.
    assert isinstance(call(local("Europe/Moscow", 2025, 11, 1, 8, 30), "Europe/Moscow"), Allowed)
    assert isinstance(call(local("Europe/Moscow", 2025, 11, 3, 8, 30), "Europe/Moscow"), Skip)


def test_local_date_decides_the_day_type_not_utc() -> None:
    # 2026-12-04 23:30 UTC is Saturday 10:30 in Vladivostok but Friday in UTC.
    now = dt.datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert isinstance(call(now, "Asia/Vladivostok"), Allowed)
    # Friday 21:30 UTC is Saturday 08:30 in Vladivostok: blocked on a weekend, fine on Friday.
    early = dt.datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
    assert isinstance(call(early, "Asia/Vladivostok"), Skip)


def test_phone_only_requires_every_zone_of_the_number() -> None:
    # A mobile without an account timezone spans Kaliningrad..Kamchatka:
    # on a weekday only 06:00–10:00 UTC is inside 08–22 everywhere.
    facts = ContactFacts(phone=MOBILE)
    kw = {"channel": Channel.VOICE, "purpose": Purpose.DEBT_NOTICE, "facts": facts}
    tue = (2026, 12, 1)
    assert isinstance(check_contact(now=dt.datetime(*tue, 6, 0, tzinfo=UTC), **kw), Allowed)  # type: ignore[arg-type]
    assert isinstance(check_contact(now=dt.datetime(*tue, 9, 59, tzinfo=UTC), **kw), Allowed)  # type: ignore[arg-type]
    late = check_contact(now=dt.datetime(*tue, 10, 0, tzinfo=UTC), **kw)  # type: ignore[arg-type]
    assert isinstance(late, Skip)
    assert late.reason is SkipReason.OUTSIDE_WINDOW
    assert late.retry_at == dt.datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def test_kaliningrad_landline_uses_kaliningrad_time_not_bucharest() -> None:
    assert zones_for_contact("+74012123456", None) == ("Europe/Kaliningrad",)
    # In July Bucharest is UTC+3 and Kaliningrad UTC+2: 05:59 UTC is 07:59 in Kaliningrad.
    facts = ContactFacts(phone="+74012123456")
    july = dt.datetime(2026, 7, 1, 5, 59, tzinfo=UTC)
    decision = check_contact(
        now=july, channel=Channel.VOICE, purpose=Purpose.DEBT_NOTICE, facts=facts
    )
    assert isinstance(decision, Skip)


def test_account_timezone_wins_over_phone_zones() -> None:
    assert zones_for_contact(MOBILE, "Asia/Yakutsk") == ("Asia/Yakutsk",)
    # An invalid stored zone falls back to the phone's zones rather than guessing.
    assert len(zones_for_contact(MOBILE, "Mars/Olympus")) > 5


def test_campaign_window_narrows_the_legal_window() -> None:
    policy = ContactPolicy().narrowed_to(DailyWindow(dt.time(10), dt.time(19)))
    facts = ContactFacts(phone=MOBILE, account_timezone="Europe/Moscow")
    at = local("Europe/Moscow", 2026, 12, 1, 9, 30)
    decision = check_contact(
        now=at, channel=Channel.VOICE, purpose="debt_notice", facts=facts, policy=policy
    )
    assert isinstance(decision, Skip)
    assert decision.retry_at == local("Europe/Moscow", 2026, 12, 1, 10, 0)


def test_next_window_opening_skips_the_holiday_block() -> None:
    # Wednesday 2026-12-30 22:00 Moscow; 31 Dec and the New Year holidays are non-working.
    opening = next_window_opening(
        local("Europe/Moscow", 2026, 12, 30, 22, 0), ["Europe/Moscow"], ContactPolicy()
    )
    assert opening == local("Europe/Moscow", 2026, 12, 31, 9, 0)
    # Two zones ten hours apart: the common window opens when the later zone opens.
    zones = ["Europe/Kaliningrad", "Asia/Kamchatka"]
    opening = next_window_opening(dt.datetime(2026, 12, 1, 12, tzinfo=UTC), zones, ContactPolicy())
    assert opening == dt.datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 08:00 Kaliningrad
    assert is_within_window(opening, zones, ContactPolicy())


def test_window_validation() -> None:
    with pytest.raises(PolicyError, match="after start"):
        DailyWindow(dt.time(22), dt.time(8))
    with pytest.raises(PolicyError):
        FrequencyCaps(-1, 2, 8)
    with pytest.raises(ValueError, match="aware"):
        call(dt.datetime(2026, 12, 1, 12), "Europe/Moscow")  # noqa: DTZ001 - the point


@settings(max_examples=300, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=3 * 365 * 24 * 60),
    zone=st.sampled_from(RUSSIAN_ZONES),
)
def test_allowed_implies_local_time_inside_the_legal_window(minutes: int, zone: str) -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minutes)
    decision = call(now, zone)
    local_now = now.astimezone(ZoneInfo(zone))
    working = default_calendar().is_working_day(local_now.date())
    lo, hi = (dt.time(8), dt.time(22)) if working else (dt.time(9), dt.time(20))
    inside = lo <= local_now.time() < hi
    assert isinstance(decision, Allowed) == inside
    if isinstance(decision, Skip):
        assert decision.retry_at is not None
        assert decision.retry_at > now
        assert isinstance(call(decision.retry_at, zone), Allowed)


# --- acceptance tests 2 and 3: caps ---------------------------------------------------


def test_third_call_in_a_calendar_week_is_blocked() -> None:
    zone = "Asia/Novosibirsk"
    history = [local(zone, 2026, 11, 30, 10, 0), local(zone, 2026, 12, 1, 10, 0)]  # Mon, Tue
    third = call(local(zone, 2026, 12, 2, 10, 0), zone, history=history)
    assert isinstance(third, Skip)
    assert third.reason is SkipReason.CAP_REACHED
    # Room again on Monday of the next week at 08:00 local.
    assert third.retry_at == local(zone, 2026, 12, 7, 8, 0)
    assert isinstance(call(local(zone, 2026, 12, 7, 10, 0), zone, history=history), Allowed)


def test_second_call_on_the_same_local_day_is_blocked() -> None:
    zone = "Asia/Kamchatka"
    history = [local(zone, 2026, 12, 1, 9, 0)]
    decision = call(local(zone, 2026, 12, 1, 21, 0), zone, history=history)
    assert isinstance(decision, Skip)
    assert decision.reason is SkipReason.CAP_REACHED
    assert isinstance(call(local(zone, 2026, 12, 2, 8, 0), zone, history=history), Allowed)


def test_ninth_call_in_a_month_is_blocked() -> None:
    zone = "Europe/Moscow"
    # Eight robot calls in December 2026, two per ISO week, one per day.
    days = [1, 2, 8, 9, 15, 16, 22, 23]
    history = [local(zone, 2026, 12, d, 12, 0) for d in days]
    ninth = call(local(zone, 2026, 12, 29, 12, 0), zone, history=history)  # new ISO week
    assert isinstance(ninth, Skip)
    assert ninth.reason is SkipReason.CAP_REACHED
    # January is a new month (the first working day after the holidays is 11 Jan 2027).
    assert ninth.retry_at is not None
    assert ninth.retry_at.astimezone(ZoneInfo(zone)).month == 1
    # Seven calls leave room for an eighth.
    assert isinstance(call(local(zone, 2026, 12, 29, 12, 0), zone, history=history[:7]), Allowed)


def test_caps_count_in_the_consumers_local_calendar() -> None:
    zone = "Asia/Kamchatka"
    # Sunday 23:30 UTC on 2026-12-06 is Monday 11:30 in Kamchatka: a new local week.
    history = [local(zone, 2026, 12, 3, 10, 0), local(zone, 2026, 12, 4, 10, 0)]  # Thu, Fri
    monday = dt.datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert isinstance(call(monday, zone, history=history), Allowed)


def test_third_sms_on_the_same_day_is_blocked() -> None:
    zone = "Asia/Irkutsk"
    history = [local(zone, 2026, 12, 1, 9, 0), local(zone, 2026, 12, 1, 12, 0)]
    third = sms(local(zone, 2026, 12, 1, 15, 0), zone, history=history)
    assert isinstance(third, Skip)
    assert third.reason is SkipReason.CAP_REACHED
    assert isinstance(sms(local(zone, 2026, 12, 1, 15, 0), zone, history=history[:1]), Allowed)


def test_caps_are_configurable() -> None:
    zone = "Europe/Moscow"
    policy = ContactPolicy(call_caps=FrequencyCaps(3, 5, 10))
    history = [local(zone, 2026, 12, 1, 9, 0), local(zone, 2026, 12, 1, 10, 0)]
    facts = ContactFacts(phone=MOBILE, account_timezone=zone, history=history)
    at = local(zone, 2026, 12, 1, 11, 0)
    decision = check_contact(
        now=at, channel=Channel.VOICE, purpose="debt_notice", facts=facts, policy=policy
    )
    assert isinstance(decision, Allowed)


# --- acceptance test 4 ----------------------------------------------------------------


def test_ten_moscow_is_eighteen_in_srednekolymsk() -> None:
    ten_moscow = local("Europe/Moscow", 2026, 12, 1, 10, 0)
    assert ten_moscow.astimezone(ZoneInfo("Asia/Srednekolymsk")).hour == 18
    decision = call(ten_moscow, "Asia/Srednekolymsk")
    assert isinstance(decision, Allowed)
    assert decision.zones == ("Asia/Srednekolymsk",)


def test_kazakhstan_number_is_rejected() -> None:
    assert not is_russian_mobile("+77011234567")
    facts = ContactFacts(phone="+77011234567", account_timezone="Europe/Moscow")
    decision = check_contact(
        now=local("Europe/Moscow", 2026, 12, 1, 12, 0),
        channel=Channel.SMS,
        purpose=Purpose.DEBT_NOTICE,
        facts=facts,
    )
    assert isinstance(decision, Skip)
    assert decision.reason is SkipReason.INVALID_NUMBER
    assert decision.retry_at is None


@pytest.mark.parametrize("phone", [None, "", "12345", "not a phone"])
def test_missing_or_invalid_number(phone: str | None) -> None:
    decision = call(local("Europe/Moscow", 2026, 12, 1, 12, 0), "Europe/Moscow", phone=phone)
    assert isinstance(decision, Skip)
    assert decision.reason is SkipReason.INVALID_NUMBER


# --- acceptance test 8 (consent) and opt-outs -----------------------------------------


def test_marketing_sms_with_only_service_consent_is_blocked() -> None:
    facts = ContactFacts(
        phone=MOBILE,
        account_timezone="Europe/Moscow",
        consents=ConsentState(granted=frozenset({"service_notice"})),
    )
    at = local("Europe/Moscow", 2026, 12, 1, 12, 0)
    marketing = check_contact(now=at, channel=Channel.SMS, purpose=Purpose.MARKETING, facts=facts)
    assert isinstance(marketing, Skip)
    assert marketing.reason is SkipReason.NO_CONSENT
    debt = check_contact(now=at, channel=Channel.SMS, purpose=Purpose.DEBT_NOTICE, facts=facts)
    assert isinstance(debt, Allowed)
    granted = ContactFacts(
        phone=MOBILE,
        account_timezone="Europe/Moscow",
        consents=ConsentState(granted=frozenset({"marketing"})),
    )
    ok = check_contact(now=at, channel=Channel.SMS, purpose=Purpose.MARKETING, facts=granted)
    assert isinstance(ok, Allowed)


def test_withdrawn_robot_calls_block_calls_but_not_sms() -> None:
    consents = ConsentState(withdrawn=frozenset({"robot_calls"}))
    at = local("Europe/Moscow", 2026, 12, 1, 12, 0)
    voice = call(at, "Europe/Moscow", consents=consents)
    assert isinstance(voice, Skip)
    assert voice.reason is SkipReason.OPTED_OUT
    assert isinstance(sms(at, "Europe/Moscow", consents=consents), Allowed)


def test_withdrawn_purpose_and_do_not_contact_are_opt_outs() -> None:
    at = local("Europe/Moscow", 2026, 12, 1, 12, 0)
    withdrawn = call(
        at, "Europe/Moscow", consents=ConsentState(withdrawn=frozenset({"debt_notice"}))
    )
    assert isinstance(withdrawn, Skip)
    assert withdrawn.reason is SkipReason.OPTED_OUT
    dnc = sms(at, "Europe/Moscow", do_not_contact=True)
    assert isinstance(dnc, Skip)
    assert dnc.reason is SkipReason.OPTED_OUT
    assert dnc.retry_at is None


# --- the production calendar ----------------------------------------------------------


@pytest.mark.parametrize("year", [2025, 2026])
def test_shipped_calendar_has_247_working_days(year: int) -> None:
    calendar = default_calendar()
    days = [dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    assert sum(calendar.is_working_day(d) for d in days) == 247


def test_uncertain_days_are_marked_and_treated_as_non_working() -> None:
    calendar = default_calendar()
    assert calendar.covers(2027)
    assert calendar.is_uncertain(dt.date(2027, 12, 31))
    assert not calendar.is_working_day(dt.date(2027, 12, 31))
    assert not calendar.is_uncertain(dt.date(2026, 12, 31))


def test_uncovered_year_falls_back_to_statutory_holidays() -> None:
    calendar = default_calendar()
    assert not calendar.covers(2030)
    assert not calendar.is_working_day(dt.date(2030, 6, 12))  # Wednesday, Russia Day
    assert calendar.is_working_day(dt.date(2030, 6, 11))
    assert not calendar.is_working_day(dt.date(2030, 6, 15))  # Saturday


def test_malformed_calendar_file_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "cal.yaml"
    bad.write_text("years:\n  2026:\n    non_working: [2026-13-01]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"years\.2026\.non_working"):
        load_calendar(bad)
    bad.write_text("years:\n  2026:\n    non_working: [2025-01-01]\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="not in 2026"):
        load_calendar(bad)
    with pytest.raises(CalendarError, match="cannot read"):
        load_calendar(tmp_path / "missing.yaml")
    custom = tmp_path / "ok.yaml"
    custom.write_text("years:\n  2026:\n    working: [2026-12-05]\n", encoding="utf-8")
    assert load_calendar(custom).is_working_day(dt.date(2026, 12, 5))
