"""The IVR at run time: glue between the webhooks, the engine, Redis and the CRM.

:class:`VoiceRuntime` turns a Twilio webhook into an engine event, applies it to the call's
session exactly once (:mod:`ivr.session` claims and versioned commits), writes the IVR path
to the call's ``Interaction`` (cheap single inserts, inline), executes the engine's effects
(SMS → an RQ job, never inline) and returns the TwiML.

Also here: the status-callback handler (:func:`handle_call_status`), the TwiML for outages
and Twilio's fallback URL, and the RQ job that sends an SMS (:func:`send_sms_job`).

Campaign calls: a status callback whose CallSid belongs to a campaign ``ContactAttempt`` (or
whose URL carries ``?attempt=ID``) is also handed to the campaigns package, and so is an
asynchronous AMD result (``POST /voice/amd``): :func:`campaign_hook` finds the handler — a
``Services`` extra (:data:`CAMPAIGN_STATUS_HANDLER`, :data:`CAMPAIGN_AMD_HANDLER`) if one is
registered, else ``campaigns.jobs.handle_call_status`` / ``handle_amd_status``; each is
called as ``fn(services, params)`` with the form fields plus the callback URL's query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from contactcenter.phones import InvalidPhoneError, mask_phone, normalize_phone
from ivr import twiml
from ivr.engine import (
    ActionFailed,
    Engine,
    Event,
    Handoff,
    Input,
    Outcome,
    Recording,
    SendSms,
    Start,
    TransferEnded,
)
from ivr.session import CallSession, SessionStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from contactcenter.runtime import Services
    from crm_store.models import Account
    from ivr.schema import FlowSet

log = logging.getLogger(__name__)

#: RQ queue the IVR's slow work (SMS) goes to; the worker must listen to it.
IVR_QUEUE = "ivr"
#: ``Services`` extra: ``fn(services, params)`` handling status callbacks of campaign calls.
CAMPAIGN_STATUS_HANDLER = "campaign_call_status_handler"
#: ``Services`` extra: ``fn(services, params)`` handling asynchronous AMD results.
CAMPAIGN_AMD_HANDLER = "campaign_amd_status_handler"
_CAMPAIGN_FUNCTIONS = {
    CAMPAIGN_STATUS_HANDLER: "handle_call_status",
    CAMPAIGN_AMD_HANDLER: "handle_amd_status",
}
#: ``Services`` extra: a ``() -> datetime`` (tz-aware UTC) replacing the wall clock (tests).
CLOCK = "clock"
#: Flow started by ``POST /voice/incoming``.
INBOUND_FLOW = "hotline"
#: Flow started by ``POST /voice/outbound`` unless the URL names another.
OUTBOUND_FLOW = "debt_reminder"

TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_STATUS_RANK = {
    "started": 0,
    "queued": 0,
    "initiated": 0,
    "ringing": 1,
    "in-progress": 2,
    "answered": 2,
}
_TRANSFER_PARAMS = ("DialCallStatus", "QueueResult")


class WebhookError(ValueError):
    """A webhook request lacks what we need (e.g. no ``CallSid``); answered with 400."""


@dataclass(frozen=True)
class VoiceReply:
    """The TwiML to answer, the steps entered (the last is where the call is now; the
    ``X-IVR-Step`` header) and what speech recognition heard (``X-IVR-Recognized``)."""

    twiml: str
    step: str | None
    visited: tuple[str, ...] = ()
    recognized: str | None = None
    confidence: float | None = None

    @property
    def steps(self) -> tuple[str, ...]:
        """Steps entered while answering, ending with the current one."""
        if self.step is None or (self.visited and self.visited[-1] == self.step):
            return self.visited
        return (*self.visited, self.step)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def flowset_of(services: Services) -> FlowSet:
    """The validated flows ``create_app`` registered (``services.set("flows", flowset)``)."""
    flows = services.get("flows")
    if flows is None:
        raise RuntimeError("no flows registered in Services: build the app with create_app()")
    result: FlowSet = flows
    return result


def operator_queue(services: Services) -> str:
    """Name of the operator queue (``defaults.operator_queue`` of the flows)."""
    flows = services.get("flows")
    return str(flows.defaults.operator_queue) if flows is not None else "operators"


def outage_twiml(services: Services) -> str:
    """Apology and transfer used when the database or Redis is unavailable mid-call."""
    return twiml.apology_transfer(twiml.OUTAGE_APOLOGY, operator_queue(services))


def fallback_twiml(services: Services, params: Mapping[str, str]) -> str:
    """Twilio's fallback URL: an apology in Russian, then the operator queue."""
    context = {"call_sid": params.get("CallSid"), "reason": "fallback"}
    return twiml.apology_transfer(twiml.FALLBACK_APOLOGY, operator_queue(services), context=context)


