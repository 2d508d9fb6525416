"""Campaign execution on RQ: the dispatcher, the dial and SMS jobs, reconciliation.

Every job takes IDs, re-reads its state and checks the campaign's status first, so pause,
resume and cancel reach jobs that are already queued.

Exactly-once contact
    1. The dispatcher moves a due target to ``scheduled`` and enqueues
       ``dial_target(target_id, attempt_no)`` with ``unique=True`` and the deterministic id
       ``cc-dial-<target>-<attempt>`` (duplicated dispatchers enqueue nothing twice).
    2. The job re-checks every contact rule (window, caps, opt-out, consent, campaign status)
       under a per-phone Redis lock, takes a pacing token and slot, then commits a
       ``ContactAttempt`` *intent* row — unique on ``(target_id, attempt_no)`` and on its
       ``idempotency_key`` — **before** calling the provider. A second worker running the
       same attempt fails on the unique constraint and does nothing.
    3. After the provider accepts, one short transaction stores the provider SID (status
       ``dialing``) and opens the ``Interaction``.
    4. A job that finds an attempt row already there never dials: it reconciles. An
       ``intent`` without SID means a worker died (or the provider timed out) around the
       provider call. The callbacks carry ``?attempt=<id>`` in their URLs and adopt the SID
       on arrival; after ``INTENT_GRACE`` without a callback, :func:`reconcile_attempt`
       looks for the call in the Interaction log (the status webhook logs every call by its
       SID) and adopts it, else concludes that the call was never placed (Twilio posts
       ``initiated`` within seconds of accepting a call), marks the attempt
       ``failed``/``not_placed`` and returns the target to the queue for a new attempt.
       A worker killed with SIGKILL thus loses no target and duplicates no call.

Status callbacks (:func:`handle_call_status`, :func:`handle_amd_status`,
:func:`handle_sms_status`) are idempotent and order-safe: ``SequenceNumber`` (or the rank of
the status) must grow, and a terminal status is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import func, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from campaigns.compliance import (
    Channel,
    ConsentState,
    ContactFacts,
    Skip,
    SkipReason,
    check_contact,
    is_within_window,
    next_window_opening,
    zones_for_contact,
)
from campaigns.definition import AmdPolicy, CampaignDefinition, RetryOutcome
from campaigns.keywords import KeywordAction, parse_sms_keyword
from campaigns.pacing import Limits, Pacer
from campaigns.sms import count_segments, render
from contactcenter.phones import mask_phone
from contactcenter.services import current_services
from crm_store.models import (
    Account,
    Campaign,
    CampaignTarget,
    ContactAttempt,
    Interaction,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from contactcenter.services import Services
    from telephony.base import TelephonyProvider

log = logging.getLogger(__name__)

QUEUE_NAME = "campaigns"
"""The RQ queue of campaign jobs (``contactcenter worker`` listens to it)."""
CLOCK = "clock"
"""``Services`` extra: a ``() -> datetime`` (tz-aware UTC) replacing the wall clock."""
TICK_S = 1.0
"""Seconds between dispatcher runs while a campaign has due targets."""
MAX_IDLE_TICK_S = 60.0
"""Longest pause between dispatcher runs while every target waits (window, retry)."""
INTENT_GRACE = dt.timedelta(seconds=120)
"""How long an intent without SID waits for a callback before it is reconciled."""
STALE_SCHEDULED = dt.timedelta(minutes=10)
"""A target ``scheduled`` this long without an attempt lost its job: schedule it again."""
CONTACT_LOCK_MS = 60_000
"""Lease of the per-phone lock held from the compliance check to the intent row's commit
(the open intent then counts toward the caps of any other campaign's check)."""
CALL_SLOT_MARGIN_S = 120
HISTORY_DAYS = 40
"""How far back contacts are read for the caps (a month and a week, with margin)."""

ACTIVE_TARGET_STATES = ("pending", "scheduled", "in_progress", "retry")
FINAL_ATTEMPT_STATUSES = frozenset({"completed", "failed", "skipped"})
VOICE_EXHAUSTED = "voice_exhausted"
"""``CampaignTarget.last_outcome`` of a voice_then_sms target whose SMS fallback is due."""

_CALL_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}
_CALL_TERMINAL = {
    "completed": "answered",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
_SMS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3}
_SMS_TERMINAL = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "canceled",
}


