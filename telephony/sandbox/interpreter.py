"""The TwiML interpreter: one live call executing our app's TwiML like Twilio does.

:class:`LiveCall.run` is a generator. It fetches TwiML, plays it, and *yields* an
:class:`InputRequest` whenever the caller could act (``<Gather>``, ``<Record>``,
``<Connect><Stream>``); the driver sends back a :class:`CallerAction`. The simulator drives
it step by step from a test; the sandbox provider drives it from a scripted callee.

Semantics follow Twilio's documentation (see ``docs/telephony.md`` of the shared docs and
``telephony/README.md``): Gather defaults (``timeout`` 5 s, ``finishOnKey`` ``#``, ``''``
disables it, ``numDigits`` unlimited, ``action`` = current document URL, fall-through to
the next verb on no input unless ``actionOnEmptyResult``), Record (empty recording
continues with the next verb), Dial/Enqueue action parameters, Redirect, Hangup, Pause,
Reject, Start/Connect + Stream.
"""

from __future__ import annotations

import logging
import math
import secrets
import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote, urljoin

from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml

from telephony.sandbox.audio import AudioError, silence_wav, wav_duration_s, wav_to_mulaw
from telephony.sandbox.clock import Clock
from telephony.sandbox.media import MediaStream, MediaStreamError, WsConnect, default_ws_connect
from telephony.sandbox.transport import (
    Transport,
    WebhookResponse,
    WebhookTransportError,
    signed_request,
)

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
STEP_HEADER = "x-ivr-step"
RECOGNIZED_HEADER = "x-ivr-recognized"
DTMF_KEYS = frozenset("0123456789*#w")
SAY_CHARS_PER_S = 14.0
PLAY_ASSUMED_S = 3.0
INFINITE_LOOP = 0
VERBS = frozenset(
    {
        "Say",
        "Play",
        "Pause",
        "Gather",
        "Record",
        "Dial",
        "Enqueue",
        "Redirect",
        "Hangup",
        "Reject",
        "Start",
        "Stop",
        "Connect",
    }
)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class CallerAction:
    """What the caller does when the call waits for input.

    ``press``: DTMF digits (``0-9 * #``); ``speech``: words (become ``SpeechResult``);
    ``audio``: WAV bytes (recorded by ``<Record>``, streamed to Media Streams; ``text`` is
    what Twilio's recogniser would return for a speech ``<Gather>``); ``silence``;
    ``hangup``.
    """

    kind: Literal["press", "speech", "audio", "silence", "hangup"]
    value: str = ""
    confidence: float = 0.92
    audio: bytes | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind == "press":
            if not self.value or set(self.value) - DTMF_KEYS:
                raise ValueError(f"DTMF keys must be 0-9, * or #, got {self.value!r}")
        elif self.kind == "speech" and not self.value.strip():
            raise ValueError("speech needs some words")
        elif self.kind == "audio" and not self.audio:
            raise ValueError("audio needs WAV bytes")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("confidence must be between 0 and 1")

    @classmethod
    def press(cls, digits: str) -> CallerAction:
        """Press DTMF keys."""
        return cls("press", digits)

    @classmethod
    def speech(cls, text: str, confidence: float = 0.92) -> CallerAction:
        """Say words (Twilio's recogniser result)."""
        return cls("speech", text, confidence)

    @classmethod
    def silence(cls) -> CallerAction:
        """Say and press nothing."""
        return cls("silence")

    @classmethod
    def hangup(cls) -> CallerAction:
        """Hang up."""
        return cls("hangup")


@dataclass(frozen=True)
class InputRequest:
    """The call waits for the caller: at a Gather, a Record or a bidirectional stream."""

    kind: Literal["gather", "record", "stream"]
    attrs: Mapping[str, str]
    prompts: tuple[str, ...] = ()


@dataclass
class TranscriptEntry:
    """One thing that happened on the call, ``at_s`` seconds after it was answered."""

    at_s: float
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallUpdate:
    """A pending ``update_call``: redirect to ``url`` / ``twiml``, or end with ``status``."""

    url: str | None = None
    twiml: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class _Fetch:
    url: str
    method: str = "POST"
    params: Mapping[str, str] = field(default_factory=dict)
    twiml: str | None = None