def caller_e164(raw: str | None) -> str | None:
    """The caller ID as E.164, or None when withheld or not a valid number."""
    if not raw:
        return None
    try:
        return normalize_phone(raw, require_russian=False)
    except InvalidPhoneError:
        return None


def prompt_renderer(
    clock: Callable[[], datetime],
) -> Callable[[str, Mapping[str, Any]], str]:
    """Render prompt templates with Russian verbalisation; a bad prompt is an action error."""
    from ivr.verbalize import RenderError, TemplateError, render_template

    def render(text: str, variables: Mapping[str, Any]) -> str:
        try:
            return render_template(text, variables, today=clock().date())
        except (RenderError, TemplateError) as exc:
            raise ActionFailed(f"prompt {text!r}: {exc}") from None

    return render


def event_from(kind: str, params: Mapping[str, str]) -> Event:
    """The engine event a step webhook carries (``ev`` query parameter + Twilio params)."""
    if kind == "record":
        duration = params.get("RecordingDuration")
        return Recording(
            url=params.get("RecordingUrl") or None,
            duration=int(duration) if duration and duration.isdigit() else None,
            sid=params.get("RecordingSid") or None,
        )
    if kind == "transfer":
        status = next((params[p] for p in _TRANSFER_PARAMS if params.get(p)), "")
        return TransferEnded(status=status)
    confidence: float | None
    try:
        confidence = float(params["Confidence"]) if params.get("Confidence") else None
    except ValueError:
        confidence = None
    return Input(
        digits=params.get("Digits", "").strip(),
        speech=params.get("SpeechResult") or None,
        confidence=confidence,
    )


