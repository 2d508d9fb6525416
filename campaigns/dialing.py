"""The dial and SMS jobs: one contact of one target, exactly once.

:func:`dial_target` and :func:`sms_target` run one sequence, :func:`contact_target`, and
differ only in the provider step (:func:`place_call` or :func:`send_sms`):

1. :func:`prepare` re-checks every contact rule (campaign status, a debt notice's debt —
   skipped as ``paid`` once it fell below the threshold, :mod:`campaigns.paid` — window,
   caps, opt-out, consent) under a per-phone Redis lock, takes a pacing token and slot,
   then commits a ``ContactAttempt`` *intent* row — unique on ``(target_id, attempt_no)``
   and on its ``idempotency_key`` — **before** the provider is called. A second worker
   running the same attempt fails on the unique constraint and does nothing; a job that
   finds the attempt row already there never dials but reconciles it
   (:mod:`campaigns.reconcile`).
2. The provider step places the call or sends the message; its callback URLs carry
   ``?attempt=<id>`` so a callback can adopt the SID if the worker dies right after.
3. :func:`placed` stores the provider SID and opens the ``Interaction`` in one short
   transaction; :func:`provider_refused` records a refusal (an ambiguous one — timeout,
   5xx — keeps the intent for reconciling).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.attempts import (
    ACTIVE_TARGET_STATES,
    INTENT_GRACE,
    call_lease_s,
    contact_lock,
    definition_of,
    idempotency_key,
    limits,
    now_utc,
    pacer,
    schedule_end,
)
from campaigns.compliance import Channel, Skip, SkipReason, check_contact
from campaigns.definition import AmdPolicy, CampaignDefinition
from campaigns.facts import contact_facts
from campaigns.outcomes import after_outcome
from campaigns.paid import paid_skip
from campaigns.queueing import enqueue_unique, reconcile_job_id
from campaigns.reconcile import reconcile_attempt, reconcile_now
from campaigns.sms import derived_variables, render
from contactcenter.logs import bind_log_context
from contactcenter.phones import mask_phone
from contactcenter.services import Services, current_services
from crm_store.consent import add_do_not_contact
from crm_store.db import insert_or_existing
from crm_store.interactions import start_interaction
from crm_store.ledger import balance
from crm_store.models import Account, Campaign, CampaignTarget, ContactAttempt
from telephony.base import MachineDetection
from telephony.errors import (
    AuthenticationFailed,
    InvalidNumber,
    OptedOut,
    ProviderUnavailable,
    RateLimited,
    TelephonyError,
)
from telephony.sms import count_segments

log = logging.getLogger(__name__)

VOICE_URL_PATH = "/voice/outbound"
CALL_STATUS_PATH = "/voice/status"
AMD_STATUS_PATH = "/voice/amd"
SMS_STATUS_PATH = "/sms/status"

ACCEPTED = {Channel.VOICE: "placed", Channel.SMS: "sent"}
"""What a job returns when the provider accepted its call or message."""


@dataclass(frozen=True)
class PreparedAttempt:
    """An attempt whose intent row is committed: everything the provider step needs."""

    attempt_id: int
    key: str
    phone: str
    account_id: int
    consumer_id: int | None
    campaign_id: int
    definition: CampaignDefinition


@dataclass(frozen=True)
class Sent:
    """What the provider accepted: its SID and, for an SMS, the billed segments."""

    sid: str
    segments: int | None = None


#: The channel-specific step of :func:`contact_target`: call the provider (it may raise
#: :class:`~telephony.errors.TelephonyError`) and say what it accepted.
SendStep = Callable[[Services, PreparedAttempt], Sent]


# --------------------------------------------------------------------------- jobs


def dial_target(target_id: int, attempt_no: int) -> str:
    """RQ job: place one call to a target (see the module docstring for the guarantees)."""
    return contact_target(current_services(), target_id, attempt_no, Channel.VOICE, place_call)


def sms_target(target_id: int, attempt_no: int) -> str:
    """RQ job: send one SMS to a target (same guarantees as :func:`dial_target`)."""
    return contact_target(current_services(), target_id, attempt_no, Channel.SMS, send_sms)


def contact_target(
    services: Services, target_id: int, attempt_no: int, channel: Channel, send: SendStep
) -> str:
    """Prepare → pacing → intent → provider → SID stored; returns what happened.

    ``"placed"`` (a call) or ``"sent"`` (an SMS) when the provider accepted; otherwise why
    not: ``"missing"``, ``"cancelled"``, the campaign's status, ``"not_scheduled"``,
    ``"reconciled"``, ``"locked"``, ``"skip:<reason>"``, ``"paced:<reason>"``,
    ``"duplicate"`` or ``"refused:<error>"``. An authentication failure is raised (after
    it is recorded) so the job fails visibly.
    """
    bind_log_context(fresh=True, target_id=target_id)
    prepared = prepare(services, target_id, attempt_no, channel)
    if isinstance(prepared, str):
        return prepared
    bind_log_context(campaign_id=prepared.campaign_id, attempt_id=prepared.attempt_id)
    try:
        sent = send(services, prepared)
    except TelephonyError as exc:
        provider_refused(services, prepared, channel, exc)
        if isinstance(exc, AuthenticationFailed):
            raise
        return f"refused:{type(exc).__name__}"
    placed(services, prepared, channel, sent)
    log.info(
        "campaign %s attempt %s: %s %s to %s",
        prepared.campaign_id,
        prepared.key,
        "call" if channel is Channel.VOICE else "SMS",
        sent.sid,
        mask_phone(prepared.phone),
    )
    return ACCEPTED[channel]


# --------------------------------------------------------------------------- provider steps


def callback_url(services: Services, path: str, **query: Any) -> str:
    """An absolute webhook URL under ``PUBLIC_BASE_URL`` with ``query``."""
    base = services.settings.public_base_url.rstrip("/")
    return f"{base}{path}?{urlencode(query)}"


def place_call(services: Services, prepared: PreparedAttempt) -> Sent:
    """The voice step: place the call (flow, caller ID, answering-machine detection)."""
    voice = prepared.definition.voice
    if voice is None:  # pragma: no cover - the schema gives voice channels a voice section
        raise RuntimeError("voice campaign without voice settings")
    settings = services.settings
    from_number = voice.from_number or settings.twilio_from_number or settings.operator_phone
    url = callback_url(services, VOICE_URL_PATH, attempt=prepared.attempt_id, flow=voice.flow)
    status_url = callback_url(services, CALL_STATUS_PATH, attempt=prepared.attempt_id)
    amd_url = callback_url(services, AMD_STATUS_PATH, attempt=prepared.attempt_id)
    machine: MachineDetection | None = None
    leave_message = voice.amd_policy is AmdPolicy.LEAVE_MESSAGE
    if voice.machine_detection:
        machine = "DetectMessageEnd" if leave_message else "Enable"
    # A message for a machine waits for synchronous AMD: Twilio fetches the flow only once
    # it knows who answered, so nothing personal plays into a voicemail greeting (with
    # asynchronous AMD the flow would already be naming the holder when the beep comes).
    async_amd = not (machine and leave_message)
    info = services.telephony.place_call(
        prepared.phone,
        from_number,
        url,
        status_callback=status_url,
        machine_detection=machine,
        async_amd=async_amd,
        amd_callback=amd_url if machine and async_amd else None,
        timeout_s=voice.ring_timeout_s,
        time_limit_s=voice.time_limit_s,
    )
    return Sent(info.sid)


def send_sms(services: Services, prepared: PreparedAttempt) -> Sent:
    """The SMS step: render the template with the account's variables and send it."""
    sms = prepared.definition.sms
    if sms is None:  # pragma: no cover - the schema requires it for SMS channels
        raise RuntimeError("SMS campaign without an sms section")
    with services.db.transaction() as s:
        variables = sms_variables(s, prepared.account_id, services, now_utc(services).date())
    body = render(sms.template, variables)
    sender = sms.from_ or services.settings.twilio_from_number or services.settings.operator_phone
    status_url = callback_url(services, SMS_STATUS_PATH, attempt=prepared.attempt_id)
    info = services.telephony.send_sms(prepared.phone, sender, body, status_callback=status_url)
    return Sent(info.sid, segments=info.segments or count_segments(body)[2])


