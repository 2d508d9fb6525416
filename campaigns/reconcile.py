"""Reconciliation: settling an ``intent`` whose provider call may or may not have happened.

An intent without SID means a worker died (or the provider timed out) around the provider
call. The callbacks carry ``?attempt=<id>`` in their URLs and adopt the SID on arrival
(:mod:`campaigns.status`); after :data:`~campaigns.attempts.INTENT_GRACE` without a
callback, :func:`reconcile_now` looks for the call in the Interaction log (the status
webhook logs every call by its SID) and adopts it, else concludes that the call was never
placed (Twilio posts ``initiated`` within seconds of accepting a call), marks the attempt
``failed``/``not_placed`` and returns the target to the queue for a new attempt.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from campaigns.attempts import INTENT_GRACE, now_utc, pacer
from campaigns.compliance import Channel
from campaigns.queueing import enqueue_unique, reconcile_job_id
from campaigns.status import handle_call_status, handle_sms_status
from contactcenter.services import Services, current_services
from crm_store.models import CampaignTarget, ContactAttempt, Interaction
from telephony.status import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
    StatusCallback,
    StatusKind,
)

log = logging.getLogger(__name__)


def reconcile_attempt(attempt_id: int) -> str:
    """RQ job: settle an ``intent`` attempt whose provider call may or may not have happened."""
    return reconcile_now(current_services(), attempt_id)


def reconcile_now(services: Services, attempt_id: int) -> str:
    """Reconcile one attempt (see the module docstring); returns what was concluded."""
    now = now_utc(services)
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None:
            return "missing"
        if attempt.status != "intent":
            return "settled"
        if attempt.provider_sid is not None:
            attempt.status = "dialing" if attempt.channel == "voice" else "in_progress"
            return "adopted"
        if now - attempt.created_at < INTENT_GRACE:
            wait = INTENT_GRACE - (now - attempt.created_at)
            at = dt.datetime.now(dt.UTC) + wait
            pending = True
        else:
            pending = False
    if pending:
        enqueue_unique(
            services, reconcile_attempt, attempt_id, job_id=reconcile_job_id(attempt_id), at=at
        )
        return "waiting"
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None or attempt.status != "intent":
            return "settled"
        target = s.get(CampaignTarget, attempt.target_id)
        if target is None:
            return "missing"
        evidence = _logged_call(s, attempt, target)
        attempt.updated_at = now
        channel = Channel(attempt.channel)
        key, campaign_id = attempt.idempotency_key, attempt.campaign_id
        sid: str | None = None
        status = ""
        if evidence is None:
            attempt.status = "failed"
            attempt.outcome = "not_placed"
            if target.state == "in_progress":
                target.state = "retry"
                target.next_attempt_at = now
                target.updated_at = now
            log.warning(
                "attempt %s: no callback and no call logged %ss after the intent;"
                " the call was not placed, the target will be retried",
                key,
                INTENT_GRACE.total_seconds(),
            )
        else:
            sid, status = evidence.provider_sid, evidence.status
            attempt.provider_sid = sid
            attempt.status = "dialing" if channel is Channel.VOICE else "in_progress"
            if evidence.attempt_id is None:
                evidence.attempt_id = attempt.id
                evidence.campaign_id = attempt.campaign_id
            log.warning("attempt %s: adopted %s found in the interaction log", key, sid)
    if sid is None:
        pacer(services, channel).release(campaign_id, key)
        return "not_placed"
    if status in TERMINAL_CALL_STATUSES and channel is Channel.VOICE:
        form = {"CallSid": sid, "CallStatus": status}
        handle_call_status(services, StatusCallback(StatusKind.CALL, sid, status, form))
    elif status in TERMINAL_MESSAGE_STATUSES and channel is Channel.SMS:
        form = {"MessageSid": sid, "MessageStatus": status}
        handle_sms_status(services, StatusCallback(StatusKind.SMS, sid, status, form))
    return "adopted"


def _logged_call(
    session: Session, attempt: ContactAttempt, target: CampaignTarget
) -> Interaction | None:
    """The call/SMS of an intent in the Interaction log (the status webhook logs every SID)."""
    claimed = select(ContactAttempt.provider_sid).where(ContactAttempt.provider_sid.is_not(None))
    return session.scalars(
        select(Interaction)
        .where(
            Interaction.provider_sid.is_not(None),
            Interaction.channel == attempt.channel,
            Interaction.direction == "outbound",
            or_(
                Interaction.attempt_id == attempt.id,
                (Interaction.phone == target.phone)
                & (Interaction.started_at >= attempt.created_at - dt.timedelta(seconds=5))
                & Interaction.provider_sid.not_in(claimed),
            ),
        )
        .order_by(Interaction.started_at)
        .limit(1)
    ).first()