class VoiceRuntime:
    """Serves the voice webhooks of one request."""

    def __init__(self, services: Services, *, clock: Callable[[], datetime] | None = None) -> None:
        self.services = services
        self.clock: Callable[[], datetime] = clock or services.get(CLOCK) or _utcnow
        self.flows = flowset_of(services)
        self.store = SessionStore(services.redis)

    def engine(self) -> Engine:
        """An engine over the registered flows and actions."""
        from ivr.actions import registry

        return Engine(
            self.flows,
            registry(),
            self.clock,
            base_url=self.services.settings.public_base_url,
            render_text=prompt_renderer(self.clock),
            deps=self.services,
        )

    # ---- webhooks ------------------------------------------------------------------

    def incoming(self, params: Mapping[str, str]) -> VoiceReply:
        """``POST /voice/incoming``: start the hotline for this call."""
        return self.start(params, INBOUND_FLOW, {}, direction="inbound")

    def start(
        self,
        params: Mapping[str, str],
        flow: str,
        variables: Mapping[str, Any],
        *,
        direction: str,
        campaign_id: int | None = None,
        attempt_id: int | None = None,
    ) -> VoiceReply:
        """Start ``flow`` for a new call (inbound, or an answered outbound one)."""
        call_sid = _call_sid(params)
        if direction == "inbound":
            other, ours = params.get("From"), params.get("To")
        else:
            other, ours = params.get("To"), params.get("From")
        session = CallSession(
            call_sid=call_sid,
            flow=flow,
            step="",
            caller=caller_e164(other),
            called=caller_e164(ours),
            direction=direction,
        )
        existing = self.store.load(call_sid)
        if existing is not None:
            if existing.version > 0:
                log.info("call %s: duplicated start, replaying the answer", call_sid)
                return self.replay(call_sid, after_version=0)
            # A start that failed before its answer was stored (e.g. an outage): try again.
            return self.apply(existing, Start(flow, dict(variables)))
        session.interaction_id = start_interaction(
            self.services,
            call_sid=call_sid,
            phone=session.caller,
            direction=direction,
            campaign_id=campaign_id,
            attempt_id=attempt_id,
        )
        if not self.store.create(session):
            log.info("call %s: concurrent duplicated start, replaying the answer", call_sid)
            return self.replay(call_sid, after_version=0)
        log.info(
            "call %s: %s %s from %s",
            call_sid,
            direction,
            flow,
            mask_phone(session.caller) if session.caller else "withheld",
        )
        return self.apply(session, Start(flow, dict(variables)))

    def outbound(self, query: Mapping[str, str], params: Mapping[str, str]) -> VoiceReply:
        """``POST /voice/outbound?attempt=ID[&flow=NAME]``: an answered campaign call.

        The flow (default ``debt_reminder``) gets its parameters from the campaign attempt:
        ``account_number`` and ``holder_name`` of the target's account.
        """
        flow = query.get("flow") or OUTBOUND_FLOW
        if flow not in self.flows.flows:
            raise WebhookError(f"unknown flow {flow!r}")
        raw_attempt = query.get("attempt", "")
        if not raw_attempt.isdigit():
            raise WebhookError("the outbound URL needs ?attempt=<ContactAttempt id>")
        attempt_id = int(raw_attempt)
        variables, campaign_id = attempt_variables(self.services, attempt_id)
        missing = [p for p in self.flows.flows[flow].params if variables.get(p) in (None, "")]
        if missing:
            raise WebhookError(f"flow {flow!r} needs {', '.join(missing)} (attempt {attempt_id})")
        return self.start(
            params,
            flow,
            variables,
            direction="outbound",
            campaign_id=campaign_id,
            attempt_id=attempt_id,
        )

    def step(self, query: Mapping[str, str], params: Mapping[str, str]) -> VoiceReply:
        """``POST /voice/step``: the answer to a Gather/Record/Dial/Enqueue we rendered."""
        call_sid = _call_sid(params)
        try:
            seq = int(query.get("seq", ""))
        except ValueError:
            raise WebhookError("the step URL has no valid 'seq'") from None
        session = self.store.load(call_sid)
        if session is None:
            log.warning("call %s: no session (expired or lost); transferring", call_sid)
            return VoiceReply(outage_twiml(self.services), "outage")
        if seq != session.version:
            log.info(
                "call %s: event for version %s, session at %s: replaying",
                call_sid,
                seq,
                session.version,
            )
            return self.replay(call_sid, after_version=min(seq, session.version - 1))
        if (query.get("flow"), query.get("step")) != (session.flow, session.step):
            log.warning(
                "call %s: step URL names %s:%s, session is at %s:%s",
                call_sid,
                query.get("flow"),
                query.get("step"),
                session.flow,
                session.step,
            )
        return self.apply(session, event_from(query.get("ev", "gather"), params))

    # ---- core ----------------------------------------------------------------------

    def replay(self, call_sid: str, *, after_version: int) -> VoiceReply:
        """Answer a duplicated webhook with what the original got."""
        answer = self.store.wait_for_response(call_sid, after_version=after_version)
        if answer is None:
            return VoiceReply(outage_twiml(self.services), "outage")
        session = self.store.load(call_sid)
        return VoiceReply(answer, f"{session.flow}:{session.step}" if session else None)

    def apply(self, session: CallSession, event: Event) -> VoiceReply:
        """Apply ``event`` exactly once and return the answer."""
        version = session.version
        if not self.store.claim(session.call_sid, version):
            return self.replay(session.call_sid, after_version=version)
        try:
            outcome = self.engine().handle(session, event)
            document = twiml.render(outcome.verbs)
            record_steps(self.services, session, outcome)
            self.store.commit(session, expected_version=version, response=document)
        except BaseException:
            self.store.release(session.call_sid, version)
            raise
        run_effects(self.services, session, outcome)
        speech = event.speech if isinstance(event, Input) and not event.digits else None
        return VoiceReply(
            document,
            outcome.current_step,
            visited=tuple(r.step for r in outcome.steps if r.event == "enter"),
            recognized=speech,
            confidence=event.confidence if speech and isinstance(event, Input) else None,
        )


def attempt_variables(services: Services, attempt_id: int) -> tuple[dict[str, Any], int]:
    """Flow parameters of a campaign attempt (account number, holder) and its campaign id."""
    from crm_store.models import Account, CampaignTarget, ContactAttempt

    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None:
            raise WebhookError(f"no contact attempt {attempt_id}")
        target = s.get(CampaignTarget, attempt.target_id)
        account = s.get(Account, target.account_id) if target is not None else None
        if account is None:
            raise WebhookError(f"contact attempt {attempt_id} has no account")
        variables = {
            "account_number": account.number,
            "holder_name": account.consumer.full_name,
        }
        return variables, int(attempt.campaign_id)


def _call_sid(params: Mapping[str, str]) -> str:
    call_sid = (params.get("CallSid") or "").strip()
    if not call_sid or len(call_sid) > 64:
        raise WebhookError("missing or invalid CallSid")
    return call_sid


# --------------------------------------------------------------------------- CRM writes