def sms_variables(
    session: Session, account_id: int, services: Services, today: dt.date
) -> dict[str, Any]:
    """Template variables of an account: supplier, account, amount, due date, name, phone."""
    account = session.get(Account, account_id)
    if account is None:
        raise LookupError(f"no account {account_id}")
    b = balance(session, account_id, today)
    due = b.earliest_unpaid_due or today
    return {
        "supplier": services.settings.supplier_name,
        "account": account.number,
        "amount": b.debt,
        "due_date": due,
        "days_overdue": b.days_overdue,
        "name": account.consumer.full_name,
        "phone": services.settings.operator_phone,
        **derived_variables(services.settings, account.number, b.debt, due, b.days_overdue),
    }


# --------------------------------------------------------------------------- prepare


def prepare(
    services: Services, target_id: int, attempt_no: int, channel: Channel
) -> PreparedAttempt | str:
    """Checks, pacing and the intent row. Returns the prepared attempt or why not."""
    now = now_utc(services)
    db = services.db
    with db.transaction() as s:
        target = s.get(CampaignTarget, target_id)
        if target is None:
            return "missing"
        campaign = s.get(Campaign, target.campaign_id)
        if campaign is None:
            return "missing"
        if campaign.status == "cancelled":
            if target.state in ACTIVE_TARGET_STATES:
                target.state = "cancelled"
            return "cancelled"
        existing_id = _attempt_id(s, target_id, attempt_no)
        if existing_id is None and campaign.status != "running":
            if target.state == "scheduled":
                target.state = "pending"
            return campaign.status
        if existing_id is None and (target.state != "scheduled" or target.attempts >= attempt_no):
            return "not_scheduled"
        phone = target.phone or ""
    if existing_id is not None:
        reconcile_now(services, existing_id)
        return "reconciled"

    with contact_lock(services, phone or f"target-{target_id}") as locked:
        if not locked:
            with db.transaction() as s:
                target = s.get(CampaignTarget, target_id)
                if target is not None and target.state == "scheduled":
                    target.state = "pending" if target.attempts == 0 else "retry"
                    target.next_attempt_at = now + dt.timedelta(seconds=2)
            return "locked"
        with db.transaction() as s:
            target = s.get(CampaignTarget, target_id)
            campaign = s.get(Campaign, target.campaign_id) if target is not None else None
            if target is None or campaign is None:
                return "missing"
            definition = definition_of(campaign)
            # A debt notice to someone who paid since the dispatcher's tick: never made.
            decision = paid_skip(s, target, definition, now) or check_contact(
                now=now,
                channel=channel,
                purpose=definition.purpose,
                facts=contact_facts(s, target, channel, now),
                policy=definition.contact_policy(),
            )
            if isinstance(decision, Skip):
                if decision.retry_at is None:
                    _record_skip(s, target, attempt_no, channel, decision, now)
                _not_final(target, decision, now, schedule_end(definition))
                log.info(
                    "campaign %s target %s skipped: %s (%s)",
                    target.campaign_id,
                    target_id,
                    decision.reason,
                    decision.detail,
                )
                return f"skip:{decision.reason}"
            key = idempotency_key(target.campaign_id, target_id, attempt_no)
            admission = pacer(services, channel).admit(
                target.campaign_id,
                key,
                limits(definition, channel),
                lease_s=call_lease_s(definition) if channel is Channel.VOICE else 60.0,
            )
            if not admission.admitted:
                target.state = "pending" if target.attempts == 0 else "retry"
                target.next_attempt_at = now + dt.timedelta(seconds=admission.wait_s)
                return f"paced:{admission.reason}"
            account = s.get(Account, target.account_id)
            intent = ContactAttempt(
                campaign_id=target.campaign_id,
                target_id=target_id,
                attempt_no=attempt_no,
                channel=channel.value,
                idempotency_key=key,
                status="intent",
                created_at=now,
                updated_at=now,
            )
            attempt, inserted = insert_or_existing(
                s, intent, lambda: _existing_attempt(s, target_id, attempt_no, key)
            )
            if not inserted:
                # Another worker wrote this attempt first: it owns the contact.
                pacer(services, channel).release(target.campaign_id, key)
                return "duplicate"
            target.state = "in_progress"
            target.attempts = attempt_no
            target.skip_reason = None
            target.next_attempt_at = None
            target.updated_at = now
            return PreparedAttempt(
                attempt_id=attempt.id,
                key=key,
                phone=decision.phone,
                account_id=target.account_id,
                consumer_id=account.consumer_id if account is not None else None,
                campaign_id=target.campaign_id,
                definition=definition,
            )


