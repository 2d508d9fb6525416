"""Cases (обращения): opening with an SLA due time, status transitions, history.

The SLA due time is the opening time plus a per-type response time counted in *working
time* of a :class:`WorkingCalendar` (working hours on working days, in one time zone).
Statutory deadlines per case type are not confirmed (domain.md §4), so every figure is
configuration: pass your own :class:`SlaPolicy`. A production calendar with holidays and
moved working days plugs in as ``is_working_day`` (e.g. ``campaigns`` ProductionCalendar's
``is_working_day``); the default only skips Saturdays and Sundays.

Status workflow (every change is a :class:`CaseEvent`)::

    open ──► in_progress ──► resolved ──► closed
      │            ▲   │          │
      └────────────┼───┴──► closed│
                   └──────────────┘  (reopen: resolved → in_progress)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.errors import InvalidInput, InvalidTransition, NotFound
from crm_store.models import CASE_TYPES, Case, CaseEvent, utcnow

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "resolved", "closed"}),
    "in_progress": frozenset({"resolved", "closed", "open"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
}


def _weekday(day: date) -> bool:
    return day.weekday() < 5


@dataclass(frozen=True)
class WorkingCalendar:
    """Working hours ``[day_start, day_end)`` on working days, in ``timezone``."""

    timezone: str = "Europe/Moscow"
    day_start: time = time(9, 0)
    day_end: time = time(18, 0)
    is_working_day: Callable[[date], bool] = _weekday

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone
        if not self.day_start < self.day_end:
            raise ValueError("day_start must be before day_end")

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of working time after ``start`` (aware; returned in UTC).

        A start outside working hours counts from the next opening; a duration that ends
        exactly at closing time ends at closing time, not at the next opening.
        """
        if start.tzinfo is None:
            raise ValueError("start must be tz-aware")
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        zone = ZoneInfo(self.timezone)
        local = start.astimezone(zone)
        remaining = duration
        day = local.date()
        cursor = local
        for _ in range(3660):  # ten years of days: a calendar with no working days fails
            if self.is_working_day(day):
                opens = datetime.combine(day, self.day_start, tzinfo=zone)
                closes = datetime.combine(day, self.day_end, tzinfo=zone)
                begin = max(cursor, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
            cursor = datetime.combine(day, time(0, 0), tzinfo=zone)
        raise ValueError("the working calendar has no working time in the next ten years")


DEFAULT_RESPONSE_TIMES: dict[str, timedelta] = {
    "outage": timedelta(hours=2),
    "callback": timedelta(hours=4),
    "voicemail": timedelta(hours=9),
    "already_paid": timedelta(hours=18),
    "reading_dispute": timedelta(hours=45),
    "meter_service": timedelta(hours=45),
    "complaint": timedelta(hours=90),
}


@dataclass(frozen=True)
class SlaPolicy:
    """Response time (working time) per case type, over a working calendar."""

    response_times: Mapping[str, timedelta] = field(
        default_factory=lambda: dict(DEFAULT_RESPONSE_TIMES)
    )
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)

    def due_at(self, case_type: str, opened_at: datetime) -> datetime | None:
        """When a case of ``case_type`` opened at ``opened_at`` is due (None: no SLA)."""
        duration = self.response_times.get(case_type)
        if duration is None:
            return None
        return self.calendar.add_working_time(opened_at, duration)


DEFAULT_POLICY = SlaPolicy()


def open_case(
    session: Session,
    *,
    case_type: str,
    subject: str,
    account_id: int | None = None,
    consumer_id: int | None = None,
    description: str = "",
    interaction_id: int | None = None,
    actor: str = "system",
    now: datetime | None = None,
    policy: SlaPolicy = DEFAULT_POLICY,
) -> Case:
    """Open a case with its SLA due time and a first history event."""
    if case_type not in CASE_TYPES:
        raise InvalidInput(f"unknown case type {case_type!r}")
    if not subject.strip():
        raise InvalidInput("тема обращения не может быть пустой")
    opened = now or utcnow()
    if opened.tzinfo is None:
        raise InvalidInput("now must be tz-aware")
    case = Case(
        type=case_type,
        status="open",
        subject=subject.strip(),
        description=description,
        account_id=account_id,
        consumer_id=consumer_id,
        interaction_id=interaction_id,
        created_at=opened,
        sla_due_at=policy.due_at(case_type, opened),
    )
    case.events.append(CaseEvent(at=opened, actor=actor, from_status=None, to_status="open"))
    session.add(case)
    session.flush()
    return case


def get_case(session: Session, case_id: int) -> Case:
    """The case with ``case_id`` or raise :class:`NotFound`."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def change_status(
    session: Session,
    case_id: int,
    to_status: str,
    *,
    actor: str,
    note: str = "",
    now: datetime | None = None,
) -> Case:
    """Move a case to ``to_status`` (see the workflow above) and record the event.

    Closing sets ``closed_at``; reopening clears it. A disallowed change raises
    :class:`InvalidTransition`.
    """
    case = get_case(session, case_id)
    allowed = TRANSITIONS.get(case.status, frozenset())
    if to_status not in allowed:
        raise InvalidTransition(f"case {case_id}: {case.status} → {to_status} is not allowed")
    at = now or utcnow()
    case.events.append(
        CaseEvent(at=at, actor=actor, from_status=case.status, to_status=to_status, note=note)
    )
    case.status = to_status
    case.closed_at = at if to_status == "closed" else None
    session.flush()
    return case


def add_note(
    session: Session, case_id: int, *, actor: str, note: str, now: datetime | None = None
) -> CaseEvent:
    """Add a note to a case's history without changing its status."""
    if not note.strip():
        raise InvalidInput("пустая заметка")
    case = get_case(session, case_id)
    event = CaseEvent(at=now or utcnow(), actor=actor, note=note.strip())
    case.events.append(event)
    session.flush()
    return event


def overdue_cases(session: Session, now: datetime, *, limit: int = 100) -> list[Case]:
    """Open or in-progress cases past their SLA due time, most overdue first."""
    stmt = (
        select(Case)
        .where(
            Case.status.in_(("open", "in_progress")),
            Case.sla_due_at.is_not(None),
            Case.sla_due_at < now,
        )
        .order_by(Case.sla_due_at, Case.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