# --------------------------------------------------------------------------- plumbing


def now_utc(services: Services) -> dt.datetime:
    """The current time (the injected clock of ``services`` when there is one)."""
    clock: Callable[[], dt.datetime] | None = services.get(CLOCK)
    moment = clock() if clock is not None else dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC)


def campaign_queue(services: Services) -> Any:
    """The RQ queue of campaign jobs on ``services.redis``."""
    from rq import Queue

    return Queue(QUEUE_NAME, connection=services.redis)


def provider_of(services: Services) -> TelephonyProvider:
    """The telephony provider of this process (``Services.telephony``)."""
    return services.telephony


def _enqueue_unique(
    services: Services,
    func_: Callable[..., Any],
    *args: Any,
    job_id: str,
    at: dt.datetime | None = None,
) -> bool:
    """Enqueue (or schedule) a job once: False when a job with this id already exists."""
    from rq.exceptions import DuplicateJobError
    from rq.job import JobStatus

    queue = campaign_queue(services)
    try:
        if at is None:
            queue.enqueue(func_, *args, job_id=job_id, unique=True, result_ttl=0, failure_ttl=86400)
        else:
            job = queue.create_job(
                func_,
                args=args,
                job_id=job_id,
                result_ttl=0,
                failure_ttl=86400,
                status=JobStatus.SCHEDULED,
            )
            queue.schedule_job(job, at, unique=True)
    except DuplicateJobError:
        return False
    return True


def dial_job_id(target_id: int, attempt_no: int) -> str:
    """Deterministic RQ id of an attempt's job (letters, digits and ``-`` only)."""
    return f"cc-dial-{target_id}-{attempt_no}"


def idempotency_key(campaign_id: int, target_id: int, attempt_no: int) -> str:
    """The unique key of an attempt (also sent to the provider in callback URLs)."""
    return f"c{campaign_id}-t{target_id}-a{attempt_no}"


def definition_of(campaign: Campaign) -> CampaignDefinition:
    """The validated definition stored on a campaign."""
    return CampaignDefinition.model_validate(campaign.definition)


def _pacer(services: Services, channel: Channel) -> Pacer:
    return Pacer(services.redis, channel=channel.value)


def _limits(definition: CampaignDefinition, channel: Channel) -> Limits:
    p = definition.pacing
    if channel is Channel.SMS:
        return Limits(rate=p.sms_per_second, global_rate=max(p.sms_per_second, 1.0))
    return Limits(
        rate=p.calls_per_second,
        global_rate=p.global_calls_per_second,
        max_concurrent=p.max_concurrent,
        global_max_concurrent=p.global_max_concurrent,
    )


def _call_lease_s(definition: CampaignDefinition) -> float:
    voice = definition.voice
    if voice is None:
        return 600.0
    return float(voice.ring_timeout_s + voice.time_limit_s + CALL_SLOT_MARGIN_S)


_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def contact_lock(services: Services, phone: str) -> Iterator[bool]:
    """A per-phone lock across workers and campaigns (yields False if someone holds it)."""
    key = f"cc:contact-lock:{phone}"
    token = uuid.uuid4().hex
    acquired = bool(services.redis.set(key, token, nx=True, px=CONTACT_LOCK_MS))
    try:
        yield acquired
    finally:
        if acquired:
            services.redis.eval(_UNLOCK, 1, key, token)


def attempt_channel(campaign: Campaign, target: CampaignTarget) -> Channel:
    """The channel of a target's next attempt (voice_then_sms switches after voice)."""
    if campaign.channel == "sms":
        return Channel.SMS
    if campaign.channel == "voice_then_sms" and target.last_outcome == VOICE_EXHAUSTED:
        return Channel.SMS
    return Channel.VOICE


