"""Meter-reading validation and submission, as real suppliers do it (domain.md §2.3).

:func:`validate_reading` is a pure function of the typed value, the meter and its history;
it returns a :data:`ReadingDecision`:

* :class:`Accepted` — the reading can be stored for ``period`` (possibly the *next* billing
  period when it came after the window closed), with ``consumption`` and flags;
* :class:`NeedsConfirmation` — ask the consumer to confirm (value lower than the previous
  one, or implausibly high consumption); calling again with ``confirmed=True`` accepts it
  with the ``override`` flag;
* :class:`Rejected` — cannot be accepted (letters, wrong digit count, window not open yet,
  remote-read meter …).

Every decision carries a Russian ``message`` the IVR can speak and a machine ``reason``.
:func:`submit_reading` loads the meter and its history, validates and stores the reading
(idempotent: the same value for the same meter, zone and period is stored once).

Checks, in order: meter accepts manual readings → zone exists → digits only → digit count
(strict: exactly ``capacity`` digits; pad: shorter values are zero-padded; longer is always
rejected) → submission window in the account's local time → lower than previous (rollover
rule, else confirmation) → plausibility of the consumption.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.config import Settings
from contactcenter.russian import MONTHS_GENITIVE, MONTHS_NOMINATIVE
from crm_store.db import insert_or_existing
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import READING_SOURCES, Account, Meter, MeterReading, utcnow

LengthMode = Literal["strict", "pad"]
BeforeWindow = Literal["reject", "accept_current"]
AfterWindow = Literal["next_period", "reject"]
#: ``READING_LATE_POLICY`` → (before_window, after_window): ``accept`` takes every reading
#: (before the window for the current period, after it for the next), ``refuse`` takes
#: readings only inside the window.
LATE_POLICIES: dict[str, tuple[BeforeWindow, AfterWindow]] = {
    "accept": ("accept_current", "next_period"),
    "refuse": ("reject", "reject"),
}

RejectReason = Literal[
    "remote_read",
    "account_closed",
    "unknown_zone",
    "empty",
    "not_digits",
    "decimal_part",
    "too_short",
    "too_long",
    "window_closed",
]
ConfirmReason = Literal["lower_than_previous", "implausible"]


@dataclass(frozen=True)
class ReadingPolicy:
    """The supplier's reading rules (all configurable per tenant).

    * ``length_mode``: ``strict`` rejects a value with fewer digits than the meter shows,
      ``pad`` zero-pads it (``154`` → ``000154``); more digits are always rejected.
    * ``window_start_day`` .. ``window_end_day``: days of the month (account local time)
      readings are taken for the current period; after the end day they count for the next
      period; before the start day they are rejected, or with
      ``before_window="accept_current"`` taken for the current period; with
      ``after_window="reject"`` readings after the end day are rejected too.
      ``enforce_window=False`` takes every reading for the current month.
    * Plausibility: the monthly consumption of a zone may be at most
      ``max(plausibility_factor × average, plausibility_floor)``, or ``no_history_cap``
      when fewer than ``min_history`` monthly figures are known; scaled by the number of
      months since the previous reading. Above it → confirmation.
    * ``rollover_threshold``: the previous value must be at least this share of
      ``10^capacity`` for a lower value to count as the counter wrapping around.
    """

    length_mode: LengthMode = "strict"
    window_start_day: int = 15
    window_end_day: int = 25
    before_window: BeforeWindow = "reject"
    after_window: AfterWindow = "next_period"
    enforce_window: bool = True
    plausibility_factor: float = 3.0
    plausibility_floor: int = 500
    no_history_cap: int = 3000
    min_history: int = 3
    history_months: int = 12
    rollover_threshold: float = 0.9

    def __post_init__(self) -> None:
        if self.length_mode not in ("strict", "pad"):
            raise ValueError(f"length_mode must be strict or pad, got {self.length_mode!r}")
        if self.before_window not in ("reject", "accept_current"):
            raise ValueError(
                f"before_window must be reject or accept_current, got {self.before_window!r}"
            )
        if self.after_window not in ("next_period", "reject"):
            raise ValueError(
                f"after_window must be next_period or reject, got {self.after_window!r}"
            )
        if not 1 <= self.window_start_day <= self.window_end_day <= 31:
            raise ValueError("reading window must satisfy 1 <= start day <= end day <= 31")
        if self.plausibility_factor <= 0 or self.plausibility_floor < 0 or self.no_history_cap <= 0:
            raise ValueError("plausibility bounds must be positive")
        if self.min_history < 1 or self.history_months < 1:
            raise ValueError("min_history and history_months must be at least 1")
        if not 0 < self.rollover_threshold <= 1:
            raise ValueError("rollover_threshold must be within (0, 1]")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ReadingPolicy:
        """A policy with the window days and the late-reading policy of the settings
        (:data:`LATE_POLICIES`), plus any other ``overrides``."""
        before, after = LATE_POLICIES[settings.reading_late_policy]
        fields: dict[str, Any] = {
            "window_start_day": settings.reading_window_start_day,
            "window_end_day": settings.reading_window_end_day,
            "before_window": before,
            "after_window": after,
        }
        return replace(cls(), **{**fields, **overrides})


DEFAULT_POLICY = ReadingPolicy()


@dataclass(frozen=True)
class Accepted:
    """The reading is valid for ``period`` (first day of the billing month)."""

    value: int
    digits: str
    period: date
    consumption: int | None
    rollover: bool
    message: str
    next_period: bool = False
    override: bool = False
    anomaly: bool = False
    duplicate: bool = False

    @property
    def status(self) -> Literal["accepted"]:
        """``accepted``."""
        return "accepted"


@dataclass(frozen=True)
class NeedsConfirmation:
    """The consumer must confirm the value; resubmit with ``confirmed=True`` to store it."""

    reason: ConfirmReason
    message: str
    value: int
    previous: int | None
    period: date

    @property
    def status(self) -> Literal["needs_confirmation"]:
        """``needs_confirmation``."""
        return "needs_confirmation"


@dataclass(frozen=True)
class Rejected:
    """The reading cannot be accepted; ``message`` says why (and what to do)."""

    reason: RejectReason
    message: str

    @property
    def status(self) -> Literal["rejected"]:
        """``rejected``."""
        return "rejected"


ReadingDecision = Accepted | NeedsConfirmation | Rejected

_DECIMAL = re.compile(r"\d+[.,]\d+")


def _first_of_month(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def months_between(earlier: date, later: date) -> int:
    """Whole billing months from the period of ``earlier`` to that of ``later``."""
    return (later.year - earlier.year) * 12 + later.month - earlier.month


def _plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian noun form agreeing with ``n`` (1 цифра, 2 цифры, 5 цифр)."""
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _digits_word(n: int) -> str:
    return _plural(n, "цифра", "цифры", "цифр")


