"""Twilio Media Streams → recognition events, independent of any web framework.

The websocket route only pumps received text messages into
:meth:`MediaStreamSession.handle_message` and calls :meth:`MediaStreamSession.close` when the
socket closes. The session:

- reads ``connected``, ``start`` (``customParameters`` choose the grammar: ``grammar`` =
  digits|number|yes_no|menu|free, ``lang``, ``keywords`` comma-separated for menus,
  ``prompt_seconds`` = how long the prompt after ``<Start><Stream>`` plays, ``prompt_mark``
  = the name of a mark whose echo means the prompt finished, ``no_input_s`` = seconds of
  silence after the prompt that end the capture, ``max_digits``/``min_digits`` = the
  length of a ``digits`` value: a partial result holding all ``max_digits`` digits ends the
  utterance after ``EndpointConfig.complete_silence`` of silence, reason ``complete``),
  ``media`` (base64 μ-law, 8 kHz),
  ``dtmf``, ``mark`` and ``stop``;
- reorders ``media`` frames within a small window by their ``chunk`` number (falling back to
  ``sequenceNumber``), drops duplicates, and skips a frame that never arrives;
- accepts frames of any size, ignores malformed JSON or messages (logged);
- emits :class:`StreamEvent` objects to the callback: ``started``, ``partial``, ``barge_in``,
  ``final`` (with the result), ``dtmf`` (a key wins over speech: the utterance is cancelled,
  what was heard is attached), ``mark`` (an echoed mark, its name in ``text``), ``stopped``;
- when the socket drops mid-utterance, finalises what was heard (reason ``hangup``).

One session per websocket; not thread-safe (a websocket is served by one thread).
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from speech.errors import GrammarError
from speech.grammar import ExpectedDigits, Grammar, build_grammar
from speech.model_store import LoadedModel
from speech.recognizer import (
    EndpointConfig,
    RecognitionResult,
    RecognitionSession,
    RecognizerFactory,
    vosk_recognizer,
)

log = logging.getLogger(__name__)

StreamEventKind = Literal["started", "partial", "barge_in", "final", "dtmf", "mark", "stopped"]
STREAM_SAMPLE_RATE = 8000
# Twilio Media Streams event name -> the MediaStreamSession method handling it.
_HANDLERS: Mapping[str, str] = {
    "connected": "_on_connected",
    "start": "_on_start",
    "media": "_on_media",
    "dtmf": "_on_dtmf",
    "mark": "_on_mark",
    "stop": "_on_stop",
}


# The decoder's C scanner (typeshed does not declare the attribute).
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(raw: str | bytes) -> Any:
    """``json.loads`` with a shortcut for a compact JSON text (what Twilio sends 50 times a
    second per call): the C scanner straight away, without the whitespace handling around
    it. Anything else, or anything the shortcut does not consume whole, goes the long way
    (and raises ``json.loads``'s errors)."""
    if isinstance(raw, str) and raw[:1] == "{":
        try:
            value, end = _scan_json(raw, 0)
        except (StopIteration, ValueError):
            end = -1
        if end == len(raw):
            return value
    return json.loads(raw)


@dataclass(frozen=True)
class StreamEvent:
    """An event of a media stream, handed to the session's callback."""

    kind: StreamEventKind
    stream_sid: str | None
    call_sid: str | None
    text: str = ""
    digit: str | None = None
    result: RecognitionResult | None = None
    custom_parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamConfig:
    """Behaviour of a :class:`MediaStreamSession`."""

    default_grammar: str = "digits"
    default_lang: str = "ru"
    reorder_window: int = 5  # frames held back waiting for a missing one
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)


