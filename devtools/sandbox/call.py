"""A live call's state and plumbing, under the TwiML verbs and the call flow.

:class:`CallCore` holds what every part of a call shares: its parameters and clock, the
transcript, the signed voice webhooks (and the IVR hook headers read from their answers),
time passing on the call (the caller may hang up meanwhile), pending ``update_call``
requests and the caller's audio and keys reaching open Media Streams. The verbs are in
:mod:`devtools.sandbox.verbs` and :mod:`devtools.sandbox.streams`; the call flow is
:class:`devtools.sandbox.interpreter.LiveCall`.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as parse_xml

from devtools.sandbox.audio import AudioError, wav_to_mulaw
from devtools.sandbox.clock import Clock
from devtools.sandbox.media import MediaStream, MediaStreamError, WsConnect, default_ws_connect
from devtools.sandbox.transport import (
    Transport,
    WebhookResponse,
    WebhookTransportError,
    signed_request,
)
from devtools.sandbox.twiml import (
    API_VERSION,
    RECOGNIZED_HEADER,
    STEP_HEADER,
    ApplicationError,
    CallBehaviour,
    CallEnded,
    CallerAction,
    CallUpdate,
    Fetch,
    TranscriptEntry,
    attr_float,
)


class CallCore:
    """One answered call's state, webhooks, time and streams (see the module docstring)."""

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
            raise CallEnded("caller hung up")
        if self.elapsed_s + seconds > self.behaviour.time_limit_s:
            self.clock.sleep(max(0.0, self.behaviour.time_limit_s - self.elapsed_s))
            raise CallEnded("time limit reached")
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
                    confidence = attr_float(value, -1.0)
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

    def _check_update(self) -> Fetch | None:
        update = self._poll_update()
        if update is None:
            return None
        if update.status:
            raise CallEnded(f"ended by the API ({update.status})", "completed")
        self.note("redirect", "call redirected by the API", url=update.url)
        if update.twiml is not None:
            return Fetch(self.url or "", twiml=update.twiml)
        return Fetch(update.url or "", "POST")

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