def period_name(period: date) -> str:
    """``"май 2026"`` — a billing period as the IVR says it."""
    return f"{MONTHS_NOMINATIVE[period.month - 1]} {period.year}"


def parse_reading(
    raw: str | int, capacity: int, policy: ReadingPolicy = DEFAULT_POLICY
) -> tuple[int, str] | Rejected:
    """``(value, digits)`` of what the consumer typed or said, or a :class:`Rejected`.

    Spaces between digit groups are ignored (``"12 345"``). ``digits`` has exactly
    ``capacity`` characters (zero-padded in pad mode).
    """
    text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(text, str):
        return Rejected("not_digits", "Показания должны состоять только из цифр.")
    compact = "".join(text.split())
    if not compact:
        return Rejected("empty", "Показания не названы. Назовите цифры на счётчике до запятой.")
    if _DECIMAL.fullmatch(compact):
        return Rejected(
            "decimal_part",
            "Передайте только цифры до запятой, без дробной части.",
        )
    if not (compact.isascii() and compact.isdigit()):
        return Rejected(
            "not_digits",
            "Показания должны состоять только из цифр. Назовите цифры на счётчике до запятой.",
        )
    if len(compact) > capacity:
        return Rejected(
            "too_long",
            f"Счётчик показывает {capacity} {_digits_word(capacity)} до запятой, "
            f"а передано {len(compact)}. "
            "Назовите только цифры до запятой.",
        )
    if len(compact) < capacity:
        if policy.length_mode == "strict":
            return Rejected(
                "too_short",
                f"Нужно назвать все {capacity} {_digits_word(capacity)} до запятой, "
                "включая нули в начале. "
                f"Передано {len(compact)}.",
            )
        compact = compact.zfill(capacity)
    return int(compact), compact


