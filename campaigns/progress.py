"""Campaigns as the console shows them: the list a user may see, live progress, the audience
split by region.

Visibility: a user sees a campaign when its audience names regions, all of them the user's
(:func:`crm_store.console_queries.campaign_clause`, the SQL form of
:func:`crm_store.visibility.covers_campaign`); a campaign of another region is
:class:`~campaigns.errors.CampaignNotFound`, exactly like one that does not exist.

Progress (:func:`campaign_progress`) is a handful of grouped counts, cheap enough to poll
every few seconds: targets by state and skips by reason (the control group apart), attempts
by outcome, and attempts by outcome over time in buckets sized so a chart has at most
:data:`MAX_BUCKETS` points. The payment conversion against the control group is the report's
(:func:`campaigns.report.build_report`), heavier, polled less often.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.audience import audience_query
from campaigns.definition import Audience
from campaigns.errors import CampaignNotFound
from crm_store.access import Scope
from crm_store.accounts import normalize_account_number
from crm_store.console_queries import campaign_clause, epoch_bucket
from crm_store.errors import InvalidAccountNumber
from crm_store.models import (
    CAMPAIGN_STATUSES,
    TARGET_STATES,
    Account,
    Campaign,
    CampaignTarget,
    ContactAttempt,
)
from crm_store.paging import KeysetPage, check_limit, decode_cursor, page_of

#: The most points an "attempts over time" chart gets.
MAX_BUCKETS = 120
#: Target states that end a target's part in the campaign.
FINAL_STATES = ("done", "skipped", "failed", "cancelled")
#: Campaign statuses whose progress still changes (the page keeps polling).
LIVE_STATUSES = ("draft", "planned", "running", "paused")
#: Accounts per query when an audience lists account numbers.
NUMBERS_PER_QUERY = 1000


@dataclass(frozen=True)
class CampaignRow:
    """One campaign of the list."""

    id: int
    name: str
    channel: str
    status: str
    created_by: str
    created_at: dt.datetime
    launched_at: dt.datetime | None
    finished_at: dt.datetime | None
    regions: list[str] | None
    targets: int
    finished: int


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def list_campaigns(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[CampaignRow]:
    """The campaigns ``scope`` sees, newest first (keyset pages by id)."""
    check_limit(limit)
    query = select(Campaign).where(campaign_clause(scope, _dialect(session)))
    if status is not None:
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"unknown campaign status {status!r}")
        query = query.where(Campaign.status == status)
    if cursor:
        (last,) = decode_cursor(cursor, (int,))
        query = query.where(Campaign.id < last)
    rows = list(session.scalars(query.order_by(Campaign.id.desc()).limit(limit + 1)))
    page = page_of(rows, limit, lambda c: (c.id,))
    counts = _target_counts(session, [c.id for c in page.items])
    return KeysetPage([_row(c, counts.get(c.id, (0, 0))) for c in page.items], page.next_cursor)


def _target_counts(session: Session, ids: list[int]) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for campaign_id, state, n in session.execute(
        select(CampaignTarget.campaign_id, CampaignTarget.state, func.count())
        .where(CampaignTarget.campaign_id.in_(ids), CampaignTarget.control_group.is_(False))
        .group_by(CampaignTarget.campaign_id, CampaignTarget.state)
    ):
        totals[campaign_id][0] += int(n)
        if state in FINAL_STATES:
            totals[campaign_id][1] += int(n)
    return {k: (v[0], v[1]) for k, v in totals.items()}


def audience_regions(definition: dict[str, Any] | None) -> list[str] | None:
    """The regions a stored definition's audience names (None: every region)."""
    audience = (definition or {}).get("audience") or {}
    regions = audience.get("regions") if isinstance(audience, dict) else None
    return [str(r) for r in regions] if regions else None


def _row(campaign: Campaign, counts: tuple[int, int]) -> CampaignRow:
    return CampaignRow(
        id=campaign.id,
        name=campaign.name,
        channel=campaign.channel,
        status=campaign.status,
        created_by=campaign.created_by,
        created_at=campaign.created_at,
        launched_at=campaign.launched_at,
        finished_at=campaign.finished_at,
        regions=audience_regions(campaign.definition),
        targets=counts[0],
        finished=counts[1],
    )


def get_campaign(session: Session, scope: Scope, campaign_id: int) -> Campaign:
    """Campaign ``campaign_id`` when ``scope`` sees it, else :class:`CampaignNotFound`."""
    campaign = session.scalars(
        select(Campaign).where(
            Campaign.id == campaign_id, campaign_clause(scope, _dialect(session))
        )
    ).one_or_none()
    if campaign is None:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return campaign


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Timeline:
    """Attempts by outcome over time: ``starts`` of the buckets (UTC) and, per outcome, the
    count of attempts placed in each bucket."""

    bucket_s: int
    starts: list[dt.datetime]
    series: dict[str, list[int]]


@dataclass(frozen=True)
class Progress:
    """What the campaign page shows live."""

    campaign_id: int
    status: str
    targets: dict[str, int]
    control_group: int
    skipped: dict[str, int]
    attempts: dict[str, int]
    timeline: Timeline
    launched_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Targets outside the control group."""
        return sum(self.targets.values())

    @property
    def finished(self) -> int:
        """Targets in a final state."""
        return sum(n for state, n in self.targets.items() if state in FINAL_STATES)

    @property
    def live(self) -> bool:
        """True while the progress may still change."""
        return self.status in LIVE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the charts' data)."""
        return {
            "id": self.campaign_id,
            "status": self.status,
            "live": self.live,
            "targets": self.targets,
            "total": self.total,
            "finished": self.finished,
            "control_group": self.control_group,
            "skipped": self.skipped,
            "attempts": self.attempts,
            "timeline": {
                "bucket_s": self.timeline.bucket_s,
                "starts": [t.isoformat() for t in self.timeline.starts],
                "series": self.timeline.series,
            },
        }