# --------------------------------------------------------------------------- dispatcher


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatcher run did."""

    status: str
    enqueued: int = 0
    deferred: int = 0
    recovered: int = 0
    expired: int = 0
    active: int = 0
    next_due: dt.datetime | None = None


def _schedule_end(definition: CampaignDefinition) -> dt.datetime | None:
    """UTC instant after which no zone of Russia is still on the schedule's last day."""
    end = definition.schedule.end
    if end is None:
        return None
    # 24:00 of the last day in Kaliningrad (UTC+2), the westernmost zone, is 22:00 UTC.
    return dt.datetime.combine(end, dt.time(22, 0), tzinfo=dt.UTC)


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
    expired = _expire(services, campaign_id, definition, now)

    if channel_name == "sms":
        capacity = math.ceil(definition.pacing.sms_per_second * TICK_S * 2) + 1
    else:
        free = definition.pacing.max_concurrent - _pacer(services, Channel.VOICE).active(
            campaign_id
        )
        capacity = min(max(free, 0), math.ceil(definition.pacing.calls_per_second * TICK_S * 2) + 1)
    if batch is not None:
        capacity = batch
    to_enqueue: list[tuple[int, int, Channel]] = []
    deferred = 0
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
            for target in due:
                if len(to_enqueue) >= capacity:
                    break
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
        _enqueue_unique(
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
    end = _schedule_end(definition)
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
    return _enqueue_unique(
        services, dispatch_campaign, campaign_id, job_id=f"cc-dispatch-{campaign_id}-{tick}", at=at
    )


def start_dispatch(services: Services, campaign_id: int) -> bool:
    """Enqueue a dispatcher run now (launch / resume)."""
    tick = math.floor(dt.datetime.now(dt.UTC).timestamp() / TICK_S)
    return _enqueue_unique(
        services, dispatch_campaign, campaign_id, job_id=f"cc-dispatch-{campaign_id}-{tick}-now"
    )


# --------------------------------------------------------------------------- contact facts


def contact_history(
    session: Session,
    *,
    phone: str,
    account_id: int,
    channel: Channel,
    now: dt.datetime,
) -> list[dt.datetime]:
    """UTC times of earlier contacts on ``channel``: logged interactions plus open intents."""
    since = now - dt.timedelta(days=HISTORY_DAYS)
    times = list(
        session.scalars(
            select(Interaction.started_at).where(
                Interaction.channel == channel.value,
                Interaction.direction == "outbound",
                Interaction.started_at >= since,
                or_(Interaction.phone == phone, Interaction.account_id == account_id),
            )
        )
    )
    open_intents = session.scalars(
        select(ContactAttempt.created_at)
        .join(CampaignTarget, CampaignTarget.id == ContactAttempt.target_id)
        .where(
            ContactAttempt.status == "intent",
            ContactAttempt.channel == channel.value,
            ContactAttempt.created_at >= since,
            CampaignTarget.phone == phone,
        )
    )
    times.extend(open_intents)
    return times


def contact_facts(
    session: Session, target: CampaignTarget, channel: Channel, now: dt.datetime
) -> ContactFacts:
    """Everything :func:`~campaigns.compliance.check_contact` needs, read from the CRM."""
    from crm_store.consent import consent_statuses, is_do_not_contact
    from crm_store.errors import InvalidInput

    phone = target.phone
    if not phone:
        return ContactFacts(phone=None)
    try:
        dnc = is_do_not_contact(session, phone, channel.value)
    except InvalidInput:
        return ContactFacts(phone=phone)
    statuses = consent_statuses(session, [phone], now).get(phone, {})
    consents = ConsentState(
        granted=frozenset(p for p, st in statuses.items() if st == "granted"),
        withdrawn=frozenset(p for p, st in statuses.items() if st == "withdrawn"),
    )
    history = contact_history(
        session, phone=phone, account_id=target.account_id, channel=channel, now=now
    )
    return ContactFacts(
        phone=phone,
        account_timezone=target.timezone,
        do_not_contact=dnc,
        consents=consents,
        history=history,
    )


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


# --------------------------------------------------------------------------- dial / send


def _callback_url(services: Services, path: str, **query: Any) -> str:
    base = services.settings.public_base_url.rstrip("/")
    return f"{base}{path}?{urlencode(query)}"


VOICE_URL_PATH = "/voice/outbound"
CALL_STATUS_PATH = "/voice/status"
AMD_STATUS_PATH = "/voice/amd"
SMS_STATUS_PATH = "/sms/status"


@dataclass(frozen=True)
class _Prepared:
    attempt_id: int
    key: str
    phone: str
    account_id: int
    consumer_id: int | None
    campaign_id: int
    definition: CampaignDefinition


def _prepare(
    services: Services, target_id: int, attempt_no: int, channel: Channel
) -> _Prepared | str:
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
        existing = s.scalars(
            select(ContactAttempt).where(
                ContactAttempt.target_id == target_id, ContactAttempt.attempt_no == attempt_no
            )
        ).one_or_none()
        existing_id = existing.id if existing is not None else None
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
            facts = contact_facts(s, target, channel, now)
            decision = check_contact(
                now=now,
                channel=channel,
                purpose=definition.purpose,
                facts=facts,
                policy=definition.contact_policy(),
            )
            if isinstance(decision, Skip):
                if decision.retry_at is None:
                    _record_skip(s, target, attempt_no, channel, decision, now)
                _not_final(target, decision, now, _schedule_end(definition))
                log.info(
                    "campaign %s target %s skipped: %s (%s)",
                    target.campaign_id,
                    target_id,
                    decision.reason,
                    decision.detail,
                )
                return f"skip:{decision.reason}"
            key = idempotency_key(target.campaign_id, target_id, attempt_no)
            admission = _pacer(services, channel).admit(
                target.campaign_id,
                key,
                _limits(definition, channel),
                lease_s=_call_lease_s(definition) if channel is Channel.VOICE else 60.0,
            )
            if not admission.admitted:
                target.state = "pending" if target.attempts == 0 else "retry"
                target.next_attempt_at = now + dt.timedelta(seconds=admission.wait_s)
                return f"paced:{admission.reason}"
            account = s.get(Account, target.account_id)
            attempt = ContactAttempt(
                campaign_id=target.campaign_id,
                target_id=target_id,
                attempt_no=attempt_no,
                channel=channel.value,
                idempotency_key=key,
                status="intent",
                created_at=now,
                updated_at=now,
            )
            s.add(attempt)
            target.state = "in_progress"
            target.attempts = attempt_no
            target.skip_reason = None
            target.next_attempt_at = None
            target.updated_at = now
            try:
                s.flush()
            except IntegrityError:
                # Another worker wrote this attempt first: it owns the contact.
                s.rollback()
                _pacer(services, channel).release(target.campaign_id, key)
                return "duplicate"
            return _Prepared(
                attempt_id=attempt.id,
                key=key,
                phone=decision.phone,
                account_id=target.account_id,
                consumer_id=account.consumer_id if account is not None else None,
                campaign_id=target.campaign_id,
                definition=definition,
            )


def dial_target(target_id: int, attempt_no: int) -> str:
    """RQ job: place one call to a target (see the module docstring for the guarantees)."""
    services = current_services()
    prepared = _prepare(services, target_id, attempt_no, Channel.VOICE)
    if isinstance(prepared, str):
        return prepared
    voice = prepared.definition.voice
    if voice is None:  # pragma: no cover - the schema gives voice channels a voice section
        raise RuntimeError("voice campaign without voice settings")
    from telephony.errors import AuthenticationFailed, TelephonyError

    settings = services.settings
    from_number = voice.from_number or settings.twilio_from_number or settings.operator_phone
    url = _callback_url(services, VOICE_URL_PATH, attempt=prepared.attempt_id, flow=voice.flow)
    status_url = _callback_url(services, CALL_STATUS_PATH, attempt=prepared.attempt_id)
    amd_url = _callback_url(services, AMD_STATUS_PATH, attempt=prepared.attempt_id)
    machine = None
    if voice.machine_detection:
        machine = "DetectMessageEnd" if voice.amd_policy is AmdPolicy.LEAVE_MESSAGE else "Enable"
    try:
        info = provider_of(services).place_call(
            prepared.phone,
            from_number,
            url,
            status_callback=status_url,
            machine_detection=machine,  # type: ignore[arg-type]
            async_amd=True,
            amd_callback=amd_url if machine else None,
            timeout_s=voice.ring_timeout_s,
            time_limit_s=voice.time_limit_s,
        )
    except TelephonyError as exc:
        _provider_refused(services, prepared, Channel.VOICE, exc)
        if isinstance(exc, AuthenticationFailed):
            raise
        return f"refused:{type(exc).__name__}"
    _placed(services, prepared, Channel.VOICE, info.sid, segments=None)
    log.info(
        "campaign %s attempt %s: call %s to %s",
        prepared.campaign_id,
        prepared.key,
        info.sid,
        mask_phone(prepared.phone),
    )
    return "placed"


def sms_variables(
    session: Session, account_id: int, services: Services, today: dt.date
) -> dict[str, Any]:
    """Template variables of an account: supplier, account, amount, due date, name, phone."""
    from crm_store.ledger import balance

    account = session.get(Account, account_id)
    if account is None:
        raise LookupError(f"no account {account_id}")
    b = balance(session, account_id, today)
    return {
        "supplier": services.settings.supplier_name,
        "account": account.number,
        "amount": b.debt,
        "due_date": b.earliest_unpaid_due or today,
        "days_overdue": b.days_overdue,
        "name": account.consumer.full_name,
        "phone": services.settings.operator_phone,
    }


def sms_target(target_id: int, attempt_no: int) -> str:
    """RQ job: send one SMS to a target (same guarantees as :func:`dial_target`)."""
    services = current_services()
    prepared = _prepare(services, target_id, attempt_no, Channel.SMS)
    if isinstance(prepared, str):
        return prepared
    sms = prepared.definition.sms
    if sms is None:  # pragma: no cover - the schema requires it for SMS channels
        raise RuntimeError("SMS campaign without an sms section")
    from telephony.errors import AuthenticationFailed, TelephonyError

    with services.db.transaction() as s:
        variables = sms_variables(s, prepared.account_id, services, now_utc(services).date())
    body = render(sms.template, variables)
    sender = sms.from_ or services.settings.twilio_from_number or services.settings.operator_phone
    status_url = _callback_url(services, SMS_STATUS_PATH, attempt=prepared.attempt_id)
    try:
        info = provider_of(services).send_sms(
            prepared.phone, sender, body, status_callback=status_url
        )
    except TelephonyError as exc:
        _provider_refused(services, prepared, Channel.SMS, exc)
        if isinstance(exc, AuthenticationFailed):
            raise
        return f"refused:{type(exc).__name__}"
    _placed(
        services, prepared, Channel.SMS, info.sid, segments=info.segments or count_segments(body)[2]
    )
    return "sent"


def _placed(
    services: Services, prepared: _Prepared, channel: Channel, sid: str, *, segments: int | None
) -> None:
    """The provider accepted: store its SID and open the Interaction (one transaction)."""
    from crm_store.interactions import start_interaction

    now = now_utc(services)
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, prepared.attempt_id)
        if attempt is None:  # pragma: no cover - the row was committed by _prepare
            raise RuntimeError(f"attempt {prepared.attempt_id} vanished")
        if attempt.provider_sid is None:
            attempt.provider_sid = sid
        if attempt.status == "intent":
            attempt.status = "dialing" if channel is Channel.VOICE else "in_progress"
        if segments is not None:
            attempt.sms_segments = segments
        attempt.updated_at = now
        interaction = start_interaction(
            s,
            channel=channel.value,
            direction="outbound",
            provider_sid=sid,
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


def _provider_refused(
    services: Services, prepared: _Prepared, channel: Channel, exc: Exception
) -> None:
    """Record a refusal. An ambiguous one (timeout, 5xx) keeps the intent for reconciling."""
    from telephony.errors import InvalidNumber, OptedOut, ProviderUnavailable, RateLimited

    now = now_utc(services)
    if isinstance(exc, ProviderUnavailable):
        log.warning(
            "campaign %s attempt %s: provider unavailable (%s); reconciling after %ss",
            prepared.campaign_id,
            prepared.key,
            exc,
            INTENT_GRACE.total_seconds(),
        )
        _enqueue_unique(
            services,
            reconcile_attempt,
            prepared.attempt_id,
            job_id=f"cc-reconcile-{prepared.attempt_id}",
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
            from crm_store.consent import add_do_not_contact

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
            _after_outcome(s, target, attempt, "failed", prepared.definition, now)
        target.updated_at = now
    _pacer(services, channel).release(prepared.campaign_id, prepared.key)
    log.warning("campaign %s attempt %s refused: %s", prepared.campaign_id, prepared.key, exc)


# --------------------------------------------------------------------------- reconcile


def reconcile_now(services: Services, attempt_id: int) -> str:
    """Reconcile one attempt; see :func:`reconcile_attempt`."""
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
        _enqueue_unique(
            services, reconcile_attempt, attempt_id, job_id=f"cc-reconcile-{attempt_id}", at=at
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
            sid, status = None, ""
        else:
            sid, status = evidence.provider_sid, evidence.status
            attempt.provider_sid = sid
            attempt.status = "dialing" if channel is Channel.VOICE else "in_progress"
            if evidence.attempt_id is None:
                evidence.attempt_id = attempt.id
                evidence.campaign_id = attempt.campaign_id
            log.warning("attempt %s: adopted %s found in the interaction log", key, sid)
    if sid is None:
        _pacer(services, channel).release(campaign_id, key)
        return "not_placed"
    if status in _CALL_TERMINAL and channel is Channel.VOICE:
        handle_call_status(services, {"CallSid": sid, "CallStatus": status})
    elif status in _SMS_TERMINAL and channel is Channel.SMS:
        handle_sms_status(services, {"MessageSid": sid, "MessageStatus": status})
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


def reconcile_attempt(attempt_id: int) -> str:
    """RQ job: settle an ``intent`` attempt whose provider call may or may not have happened."""
    return reconcile_now(current_services(), attempt_id)


def hangup_call(attempt_id: int) -> str:
    """RQ job: end a call answered by a machine (answering-machine policy hangup_retry)."""
    from telephony.errors import CallNotFound

    services = current_services()
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None or attempt.provider_sid is None:
            return "missing"
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return "ended"
        sid = attempt.provider_sid
    try:
        provider_of(services).update_call(sid, status="completed")
    except CallNotFound:
        return "ended"
    return "hung_up"


# --------------------------------------------------------------------------- outcomes


def _count_outcomes(session: Session, target_id: int, outcome: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ContactAttempt)
            .where(ContactAttempt.target_id == target_id, ContactAttempt.outcome == outcome)
        )
        or 0
    )


def _after_outcome(
    session: Session,
    target: CampaignTarget,
    attempt: ContactAttempt,
    outcome: str,
    definition: CampaignDefinition,
    now: dt.datetime,
) -> None:
    """Move a target on after an attempt's final outcome (retry policy, SMS fallback)."""
    target.last_outcome = outcome
    target.updated_at = now
    target.next_attempt_at = None
    if target.state in ("cancelled", "skipped", "done", "failed"):
        return
    if outcome in ("answered", "delivered", "machine_message"):
        target.state = "done"
        return
    retry_kind = {
        "busy": RetryOutcome.BUSY,
        "no_answer": RetryOutcome.NO_ANSWER,
        "failed": RetryOutcome.FAILED,
        "canceled": RetryOutcome.FAILED,
        "machine": RetryOutcome.MACHINE,
        "undelivered": RetryOutcome.FAILED,
    }.get(outcome)
    if retry_kind is None:
        target.state = "failed"
        return
    if attempt.channel == "voice":
        rule = definition.retry.rule_for(retry_kind)
        placed = int(
            session.scalar(
                select(func.count())
                .select_from(ContactAttempt)
                .where(
                    ContactAttempt.target_id == target.id,
                    ContactAttempt.channel == "voice",
                    ContactAttempt.provider_sid.is_not(None),
                )
            )
            or 0
        )
        if placed < rule.max_attempts:
            target.state = "retry"
            target.next_attempt_at = now + rule.retry_after
            return
        if definition.channel.value == "voice_then_sms":
            target.state = "pending"
            target.last_outcome = VOICE_EXHAUSTED
            target.next_attempt_at = now
            return
    target.state = "failed"


def _seq(params: Mapping[str, str]) -> int | None:
    raw = (params.get("SequenceNumber") or "").strip()
    return int(raw) if raw.isdigit() else None


def _find_attempt(session: Session, sid: str, attempt_param: str | None) -> ContactAttempt | None:
    query = select(ContactAttempt)
    if sid:
        found = session.scalars(query.where(ContactAttempt.provider_sid == sid)).one_or_none()
        if found is not None:
            return found
    if attempt_param and attempt_param.strip().isdigit():
        found = session.get(ContactAttempt, int(attempt_param))
        if found is not None and (found.provider_sid is None or found.provider_sid == sid):
            return found
    return None


def _money(raw: str | None) -> Decimal | None:
    if not raw:
        return None
    try:
        return abs(Decimal(raw)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def handle_call_status(services: Services, params: Mapping[str, str]) -> bool:
    """Apply a call status callback (or a synchronous AMD result) to its campaign attempt.

    ``params`` are the callback's form fields plus the query of the callback URL
    (``attempt``). Returns False when the call is not a campaign call. Idempotent and
    out-of-order safe; a final status is never overwritten.
    """
    sid = (params.get("CallSid") or "").strip()
    status = (params.get("CallStatus") or "").strip().lower()
    now = now_utc(services)
    release: tuple[int, str] | None = None
    with services.db.transaction() as s:
        attempt = _find_attempt(s, sid, params.get("attempt"))
        if attempt is None:
            return False
        if sid and attempt.provider_sid is None:
            attempt.provider_sid = sid
            log.info("attempt %s: adopted SID %s from a callback", attempt.idempotency_key, sid)
        answered_by = (params.get("AnsweredBy") or "").strip()
        if answered_by and attempt.answered_by is None:
            attempt.answered_by = answered_by
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return True
        seq = _seq(params)
        rank = _CALL_RANK.get(status)
        if status in _CALL_TERMINAL:
            outcome = _CALL_TERMINAL[status]
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
            duration = (params.get("CallDuration") or "").strip()
            attempt.duration_s = int(duration) if duration.isdigit() else attempt.duration_s
            attempt.cost = _money(params.get("Price")) or attempt.cost
            attempt.last_sequence = max(attempt.last_sequence, seq or 0)
            attempt.updated_at = now
            if target is not None and definition is not None:
                if campaign is not None and campaign.status == "cancelled":
                    target.state = "cancelled"
                _after_outcome(s, target, attempt, outcome, definition, now)
            _finish_interaction(s, attempt, status, outcome, now, attempt.duration_s)
            release = (attempt.campaign_id, attempt.idempotency_key)
        elif rank is not None:
            current = attempt.last_sequence
            newer = seq > current if seq is not None else rank > current
            if newer:
                attempt.last_sequence = seq if seq is not None else rank
                if status in ("in-progress", "answered"):
                    attempt.status = "in_progress"
                elif attempt.status == "intent":
                    attempt.status = "dialing"
                attempt.updated_at = now
    if release is not None:
        _pacer(services, Channel.VOICE).release(*release)
    return True


def _finish_interaction(
    session: Session,
    attempt: ContactAttempt,
    status: str,
    outcome: str,
    now: dt.datetime,
    duration_s: int | None,
) -> None:
    from crm_store.interactions import finish_interaction, start_interaction

    if attempt.provider_sid is None:
        return
    target = session.get(CampaignTarget, attempt.target_id)
    interaction = start_interaction(
        session,
        channel=attempt.channel,
        direction="outbound",
        provider_sid=attempt.provider_sid,
        phone=target.phone if target is not None else None,
        account_id=target.account_id if target is not None else None,
        campaign_id=attempt.campaign_id,
        attempt_id=attempt.id,
        started_at=attempt.created_at,
        status="queued",
    )
    data: dict[str, Any] = {"campaign_outcome": outcome}
    if duration_s is not None:
        data["duration_s"] = duration_s
    if interaction.outcome is None:
        interaction.outcome = outcome
    finish_interaction(session, interaction.id, status=status, ended_at=now, data=data)


def handle_amd_status(services: Services, params: Mapping[str, str]) -> bool:
    """Apply an asynchronous AMD result (``AnsweredBy``); hang up machines if the policy says so."""
    sid = (params.get("CallSid") or "").strip()
    answered_by = (params.get("AnsweredBy") or "").strip()
    hang_up: int | None = None
    with services.db.transaction() as s:
        attempt = _find_attempt(s, sid, params.get("attempt"))
        if attempt is None:
            return False
        if sid and attempt.provider_sid is None:
            attempt.provider_sid = sid
        if answered_by and attempt.answered_by is None:
            attempt.answered_by = answered_by
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
    if hang_up is not None:
        _enqueue_unique(services, hangup_call, hang_up, job_id=f"cc-hangup-{hang_up}")
    return True


def handle_sms_status(services: Services, params: Mapping[str, str]) -> bool:
    """Apply an SMS status callback to its campaign attempt (idempotent, order-safe)."""
    from crm_store.consent import add_do_not_contact

    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    now = now_utc(services)
    with services.db.transaction() as s:
        attempt = _find_attempt(s, sid, params.get("attempt"))
        if attempt is None:
            return False
        if sid and attempt.provider_sid is None:
            attempt.provider_sid = sid
        if attempt.status in FINAL_ATTEMPT_STATUSES:
            return True
        if status in _SMS_TERMINAL:
            outcome = _SMS_TERMINAL[status]
            attempt.status = "completed" if outcome == "delivered" else "failed"
            attempt.outcome = outcome
            attempt.cost = _money(params.get("Price")) or attempt.cost
            attempt.updated_at = now
            target = s.get(CampaignTarget, attempt.target_id)
            campaign = s.get(Campaign, attempt.campaign_id)
            if (params.get("ErrorCode") or "").strip() == "21610" and target is not None:
                if target.phone:
                    add_do_not_contact(s, target.phone, channel="sms", reason="provider_opt_out")
                target.state = "skipped"
                target.skip_reason = SkipReason.OPTED_OUT.value
            if target is not None and campaign is not None:
                _after_outcome(s, target, attempt, outcome, definition_of(campaign), now)
            _finish_interaction(s, attempt, status, outcome, now, None)
        else:
            rank = _SMS_RANK.get(status)
            if rank is not None and rank > attempt.last_sequence:
                attempt.last_sequence = rank
                attempt.status = "in_progress"
                attempt.updated_at = now
    return True


def handle_inbound_sms(services: Services, params: Mapping[str, str]) -> KeywordAction | None:
    """Apply opt-out / opt-in keywords of an inbound SMS to the do-not-contact list.

    Returns the action taken (the SMS view answers with a confirmation) or None.
    """
    from crm_store.consent import add_do_not_contact, remove_do_not_contact
    from crm_store.errors import InvalidInput

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


OPT_OUT_REPLY = "Вы отписаны от SMS-уведомлений. Чтобы подписаться снова, отправьте СТАРТ."
OPT_IN_REPLY = "Вы снова подписаны на SMS-уведомления. Чтобы отписаться, отправьте СТОП."


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
