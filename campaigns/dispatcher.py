"""The dispatcher: which targets are due, their jobs, lost work recovered, the campaign ended.

A running campaign has one :func:`dispatch_campaign` job per tick (:data:`TICK_S`, longer
while every target waits, up to :data:`MAX_IDLE_TICK_S`). Each run (:func:`dispatch_once`)
reads the campaign's status first, so pause, resume and cancel reach it within a tick:

1. recovers lost work: a target ``scheduled`` for :data:`STALE_SCHEDULED` without an
   attempt goes back to ``pending``; an intent older than
   :data:`~campaigns.attempts.INTENT_GRACE` is reconciled (:mod:`campaigns.reconcile`); an
   attempt whose final status callback never came is checked with the provider
   (:mod:`campaigns.settle`);
2. expires the targets that cannot be contacted before the schedule ends;
3. finishes the due targets of a debt notice who paid (``paid``: one batched ledger read
   per tick, :mod:`campaigns.paid`), moves the other due targets inside their local window
   to ``scheduled`` and enqueues
   ``dial_target`` / ``sms_target`` (:mod:`campaigns.dialing`) with ``unique=True`` and the
   deterministic id ``cc-dial-<target>-<attempt>`` — as many as the pacing allows in about
   two ticks, so duplicated dispatchers enqueue nothing twice;
4. marks the campaign ``completed`` when no target is active any more.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, true

from campaigns.attempts import (
    ACTIVE_TARGET_STATES,
    INTENT_GRACE,
    attempt_channel,
    definition_of,
    now_utc,
    pacer,
    schedule_end,
)
from campaigns.compliance import (
    Channel,
    SkipReason,
    is_within_window,
    next_window_opening,
    zones_for_contact,
)
from campaigns.definition import CampaignDefinition
from campaigns.dialing import dial_target, sms_target
from campaigns.paid import paid_skips, skip_for_good
from campaigns.queueing import dial_job_id, dispatch_job_id, enqueue_unique
from campaigns.reconcile import reconcile_now
from campaigns.settle import schedule_settlements
from contactcenter.services import Services, current_services
from crm_store.models import Campaign, CampaignTarget, ContactAttempt

log = logging.getLogger(__name__)

TICK_S = 1.0
"""Seconds between dispatcher runs while a campaign has due targets."""
MAX_IDLE_TICK_S = 60.0
"""Longest pause between dispatcher runs while every target waits (window, retry)."""
STALE_SCHEDULED = dt.timedelta(minutes=10)
"""A target ``scheduled`` this long without an attempt lost its job: schedule it again."""


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatcher run did."""

    status: str
    enqueued: int = 0
    deferred: int = 0
    recovered: int = 0
    expired: int = 0
    #: Due targets finished as ``paid`` (their debt fell below the threshold).
    paid: int = 0
    active: int = 0
    next_due: dt.datetime | None = None


def dispatch_campaign(campaign_id: int) -> dict[str, Any]:
    """RQ job: one dispatcher run, then schedule the next while the campaign runs."""
    services = current_services()
    result = dispatch_once(services, campaign_id)
    if result.status == "running":
        schedule_dispatch(services, campaign_id, result)
    return {"status": result.status, "enqueued": result.enqueued, "active": result.active}


def schedule_dispatch(
    services: Services, campaign_id: int, result: DispatchResult | None = None
) -> bool:
    """Schedule the next dispatcher run (one per tick, deduplicated by a per-tick job id)."""
    wall = dt.datetime.now(dt.UTC)
    delay = TICK_S
    if result is not None and result.enqueued == 0 and result.next_due is not None:
        wait = (result.next_due - now_utc(services)).total_seconds()
        delay = min(max(wait, TICK_S), MAX_IDLE_TICK_S)
    tick = math.ceil((wall.timestamp() + delay) / TICK_S)
    at = dt.datetime.fromtimestamp(tick * TICK_S, tz=dt.UTC)
    return enqueue_unique(
        services, dispatch_campaign, campaign_id, job_id=dispatch_job_id(campaign_id, tick), at=at
    )


def start_dispatch(services: Services, campaign_id: int) -> bool:
    """Enqueue a dispatcher run now (launch / resume)."""
    tick = math.floor(dt.datetime.now(dt.UTC).timestamp() / TICK_S)
    return enqueue_unique(
        services,
        dispatch_campaign,
        campaign_id,
        job_id=dispatch_job_id(campaign_id, tick, now=True),
    )


