"""The console dashboard's figures, computed in SQL within a :class:`~crm_store.access.Scope`.

Every figure counts only what the user may see (:mod:`crm_store.visibility`): calls and SMS
through their account (or, naming no account, their consumer), readings through their meter's
account, recognition results through their call, campaigns through the regions their
audience names (:func:`crm_store.console_queries.campaign_clause`). Interactions that name
neither an account nor a consumer (a caller who never gave an account number, an SMS the IVR
sent to a bare phone) belong to no region: only users of all regions count them.

"Today" is the calendar day in Moscow time (the console's clock), from its midnight to now.

* calls in the IVR now: voice interactions answered (``in-progress``), not ended, not handed
  to people, started within :data:`LIVE_CALL_HOURS` (an older unfinished row is a call whose
  final status never came, not a live call);
* today's calls by outcome (``None``: no outcome yet);
* IVR containment: today's inbound calls that finished in the IVR (completed there, or the
  caller hung up in the menu) against those handed to an operator or another number;
* readings captured by voice (``ivr_voice``) and keypad (``ivr_dtmf``) today, other sources
  together;
* the confidence of today's recognition results in tenths (0–0.1 … 0.9–1.0);
* outbound SMS sent today by delivery state: delivered, failed, on the way;
* campaigns running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from crm_store.access import Scope
from crm_store.console_queries import campaign_clause, day_bounds
from crm_store.models import (
    SUPPLIER_TIMEZONE,
    Account,
    Campaign,
    Interaction,
    Meter,
    MeterReading,
    Transcript,
)
from crm_store.visibility import interaction_clause

#: An unfinished call older than this is not counted as live.
LIVE_CALL_HOURS = 4
#: Outcomes of calls that ended in the IVR, and of calls handed to people.
CONTAINED_OUTCOMES = ("completed_in_ivr", "hung_up_in_ivr")
TRANSFERRED_OUTCOMES = ("transferred_queue", "transferred_number")
#: SMS statuses by delivery state.
SMS_DELIVERED = ("delivered", "read")
SMS_FAILED = ("failed", "undelivered", "canceled")
#: Reading sources of the IVR.
VOICE_SOURCE, KEYPAD_SOURCE = "ivr_voice", "ivr_dtmf"
CONFIDENCE_BUCKETS = 10
RUNNING_CAMPAIGNS_SHOWN = 10


@dataclass(frozen=True)
class Containment:
    """Today's inbound calls that ended in the IVR (``contained``) or with people."""

    completed: int = 0
    hung_up: int = 0
    transferred: int = 0

    @property
    def contained(self) -> int:
        """Calls finished without an operator."""
        return self.completed + self.hung_up

    @property
    def rate(self) -> float | None:
        """Contained share of the calls that ended either way (None: no such call)."""
        total = self.contained + self.transferred
        return self.contained / total if total else None


@dataclass(frozen=True)
class RunningCampaign:
    """A running campaign as the dashboard lists it."""

    id: int
    name: str
    channel: str
    launched_at: datetime | None


@dataclass(frozen=True)
class Dashboard:
    """Every dashboard figure, as of ``as_of``, for one scope."""

    as_of: datetime
    calls_in_ivr: int
    calls_today: int
    calls_by_outcome: dict[str | None, int]
    containment: Containment
    readings: dict[str, int]
    confidence: list[int]
    sms: dict[str, int]
    campaigns_running: int
    running: list[RunningCampaign] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the charts' data)."""
        return {
            "as_of": self.as_of.isoformat(),
            "calls_in_ivr": self.calls_in_ivr,
            "calls_today": self.calls_today,
            "calls_by_outcome": {
                ("none" if k is None else k): v for k, v in self.calls_by_outcome.items()
            },
            "containment": {
                "completed": self.containment.completed,
                "hung_up": self.containment.hung_up,
                "transferred": self.containment.transferred,
                "rate": self.containment.rate,
            },
            "readings": self.readings,
            "confidence": self.confidence,
            "sms": self.sms,
            "campaigns_running": self.campaigns_running,
        }


def _count(session: Session, *conds: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count(Interaction.id)).where(*conds)) or 0)


def calls_in_ivr(session: Session, scope: Scope, now: datetime) -> int:
    """Answered calls in the IVR right now (see the module docstring)."""
    return _count(
        session,
        Interaction.channel == "voice",
        Interaction.status == "in-progress",
        Interaction.ended_at.is_(None),
        Interaction.started_at >= now - timedelta(hours=LIVE_CALL_HOURS),
        or_(Interaction.outcome.is_(None), Interaction.outcome.not_in(TRANSFERRED_OUTCOMES)),
        interaction_clause(scope),
    )


def calls_by_outcome(
    session: Session, scope: Scope, since: datetime, until: datetime
) -> dict[str | None, int]:
    """Calls started in ``[since, until)`` by outcome, most frequent first."""
    rows = session.execute(
        select(Interaction.outcome, func.count(Interaction.id))
        .where(
            Interaction.channel == "voice",
            Interaction.started_at >= since,
            Interaction.started_at < until,
            interaction_clause(scope),
        )
        .group_by(Interaction.outcome)
    ).all()
    ordered = sorted(rows, key=lambda r: (-int(r[1]), r[0] or ""))
    return {outcome: int(n) for outcome, n in ordered}