class _Ended(Exception):
    def __init__(self, reason: str, status: str = "completed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ApplicationError(Exception):
    """Our app answered a webhook with an error or with invalid TwiML (Twilio 11200/12100)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class CallBehaviour:
    """What the far end and the network do beyond input (scripted outcomes)."""

    hangup_after_s: float | None = None
    hangup_after_verbs: int | None = None
    dial_status: str = "completed"
    dial_duration_s: int = 60
    queue_result: str = "bridged"
    queue_time_s: int = 30
    time_limit_s: int = 4 * 3600
    stream_close_timeout_s: float = 5.0
    max_documents: int = 500


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() == "true"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None and value.strip() != "" else default
    except ValueError:
        return default


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None and value.strip() != "" else default
    except ValueError:
        return default


def say_duration_s(text: str) -> float:
    """How long Twilio's TTS takes to say ``text`` (a rough estimate)."""
    return max(0.5, len(text.strip()) / SAY_CHARS_PER_S)


class LiveCall:
    """One answered call executing TwiML."""

    def __init__(
        self,
        *,
        sid: str,
        account_sid: str,
        from_: str,
        to: str,
        direction: str,
        url: str | None,
        token: str,
        transport: Transport,
        clock: Clock,
        api_base_url: str,
        method: str = "POST",
        twiml: str | None = None,
        first_params: Mapping[str, str] | None = None,
        behaviour: CallBehaviour | None = None,
        store_recording: Callable[[str, str, bytes, int], None] | None = None,
        poll_update: Callable[[], CallUpdate | None] | None = None,
        ws_connect: WsConnect = default_ws_connect,
        realtime: bool = False,
        answered_at: datetime | None = None,
        first_status: str = "in-progress",
        after_first_document: Callable[[], None] | None = None,
    ) -> None:
        if url is None and twiml is None:
            raise ValueError("a call needs a url or twiml")
        self.sid = sid
        self.account_sid = account_sid
        self.from_ = from_
        self.to = to
        self.direction = direction
        self.url = url
        self.method = method
        self.twiml = twiml
        self.token = token
        self.transport = transport
        self.clock = clock
        self.api_base_url = api_base_url.rstrip("/")
        self.first_params = dict(first_params or {})
        self.behaviour = behaviour or CallBehaviour()
        self._store_recording = store_recording
        self._poll_update = poll_update or (lambda: None)
        self._ws_connect = ws_connect
        self.realtime = realtime
        self.answered_at = answered_at or clock.now()
        self.status = first_status
        self._after_first_document = after_first_document
        self.documents = 0
        self.transcript: list[TranscriptEntry] = []
        self.steps: list[str] = []
        self.recognized: list[dict[str, Any]] = []
        self.recordings: list[dict[str, Any]] = []
        self.streams: dict[str, MediaStream] = {}
        self.verbs_executed = 0
        self.end_reason: str | None = None
        self.error_code: int | None = None
        self.ended = False

    # -- helpers ----------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        """Seconds since the call was answered."""
        return (self.clock.now() - self.answered_at).total_seconds()

    @property
    def duration_s(self) -> int:
        """Whole seconds the call lasted (Twilio rounds up)."""
        return max(0, math.ceil(self.elapsed_s - 1e-9))

    def note(self, kind: str, text: str, /, **data: Any) -> TranscriptEntry:
        """Add a transcript entry."""
        entry = TranscriptEntry(round(self.elapsed_s, 2), kind, text, data)
        self.transcript.append(entry)
        return entry

    def base_params(self) -> dict[str, str]:
        """Parameters Twilio sends on every voice request of this call."""
        return {
            "AccountSid": self.account_sid,
            "CallSid": self.sid,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
            "CallStatus": self.status,
            "Direction": self.direction,
            "ApiVersion": API_VERSION,
        }

    def _advance(self, seconds: float, partial_entry: TranscriptEntry | None = None) -> None:
        """Let time pass on the call; the caller may hang up (or the time limit hit) meanwhile."""
        if seconds <= 0:
            return
        limit = self.behaviour.hangup_after_s
        if limit is not None and self.elapsed_s + seconds > limit:
            self.clock.sleep(max(0.0, limit - self.elapsed_s))
            if partial_entry is not None:
                partial_entry.data["interrupted"] = True
            raise _Ended("caller hung up")
        if self.elapsed_s + seconds > self.behaviour.time_limit_s:
            self.clock.sleep(max(0.0, self.behaviour.time_limit_s - self.elapsed_s))
            raise _Ended("time limit reached")
        self.clock.sleep(seconds)

    def webhook(
        self, url: str, method: str = "POST", params: Mapping[str, str] | None = None
    ) -> WebhookResponse:
        """Send a signed voice request of this call and read the IVR hook headers."""
        all_params = self.base_params()
        all_params.update(params or {})
        try:
            resp = signed_request(self.transport, self.token, method, url, all_params)
        except WebhookTransportError as exc:
            self.note("webhook", f"{method} {url} → unreachable", url=url, error=str(exc))
            raise ApplicationError(11205, str(exc)) from exc
        self.note("webhook", f"{method} {url} → {resp.status}", url=url, status=resp.status)
        self._read_hooks(resp)
        return resp

    def _read_hooks(self, resp: WebhookResponse) -> None:
        steps = resp.headers.get(STEP_HEADER)
        if steps:
            for step in (unquote(s.strip()) for s in steps.split(",")):
                if step:
                    self.steps.append(step)
                    self.note("step", step)
        recognized = resp.headers.get(RECOGNIZED_HEADER)
        if recognized:
            text, _, rest = recognized.partition(";")
            info: dict[str, Any] = {"text": unquote(text.strip())}
            for part in rest.split(";"):
                key, _, value = part.strip().partition("=")
                if key == "confidence":
                    confidence = _float(value, -1.0)
                    if 0.0 <= confidence <= 1.0:  # a malformed value is left out
                        info["confidence"] = confidence
                elif key:
                    info[key] = unquote(value)
            self.recognized.append(info)
            conf = info.get("confidence")
            suffix = f" (confidence {conf:.2f})" if isinstance(conf, float) else ""
            self.note("recognized", f"{info['text']}{suffix}", **info)

    def _parse(self, resp: WebhookResponse) -> ET.Element:
        if not resp.ok:
            raise ApplicationError(11200, f"HTTP {resp.status} from the application")
        try:
            root = parse_xml(resp.text)
        except ParseError as exc:
            raise ApplicationError(12100, f"document parse failure: {exc}") from exc
        if root.tag != "Response":
            raise ApplicationError(12100, f"root element is <{root.tag}>, not <Response>")
        return root

    def _load(self, fetch: _Fetch) -> tuple[ET.Element, str]:
        self.documents += 1
        if self.documents > self.behaviour.max_documents:
            raise ApplicationError(
                11200, f"more than {self.behaviour.max_documents} TwiML documents"
            )
        if fetch.twiml is not None:
            try:
                root = parse_xml(fetch.twiml)
            except ParseError as exc:
                raise ApplicationError(12100, f"TwiML parse failure: {exc}") from exc
            return root, fetch.url
        resp = self.webhook(fetch.url, fetch.method, fetch.params)
        return self._parse(resp), fetch.url

    # -- the call ---------------------------------------------------------------------

    def run(self) -> Generator[InputRequest, CallerAction, None]:
        """Execute the call until it ends, yielding whenever the caller may act."""
        fetch: _Fetch | None = _Fetch(
            self.url or "", self.method, self.first_params, twiml=self.twiml
        )
        try:
            while fetch is not None:
                root, doc_url = self._load(fetch)
                if self.documents == 1:
                    self.status = "in-progress"
                    if self._after_first_document is not None:
                        self._after_first_document()
                fetch = yield from self._execute(root, doc_url)
        except _Ended as end:
            self._finish(end.reason, end.status)
        except ApplicationError as exc:
            self.error_code = exc.code
            self.note("error", f"application error {exc}", code=exc.code)
            self.note("say", "We are sorry, an application error has occurred. Goodbye.")
            self._finish(f"application error {exc.code}", "completed")
        else:
            self._finish("no more TwiML", "completed")

    def _finish(self, reason: str, status: str) -> None:
        for stream in list(self.streams.values()):
            self._stop_stream(stream)
        self.streams.clear()
        self.status = status
        self.end_reason = reason
        self.ended = True
        self.note("end", f"call ended: {reason} ({status}, {self.duration_s} s)", status=status)

    def hang_up(self) -> None:
        """The caller hangs up while the call is not waiting for input."""
        if not self.ended:
            self._finish("caller hung up", "completed")

    def _check_update(self) -> _Fetch | None:
        update = self._poll_update()
        if update is None:
            return None
        if update.status:
            raise _Ended(f"ended by the API ({update.status})", "completed")
        self.note("redirect", "call redirected by the API", url=update.url)
        if update.twiml is not None:
            return _Fetch(self.url or "", twiml=update.twiml)
        return _Fetch(update.url or "", "POST")

    def _execute(
        self, root: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        for verb in list(root):
            redirect = self._check_update()
            if redirect is not None:
                return redirect
            limit = self.behaviour.hangup_after_verbs
            if limit is not None and self.verbs_executed >= limit:
                raise _Ended("caller hung up")
            self.verbs_executed += 1
            if verb.tag not in VERBS:  # TwiML is case-sensitive
                raise ApplicationError(12200, f"unknown TwiML verb <{verb.tag}>")
            handler = getattr(self, f"_verb_{verb.tag.lower()}")
            result = yield from handler(verb, doc_url)
            if result is not None:
                return result
        return None

    # -- verbs without input ----------------------------------------------------------

    def _say(self, verb: ET.Element) -> None:
        text = " ".join((verb.text or "").split())
        loop = _int(verb.get("loop"), 1)
        data = {"voice": verb.get("voice"), "language": verb.get("language") or "en-US"}
        if loop == INFINITE_LOOP:
            entry = self.note("say", text, loop="∞", **data)
            self._advance(self.behaviour.time_limit_s + 1, entry)
        for _ in range(max(1, loop)):
            entry = self.note("say", text, **data)
            self._advance(say_duration_s(text), entry)

    def _play(self, verb: ET.Element) -> None:
        digits = verb.get("digits")
        if digits:
            if set(digits) - DTMF_KEYS:
                raise ApplicationError(13221, f"invalid Play digits {digits!r}")
            self.note("play", f"DTMF {digits}", digits=digits)
            self._advance(0.1 * len(digits) + 0.4 * digits.count("w"))
            return
        url = (verb.text or "").strip()
        loop = _int(verb.get("loop"), 1)
        if loop == INFINITE_LOOP:
            entry = self.note("play", url, loop="∞")
            self._advance(self.behaviour.time_limit_s + 1, entry)
        for _ in range(max(1, loop)):
            entry = self.note("play", url)
            self._advance(PLAY_ASSUMED_S, entry)

    def _pause(self, verb: ET.Element) -> None:
        length = _int(verb.get("length"), 1)
        self.note("pause", f"{length} s", length=length)
        self._advance(length)

    def _verb_say(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        self._say(verb)
        return None
        yield  # pragma: no cover - makes this a generator

    def _verb_play(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        self._play(verb)
        return None
        yield  # pragma: no cover

    def _verb_pause(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        self._pause(verb)
        return None
        yield  # pragma: no cover

    def _verb_redirect(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        target = urljoin(doc_url, (verb.text or "").strip() or doc_url)
        self.note("redirect", target, url=target)
        return _Fetch(target, (verb.get("method") or "POST").upper())
        yield  # pragma: no cover

    def _verb_hangup(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        raise _Ended("hung up by the application")
        yield  # pragma: no cover

    def _verb_reject(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        reason = verb.get("reason") or "rejected"
        self.note("reject", reason)
        raise _Ended(f"rejected ({reason})", "busy" if reason == "busy" else "no-answer")
        yield  # pragma: no cover

    # -- Gather -----------------------------------------------------------------------

    def _prompts(self, verb: ET.Element) -> tuple[str, ...]:
        prompts: list[str] = []
        for child in verb:
            if child.tag == "Say":
                self._say(child)
                prompts.append(" ".join((child.text or "").split()))
            elif child.tag == "Play":
                self._play(child)
            elif child.tag == "Pause":
                self._pause(child)
            else:
                raise ApplicationError(12200, f"<{child.tag}> cannot be nested in <{verb.tag}>")
        return tuple(prompts)

    def _verb_gather(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        inputs = set((verb.get("input") or "dtmf").split())
        if not inputs or inputs - {"dtmf", "speech"}:
            raise ApplicationError(12200, f"invalid Gather input {verb.get('input')!r}")
        action_url = urljoin(doc_url, verb.get("action") or doc_url)
        method = (verb.get("method") or "POST").upper()
        timeout = _int(verb.get("timeout"), 5)
        finish_on_key = verb.get("finishOnKey", "#")
        num_digits = _int(verb.get("numDigits"), 0)
        on_empty = _bool(verb.get("actionOnEmptyResult"))
        prompts = self._prompts(verb)
        action = yield InputRequest("gather", dict(verb.attrib), prompts)
        redirect = self._check_update()
        if redirect is not None:
            return redirect
        params: dict[str, str] | None = None
        if action.kind == "hangup":
            raise _Ended("caller hung up")
        if action.kind == "press":
            self._stream_dtmf(action.value)
            if "dtmf" in inputs:
                params = self._collect_digits(action.value, finish_on_key, num_digits, timeout)
            else:
                self.note("input", f"pressed {action.value} (ignored: Gather takes speech)")
                self._advance(timeout)
        elif action.kind in ("speech", "audio"):
            text = action.value
            if action.kind == "audio":
                self._stream_audio(action)
            else:
                self.note("input", f"said «{text}»", text=text)
                self._advance(say_duration_s(text))
            if "speech" in inputs and text.strip():
                self._partial_results(verb, doc_url, text)
                params = {"SpeechResult": text, "Confidence": f"{action.confidence:.2f}"}
            else:
                reason = "Gather takes dtmf only" if "speech" not in inputs else "no words"
                self.note("input", f"speech ignored ({reason})")
                self._advance(timeout)
        else:
            self.note("input", f"silence ({timeout} s timeout)")
            self._advance(timeout)
        if params is None:
            if not on_empty:
                self.note("gather", "no input: falling through to the next verb")
                return None
            params = {}
        return _Fetch(action_url, method, params)

    def _collect_digits(
        self, keys: str, finish_on_key: str, num_digits: int, timeout: int
    ) -> dict[str, str] | None:
        collected = ""
        finished = False
        ignored = ""
        for i, key in enumerate(keys.replace("w", "")):
            if finish_on_key and key in finish_on_key:
                finished = True
                ignored = keys.replace("w", "")[i + 1 :]
                break
            collected += key
            if num_digits and len(collected) >= num_digits:
                finished = True
                ignored = keys.replace("w", "")[i + 1 :]
                break
        self.note("input", f"pressed {keys}", digits=collected, keys=keys)
        self._advance(0.3 * len(keys))
        if ignored:
            self.note("input", f"keys after the end of input ignored: {ignored}")
        if not finished:
            self._advance(timeout)  # the inter-digit timeout ends the input
        if not collected:
            return None
        return {"Digits": collected}

    def _partial_results(self, verb: ET.Element, doc_url: str, text: str) -> None:
        callback = verb.get("partialResultCallback")
        if not callback:
            return
        url = urljoin(doc_url, callback)
        method = (verb.get("partialResultCallbackMethod") or "POST").upper()
        words = text.split()
        for n in range(1, len(words) + 1):
            partial = " ".join(words[:n])
            try:
                self.webhook(
                    url,
                    method,
                    {
                        "UnstableSpeechResult": partial,
                        "StableSpeechResult": " ".join(words[: n - 1]),
                        "Stability": "0.8",
                        "SequenceNumber": str(n),
                        "LanguageCode": verb.get("language") or "en-US",
                    },
                )
            except ApplicationError:
                continue  # partial results are fire-and-forget

    # -- Record -----------------------------------------------------------------------

    def _verb_record(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        action_url = urljoin(doc_url, verb.get("action") or doc_url)
        method = (verb.get("method") or "POST").upper()
        timeout = _int(verb.get("timeout"), 5)
        max_length = _int(verb.get("maxLength"), 3600)
        finish_on_key = verb.get("finishOnKey", "1234567890*#")
        if _bool(verb.get("playBeep"), True):
            self.note("beep", "beep")
        action = yield InputRequest("record", dict(verb.attrib))
        redirect = self._check_update()
        if redirect is not None:
            return redirect
        wav: bytes | None = None
        params: dict[str, str] = {}
        hung_up = False
        if action.kind == "audio" and action.audio:
            wav = action.audio
            self._stream_audio(action)
        elif action.kind == "speech":
            self.note("input", f"said «{action.value}» (recorded as silence: no audio)")
            wav = silence_wav(say_duration_s(action.value))
            self._advance(say_duration_s(action.value))
        elif action.kind == "press":
            key = action.value[0]
            self.note("input", f"pressed {action.value}")
            if finish_on_key and key in finish_on_key:
                params["Digits"] = key
        elif action.kind == "hangup":
            hung_up = True
        else:
            self.note("input", f"silence ({timeout} s timeout)")
            self._advance(timeout)
        duration = 0
        if wav is not None:
            try:
                seconds = wav_duration_s(wav)
            except AudioError as exc:
                raise ValueError(f"caller audio is not a usable WAV: {exc}") from exc
            duration = min(max_length, math.ceil(seconds))
            if duration > 0 and not hung_up:
                self._advance(timeout)  # Twilio ends the recording after `timeout` of silence
        if duration <= 0:
            self.note("record", "empty recording: continuing with the next verb")
            if hung_up:
                raise _Ended("caller hung up")
            return None
        assert wav is not None  # noqa: S101 - narrowed above: duration > 0 needs audio
        rec_sid = new_sid("RE")
        rec_url = (
            f"{self.api_base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{rec_sid}"
        )
        if self._store_recording is not None:
            self._store_recording(rec_sid, self.sid, wav, duration)
        self.recordings.append({"sid": rec_sid, "url": rec_url, "duration": duration})
        self.note("record", f"recorded {duration} s ({rec_sid})", sid=rec_sid, url=rec_url)
        params.update(
            {"RecordingUrl": rec_url, "RecordingSid": rec_sid, "RecordingDuration": str(duration)}
        )
        self._recording_status(verb, doc_url, rec_sid, rec_url, duration)
        if hung_up:
            params["Digits"] = "hangup"
            self.status = "completed"
            try:
                self.webhook(action_url, method, params)
            finally:
                raise _Ended("caller hung up during the recording")
        return _Fetch(action_url, method, params)

    def _recording_status(
        self, verb: ET.Element, doc_url: str, sid: str, url: str, duration: int
    ) -> None:
        callback = verb.get("recordingStatusCallback")
        if not callback:
            return
        events = (verb.get("recordingStatusCallbackEvent") or "completed").split()
        if "completed" not in events:
            return
        try:
            self.webhook(
                urljoin(doc_url, callback),
                (verb.get("recordingStatusCallbackMethod") or "POST").upper(),
                {
                    "RecordingSid": sid,
                    "RecordingUrl": url,
                    "RecordingStatus": "completed",
                    "RecordingDuration": str(duration),
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                },
            )
        except ApplicationError:
            self.note("error", "recording status callback failed")

    # -- Dial and Enqueue -------------------------------------------------------------

    def _verb_dial(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        targets = [f"{child.tag.lower()}:{(child.text or '').strip()}" for child in verb]
        if (verb.text or "").strip():
            targets.insert(0, f"number:{(verb.text or '').strip()}")
        if not targets:
            raise ApplicationError(12200, "<Dial> without a number")
        status = self.behaviour.dial_status
        duration = self.behaviour.dial_duration_s if status == "completed" else 0
        time_limit = _int(verb.get("timeLimit"), 14400)
        duration = min(duration, time_limit)
        self.note("dial", f"dial {', '.join(targets)} → {status}", targets=targets, status=status)
        ring = min(_int(verb.get("timeout"), 30), 5) if status != "no-answer" else 30
        self._advance(ring + duration)
        action = verb.get("action")
        if not action:
            return None
        params = {"DialCallStatus": status, "DialCallSid": new_sid("CA")}
        if status == "completed":
            params["DialCallDuration"] = str(duration)
        return _Fetch(urljoin(doc_url, action), (verb.get("method") or "POST").upper(), params)
        yield  # pragma: no cover

    def _verb_enqueue(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        name = (verb.text or "").strip()
        if not name or len(name) > 64:
            raise ApplicationError(12200, "<Enqueue> needs a queue name of at most 64 chars")
        queue_sid = "QU" + secrets.token_hex(16)
        self.note("enqueue", f"queued in «{name}»", queue=name)
        wait_url = verb.get("waitUrl")
        if wait_url:
            resp = self.webhook(
                urljoin(doc_url, wait_url),
                (verb.get("waitUrlMethod") or "POST").upper(),
                {
                    "QueueSid": queue_sid,
                    "QueuePosition": "1",
                    "QueueTime": "0",
                    "AvgQueueTime": "0",
                    "CurrentQueueSize": "1",
                },
            )
            for child in self._parse(resp):
                if child.tag == "Say":
                    self._say(child)
                elif child.tag == "Play":
                    self._play(child)
                elif child.tag == "Pause":
                    self._pause(child)
        result = self.behaviour.queue_result
        self._advance(self.behaviour.queue_time_s)
        self.note("enqueue", f"left the queue: {result}", result=result)
        action = verb.get("action")
        if not action:
            if result == "hangup":
                raise _Ended("caller hung up in the queue")
            return None
        params = {
            "QueueResult": result,
            "QueueSid": queue_sid,
            "QueueTime": str(self.behaviour.queue_time_s),
        }
        fetch = _Fetch(urljoin(doc_url, action), (verb.get("method") or "POST").upper(), params)
        if result == "hangup":
            self.status = "completed"
            self.webhook(fetch.url, fetch.method, fetch.params)
            raise _Ended("caller hung up in the queue")
        return fetch
        yield  # pragma: no cover

    # -- Streams ----------------------------------------------------------------------

    def _open_stream(self, node: ET.Element, bidirectional: bool) -> MediaStream | None:
        url = node.get("url")
        if not url:
            raise ApplicationError(12200, "<Stream> without a url")
        track = node.get("track") or "inbound_track"
        if bidirectional and track != "inbound_track":
            raise ApplicationError(31941, "<Connect><Stream> supports only inbound_track")
        params = {p.get("name", ""): p.get("value", "") for p in node if p.tag == "Parameter"}
        stream = MediaStream(
            url,
            token=self.token,
            account_sid=self.account_sid,
            call_sid=self.sid,
            stream_sid=new_sid("MZ"),
            name=node.get("name"),
            track=track,
            custom_parameters=params,
            bidirectional=bidirectional,
            ws_connect=self._ws_connect,
            realtime=self.realtime,
        )
        try:
            stream.open()
        except MediaStreamError as exc:
            self.note("error", f"stream {url} failed: {exc}", code=31920)
            self._stream_status(node, stream, "stream-error")
            return None
        self.streams[stream.name or stream.stream_sid] = stream
        self.note("stream", f"stream opened to {url}", url=url, stream_sid=stream.stream_sid)
        self._stream_status(node, stream, "stream-started")
        return stream

    def _stream_status(self, node: ET.Element, stream: MediaStream, event: str) -> None:
        callback = node.get("statusCallback")
        if not callback:
            return
        try:
            self.webhook(
                callback,
                (node.get("statusCallbackMethod") or "POST").upper(),
                {
                    "StreamSid": stream.stream_sid,
                    "StreamName": stream.name or stream.stream_sid,
                    "StreamEvent": event,
                    "Timestamp": self.clock.now().isoformat(),
                },
            )
        except ApplicationError:
            self.note("error", "stream status callback failed")

    def _stop_stream(self, stream: MediaStream) -> None:
        stream.poll()
        stream.stop()
        self._note_stream_audio(stream)
        self.note("stream", f"stream {stream.stream_sid} stopped", stream_sid=stream.stream_sid)

    def _note_stream_audio(self, stream: MediaStream) -> None:
        if stream.audio_from_app:
            ms = len(stream.audio_from_app) // 8
            self.note("play", f"stream audio from the app ({ms} ms)", ms=ms)
            stream.audio_from_app.clear()

    def _stream_audio(self, action: CallerAction) -> None:
        assert action.audio is not None  # noqa: S101 - checked by CallerAction
        try:
            mulaw = wav_to_mulaw(action.audio)
        except AudioError as exc:
            raise ValueError(f"caller audio is not a usable WAV: {exc}") from exc
        label = action.label or "audio"
        self.note("input", f"said {label} ({len(mulaw) / 8000:.1f} s)", text=action.value)
        for stream in list(self.streams.values()):
            try:
                stream.send_audio(mulaw)
                stream.poll()
            except MediaStreamError as exc:
                self.note("error", f"stream {stream.stream_sid}: {exc}")
        self._advance(len(mulaw) / 8000)

    def _stream_dtmf(self, keys: str) -> None:
        for stream in list(self.streams.values()):
            for key in keys.replace("w", ""):
                try:
                    stream.send_dtmf(key)
                except MediaStreamError:
                    break

    def _verb_start(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        for node in verb:
            if node.tag != "Stream":
                self.note("error", f"<Start><{node.tag}> is not emulated; skipped")
                continue
            self._open_stream(node, bidirectional=False)
        return None
        yield  # pragma: no cover

    def _verb_stop(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        for node in verb:
            if node.tag != "Stream":
                continue
            name = node.get("name")
            for key, stream in list(self.streams.items()):
                if name is None or key == name:
                    self._stop_stream(stream)
                    del self.streams[key]
        return None
        yield  # pragma: no cover

    def _verb_connect(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, _Fetch | None]:
        nodes = [n for n in verb if n.tag == "Stream"]
        if not nodes:
            raise ApplicationError(12200, "<Connect> without <Stream> is not emulated")
        stream = self._open_stream(nodes[0], bidirectional=True)
        if stream is not None:
            key = stream.name or stream.stream_sid
            while not stream.closed_by_app:
                stream.poll()
                self._note_stream_audio(stream)
                if stream.closed_by_app:
                    break
                action = yield InputRequest("stream", dict(nodes[0].attrib))
                if action.kind == "hangup":
                    raise _Ended("caller hung up")
                if action.kind == "audio":
                    self._stream_audio(action)
                    stream.wait_closed(0.3)
                elif action.kind == "press":
                    self.note("input", f"pressed {action.value}")
                    self._stream_dtmf(action.value)
                    stream.wait_closed(0.3)
                else:
                    if action.kind == "speech":
                        self.note("input", f"said «{action.value}» (no audio to stream)")
                    if not stream.wait_closed(self.behaviour.stream_close_timeout_s):
                        self._note_stream_audio(stream)
                        raise _Ended("caller hung up (the stream never ended)")
            self._note_stream_audio(stream)
            self.note("stream", "the app closed the stream", stream_sid=stream.stream_sid)
            stream.stop()
            self.streams.pop(key, None)
        action_url = verb.get("action")
        if action_url:
            return _Fetch(urljoin(doc_url, action_url), (verb.get("method") or "POST").upper())
        return None