def dispatch_once(
    services: Services, campaign_id: int, *, batch: int | None = None
) -> DispatchResult:
    """One dispatcher run: recover lost work, enqueue due targets, finish the campaign.

    Returns without doing anything unless the campaign is ``running``.
    """
    now = now_utc(services)
    db = services.db
    with db.transaction() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            return DispatchResult(status="missing")
        if campaign.status != "running":
            return DispatchResult(status=campaign.status)
        definition = definition_of(campaign)
        channel_name = campaign.channel
    policy = definition.contact_policy()
    recovered = _recover(services, campaign_id, now)
    recovered += schedule_settlements(services, campaign_id, definition, now)
    expired = _expire(services, campaign_id, definition, now)

    if channel_name == "sms":
        capacity = math.ceil(definition.pacing.sms_per_second * TICK_S * 2) + 1
    else:
        free = definition.pacing.max_concurrent - pacer(services, Channel.VOICE).active(campaign_id)
        capacity = min(max(free, 0), math.ceil(definition.pacing.calls_per_second * TICK_S * 2) + 1)
    if batch is not None:
        capacity = batch
    to_enqueue: list[tuple[int, int, Channel]] = []
    deferred = skipped_paid = 0
    if capacity > 0:
        with db.transaction() as s:
            campaign = s.get(Campaign, campaign_id)
            if campaign is None or campaign.status != "running":
                return DispatchResult(status="missing" if campaign is None else campaign.status)
            due = s.scalars(
                select(CampaignTarget)
                .where(
                    CampaignTarget.campaign_id == campaign_id,
                    CampaignTarget.state.in_(("pending", "retry")),
                    CampaignTarget.control_group.is_(False),
                    or_(
                        CampaignTarget.next_attempt_at.is_(None),
                        CampaignTarget.next_attempt_at <= now,
                    ),
                )
                .order_by(CampaignTarget.next_attempt_at, CampaignTarget.id)
                .limit(capacity * 4)
            ).all()
            # One batched ledger read for the tick: debtors who paid are finished, not dialed.
            paid = paid_skips(s, due, definition, now)
            for target in due:
                skip = paid.get(target.id)
                if skip is not None:
                    skip_for_good(s, target, attempt_channel(campaign, target), skip, now)
                    skipped_paid += 1
                    continue
                if len(to_enqueue) >= capacity:
                    continue
                zones = zones_for_contact(target.phone or "", target.timezone)
                if zones and not is_within_window(now, zones, policy):
                    opening = next_window_opening(now, zones, policy)
                    target.next_attempt_at = opening or now + dt.timedelta(days=1)
                    deferred += 1
                    continue
                target.state = "scheduled"
                target.updated_at = now
                to_enqueue.append(
                    (target.id, target.attempts + 1, attempt_channel(campaign, target))
                )
    for target_id, attempt_no, channel in to_enqueue:
        job = dial_target if channel is Channel.VOICE else sms_target
        enqueue_unique(
            services, job, target_id, attempt_no, job_id=dial_job_id(target_id, attempt_no)
        )

    with db.transaction() as s:
        active = int(
            s.scalar(
                select(func.count())
                .select_from(CampaignTarget)
                .where(
                    CampaignTarget.campaign_id == campaign_id,
                    CampaignTarget.state.in_(ACTIVE_TARGET_STATES),
                )
            )
            or 0
        )
        next_due = s.scalar(
            select(func.min(CampaignTarget.next_attempt_at)).where(
                CampaignTarget.campaign_id == campaign_id,
                CampaignTarget.state.in_(("pending", "retry")),
            )
        )
        status = "running"
        if active == 0:
            campaign = s.get(Campaign, campaign_id)
            if campaign is not None and campaign.status == "running":
                campaign.status = "completed"
                campaign.finished_at = now
                status = "completed"
                log.info("campaign %s completed", campaign_id)
    return DispatchResult(
        status=status,
        enqueued=len(to_enqueue),
        deferred=deferred,
        recovered=recovered,
        expired=expired,
        paid=skipped_paid,
        active=active,
        next_due=next_due,
    )


def _recover(services: Services, campaign_id: int, now: dt.datetime) -> int:
    """Reschedule targets whose job was lost; reconcile intents a dead worker left."""
    recovered = 0
    stale_before = now - STALE_SCHEDULED
    with services.db.transaction() as s:
        stale = s.scalars(
            select(CampaignTarget).where(
                CampaignTarget.campaign_id == campaign_id,
                CampaignTarget.state == "scheduled",
                CampaignTarget.updated_at < stale_before,
            )
        ).all()
        for target in stale:
            target.state = "pending"
            target.updated_at = now
            recovered += 1
        intents = s.scalars(
            select(ContactAttempt.id).where(
                ContactAttempt.campaign_id == campaign_id,
                ContactAttempt.status == "intent",
                ContactAttempt.created_at < now - INTENT_GRACE,
            )
        ).all()
    for attempt_id in intents:
        reconcile_now(services, attempt_id)
        recovered += 1
    return recovered


def _expire(
    services: Services, campaign_id: int, definition: CampaignDefinition, now: dt.datetime
) -> int:
    """Targets that cannot be contacted before the schedule ends become skipped/failed."""
    end = schedule_end(definition)
    if end is None:
        return 0
    expired = 0
    with services.db.transaction() as s:
        waiting = s.scalars(
            select(CampaignTarget)
            .where(
                CampaignTarget.campaign_id == campaign_id,
                CampaignTarget.state.in_(("pending", "retry")),
            )
            .where(true() if now >= end else CampaignTarget.next_attempt_at >= end)
        ).all()
        for target in waiting:
            if target.skip_reason is None and target.last_outcome is not None:
                target.state = "failed"
            else:
                target.state = "skipped"
                target.skip_reason = target.skip_reason or SkipReason.OUTSIDE_WINDOW.value
            target.next_attempt_at = None
            target.updated_at = now
            expired += 1
    return expired