def _attempt_id(session: Session, target_id: int, attempt_no: int) -> int | None:
    """The id of a target's attempt number ``attempt_no``, if it exists."""
    return session.scalars(
        select(ContactAttempt.id).where(
            ContactAttempt.target_id == target_id, ContactAttempt.attempt_no == attempt_no
        )
    ).one_or_none()


def _existing_attempt(
    session: Session, target_id: int, attempt_no: int, key: str
) -> ContactAttempt | None:
    """The attempt another worker wrote (same target and number, or same key)."""
    return session.scalars(
        select(ContactAttempt).where(
            ((ContactAttempt.target_id == target_id) & (ContactAttempt.attempt_no == attempt_no))
            | (ContactAttempt.idempotency_key == key)
        )
    ).first()


def _not_final(
    target: CampaignTarget, decision: Skip, now: dt.datetime, end: dt.datetime | None
) -> None:
    """Apply a compliance skip to a target: wait for ``retry_at`` or skip for good."""
    target.skip_reason = decision.reason.value
    target.updated_at = now
    if decision.retry_at is not None and (end is None or decision.retry_at < end):
        target.state = "retry" if target.attempts else "pending"
        target.next_attempt_at = decision.retry_at
    else:
        target.state = "skipped"
        target.next_attempt_at = None