def bucket_seconds(first: dt.datetime, last: dt.datetime, *, max_buckets: int = MAX_BUCKETS) -> int:
    """The bucket length (whole minutes, at least one) giving at most ``max_buckets``
    epoch-aligned buckets from ``first`` to ``last`` (at most ``span / size + 2`` of them)."""
    span = max((last - first).total_seconds(), 0.0)
    return max(1, math.ceil(span / ((max_buckets - 2) * 60))) * 60


def attempts_timeline(session: Session, campaign_id: int) -> Timeline:
    """Attempts of a campaign by outcome (its status while it has none) over time."""
    first, last = session.execute(
        select(func.min(ContactAttempt.created_at), func.max(ContactAttempt.created_at)).where(
            ContactAttempt.campaign_id == campaign_id
        )
    ).one()
    if first is None or last is None:
        return Timeline(60, [], {})
    if isinstance(first, str):  # SQLite returns MIN()/MAX() of a timestamp as text
        first = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
        last = dt.datetime.fromisoformat(last).replace(tzinfo=dt.UTC)
    seconds = bucket_seconds(first, last)
    bucket = epoch_bucket(ContactAttempt.created_at, seconds, _dialect(session))
    label = func.coalesce(ContactAttempt.outcome, ContactAttempt.status)
    rows = session.execute(
        select(bucket, label, func.count())
        .where(ContactAttempt.campaign_id == campaign_id)
        .group_by(bucket, label)
    ).all()
    numbers = sorted({int(b) for b, _, _ in rows})
    lo, hi = numbers[0], numbers[-1]
    width = hi - lo + 1
    series: dict[str, list[int]] = {}
    for b, outcome, n in rows:
        series.setdefault(str(outcome), [0] * width)[int(b) - lo] = int(n)
    starts = [dt.datetime.fromtimestamp((lo + i) * seconds, dt.UTC) for i in range(width)]
    ordered = dict(sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0])))
    return Timeline(seconds, starts, ordered)


def campaign_progress(session: Session, campaign: Campaign) -> Progress:
    """The live figures of ``campaign`` (already checked visible)."""
    targets = dict.fromkeys(TARGET_STATES, 0)
    skipped: Counter[str] = Counter()
    control = 0
    for state, reason, is_control, n in session.execute(
        select(
            CampaignTarget.state,
            CampaignTarget.skip_reason,
            CampaignTarget.control_group,
            func.count(),
        )
        .where(CampaignTarget.campaign_id == campaign.id)
        .group_by(CampaignTarget.state, CampaignTarget.skip_reason, CampaignTarget.control_group)
    ):
        if is_control:
            control += int(n)
            continue
        targets[str(state)] += int(n)
        if state == "skipped":
            skipped[reason or "unknown"] += int(n)
    label = func.coalesce(ContactAttempt.outcome, ContactAttempt.status)
    attempts = {
        str(k): int(n)
        for k, n in session.execute(
            select(label, func.count())
            .where(ContactAttempt.campaign_id == campaign.id)
            .group_by(label)
        )
    }
    return Progress(
        campaign_id=campaign.id,
        status=campaign.status,
        targets=targets,
        control_group=control,
        skipped=dict(skipped.most_common()),
        attempts=dict(sorted(attempts.items(), key=lambda kv: (-kv[1], kv[0]))),
        timeline=attempts_timeline(session, campaign.id),
        launched_at=campaign.launched_at,
        finished_at=campaign.finished_at,
    )


# --------------------------------------------------------------------------- audience


def _numbers(raw: Iterable[str]) -> list[str]:
    found: list[str] = []
    for value in raw:
        try:
            found.append(normalize_account_number(value))
        except InvalidAccountNumber:
            continue
    return found


def audience_by_region(session: Session, audience: Audience, *, now: dt.datetime) -> dict[str, int]:
    """The audience's accounts by region (most first; ``""``: accounts without a region),
    counted in SQL over the audience query of :mod:`campaigns.audience`."""
    query = audience_query(audience, today=now.date(), now=now, dialect=_dialect(session)).order_by(
        None
    )
    chunks: list[list[str] | None] = [None]
    if audience.accounts is not None:
        numbers = _numbers(audience.accounts)
        chunks = [
            numbers[i : i + NUMBERS_PER_QUERY] for i in range(0, len(numbers), NUMBERS_PER_QUERY)
        ]
    counts: Counter[str] = Counter()
    for chunk in chunks:
        part = query if chunk is None else query.where(Account.number.in_(chunk))
        rows = part.add_columns(Account.region.label("region")).subquery()
        for region, n in session.execute(
            select(rows.c.region, func.count()).group_by(rows.c.region)
        ):
            counts[str(region or "")] += int(n)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def known_regions(session: Session, scope: Scope) -> list[str]:
    """The regions a campaign of ``scope`` may name: the user's own, or (a user of all
    regions) every region an account has."""
    if scope.regions is not None:
        return sorted(scope.regions)
    return sorted(
        str(r)
        for r in session.scalars(select(Account.region).where(Account.region != "").distinct())
    )
