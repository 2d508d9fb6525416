"""What every campaign job shares: the clock, target and attempt states, pacing, the lock.

A campaign's targets move ``pending`` → ``scheduled`` (a job is queued) → ``in_progress``
(an attempt is open) → ``done`` / ``failed`` / ``skipped`` / ``cancelled``, or back to
``retry`` / ``pending`` with a ``next_attempt_at``. An attempt (``ContactAttempt``) starts as
an ``intent`` committed before the provider is called, becomes ``dialing`` / ``in_progress``
once the provider's SID is known and ends ``completed``, ``failed`` or ``skipped``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update
from sqlalchemy.orm import Session

from campaigns.compliance import Channel
from campaigns.definition import CampaignDefinition
from campaigns.pacing import Limits, Pacer
from contactcenter.redis_lock import RedisLock
from contactcenter.services import Services
from crm_store.models import Campaign, CampaignTarget

INTENT_GRACE = dt.timedelta(seconds=120)
"""How long an intent without SID waits for a callback before it is reconciled."""
CONTACT_LOCK_MS = 60_000
"""Lease of the per-phone lock held from the compliance check to the intent row's commit
(the open intent then counts toward the caps of any other campaign's check)."""
CALL_SLOT_MARGIN_S = 120
"""Seconds a call's concurrency slot outlives the longest possible call."""

ACTIVE_TARGET_STATES = ("pending", "scheduled", "in_progress", "retry")
FINAL_ATTEMPT_STATUSES = frozenset({"completed", "failed", "skipped"})
VOICE_EXHAUSTED = "voice_exhausted"
"""``CampaignTarget.last_outcome`` of a voice_then_sms target whose SMS fallback is due."""


def now_utc(services: Services) -> dt.datetime:
    """The current time, tz-aware UTC, from ``services.clock`` (tests replace it)."""
    return services.clock().astimezone(dt.UTC)


def definition_of(campaign: Campaign) -> CampaignDefinition:
    """The validated definition stored on a campaign."""
    return CampaignDefinition.model_validate(campaign.definition)


def idempotency_key(campaign_id: int, target_id: int, attempt_no: int) -> str:
    """The unique key of an attempt (also its pacing slot and its Interaction's mark)."""
    return f"c{campaign_id}-t{target_id}-a{attempt_no}"


def attempt_channel(campaign: Campaign, target: CampaignTarget) -> Channel:
    """The channel of a target's next attempt (voice_then_sms switches after voice)."""
    if campaign.channel == "sms":
        return Channel.SMS
    if campaign.channel == "voice_then_sms" and target.last_outcome == VOICE_EXHAUSTED:
        return Channel.SMS
    return Channel.VOICE


def schedule_end(definition: CampaignDefinition) -> dt.datetime | None:
    """UTC instant after which no zone of Russia is still on the schedule's last day."""
    end = definition.schedule.end
    if end is None:
        return None
    # 24:00 of the last day in Kaliningrad (UTC+2), the westernmost zone, is 22:00 UTC.
    return dt.datetime.combine(end, dt.time(22, 0), tzinfo=dt.UTC)


def cancel_targets(session: Session, campaign_id: int, now: dt.datetime) -> int:
    """Mark every not-yet-contacted target of a campaign ``cancelled``."""
    result = session.execute(
        update(CampaignTarget)
        .where(
            CampaignTarget.campaign_id == campaign_id,
            CampaignTarget.state.in_(("pending", "scheduled", "retry")),
        )
        .values(state="cancelled", next_attempt_at=None, updated_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- pacing


def pacer(services: Services, channel: Channel) -> Pacer:
    """The Redis pacer (token buckets and concurrency slots) of a channel."""
    return Pacer(services.redis, channel=channel.value)


def limits(definition: CampaignDefinition, channel: Channel) -> Limits:
    """A campaign's pacing limits on a channel (SMS have no concurrency slots)."""
    p = definition.pacing
    if channel is Channel.SMS:
        return Limits(rate=p.sms_per_second, global_rate=max(p.sms_per_second, 1.0))
    return Limits(
        rate=p.calls_per_second,
        global_rate=p.global_calls_per_second,
        max_concurrent=p.max_concurrent,
        global_max_concurrent=p.global_max_concurrent,
    )


def call_lease_s(definition: CampaignDefinition) -> float:
    """How long a call's concurrency slot is leased: ring time, call time and a margin."""
    voice = definition.voice
    if voice is None:
        return 600.0
    return float(voice.ring_timeout_s + voice.time_limit_s + CALL_SLOT_MARGIN_S)


# --------------------------------------------------------------------------- contact lock


@contextmanager
def contact_lock(services: Services, phone: str) -> Iterator[bool]:
    """A per-phone lock across workers and campaigns (yields False if someone holds it)."""
    lock = RedisLock(services.redis, f"cc:contact-lock:{phone}", ttl_ms=CONTACT_LOCK_MS)
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        lock.release()