def billing_period(
    submitted_at: datetime, timezone: str, policy: ReadingPolicy = DEFAULT_POLICY
) -> tuple[date, bool] | Rejected:
    """``(period, is_next_period)`` for a reading submitted at ``submitted_at``, or Rejected.

    The day of the month is taken in the account's local ``timezone``.
    """
    if submitted_at.tzinfo is None or submitted_at.utcoffset() is None:
        raise InvalidInput("submitted_at must be tz-aware")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}") from None
    local = submitted_at.astimezone(zone).date()
    current = _first_of_month(local)
    if not policy.enforce_window:
        return current, False
    if local.day > policy.window_end_day and policy.after_window == "reject":
        following = _add_months(current, 1)
        return Rejected(
            "window_closed",
            f"Приём показаний за этот месяц закончился {policy.window_end_day} числа. "
            f"Передайте показания с {policy.window_start_day} по {policy.window_end_day} "
            f"{MONTHS_GENITIVE[following.month - 1]}.",
        )
    if local.day > policy.window_end_day:
        return _add_months(current, 1), True
    if local.day < policy.window_start_day and policy.before_window == "reject":
        opens = f"{policy.window_start_day} {MONTHS_GENITIVE[local.month - 1]}"
        return Rejected(
            "window_closed",
            f"Приём показаний открыт с {policy.window_start_day} по {policy.window_end_day} "
            f"число каждого месяца. Передайте показания начиная с {opens}.",
        )
    return current, False


def max_plausible(
    average_monthly: float | None, months: int, policy: ReadingPolicy = DEFAULT_POLICY
) -> int:
    """Highest consumption (kWh) accepted without confirmation over ``months`` months."""
    per_month = (
        max(policy.plausibility_factor * average_monthly, float(policy.plausibility_floor))
        if average_monthly is not None
        else float(policy.no_history_cap)
    )
    return int(per_month * max(months, 1))


def validate_reading(
    raw: str | int,
    *,
    capacity: int,
    zone: str,
    zones: Sequence[str],
    timezone: str,
    submitted_at: datetime,
    previous: int | None = None,
    previous_period: date | None = None,
    average_monthly: float | None = None,
    remote_read: bool = False,
    account_status: str = "active",
    confirmed: bool = False,
    policy: ReadingPolicy = DEFAULT_POLICY,
) -> ReadingDecision:
    """Decide on one zone's reading of a meter (pure; see the module docstring).

    ``previous`` is the last stored value of the zone from an earlier period (dated
    ``previous_period``) and ``average_monthly`` the zone's average monthly consumption
    (None when too little history is known).
    """
    if remote_read:
        return Rejected(
            "remote_read",
            "Этот счётчик передаёт показания автоматически, передавать их не нужно.",
        )
    if account_status == "closed":
        return Rejected("account_closed", "Лицевой счёт закрыт, показания по нему не принимаются.")
    if zone not in zones:
        names = ", ".join(zones)
        return Rejected(
            "unknown_zone", f"У этого счётчика нет зоны «{zone}». Зоны счётчика: {names}."
        )
    parsed = parse_reading(raw, capacity, policy)
    if isinstance(parsed, Rejected):
        return parsed
    value, digits = parsed
    timing = billing_period(submitted_at, timezone, policy)
    if isinstance(timing, Rejected):
        return timing
    period, next_period = timing

    accepted_text = "Показания приняты."
    if next_period:
        accepted_text = (
            f"Показания приняты. Приём за текущий месяц закончился {policy.window_end_day} "
            f"числа, поэтому они будут учтены в следующем расчётном периоде, "
            f"{period_name(period)}."
        )
    months = months_between(previous_period, period) if previous_period is not None else 1
    limit = max_plausible(average_monthly, months, policy)
    modulus = 10**capacity

    if previous is None:
        return Accepted(value, digits, period, None, False, accepted_text, next_period)

    if value < previous:
        wrapped = value + modulus - previous
        if previous >= policy.rollover_threshold * modulus and wrapped <= limit:
            return Accepted(value, digits, period, wrapped, True, accepted_text, next_period)
        if confirmed:
            return Accepted(
                value,
                digits,
                period,
                None,
                False,
                accepted_text,
                next_period,
                override=True,
                anomaly=True,
            )
        return NeedsConfirmation(
            "lower_than_previous",
            f"Названное показание {value} меньше предыдущего, {previous}. "
            "Если вы не ошиблись, подтвердите показание, иначе назовите его ещё раз.",
            value,
            previous,
            period,
        )

    consumption = value - previous
    if consumption > limit:
        if confirmed:
            return Accepted(
                value,
                digits,
                period,
                consumption,
                False,
                accepted_text,
                next_period,
                override=True,
                anomaly=True,
            )
        return NeedsConfirmation(
            "implausible",
            f"По этим показаниям расход составит {consumption} "
            f"{_plural(consumption, 'киловатт-час', 'киловатт-часа', 'киловатт-часов')}, "
            "это намного "
            "больше обычного. Если вы не ошиблись, подтвердите показание, иначе назовите его "
            "ещё раз.",
            value,
            previous,
            period,
        )
    return Accepted(value, digits, period, consumption, False, accepted_text, next_period)