class MediaStreamSession:
    """Consumes the messages of one Twilio Media Stream and emits :class:`StreamEvent`."""

    def __init__(
        self,
        model: LoadedModel,
        on_event: Callable[[StreamEvent], None],
        config: StreamConfig | None = None,
        *,
        recognizer_factory: RecognizerFactory = vosk_recognizer,
    ) -> None:
        self.model = model
        self._recognizer_factory = recognizer_factory
        self.on_event = on_event
        self.config = config or StreamConfig()
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.custom_parameters: dict[str, str] = {}
        self.grammar: Grammar | None = None
        self.utterance: RecognitionSession | None = None
        self.result: RecognitionResult | None = None
        self.finished = False  # stop received or socket closed
        self.frames_received = 0
        self.frames_dropped = 0  # duplicates and frames too late to reorder
        self.frames_lost = 0  # gaps skipped
        self.malformed = 0
        self._next_chunk: int | None = None
        self._pending: dict[int, bytes] = {}
        self._prompt_mark: str | None = None

    # ------------------------------------------------------------------ entry points

    def handle_message(self, raw: str | bytes) -> None:
        """Handle one websocket text message; malformed input is logged and ignored."""
        if self.finished:
            return
        try:
            message = _loads(raw)
        except (ValueError, UnicodeDecodeError):
            self._malformed("not JSON", raw)
            return
        if not isinstance(message, dict):
            self._malformed("not a JSON object", raw)
            return
        event = message.get("event")
        # ~50 media messages a second per stream: no per-message dispatch table.
        name = _HANDLERS.get(event) if isinstance(event, str) else None
        if name is None:
            self._malformed(f"unknown event {event!r}", raw)
            return
        try:
            if name == "_on_media":
                self._on_media(message)
            else:
                getattr(self, name)(message)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field of a wrong type
            self._malformed(f"bad {event} message ({exc})", raw)

    def close(self) -> None:
        """The socket closed (normally after ``stop``, or dropped): finalise and stop."""
        if self.finished:
            return
        log.info("media stream %s closed without stop: finalising", self.stream_sid)
        self._finish("hangup")

    # ------------------------------------------------------------------ handlers

    def _malformed(self, why: str, raw: str | bytes) -> None:
        self.malformed += 1
        log.warning("media stream %s: ignoring message, %s: %.120r", self.stream_sid, why, raw)

    def _emit(self, kind: StreamEventKind, **fields: Any) -> None:
        self.on_event(
            StreamEvent(
                kind=kind,
                stream_sid=self.stream_sid,
                call_sid=self.call_sid,
                custom_parameters=dict(self.custom_parameters),
                **fields,
            )
        )

    def _on_connected(self, message: dict[str, Any]) -> None:
        log.debug("media stream connected: protocol %s", message.get("protocol"))

    def _on_start(self, message: dict[str, Any]) -> None:
        if self.utterance is not None or self.result is not None:
            raise ValueError("a second start message")
        start = message["start"]
        media_format = start.get("mediaFormat") or {}
        encoding = media_format.get("encoding", "audio/x-mulaw")
        rate = int(media_format.get("sampleRate", STREAM_SAMPLE_RATE))
        if encoding != "audio/x-mulaw" or rate != STREAM_SAMPLE_RATE:
            raise ValueError(f"unsupported media format {encoding} at {rate} Hz")
        self.stream_sid = str(message.get("streamSid") or start.get("streamSid") or "") or None
        self.call_sid = str(start.get("callSid") or "") or None
        params = start.get("customParameters") or {}
        self.custom_parameters = {str(k): str(v) for k, v in params.items()}
        kind = self.custom_parameters.get("grammar", self.config.default_grammar)
        lang = self.custom_parameters.get("lang", self.config.default_lang)
        keywords = [
            k.strip() for k in self.custom_parameters.get("keywords", "").split(",") if k.strip()
        ]
        try:
            self.grammar = build_grammar(self.model, kind, lang, keywords)
        except GrammarError as exc:
            log.warning("media stream %s: %s; using digits", self.stream_sid, exc)
            self.grammar = build_grammar(
                self.model, self.config.default_grammar, self.config.default_lang
            )
        try:
            prompt_seconds = max(0.0, float(self.custom_parameters.get("prompt_seconds", 0)))
        except ValueError:
            prompt_seconds = 0.0
        endpoint = self.config.endpoint
        try:
            no_input = float(self.custom_parameters.get("no_input_s", 0))
        except ValueError:
            no_input = 0.0
        if 0 < no_input <= 600:
            endpoint = replace(endpoint, no_input_timeout=no_input)
        self.utterance = RecognitionSession(
            self.model,
            self.grammar,
            input_rate=STREAM_SAMPLE_RATE,
            config=endpoint,
            prompt_seconds=prompt_seconds,
            recognizer_factory=self._recognizer_factory,
            expected=ExpectedDigits.from_parameters(self.custom_parameters),
        )
        self._prompt_mark = self.custom_parameters.get("prompt_mark") or None
        if self._prompt_mark:
            self.utterance.set_prompt_playing(True)
        self._emit("started")

    def _on_media(self, message: dict[str, Any]) -> None:
        media = message["media"]
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return  # only the caller's audio is recognised
        try:
            payload = binascii.a2b_base64(media["payload"], strict_mode=True)
        except (binascii.Error, TypeError):
            raise ValueError("payload is not base64") from None
        raw_number = media.get("chunk", message.get("sequenceNumber"))
        number = int(raw_number) if raw_number is not None else None
        self.frames_received += 1
        if number is None:
            self._process_audio(payload)
            return
        if self._next_chunk is None:
            self._next_chunk = number
        if number == self._next_chunk and not self._pending:  # in order: the usual case
            self._next_chunk = number + 1
            self._process_audio(payload)
            return
        if number < self._next_chunk or number in self._pending:
            self.frames_dropped += 1
            return
        self._pending[number] = payload
        self._drain(force=False)

    def _drain(self, *, force: bool) -> None:
        """Process buffered frames in order; skip a gap once the window is full (or forced)."""
        while self._pending and self._next_chunk is not None:
            if self._next_chunk in self._pending:
                payload = self._pending.pop(self._next_chunk)
                self._next_chunk += 1
                self._process_audio(payload)
            elif force or len(self._pending) > self.config.reorder_window:
                oldest = min(self._pending)
                self.frames_lost += oldest - self._next_chunk
                self._next_chunk = oldest
            else:
                return

    def _process_audio(self, payload: bytes) -> None:
        if self.utterance is None or self.utterance.done or not payload:
            return
        for event in self.utterance.feed_ulaw(payload):
            if event.kind == "partial":
                self._emit("partial", text=event.text)
            elif event.kind == "barge_in":
                self._emit("barge_in")
            elif event.kind == "final" and event.result is not None:
                self.result = event.result
                self._emit("final", text=event.result.text, result=event.result)

    def _on_dtmf(self, message: dict[str, Any]) -> None:
        digit = str(message["dtmf"]["digit"])
        result = None
        if self.utterance is not None and not self.utterance.done:
            result = self.utterance.finish("dtmf")  # a key wins: the speech is not used
            self.result = result
        self._emit("dtmf", digit=digit, result=result)

    def _on_mark(self, message: dict[str, Any]) -> None:
        name = str(message["mark"]["name"])
        if self.utterance is not None and name == self._prompt_mark:
            self.utterance.set_prompt_playing(False)
        self._emit("mark", text=name)

    def _on_stop(self, message: dict[str, Any]) -> None:
        self._finish("hangup")

    def _finish(self, reason: Literal["hangup"]) -> None:
        self._drain(force=True)
        self.finished = True
        if self.utterance is not None and not self.utterance.done:
            result = self.utterance.finish(reason)
            self.result = result
            self._emit("final", text=result.text, result=result)
        self._emit("stopped")
