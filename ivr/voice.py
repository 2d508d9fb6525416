"""The voice webhooks at run time: glue between the web views, the engine, Redis and the CRM.

:class:`VoiceRuntime` turns a Twilio webhook into an engine event, applies it to the call's
session exactly once (:mod:`ivr.session` claims and versioned commits), writes the IVR path
to the call's ``Interaction`` (:mod:`ivr.crm`: cheap single inserts, inline), executes the
engine's effects (SMS → an RQ job, never inline: :mod:`ivr.sms`) and returns the TwiML.
Voice input is recognised by :mod:`ivr.capture` (``<Record>``) and :mod:`ivr.media_stream`
(Media Streams). Also here: the TwiML for outages and for Twilio's fallback URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from contactcenter.metrics import record_call_started, record_ivr_steps
from contactcenter.phones import InvalidPhoneError, mask_phone, normalize_phone
from contactcenter.services import Services
from ivr import twiml
from ivr.actions import registry
from ivr.capture import recognize_recording, speech_policy, step_url, stream_voice_input
from ivr.crm import attempt_variables, flush_call_records, start_interaction, step_record
from ivr.engine import Engine
from ivr.errors import ActionFailed, PromptTemplateError, RenderError, WebhookError
from ivr.events import Event, Handoff, Input, Recording, Start, TransferEnded, VoiceInput
from ivr.media_stream import STREAM_RESULT_WAIT_S, StreamResults
from ivr.prompt_stream import with_prompt_audio
from ivr.recordings import queue_recording_start
from ivr.session import CallSession, SessionStore
from ivr.sms import run_effects
from ivr.startup import IvrSetup
from ivr.verbalize import render_template
from ivr.voice_policy import EV_LISTEN, EV_RECORD, EV_SPEECH, session_grammar

log = logging.getLogger(__name__)

#: Flow started by ``POST /voice/incoming``.
INBOUND_FLOW = "hotline"
#: Flow started by ``POST /voice/outbound`` unless the URL names another.
OUTBOUND_FLOW = "debt_reminder"

_TRANSFER_PARAMS = ("DialCallStatus", "QueueResult")
_SID_CHARS = re.compile(r"[A-Za-z0-9_-]+")


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


def outage_twiml(setup: IvrSetup, call_sid: str | None = None) -> str:
    """Apology and transfer used when the database or Redis is unavailable mid-call."""
    context = {"call_sid": call_sid, "reason": "service_outage"} if call_sid else {}
    transfer = setup.operator.verb(setup.operator_queue, context, call_sid=call_sid or "")
    return twiml.render([twiml.Say(twiml.OUTAGE_APOLOGY), transfer])


def fallback_twiml(setup: IvrSetup, params: Mapping[str, str]) -> str:
    """Twilio's fallback URL: an apology in Russian, then the operators (as routed)."""
    call_sid = params.get("CallSid") or ""
    context = {"call_sid": params.get("CallSid"), "reason": "fallback"}
    transfer = setup.operator.verb(setup.operator_queue, context, call_sid=call_sid)
    return twiml.render([twiml.Say(twiml.FALLBACK_APOLOGY), transfer])


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

    def render(text: str, variables: Mapping[str, Any]) -> str:
        try:
            return render_template(text, variables, today=clock().date())
        except (RenderError, PromptTemplateError) as exc:
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


def call_sid_of(params: Mapping[str, str]) -> str:
    """The webhook's ``CallSid``; :class:`~ivr.errors.WebhookError` when missing or invalid."""
    call_sid = (params.get("CallSid") or "").strip()
    # a SID keys Redis and names RQ jobs: letters, digits, '_' and '-' only (Twilio: CA + hex)
    if not call_sid or len(call_sid) > 64 or not _SID_CHARS.fullmatch(call_sid):
        raise WebhookError("missing or invalid CallSid")
    return call_sid