VerificationLevel = Literal["due_90", "due_60", "due_30", "expired"]


@dataclass(frozen=True)
class VerificationNotice:
    """The meter's verification (поверка, МПИ) falls due soon or has expired."""

    level: VerificationLevel
    days_left: int
    message: str


def verification_notice(due: date | None, today: date) -> VerificationNotice | None:
    """A warning when verification is due within 90/60/30 days or overdue (domain.md §2.3).

    ``today`` is the consumer's local date. None when no date is known or it is further off.
    """
    if due is None:
        return None
    days = (due - today).days
    when = f"{due.day} {MONTHS_GENITIVE[due.month - 1]} {due.year} года"
    if days < 0:
        return VerificationNotice(
            "expired",
            days,
            f"Срок поверки счётчика истёк {when}. До поверки начисления будут считаться "
            "по среднему потреблению, а затем по нормативу. Оставьте заявку на поверку.",
        )
    levels: tuple[tuple[VerificationLevel, int], ...] = (
        ("due_30", 30),
        ("due_60", 60),
        ("due_90", 90),
    )
    for level, bound in levels:
        if days <= bound:
            return VerificationNotice(
                level,
                days,
                f"Срок поверки счётчика истекает {when}. Позаботьтесь о поверке заранее.",
            )
    return None


# ---------------------------------------------------------------------------- storage
@dataclass(frozen=True)
class ZoneHistory:
    """What validation needs to know about a zone's earlier readings."""

    previous: int | None
    previous_period: date | None
    average_monthly: float | None


def zone_history(
    session: Session,
    meter_id: int,
    zone: str,
    before_period: date,
    policy: ReadingPolicy = DEFAULT_POLICY,
) -> ZoneHistory:
    """The last reading of ``zone`` before ``before_period`` and the average monthly use.

    The average is taken over the last ``policy.history_months`` months: one value per
    period (the latest submitted), consumption between consecutive periods divided by the
    months between them (stored ``consumption`` is used where present, e.g. for rollovers);
    readings stored as overrides are left out of the average.
    """
    since = _add_months(before_period, -(policy.history_months + 1))
    rows = session.execute(
        select(
            MeterReading.period,
            MeterReading.value,
            MeterReading.consumption,
            MeterReading.override,
        )
        .where(
            MeterReading.meter_id == meter_id,
            MeterReading.zone == zone,
            MeterReading.period < before_period,
        )
        .order_by(MeterReading.period, MeterReading.submitted_at, MeterReading.id)
    ).all()
    if not rows:
        return ZoneHistory(None, None, None)
    per_period: dict[date, tuple[int, int | None, bool]] = {}
    for period, value, consumption, override in rows:
        per_period[period] = (int(value), consumption, bool(override))
    periods = sorted(per_period)
    last_period = periods[-1]
    monthly: list[float] = []
    for earlier, later in pairwise(periods):
        if later < since:
            continue
        value, consumption, override = per_period[later]
        if override:
            continue
        used = consumption if consumption is not None else value - per_period[earlier][0]
        if used < 0:
            continue
        monthly.append(used / max(months_between(earlier, later), 1))
    average = sum(monthly) / len(monthly) if len(monthly) >= policy.min_history else None
    return ZoneHistory(per_period[last_period][0], last_period, average)


@dataclass(frozen=True)
class Submission:
    """The result of :func:`submit_reading`: the decision and the stored row, if any."""

    decision: ReadingDecision
    reading: MeterReading | None


def _find_same(
    session: Session, meter_id: int, zone: str, period: date, value: int
) -> MeterReading | None:
    return session.scalars(
        select(MeterReading)
        .where(
            MeterReading.meter_id == meter_id,
            MeterReading.zone == zone,
            MeterReading.period == period,
            MeterReading.value == value,
        )
        .limit(1)
    ).first()


