"""Status callbacks of campaign attempts (call, AMD, SMS) and inbound SMS keywords.

The web layer checks every status callback (:func:`telephony.status.parse_status_callback`)
and publishes it to ``services.status_hooks``; :func:`subscribe` (called by
:func:`contactcenter.wiring.build_services`) registers this module's handlers there. Each
returns True only when the callback belongs to a campaign attempt — found by its SID or by
the ``?attempt=<id>`` of the callback URL, whose SID it then adopts (a worker may have died
before storing it) — and was applied.

The handlers are idempotent and order-safe: ``SequenceNumber`` (or the rank of the status,
:mod:`telephony.status`) must grow, and a final attempt is never changed again. A terminal
status becomes the attempt's outcome (:mod:`campaigns.outcomes`), frees the call's pacing
slot and closes the ``Interaction``. An answering machine detected on a call of a
``hangup_retry`` campaign is hung up by the :func:`hangup_call` job; on a ``leave_message``
campaign it is redirected to the neutral message (:mod:`campaigns.voicemail`).

Inbound SMS: :func:`handle_inbound_sms` applies the opt-out / opt-in keywords to the
do-not-contact list; the SMS view answers with :func:`keyword_reply` (the confirmation, or
the help text).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.attempts import FINAL_ATTEMPT_STATUSES, definition_of, now_utc, pacer
from campaigns.compliance import Channel, SkipReason
from campaigns.definition import AmdPolicy, CampaignDefinition
from campaigns.keywords import KeywordAction, parse_sms_keyword
from campaigns.outcomes import CALL_OUTCOMES, SMS_OUTCOMES, after_outcome, finish_interaction
from campaigns.queueing import enqueue_unique, hangup_job_id
from campaigns.voicemail import leave_message, leaves_message
from contactcenter.config import Settings
from contactcenter.logs import bind_log_context
from contactcenter.phones import mask_phone
from contactcenter.services import Services, StatusHooks, current_services
from crm_store.consent import add_do_not_contact, remove_do_not_contact
from crm_store.errors import InvalidInput
from crm_store.models import Campaign, CampaignTarget, ContactAttempt
from telephony.errors import CallNotFound
from telephony.status import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
    StatusCallback,
    StatusKind,
    call_status_rank,
    message_status_rank,
)

log = logging.getLogger(__name__)

OPT_OUT_REPLY = "Вы отписаны от SMS-уведомлений. Чтобы подписаться снова, отправьте СТАРТ."
OPT_IN_REPLY = "Вы снова подписаны на SMS-уведомления. Чтобы отписаться, отправьте СТОП."
HELP_REPLY = "{supplier}: справка по телефону {phone}. Чтобы отписаться, отправьте СТОП."
PROVIDER_OPT_OUT_ERROR = "21610"
"""Twilio's error code of a message to a number that replied STOP to the sender."""


def subscribe(hooks: StatusHooks) -> None:
    """Register the campaign handlers for call, AMD and SMS status callbacks."""
    hooks.subscribe(StatusKind.CALL, handle_call_status)
    hooks.subscribe(StatusKind.AMD, handle_amd_status)
    hooks.subscribe(StatusKind.SMS, handle_sms_status)


def _find_attempt(session: Session, callback: StatusCallback) -> ContactAttempt | None:
    """The attempt of a callback: by SID, else by ``?attempt=`` when its SID is not taken."""
    sid = callback.sid
    if sid:
        found = session.scalars(
            select(ContactAttempt).where(ContactAttempt.provider_sid == sid)
        ).one_or_none()
        if found is not None:
            return found
    attempt_param = callback.params.get("attempt")
    if attempt_param and attempt_param.strip().isdigit():
        found = session.get(ContactAttempt, int(attempt_param))
        if found is not None and (found.provider_sid is None or found.provider_sid == sid):
            return found
    return None