def containment(session: Session, scope: Scope, since: datetime, until: datetime) -> Containment:
    """Inbound calls started in ``[since, until)`` that ended in the IVR or with people."""
    counts = dict(
        session.execute(
            select(Interaction.outcome, func.count(Interaction.id))
            .where(
                Interaction.channel == "voice",
                Interaction.direction == "inbound",
                Interaction.started_at >= since,
                Interaction.started_at < until,
                Interaction.outcome.in_(CONTAINED_OUTCOMES + TRANSFERRED_OUTCOMES),
                interaction_clause(scope),
            )
            .group_by(Interaction.outcome)
        ).all()
    )
    return Containment(
        completed=int(counts.get("completed_in_ivr", 0)),
        hung_up=int(counts.get("hung_up_in_ivr", 0)),
        transferred=sum(int(counts.get(o, 0)) for o in TRANSFERRED_OUTCOMES),
    )


def readings_by_source(
    session: Session, scope: Scope, since: datetime, until: datetime
) -> dict[str, int]:
    """Readings submitted in ``[since, until)``: ``voice``, ``keypad`` and ``other``."""
    kind = case(
        (MeterReading.source == VOICE_SOURCE, "voice"),
        (MeterReading.source == KEYPAD_SOURCE, "keypad"),
        else_="other",
    )
    rows = session.execute(
        select(kind, func.count(MeterReading.id))
        .join(Meter, Meter.id == MeterReading.meter_id)
        .join(Account, Account.id == Meter.account_id)
        .where(
            MeterReading.submitted_at >= since,
            MeterReading.submitted_at < until,
            scope.region_clause(Account.region),
        )
        .group_by(kind)
    ).all()
    found = {str(k): int(n) for k, n in rows}
    return {name: found.get(name, 0) for name in ("voice", "keypad", "other")}


def confidence_histogram(
    session: Session, scope: Scope, since: datetime, until: datetime
) -> list[int]:
    """Recognition results of ``[since, until)`` by confidence, in tenths (10 counts)."""
    confidence = Transcript.confidence
    bucket = case(
        *((confidence < (n + 1) / CONFIDENCE_BUCKETS, n) for n in range(CONFIDENCE_BUCKETS - 1)),
        else_=CONFIDENCE_BUCKETS - 1,
    )
    rows = session.execute(
        select(bucket, func.count(Transcript.id))
        .join(Interaction, Interaction.id == Transcript.interaction_id)
        .where(
            Transcript.at >= since,
            Transcript.at < until,
            confidence.is_not(None),
            interaction_clause(scope),
        )
        .group_by(bucket)
    ).all()
    counts = [0] * CONFIDENCE_BUCKETS
    for n, count in rows:
        counts[int(n)] = int(count)
    return counts


def sms_by_state(
    session: Session, scope: Scope, since: datetime, until: datetime
) -> dict[str, int]:
    """Outbound SMS of ``[since, until)``: ``delivered``, ``failed`` and ``pending``."""
    state = case(
        (Interaction.status.in_(SMS_DELIVERED), "delivered"),
        (Interaction.status.in_(SMS_FAILED), "failed"),
        else_="pending",
    )
    rows = session.execute(
        select(state, func.count(Interaction.id))
        .where(
            Interaction.channel == "sms",
            Interaction.direction == "outbound",
            Interaction.started_at >= since,
            Interaction.started_at < until,
            interaction_clause(scope),
        )
        .group_by(state)
    ).all()
    found = {str(k): int(n) for k, n in rows}
    return {name: found.get(name, 0) for name in ("delivered", "failed", "pending")}


def running_campaigns(session: Session, scope: Scope) -> tuple[int, list[RunningCampaign]]:
    """How many visible campaigns run, and the newest of them."""
    where = and_(
        Campaign.status == "running",
        campaign_clause(scope, session.get_bind().dialect.name),
    )
    count = int(session.scalar(select(func.count(Campaign.id)).where(where)) or 0)
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.channel, Campaign.launched_at)
        .where(where)
        .order_by(Campaign.id.desc())
        .limit(RUNNING_CAMPAIGNS_SHOWN)
    ).all()
    return count, [RunningCampaign(r.id, r.name, r.channel, r.launched_at) for r in rows]


def dashboard(
    session: Session, scope: Scope, now: datetime, *, zone: str = SUPPLIER_TIMEZONE
) -> Dashboard:
    """Every figure of the dashboard for ``scope`` at ``now`` (today: the day in ``zone``)."""
    since, _ = day_bounds(now, zone)
    until = now + timedelta(seconds=1)
    outcomes = calls_by_outcome(session, scope, since, until)
    count, running = running_campaigns(session, scope)
    return Dashboard(
        as_of=now,
        calls_in_ivr=calls_in_ivr(session, scope, now),
        calls_today=sum(outcomes.values()),
        calls_by_outcome=outcomes,
        containment=containment(session, scope, since, until),
        readings=readings_by_source(session, scope, since, until),
        confidence=confidence_histogram(session, scope, since, until),
        sms=sms_by_state(session, scope, since, until),
        campaigns_running=count,
        running=running,
    )