def _duplicate(row: MeterReading, digits: str, next_period: bool, message: str) -> Submission:
    decision = Accepted(
        value=int(row.value),
        digits=digits,
        period=row.period,
        consumption=row.consumption,
        rollover=row.rollover,
        message=message,
        next_period=next_period,
        override=row.override,
        anomaly=row.anomaly,
        duplicate=True,
    )
    return Submission(decision, row)


def check_reading(
    session: Session,
    meter_id: int,
    zone: str,
    value: str | int,
    *,
    submitted_at: datetime | None = None,
    confirmed: bool = False,
    policy: ReadingPolicy = DEFAULT_POLICY,
) -> ReadingDecision:
    """What :func:`submit_reading` would decide, without storing anything.

    For the IVR to tell the consumer before asking "save?"; a value already stored for the
    period comes back as ``Accepted(duplicate=True)``.
    """
    return _evaluate(session, meter_id, zone, value, submitted_at, confirmed, policy).decision


def _evaluate(
    session: Session,
    meter_id: int,
    zone: str,
    value: str | int,
    submitted_at: datetime | None,
    confirmed: bool,
    policy: ReadingPolicy,
) -> Submission:
    """Decide on a reading against the meter's stored history (duplicates included)."""
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFound(f"meter {meter_id} does not exist")
    account = session.get(Account, meter.account_id)
    if account is None:  # pragma: no cover - the foreign key guarantees it
        raise NotFound(f"account {meter.account_id} does not exist")
    at = submitted_at or utcnow()

    def decide(history: ZoneHistory) -> ReadingDecision:
        return validate_reading(
            value,
            capacity=meter.capacity,
            zone=zone,
            zones=list(meter.zones),
            timezone=account.local_timezone,  # unknown zone: the supplier's Moscow clock
            submitted_at=at,
            previous=history.previous,
            previous_period=history.previous_period,
            average_monthly=history.average_monthly,
            remote_read=meter.remote_read,
            account_status=account.status,
            confirmed=confirmed,
            policy=policy,
        )

    # Without history a decision is Accepted or Rejected; it fixes the value and period.
    first = decide(ZoneHistory(None, None, None))
    if not isinstance(first, Accepted):
        return Submission(first, None)
    same = _find_same(session, meter.id, zone, first.period, first.value)
    if same is not None:
        return _duplicate(same, first.digits, first.next_period, first.message)
    return Submission(decide(zone_history(session, meter.id, zone, first.period, policy)), None)


def submit_reading(
    session: Session,
    meter_id: int,
    zone: str,
    value: str | int,
    source: str,
    *,
    submitted_at: datetime | None = None,
    confirmed: bool = False,
    confidence: float | None = None,
    audio_ref: str | None = None,
    interaction_id: int | None = None,
    policy: ReadingPolicy = DEFAULT_POLICY,
) -> Submission:
    """Validate one zone's reading and store it when accepted.

    Idempotent within a period: submitting the same value again for the same meter, zone
    and period returns the stored reading (``decision.duplicate`` is True) and stores
    nothing. A different value in the same period is stored as a correction (the latest
    reading of a period counts). Raises :class:`NotFound` for an unknown meter and
    :class:`InvalidInput` for an unknown ``source``; everything the consumer got wrong is
    a :class:`Rejected` / :class:`NeedsConfirmation` decision instead.
    """
    if source not in READING_SOURCES:
        raise InvalidInput(f"unknown reading source {source!r}")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise InvalidInput(f"confidence must be within 0..1, got {confidence}")
    at = submitted_at or utcnow()
    result = _evaluate(session, meter_id, zone, value, at, confirmed, policy)
    decision = result.decision
    if result.reading is not None or not isinstance(decision, Accepted):
        return result
    row = MeterReading(
        meter_id=meter_id,
        zone=zone,
        value=decision.value,
        period=decision.period,
        source=source,
        confidence=confidence,
        audio_ref=audio_ref,
        anomaly=decision.anomaly,
        override=decision.override,
        rollover=decision.rollover,
        consumption=decision.consumption,
        submitted_at=at,
        interaction_id=interaction_id,
    )
    # Refused: the same reading was stored concurrently (unique meter/zone/period/value).
    stored, inserted = insert_or_existing(
        session, row, lambda: _find_same(session, meter_id, zone, decision.period, decision.value)
    )
    if not inserted:
        return _duplicate(stored, decision.digits, decision.next_period, decision.message)
    return Submission(decision, row)
