"""Attempts whose final status callback never came: the provider is asked.

Twilio retries a status callback our app did not accept, but a callback can still be lost
(the app down longer than Twilio retries, a proxy dropping it) or come hours late, and an
attempt left ``dialing`` or ``in_progress`` keeps its target active, so the campaign would
never finish. Each dispatcher run (:func:`campaigns.dispatcher.dispatch_once`) therefore
enqueues a :func:`settle_attempt` job for every attempt silent for longer than it can live:

- a call: its pacing lease (ring timeout + call time limit + margin,
  :func:`~campaigns.attempts.call_lease_s`) plus :data:`SETTLE_GRACE`;
- an SMS: :data:`SMS_SETTLE_AFTER` without a delivery receipt.

The job fetches the call or message (:meth:`~telephony.base.TelephonyProvider.fetch_call`,
``fetch_message``) and, when the provider reports a terminal status, applies it through the
same handler as a callback (:mod:`campaigns.status`), so the outcome, the retry rule, the
pacing slot and the contact log are exactly what the callback would have made, and the real
callback arriving later changes nothing (a final attempt is never changed again). A call
still live is checked again after another :data:`SETTLE_GRACE`. An SMS still ``sent`` after
:data:`SMS_RECEIPT_WAIT` (some networks never return a receipt) is closed as
``sent_unconfirmed``: its target is done, never texted again for the same notice.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select

from campaigns.attempts import FINAL_ATTEMPT_STATUSES, call_lease_s, definition_of, now_utc
from campaigns.definition import CampaignDefinition
from campaigns.outcomes import UNCONFIRMED_SMS, after_outcome, finish_interaction
from campaigns.queueing import enqueue_unique, settle_job_id
from campaigns.status import handle_call_status, handle_sms_status
from contactcenter.logs import bind_log_context
from contactcenter.services import Services, current_services
from crm_store.models import Campaign, CampaignTarget, ContactAttempt
from telephony.errors import CallNotFound, TelephonyError
from telephony.status import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
    StatusKind,
    parse_status_callback,
)

log = logging.getLogger(__name__)

SETTLE_GRACE = dt.timedelta(minutes=10)
"""How long past its longest possible life a call may stay silent before the provider is
asked (and between two checks of a call the provider still reports live)."""
SMS_SETTLE_AFTER = dt.timedelta(hours=1)
"""How long an SMS may wait for its delivery receipt before the provider is asked."""
SMS_RECEIPT_WAIT = dt.timedelta(hours=24)
"""After this long a message the provider still reports ``sent`` is ``sent_unconfirmed``."""
SETTLE_BATCH = 200
"""At most this many settle jobs per dispatcher run (the rest wait for the next one)."""
WAITING_STATUSES = ("dialing", "in_progress")
"""Attempt statuses that wait for a final status callback."""


def schedule_settlements(
    services: Services, campaign_id: int, definition: CampaignDefinition, now: dt.datetime
) -> int:
    """Enqueue :func:`settle_attempt` for the campaign's silent attempts; returns how many."""
    call_before = now - dt.timedelta(seconds=call_lease_s(definition)) - SETTLE_GRACE
    sms_before = now - SMS_SETTLE_AFTER
    with services.db.transaction() as s:
        silent = s.scalars(
            select(ContactAttempt.id)
            .where(
                ContactAttempt.campaign_id == campaign_id,
                ContactAttempt.status.in_(WAITING_STATUSES),
                ContactAttempt.provider_sid.is_not(None),
                or_(
                    (ContactAttempt.channel == "voice") & (ContactAttempt.updated_at < call_before),
                    (ContactAttempt.channel == "sms") & (ContactAttempt.updated_at < sms_before),
                ),
            )
            .order_by(ContactAttempt.updated_at)
            .limit(SETTLE_BATCH)
        ).all()
    return sum(
        enqueue_unique(services, settle_attempt, attempt_id, job_id=settle_job_id(attempt_id))
        for attempt_id in silent
    )


def settle_attempt(attempt_id: int) -> str:
    """RQ job: settle an attempt whose final status callback did not come (see module)."""
    return settle_now(current_services(), attempt_id)


def settle_now(services: Services, attempt_id: int) -> str:
    """Ask the provider about one silent attempt and apply what it says.

    Returns ``"settled:<status>"`` when a terminal status was applied, ``"unconfirmed"`` for
    an SMS closed without a receipt, ``"waiting:<status>"`` when the provider still reports it
    live, ``"final"`` when a callback settled it meanwhile, or ``"missing"``. A SID the
    provider does not know is settled as ``failed`` (``"settled:failed"``): nothing was placed.
    """
    bind_log_context(fresh=True, attempt_id=attempt_id)
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None or attempt.provider_sid is None:
            return "missing"
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return "final"
        sid, channel, created_at = attempt.provider_sid, attempt.channel, attempt.created_at
        bind_log_context(campaign_id=attempt.campaign_id)
    try:
        if channel == "voice":
            call = services.telephony.fetch_call(sid)
            status, duration = call.status, call.duration_s
        else:
            status, duration = services.telephony.fetch_message(sid).status, None
    except CallNotFound:
        log.warning("attempt %s: the provider does not know %s; failed", attempt_id, sid)
        status, duration = "failed", None
    except TelephonyError as exc:
        log.warning("attempt %s: provider unreachable (%s); asked again later", attempt_id, exc)
        raise
    voice = channel == "voice"
    if status in (TERMINAL_CALL_STATUSES if voice else TERMINAL_MESSAGE_STATUSES):
        if voice:
            form = {"CallSid": sid, "CallStatus": status}
            if duration is not None:
                form["CallDuration"] = str(duration)
            handle_call_status(services, parse_status_callback(StatusKind.CALL, form))
        else:
            form = {"MessageSid": sid, "MessageStatus": status}
            handle_sms_status(services, parse_status_callback(StatusKind.SMS, form))
        log.info("attempt %s: final status %s fetched from the provider", attempt_id, status)
        return f"settled:{status}"
    now = now_utc(services)
    if not voice and now - created_at >= SMS_RECEIPT_WAIT:
        return _close_unconfirmed(services, attempt_id, now)
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is not None and attempt.status not in FINAL_ATTEMPT_STATUSES:
            attempt.updated_at = now  # the next check after another grace period
    return f"waiting:{status}"


def _close_unconfirmed(services: Services, attempt_id: int, now: dt.datetime) -> str:
    """An SMS sent long ago whose receipt never came: done, outcome ``sent_unconfirmed``."""
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None or attempt.status in FINAL_ATTEMPT_STATUSES:
            return "final"
        attempt.status = "completed"
        attempt.outcome = UNCONFIRMED_SMS
        attempt.updated_at = now
        target = s.get(CampaignTarget, attempt.target_id)
        campaign = s.get(Campaign, attempt.campaign_id)
        if target is not None and campaign is not None:
            after_outcome(s, target, attempt, UNCONFIRMED_SMS, definition_of(campaign), now)
        finish_interaction(s, attempt, "sent", UNCONFIRMED_SMS, now, None)
    log.info(
        "attempt %s: no delivery receipt in %s; closed as unconfirmed", attempt_id, SMS_RECEIPT_WAIT
    )
    return "unconfirmed"
