"""Contact policy: may we contact this consumer, on this channel, for this purpose, now?

Everything here is pure: the clock (``now``), the production calendar, the consumer's
facts (phone, timezone, consents, do-not-contact flag, past contacts) are passed in. The
planner uses it to pre-filter, and the dial/SMS jobs call :func:`check_contact` again at
dial time, because an opt-out or a cap can change after a job was queued.

Rules (defaults from 230-ФЗ, all configurable through :class:`ContactPolicy`):

* windows in the consumer's **local** time: the account's timezone, else *every* zone the
  phone number maps to (all must be inside the window); 08:00–22:00 on working days and
  09:00–20:00 on weekends and public holidays (production calendar); the end is exclusive,
  so 21:59 is allowed and 22:00 is not;
* frequency caps per local calendar day / ISO week / month, separately for calls (robot
  calls count) and SMS: 1/2/8 calls and 2/4/16 messages;
* consent by purpose: a debt or service notice rests on the contract and is allowed unless
  the consumer withdrew it; marketing needs a granted ``marketing`` consent; a robot call
  needs no withdrawn ``robot_calls`` consent; do-not-contact blocks everything;
* a debt notice stops for good once the debt fell below the campaign's threshold
  (:func:`debt_decision`, reason ``paid``; the debt is read from the ledger at dispatch and
  again at dial time by :mod:`campaigns.paid`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.errors import PolicyError
from contactcenter.calendar_ru import ProductionCalendar, default_calendar
from contactcenter.phones import InvalidPhoneError, normalize_phone, timezones_for_phone

UTC = dt.UTC


class Channel(StrEnum):
    """How a consumer is contacted. Voice campaigns are robot calls."""

    VOICE = "voice"
    SMS = "sms"


class Purpose(StrEnum):
    """Why a consumer is contacted (consent is per purpose)."""

    DEBT_NOTICE = "debt_notice"
    SERVICE_NOTICE = "service_notice"
    MARKETING = "marketing"


ROBOT_CALLS = "robot_calls"
"""Consent purpose a consumer withdraws to stop robot calls (pressing 9, saying «не звоните»)."""

PURPOSES_NEEDING_GRANT: frozenset[str] = frozenset({Purpose.MARKETING})
"""Purposes that need an explicit, granted consent (38-ФЗ ст. 18, 152-ФЗ)."""


class SkipReason(StrEnum):
    """Why a contact was not made; stored on the target/attempt and shown in reports."""

    OUTSIDE_WINDOW = "outside_window"
    CAP_REACHED = "cap_reached"
    OPTED_OUT = "opted_out"
    NO_CONSENT = "no_consent"
    INVALID_NUMBER = "invalid_number"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    PAID = "paid"
    """The debt a debt notice is about fell below the campaign's threshold: the consumer
    paid (see :func:`debt_decision`)."""


@dataclass(frozen=True)
class DailyWindow:
    """A local-time window ``[start, end)`` within one day."""

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise PolicyError("window times are local wall-clock times and must be naive")
        if not self.start < self.end:
            raise PolicyError(f"window end {self.end:%H:%M} must be after start {self.start:%H:%M}")

    def contains(self, local_time: dt.time) -> bool:
        """True for ``start <= local_time < end``."""
        return self.start <= local_time.replace(tzinfo=None) < self.end

    def intersect(self, other: DailyWindow) -> DailyWindow | None:
        """The overlap of two windows, or None when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return DailyWindow(start, end) if start < end else None

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class FrequencyCaps:
    """Maximum contacts per local calendar day, ISO week and month (0 forbids the channel)."""

    per_day: int
    per_week: int
    per_month: int

    def __post_init__(self) -> None:
        for name in ("per_day", "per_week", "per_month"):
            if getattr(self, name) < 0:
                raise PolicyError(f"{name} must not be negative")


WORKING_DAY_WINDOW = DailyWindow(dt.time(8, 0), dt.time(22, 0))
NON_WORKING_DAY_WINDOW = DailyWindow(dt.time(9, 0), dt.time(20, 0))
CALL_CAPS = FrequencyCaps(per_day=1, per_week=2, per_month=8)
SMS_CAPS = FrequencyCaps(per_day=2, per_week=4, per_month=16)


@dataclass(frozen=True)
class ContactPolicy:
    """Windows and caps of a tenant or a campaign (defaults: 230-ФЗ)."""

    working_day_window: DailyWindow | None = WORKING_DAY_WINDOW
    non_working_day_window: DailyWindow | None = NON_WORKING_DAY_WINDOW
    call_caps: FrequencyCaps = CALL_CAPS
    sms_caps: FrequencyCaps = SMS_CAPS

    def caps_for(self, channel: Channel) -> FrequencyCaps:
        """The caps that apply to ``channel``."""
        return self.call_caps if channel is Channel.VOICE else self.sms_caps

    def window_for(self, working_day: bool) -> DailyWindow | None:
        """The window of a working or a non-working day (None: no contact that day)."""
        return self.working_day_window if working_day else self.non_working_day_window

    def narrowed_to(self, window: DailyWindow | None) -> ContactPolicy:
        """A policy whose windows are also limited to a campaign's daily ``window``."""
        if window is None:
            return self

        def cut(w: DailyWindow | None) -> DailyWindow | None:
            return None if w is None else w.intersect(window)

        return replace(
            self,
            working_day_window=cut(self.working_day_window),
            non_working_day_window=cut(self.non_working_day_window),
        )