def _claim_attempt(
    session: Session, callback: StatusCallback, answered_by: str
) -> ContactAttempt | None:
    """The callback's attempt, with the callback's SID adopted and ``AnsweredBy`` recorded
    where the attempt has none yet (a worker may have died before storing them)."""
    attempt = _find_attempt(session, callback)
    if attempt is None:
        return None
    if callback.sid and attempt.provider_sid is None:
        attempt.provider_sid = callback.sid
        log.info(
            "attempt %s: adopted SID %s from a callback", attempt.idempotency_key, callback.sid
        )
    if answered_by and attempt.answered_by is None:
        attempt.answered_by = answered_by
    return attempt


def _money(raw: str | None) -> Decimal | None:
    if not raw:
        return None
    try:
        return abs(Decimal(raw)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def handle_call_status(services: Services, callback: StatusCallback) -> bool:
    """Apply a call status callback (or a synchronous AMD result) to its campaign attempt.

    Returns False when the call is not a campaign call. Idempotent and out-of-order safe; a
    final status is never overwritten.
    """
    status, params = callback.status, callback.params
    if params.get("Direction") == "inbound":
        return False  # a call to the hotline: campaigns only place calls
    now = now_utc(services)
    release: tuple[int, str] | None = None
    with services.db.transaction() as s:
        attempt = _claim_attempt(s, callback, (params.get("AnsweredBy") or "").strip())
        if attempt is None:
            return False
        bind_log_context(campaign_id=attempt.campaign_id, attempt_id=attempt.id)
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return True
        seq = callback.sequence
        if status in TERMINAL_CALL_STATUSES:
            outcome = CALL_OUTCOMES[status]
            if outcome == "answered" and (attempt.answered_by or "").startswith("machine"):
                outcome = "machine"
            target = s.get(CampaignTarget, attempt.target_id)
            campaign = s.get(Campaign, attempt.campaign_id)
            definition = definition_of(campaign) if campaign is not None else None
            if (
                outcome == "machine"
                and definition is not None
                and definition.voice is not None
                and definition.voice.amd_policy is AmdPolicy.LEAVE_MESSAGE
            ):
                outcome = "machine_message"
            attempt.status = "failed" if outcome in ("failed", "canceled") else "completed"
            attempt.outcome = outcome
            duration = callback.int_param("CallDuration")
            attempt.duration_s = duration if duration is not None else attempt.duration_s
            attempt.cost = _money(params.get("Price")) or attempt.cost
            attempt.last_sequence = max(attempt.last_sequence, seq or 0)
            attempt.updated_at = now
            if target is not None and definition is not None:
                if campaign is not None and campaign.status == "cancelled":
                    target.state = "cancelled"
                after_outcome(s, target, attempt, outcome, definition, now)
            finish_interaction(s, attempt, status, outcome, now, attempt.duration_s)
            release = (attempt.campaign_id, attempt.idempotency_key)
        else:
            rank = call_status_rank(status)
            current = attempt.last_sequence
            newer = seq > current if seq is not None else rank > current
            if newer:
                attempt.last_sequence = seq if seq is not None else rank
                if status == "in-progress":
                    attempt.status = "in_progress"
                elif attempt.status == "intent":
                    attempt.status = "dialing"
                attempt.updated_at = now
    if release is not None:
        pacer(services, Channel.VOICE).release(*release)
    return True


def handle_amd_status(services: Services, callback: StatusCallback) -> bool:
    """Apply an asynchronous AMD result (``AnsweredBy``); hang up machines if the policy says so."""
    answered_by = callback.status
    hang_up: int | None = None
    message: tuple[str, CampaignDefinition] | None = None
    with services.db.transaction() as s:
        attempt = _claim_attempt(s, callback, answered_by)
        if attempt is None:
            return False
        campaign = s.get(Campaign, attempt.campaign_id)
        if (
            answered_by.startswith("machine")
            and campaign is not None
            and attempt.status not in FINAL_ATTEMPT_STATUSES
        ):
            definition = definition_of(campaign)
            if (
                definition.voice is not None
                and definition.voice.amd_policy is AmdPolicy.HANGUP_RETRY
            ):
                hang_up = attempt.id
            elif leaves_message(definition, answered_by) and attempt.provider_sid:
                message = (attempt.provider_sid, definition)
    if hang_up is not None:
        enqueue_unique(services, hangup_call, hang_up, job_id=hangup_job_id(hang_up))
    if message is not None:
        leave_message(services, *message)
    return True


def hangup_call(attempt_id: int) -> str:
    """RQ job: end a call answered by a machine (answering-machine policy hangup_retry)."""
    services = current_services()
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None or attempt.provider_sid is None:
            return "missing"
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return "ended"
        sid = attempt.provider_sid
    try:
        services.telephony.update_call(sid, status="completed")
    except CallNotFound:
        return "ended"
    return "hung_up"


def handle_sms_status(services: Services, callback: StatusCallback) -> bool:
    """Apply an SMS status callback to its campaign attempt (idempotent, order-safe)."""
    sid, status, params = callback.sid, callback.status, callback.params
    now = now_utc(services)
    with services.db.transaction() as s:
        attempt = _find_attempt(s, callback)
        if attempt is None:
            return False
        if sid and attempt.provider_sid is None:
            attempt.provider_sid = sid
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return True
        outcome = SMS_OUTCOMES.get(status)
        if outcome is not None:
            attempt.status = "completed" if outcome == "delivered" else "failed"
            attempt.outcome = outcome
            attempt.cost = _money(params.get("Price")) or attempt.cost
            attempt.updated_at = now
            target = s.get(CampaignTarget, attempt.target_id)
            campaign = s.get(Campaign, attempt.campaign_id)
            error_code = (params.get("ErrorCode") or "").strip()
            if error_code == PROVIDER_OPT_OUT_ERROR and target is not None:
                if target.phone:
                    add_do_not_contact(s, target.phone, channel="sms", reason="provider_opt_out")
                target.state = "skipped"
                target.skip_reason = SkipReason.OPTED_OUT.value
            if target is not None and campaign is not None:
                after_outcome(s, target, attempt, outcome, definition_of(campaign), now)
            finish_interaction(s, attempt, status, outcome, now, None)
        elif status not in TERMINAL_MESSAGE_STATUSES:
            rank = message_status_rank(status)
            if rank > attempt.last_sequence:
                attempt.last_sequence = rank
                attempt.status = "in_progress"
                attempt.updated_at = now
    return True


def handle_inbound_sms(services: Services, params: Mapping[str, str]) -> KeywordAction | None:
    """Apply opt-out / opt-in keywords of an inbound SMS to the do-not-contact list.

    Returns the action taken (the SMS view answers with a confirmation) or None.
    """
    action = parse_sms_keyword(params.get("Body"), params.get("OptOutType"))
    sender = (params.get("From") or "").strip()
    if action not in (KeywordAction.OPT_OUT, KeywordAction.OPT_IN) or not sender:
        return action
    try:
        with services.db.transaction() as s:
            if action is KeywordAction.OPT_OUT:
                add_do_not_contact(s, sender, channel="sms", reason="sms_stop")
            else:
                remove_do_not_contact(s, sender, "sms")
    except InvalidInput:
        log.warning("inbound SMS keyword from an invalid number %s", mask_phone(sender))
        return None
    log.info("inbound SMS %s from %s", action, mask_phone(sender))
    return action


def keyword_reply(settings: Settings, action: KeywordAction | None) -> str | None:
    """The SMS answering a keyword: the opt-out / opt-in confirmation or the help text."""
    if action is KeywordAction.OPT_OUT:
        return OPT_OUT_REPLY
    if action is KeywordAction.OPT_IN:
        return OPT_IN_REPLY
    if action is KeywordAction.HELP:
        return HELP_REPLY.format(supplier=settings.supplier_name, phone=settings.operator_phone)
    return None