def _record_skip(
    session: Session,
    target: CampaignTarget,
    attempt_no: int,
    channel: Channel,
    decision: Skip,
    now: dt.datetime,
) -> None:
    """A final skip is an attempt row too (``skipped`` with its reason) for the report."""
    attempt = ContactAttempt(
        campaign_id=target.campaign_id,
        target_id=target.id,
        attempt_no=attempt_no,
        channel=channel.value,
        idempotency_key=idempotency_key(target.campaign_id, target.id, attempt_no),
        status="skipped",
        outcome=decision.reason.value,
        created_at=now,
        updated_at=now,
    )
    session.add(attempt)
    target.attempts = attempt_no


# --------------------------------------------------------------------------- after the provider


def placed(services: Services, prepared: PreparedAttempt, channel: Channel, sent: Sent) -> None:
    """The provider accepted: store its SID and open the Interaction (one transaction)."""
    now = now_utc(services)
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, prepared.attempt_id)
        if attempt is None:  # pragma: no cover - the row was committed by prepare
            raise RuntimeError(f"attempt {prepared.attempt_id} vanished")
        if attempt.provider_sid is None:
            attempt.provider_sid = sent.sid
        if attempt.status == "intent":
            attempt.status = "dialing" if channel is Channel.VOICE else "in_progress"
        if sent.segments is not None:
            attempt.sms_segments = sent.segments
        attempt.updated_at = now
        interaction = start_interaction(
            s,
            channel=channel.value,
            direction="outbound",
            provider_sid=sent.sid,
            phone=prepared.phone,
            account_id=prepared.account_id,
            consumer_id=prepared.consumer_id,
            campaign_id=prepared.campaign_id,
            attempt_id=prepared.attempt_id,
            started_at=now,
            status="queued",
            data={"idempotency_key": prepared.key},
        )
        interaction.data = {**(interaction.data or {}), "idempotency_key": prepared.key}


def provider_refused(
    services: Services, prepared: PreparedAttempt, channel: Channel, exc: TelephonyError
) -> None:
    """Record a refusal. An ambiguous one (timeout, 5xx) keeps the intent for reconciling."""
    now = now_utc(services)
    if isinstance(exc, ProviderUnavailable):
        log.warning(
            "campaign %s attempt %s: provider unavailable (%s); reconciling after %ss",
            prepared.campaign_id,
            prepared.key,
            exc,
            INTENT_GRACE.total_seconds(),
        )
        enqueue_unique(
            services,
            reconcile_attempt,
            prepared.attempt_id,
            job_id=reconcile_job_id(prepared.attempt_id),
            at=dt.datetime.now(dt.UTC) + INTENT_GRACE,
        )
        return
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, prepared.attempt_id)
        target = s.get(CampaignTarget, attempt.target_id) if attempt is not None else None
        if attempt is None or target is None:
            return
        attempt.status = "failed"
        attempt.updated_at = now
        if isinstance(exc, RateLimited):
            attempt.outcome = "not_placed"
            target.state = "retry"
            target.next_attempt_at = now + dt.timedelta(seconds=30)
        elif isinstance(exc, InvalidNumber):
            attempt.outcome = SkipReason.INVALID_NUMBER.value
            target.state = "skipped"
            target.skip_reason = SkipReason.INVALID_NUMBER.value
        elif isinstance(exc, OptedOut):
            attempt.outcome = SkipReason.OPTED_OUT.value
            target.state = "skipped"
            target.skip_reason = SkipReason.OPTED_OUT.value
            add_do_not_contact(
                s,
                prepared.phone,
                channel=channel.value,
                reason="provider_opt_out",
                campaign_id=prepared.campaign_id,
            )
        else:
            attempt.outcome = "failed"
            after_outcome(s, target, attempt, "failed", prepared.definition, now)
        target.updated_at = now
    pacer(services, channel).release(prepared.campaign_id, prepared.key)
    log.warning("campaign %s attempt %s refused: %s", prepared.campaign_id, prepared.key, exc)