@dataclass(frozen=True)
class ConsentState:
    """Consents of one consumer by purpose: explicitly granted and explicitly withdrawn."""

    granted: frozenset[str] = frozenset()
    withdrawn: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContactFacts:
    """What we know about one consumer when deciding on a contact."""

    phone: str | None
    account_timezone: str | None = None
    do_not_contact: bool = False
    consents: ConsentState = field(default_factory=ConsentState)
    history: Sequence[dt.datetime] = ()
    """UTC times of earlier contacts on the channel being checked (calls placed, SMS sent)."""


@dataclass(frozen=True)
class Allowed:
    """The contact may be made now; ``phone`` is E.164 and ``zones`` the zones checked."""

    phone: str
    zones: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        """Always True (lets callers test ``decision.allowed``)."""
        return True


@dataclass(frozen=True)
class Skip:
    """The contact must not be made now.

    ``retry_at`` is the earliest UTC time the same check could pass (outside the window:
    the next window opening; cap reached: the first local day with room), or None when
    retrying will not help (opted out, no consent, invalid number).
    """

    reason: SkipReason
    detail: str
    retry_at: dt.datetime | None = None

    @property
    def allowed(self) -> bool:
        """Always False."""
        return False


Decision = Allowed | Skip


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _require_utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def zones_for_contact(phone_e164: str, account_timezone: str | None) -> tuple[str, ...]:
    """The IANA zones whose local time governs a contact.

    The account's (service address) timezone when it is a valid zone; otherwise every
    zone of the phone number (corrected for Russian ranges by
    :func:`contactcenter.phones.timezones_for_phone`). Empty when nothing is known.
    """
    if account_timezone and _zone(account_timezone) is not None:
        return (account_timezone,)
    return tuple(name for name in timezones_for_phone(phone_e164) if _zone(name) is not None)


def is_within_window(
    now: dt.datetime,
    zones: Iterable[str],
    policy: ContactPolicy,
    calendar: ProductionCalendar | None = None,
) -> bool:
    """True when ``now`` is inside the policy window in every one of ``zones``."""
    calendar = calendar or default_calendar()
    now = _require_utc(now)
    zone_list = list(zones)
    if not zone_list:
        return False
    for name in zone_list:
        zone = _zone(name)
        if zone is None:
            return False
        local = now.astimezone(zone)
        window = policy.window_for(calendar.is_working_day(local.date()))
        if window is None or not window.contains(local.time()):
            return False
    return True


def next_window_opening(
    now: dt.datetime,
    zones: Iterable[str],
    policy: ContactPolicy,
    calendar: ProductionCalendar | None = None,
    *,
    horizon_days: int = 21,
) -> dt.datetime | None:
    """The earliest UTC time ``>= now`` inside the window in every zone (None: none soon).

    The common window of several zones opens when the last of them opens, so the
    candidates are ``now`` and every window start in every zone over the horizon.
    """
    calendar = calendar or default_calendar()
    now = _require_utc(now)
    zone_list = list(zones)
    tzs: list[ZoneInfo] = []
    for name in zone_list:
        tz = _zone(name)
        if tz is None:
            return None
        tzs.append(tz)
    if not tzs:
        return None
    candidates = {now}
    for tz in tzs:
        local_today = now.astimezone(tz).date()
        for offset in range(-1, horizon_days + 1):
            day = local_today + dt.timedelta(days=offset)
            window = policy.window_for(calendar.is_working_day(day))
            if window is None:
                continue
            opening = dt.datetime.combine(day, window.start, tzinfo=tz).astimezone(UTC)
            if opening >= now:
                candidates.add(opening)
    for candidate in sorted(candidates):
        if is_within_window(candidate, zone_list, policy, calendar):
            return candidate
    return None


def _period_keys(local: dt.datetime) -> tuple[dt.date, tuple[int, int], tuple[int, int]]:
    iso = local.isocalendar()
    return local.date(), (iso.year, iso.week), (local.year, local.month)


def _counts_for_day(day: dt.date, history_local: Sequence[dt.datetime]) -> tuple[int, int, int]:
    iso = day.isocalendar()
    week, month = (iso.year, iso.week), (day.year, day.month)
    d = w = m = 0
    for moment in history_local:
        k_day, k_week, k_month = _period_keys(moment)
        d += k_day == day
        w += k_week == week
        m += k_month == month
    return d, w, m


def _room(counts: tuple[int, int, int], caps: FrequencyCaps) -> bool:
    return counts[0] < caps.per_day and counts[1] < caps.per_week and counts[2] < caps.per_month