def start_interaction(
    services: Services,
    *,
    call_sid: str,
    phone: str | None,
    direction: str,
    campaign_id: int | None = None,
    attempt_id: int | None = None,
) -> int:
    """The ``Interaction`` of a call (created, or the one a status callback made first)."""
    from crm_store import interactions

    with services.db.transaction() as s:
        interaction = interactions.start_interaction(
            s,
            channel="voice",
            direction=direction,
            provider_sid=call_sid,
            phone=phone,
            campaign_id=campaign_id,
            attempt_id=attempt_id,
            status="in-progress",
        )
        if interaction.status not in TERMINAL_STATUSES:
            interaction.status = "in-progress"
        s.flush()
        return int(interaction.id)


def record_steps(services: Services, session: CallSession, outcome: Outcome) -> None:
    """Append the outcome's IVR path (and the speech it acted on, as ``Transcript`` rows) to
    the call's Interaction, in one short transaction."""
    if session.interaction_id is None or not (outcome.steps or outcome.heard):
        return
    from crm_store import interactions

    account = session.variables.get("account_number")
    handoffs = [e for e in outcome.effects if isinstance(e, Handoff)]
    with services.db.transaction() as s:
        for record in outcome.steps:
            session.step_seq += 1
            interactions.append_step(
                s,
                session.interaction_id,
                record.step[:128],
                event=record.event[:64],
                input=record.input[:500] if record.input else None,
                outcome=record.outcome[:64] if record.outcome else None,
                seq=session.step_seq,
            )
        for heard in outcome.heard:
            confidence = heard.confidence
            interactions.add_transcript(
                s,
                session.interaction_id,
                heard.step[:128],
                heard.text,
                confidence=min(max(confidence, 0.0), 1.0) if confidence is not None else None,
                decision=heard.decision[:64] if heard.decision else None,
            )
        interaction = interactions.get_interaction(s, session.interaction_id)
        if account and interaction.account_id is None:
            found = _account(s, str(account))
            if found is not None:
                interaction.account_id = found.id
                interaction.consumer_id = interaction.consumer_id or found.consumer_id
        if handoffs:
            handoff = handoffs[-1]
            interaction.outcome = f"transferred_{handoff.kind}"
            interaction.data = {**(interaction.data or {}), "handoff": dict(handoff.context)}
        elif session.ended and interaction.outcome is None:
            interaction.outcome = "completed_in_ivr"


def _account(s: Session, number: str) -> Account | None:
    from crm_store.models import Account

    return s.scalars(select(Account).where(Account.number == number)).one_or_none()


def run_effects(services: Services, session: CallSession, outcome: Outcome) -> None:
    """Enqueue the slow work the engine asked for (SMS) on RQ."""
    sms = [e for e in outcome.effects if isinstance(e, SendSms)]
    if not sms:
        return
    from rq import Queue

    queue = Queue(IVR_QUEUE, connection=services.redis)
    for index, effect in enumerate(sms):
        job_id = f"ivr-sms-{session.call_sid}-{session.version}-{index}"
        queue.enqueue(
            send_sms_job,
            effect.to,
            effect.body,
            session.interaction_id,
            job_id=job_id,
            unique=True,
            description=f"IVR SMS for call {session.call_sid}",
        )
        log.info("call %s: SMS to %s queued (%s)", session.call_sid, mask_phone(effect.to), job_id)


def send_sms_job(to: str, body: str, interaction_id: int | None) -> str:
    """RQ job: send one SMS through the configured provider; returns the MessageSid.

    The SMS is logged as an outbound ``Interaction`` (channel ``sms``) linked, via its
    ``data``, to the call that asked for it.
    """
    from contactcenter.runtime import current_services
    from crm_store.models import Interaction
    from telephony import get_provider

    services = current_services()
    settings = services.settings
    provider = get_provider(services)
    status_callback = f"{settings.public_base_url}/sms/status"
    # The sandbox needs no purchased number: the company's own line stands in as the sender.
    sender = settings.twilio_from_number or settings.operator_phone
    message = provider.send_sms(to, sender, body, status_callback=status_callback)
    with services.db.transaction() as s:
        s.add(
            Interaction(
                provider_sid=message.sid,
                channel="sms",
                direction="outbound",
                phone=to,
                status=message.status,
                summary=body[:1000],
                data={"call_interaction_id": interaction_id, "segments": message.segments},
            )
        )
    sid: str = message.sid
    return sid


# --------------------------------------------------------------------------- status


def _status_time(params: Mapping[str, str]) -> datetime | None:
    raw = params.get("Timestamp")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _int(raw: str | None) -> int | None:
    if raw is None or not raw.strip().lstrip("-").isdigit():
        return None
    return int(raw)


def is_campaign_call(services: Services, call_sid: str) -> bool:
    """Whether ``call_sid`` is the provider SID of a campaign ``ContactAttempt``."""
    from crm_store.models import ContactAttempt

    with services.db.transaction() as s:
        found = s.scalars(
            select(ContactAttempt.id).where(ContactAttempt.provider_sid == call_sid)
        ).first()
    return found is not None