class VoiceRuntime:
    """Serves the voice webhooks of one request.

    ``setup`` is the process's :class:`~ivr.startup.IvrSetup` (flows, speech model, forced
    capture mode); ``clock`` defaults to ``services.clock``.
    """

    def __init__(
        self,
        services: Services,
        setup: IvrSetup,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.services = services
        self.setup = setup
        self.clock: Callable[[], datetime] = clock or services.clock
        self.flows = setup.flows
        self.store = SessionStore(services.redis)

    def engine(self) -> Engine:
        """An engine over the registered flows and actions."""
        public_base_url = self.services.settings.public_base_url
        return Engine(
            self.flows,
            registry(),
            self.clock,
            base_url=public_base_url,
            render_text=prompt_renderer(self.clock),
            deps=self.services,
            speech=with_prompt_audio(
                speech_policy(self.setup.speech, self.setup.capture, public_base_url),
                self.services,
            ),
            operator=self.setup.operator,
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
        call_sid = call_sid_of(params)
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
        record_call_started(direction, flow)
        log.info(
            "call %s: %s %s from %s",
            call_sid,
            direction,
            flow,
            mask_phone(session.caller) if session.caller else "withheld",
        )
        if direction == "inbound" and self.flows.flows[flow].record_calls:
            self.start_recording(call_sid)
        return self.apply(session, Start(flow, dict(variables)))

    def start_recording(self, call_sid: str) -> None:
        """Have the whole call recorded (the greeting announces it): an RQ job asks the
        provider (:func:`ivr.recordings.queue_recording_start`), never this webhook. A
        failure to queue it never breaks the call: it is logged, the call goes on."""
        try:
            queued = queue_recording_start(self.services, call_sid)
        except RedisError as exc:
            log.warning("call %s: could not queue the call recording: %s", call_sid, exc)
            return
        if queued:
            log.info("call %s: call recording queued", call_sid)

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
        call_sid = call_sid_of(params)
        try:
            seq = int(query.get("seq", ""))
        except ValueError:
            raise WebhookError("the step URL has no valid 'seq'") from None
        session = self.store.load(call_sid)
        if session is None:
            log.warning("call %s: no session (expired or lost); transferring", call_sid)
            return VoiceReply(outage_twiml(self.setup, call_sid), "outage")
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
        answer = self.voice_event(session, query.get("ev", "gather"), params)
        if isinstance(answer, VoiceReply):
            return answer
        return self.apply(session, answer)

    def voice_event(
        self, session: CallSession, kind: str, params: Mapping[str, str]
    ) -> Event | VoiceReply:
        """The engine event of a step webhook, with our own recognizer's part done here:
        a ``<Record>`` capture is fetched and recognised; a stream capture's result is read
        (or waited for) in Redis; a key pressed during a stream claims its result first."""
        if kind == EV_RECORD and session_grammar(self.flows, session) is not None:
            return recognize_recording(
                self.services, self.setup.speech, self.flows, session, params
            )
        if kind in (EV_LISTEN, EV_SPEECH):
            return self.stream_voice(session, kind)
        if kind == "gather" and session.stream and params.get("Digits"):
            # A key pressed wins: a final result arriving later is discarded.
            StreamResults(self.services.redis).claim(session.call_sid, session.version, "dtmf")
        return event_from(kind, params)

    def stream_voice(self, session: CallSession, kind: str) -> VoiceInput | VoiceReply:
        """The stream capture's result for the current step (``listen``: the keypad Gather
        timed out; ``speech``: the websocket redirected the call after a final result)."""
        store = StreamResults(self.services.redis)
        call_sid, seq = session.call_sid, session.version
        if kind == EV_SPEECH:
            data = store.load(call_sid, seq)
            if not data:
                # A <Connect><Stream> that never started (the socket failed): the step goes
                # on by keypad after the notice, never a silent retry of the same stream.
                return VoiceInput(failed="stream_not_started")
            return stream_voice_input(data)
        data = store.wait_final(call_sid, seq, timeout_s=STREAM_RESULT_WAIT_S)
        if store.claim(call_sid, seq, "webhook"):
            return stream_voice_input(data)
        if store.owner(call_sid, seq) in ("redirect", "dtmf"):
            # The websocket is redirecting the call to the result: wait for it here.
            url = step_url(
                self.services.settings.public_base_url, session.flow, session.step, seq, EV_SPEECH
            )
            document = twiml.render([twiml.Pause(1), twiml.Redirect(url)])
            return VoiceReply(document, f"{session.flow}:{session.step}")
        return stream_voice_input(data)

    # ---- core ----------------------------------------------------------------------

    def replay(self, call_sid: str, *, after_version: int) -> VoiceReply:
        """Answer a duplicated webhook with what the original got."""
        answer = self.store.wait_for_response(call_sid, after_version=after_version)
        if answer is None:
            return VoiceReply(outage_twiml(self.setup, call_sid), "outage")
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
            record = step_record(session, outcome, version=version + 1, at=self.services.clock())
            self.store.commit(session, expected_version=version, response=document, record=record)
        except BaseException:
            self.store.release(session.call_sid, version)
            raise
        if any(isinstance(e, Handoff) for e in outcome.effects):
            # The people taking the call see its context at once, not at the next sweep;
            # if the database cannot take it now, the records wait in Redis for the sweep.
            try:
                flush_call_records(self.services, session.call_sid)
            except SQLAlchemyError as exc:
                log.warning("handoff context of the call not written yet: %s", type(exc).__name__)
        run_effects(self.services, session, outcome)
        record_ivr_steps(r.step for r in outcome.steps if r.event == "enter")
        speech: str | None = None
        if isinstance(event, Input) and not event.digits:
            speech = event.speech
        elif isinstance(event, VoiceInput) and not event.digits:
            speech = event.text or None
        confidence = getattr(event, "confidence", None) if speech else None
        return VoiceReply(
            document,
            outcome.current_step,
            visited=tuple(r.step for r in outcome.steps if r.event == "enter"),
            recognized=speech,
            confidence=confidence,
        )