def cap_reached(
    now: dt.datetime,
    history: Sequence[dt.datetime],
    zones: Iterable[str],
    caps: FrequencyCaps,
) -> bool:
    """True when one more contact now would exceed a cap in any of the ``zones`` calendars."""
    now = _require_utc(now)
    for name in zones:
        tz = _zone(name)
        if tz is None:
            return True
        local_history = [_require_utc(h).astimezone(tz) for h in history]
        if not _room(_counts_for_day(now.astimezone(tz).date(), local_history), caps):
            return True
    return False


def next_cap_room(
    now: dt.datetime,
    history: Sequence[dt.datetime],
    zones: Iterable[str],
    caps: FrequencyCaps,
    *,
    horizon_days: int = 62,
) -> dt.datetime | None:
    """The start (UTC) of the first local day, in every zone, with room under the caps."""
    now = _require_utc(now)
    latest: dt.datetime | None = None
    for name in zones:
        tz = _zone(name)
        if tz is None:
            return None
        local_history = [_require_utc(h).astimezone(tz) for h in history]
        today = now.astimezone(tz).date()
        found: dt.datetime | None = None
        for offset in range(horizon_days + 1):
            day = today + dt.timedelta(days=offset)
            if _room(_counts_for_day(day, local_history), caps):
                start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz).astimezone(UTC)
                found = max(start, now)
                break
        if found is None:
            return None
        latest = found if latest is None or found > latest else latest
    return latest


def consent_decision(
    purpose: Purpose | str, channel: Channel, consents: ConsentState
) -> SkipReason | None:
    """None when consents allow the contact, else OPTED_OUT or NO_CONSENT."""
    purpose = str(purpose)
    if purpose in consents.withdrawn:
        return SkipReason.OPTED_OUT
    if channel is Channel.VOICE and ROBOT_CALLS in consents.withdrawn:
        return SkipReason.OPTED_OUT
    if purpose in PURPOSES_NEEDING_GRANT and purpose not in consents.granted:
        return SkipReason.NO_CONSENT
    return None


def debt_decision(purpose: Purpose | str, debt: Decimal, min_debt: Decimal | None) -> Skip | None:
    """Skip a debt notice for good when the current ``debt`` no longer justifies it.

    A target is skipped with :attr:`SkipReason.PAID` when its debt now is below the
    campaign's ``min_debt``, or is zero when the campaign has no (or a zero) ``min_debt``.
    Other purposes (service notices, marketing) are not about a debt: ``None``.
    """
    if str(purpose) != Purpose.DEBT_NOTICE:
        return None
    if debt <= 0 or (min_debt is not None and debt < min_debt):
        floor = "nothing owed" if debt <= 0 else f"below the campaign's min_debt {min_debt}"
        return Skip(SkipReason.PAID, f"debt now {debt}: {floor}")
    return None


def check_contact(
    *,
    now: dt.datetime,
    channel: Channel,
    purpose: Purpose | str,
    facts: ContactFacts,
    policy: ContactPolicy | None = None,
    calendar: ProductionCalendar | None = None,
) -> Decision:
    """Decide whether to contact a consumer now: :class:`Allowed` or :class:`Skip`.

    Checks, in this order: a valid Russian number, do-not-contact, consent by purpose (and
    robot calls), a known timezone, the local window, the frequency caps.
    """
    policy = policy or ContactPolicy()
    calendar = calendar or default_calendar()
    now = _require_utc(now)
    if not facts.phone:
        return Skip(SkipReason.INVALID_NUMBER, "no phone number")
    try:
        phone = normalize_phone(facts.phone)
    except InvalidPhoneError as exc:
        return Skip(SkipReason.INVALID_NUMBER, str(exc))
    if facts.do_not_contact:
        return Skip(SkipReason.OPTED_OUT, "number is on the do-not-contact list")
    consent = consent_decision(purpose, channel, facts.consents)
    if consent is SkipReason.OPTED_OUT:
        return Skip(consent, f"consent withdrawn for {purpose} / {channel}")
    if consent is SkipReason.NO_CONSENT:
        return Skip(consent, f"no {purpose} consent on record")
    zones = zones_for_contact(phone, facts.account_timezone)
    if not zones:
        return Skip(SkipReason.UNKNOWN_TIMEZONE, "no timezone for the account or the number")
    if not is_within_window(now, zones, policy, calendar):
        opening = next_window_opening(now, zones, policy, calendar)
        return Skip(
            SkipReason.OUTSIDE_WINDOW,
            f"outside the local calling window in {', '.join(zones)}",
            retry_at=opening,
        )
    caps = policy.caps_for(channel)
    if cap_reached(now, facts.history, zones, caps):
        room = next_cap_room(now, facts.history, zones, caps)
        retry_at = None
        if room is not None:
            retry_at = next_window_opening(room, zones, policy, calendar)
        return Skip(
            SkipReason.CAP_REACHED,
            f"{channel} cap {caps.per_day}/{caps.per_week}/{caps.per_month} reached",
            retry_at=retry_at,
        )
    return Allowed(phone=phone, zones=zones)