def campaign_hook(
    services: Services, name: str
) -> Callable[[Services, Mapping[str, str]], Any] | None:
    """The campaigns handler ``name`` (:data:`CAMPAIGN_STATUS_HANDLER` or
    :data:`CAMPAIGN_AMD_HANDLER`): the ``Services`` extra of that name if registered, else the
    matching function of ``campaigns.jobs``; None when neither exists."""
    handler = services.get(name)
    if handler is not None:
        return handler
    import importlib

    try:
        jobs = importlib.import_module("campaigns.jobs")
    except ModuleNotFoundError as exc:
        if exc.name != "campaigns.jobs":
            raise
        return None
    found = getattr(jobs, _CAMPAIGN_FUNCTIONS[name], None)
    return found if callable(found) else None


def handle_amd_status(
    services: Services, params: Mapping[str, str], query: Mapping[str, str] | None = None
) -> None:
    """An asynchronous AMD result of a campaign call: handed to the campaigns package."""
    _call_sid(params)
    handler = campaign_hook(services, CAMPAIGN_AMD_HANDLER)
    if handler is None:
        raise WebhookError("AMD results are only expected for campaign calls")
    handler(services, {**params, **(query or {})})


def handle_call_status(
    services: Services, params: Mapping[str, str], query: Mapping[str, str] | None = None
) -> None:
    """Store a call status callback: idempotent, ordered, a terminal status never overwritten.

    The event is appended to ``Interaction.data["status_events"]`` (deduplicated by status
    and sequence number). The Interaction's ``status`` only moves forward
    (queued → ringing → in-progress → a terminal status) and a callback older than the last
    applied one (``SequenceNumber``) does not move it back; ``ended_at`` and
    ``data["duration_s"]`` come with the terminal status. Campaign calls are also handed to
    the campaigns package (:func:`campaign_hook`).
    """
    from crm_store.models import Interaction

    call_sid = _call_sid(params)
    status = (params.get("CallStatus") or "").strip().lower()
    if not status:
        raise WebhookError("missing CallStatus")
    seq = _int(params.get("SequenceNumber"))
    at = _status_time(params) or _utcnow()
    query = query or {}
    if query.get("attempt") or is_campaign_call(services, call_sid):
        handler = campaign_hook(services, CAMPAIGN_STATUS_HANDLER)
        if handler is None:
            log.error("status of campaign call %s but no campaign handler is available", call_sid)
        else:
            handler(services, {**params, **query})
    with services.db.transaction() as s:
        stmt = select(Interaction).where(Interaction.provider_sid == call_sid)
        if s.bind is not None and s.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        interaction = s.scalars(stmt).one_or_none()
        if interaction is None:
            direction = params.get("Direction", "inbound")
            interaction = Interaction(
                provider_sid=call_sid,
                channel="voice",
                direction="outbound" if direction.startswith("outbound") else "inbound",
                phone=caller_e164(
                    params.get("From") if direction == "inbound" else params.get("To")
                ),
                status="started",
                data={},
            )
            s.add(interaction)
            s.flush()
        data = dict(interaction.data or {})
        events = list(data.get("status_events", []))
        key = {"status": status, "seq": seq}
        if any(e.get("status") == status and e.get("seq") == seq for e in events):
            return
        events.append({**key, "at": at.isoformat()})
        data["status_events"] = events
        last_seq = data.get("status_seq")
        current = interaction.status
        if current in TERMINAL_STATUSES:
            pass  # a terminal status is final
        elif status in TERMINAL_STATUSES:
            interaction.status = status
            interaction.ended_at = at
            duration = _int(params.get("CallDuration"))
            if duration is not None:
                data["duration_s"] = duration
        elif (seq is None or last_seq is None or seq >= last_seq) and _STATUS_RANK.get(
            status, 0
        ) >= _STATUS_RANK.get(current, 0):
            interaction.status = status
        if seq is not None:
            data["status_seq"] = max(seq, last_seq if isinstance(last_seq, int) else seq)
        interaction.data = data
    if status in TERMINAL_STATUSES:
        _forget_session(services, call_sid)


def _forget_session(services: Services, call_sid: str) -> None:
    """Shorten the TTL of an ended call's session; Redis trouble here is only logged."""
    from redis.exceptions import RedisError

    try:
        SessionStore(services.redis).expire_soon(call_sid)
    except RedisError as exc:
        log.warning("call %s ended; could not expire its session: %s", call_sid, exc)
