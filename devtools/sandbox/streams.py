"""The Media Streams verbs of a live call: ``<Start><Stream>``, ``<Stop>``, ``<Connect>``.

A stream is a websocket to our app (:class:`~devtools.sandbox.media.MediaStream`): a
``<Start>`` stream listens while the call goes on; ``<Connect><Stream>`` holds the call
(yielding an ``InputRequest("stream")`` for each caller action) until the app closes it,
then the TwiML goes on after it (or with the ``<Connect action>``). On a ``<Connect>``
stream the line runs frame by frame as on Twilio: the caller's audio (words, then the line's
silence while the caller waits), 50 frames a call-second; the app's audio plays meanwhile
and is cut by ``clear``; keys are ``dtmf`` messages between frames. The transcript tells
what the caller heard of the app's audio (``play``, with ``heard_ms``/``cut_at_ms``).
Stream status callbacks follow Twilio's ``StreamEvent`` values.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET  # only the Element type; parsing goes through defusedxml
from collections.abc import Generator
from urllib.parse import urljoin

from devtools.sandbox.audio import FRAME_BYTES, AudioError, frames, wav_to_mulaw
from devtools.sandbox.call import CallCore
from devtools.sandbox.clock import VirtualClock
from devtools.sandbox.media import MediaStream, MediaStreamError
from devtools.sandbox.twiml import (
    ApplicationError,
    CallEnded,
    CallerAction,
    Fetch,
    InputRequest,
    new_sid,
)

#: μ-law silence: the caller's line while nobody talks.
SILENT_FRAME = b"\xff" * FRAME_BYTES
#: Call seconds the line stays open after the caller's words or keys for the app to answer
#: (close the stream) before the caller acts again.
AFTER_INPUT_S = 2.0
#: Call seconds between two keys pressed on a stream (a key press and its release).
KEY_INTERVAL_S = 0.2


class StreamVerbs(CallCore):
    """The call's handlers of the Media Streams verbs."""

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
        self._note_stream_events(stream)
        if stream.bidirectional:
            self._note_played(stream)
            return
        if stream.audio_from_app:
            ms = len(stream.audio_from_app) // 8
            self.note("play", f"stream audio from the app ({ms} ms)", ms=ms)
            stream.audio_from_app.clear()

    def _note_stream_events(self, stream: MediaStream) -> None:
        """Transcript entries for what happened on the stream since the last call."""
        events, stream.events = stream.events, []
        for kind, data in events:
            if kind == "clear":
                self.note(
                    "stream",
                    f"clear: {data['dropped_ms']} ms of the app's audio dropped "
                    f"(heard {data['heard_ms']} ms)",
                    stream_sid=stream.stream_sid,
                    **data,
                )
            elif kind == "ignored":
                self.note(
                    "stream",
                    f"the app sent {data['event']!r} on a one-way stream: ignored "
                    "(only <Connect><Stream> is bidirectional)",
                    stream_sid=stream.stream_sid,
                    ignored=data["event"],
                )
            else:
                self.note("error", f"stream {stream.stream_sid}: malformed media from the app")

    def _note_played(self, stream: MediaStream) -> None:
        """What the caller heard of a bidirectional stream's audio (once, at its end)."""
        received = len(stream.audio_from_app) // 8
        if not received:
            return
        heard = stream.played_bytes // 8
        text = f"stream audio from the app: heard {heard} ms of {received} ms"
        if stream.cut_at_ms is not None:
            text += f", cut by clear at {stream.cut_at_ms} ms"
        self.note(
            "play",
            text,
            ms=heard,
            heard_ms=heard,
            received_ms=received,
            cleared_ms=stream.cleared_bytes // 8,
            cut_at_ms=stream.cut_at_ms,
            marks=list(stream.marks_echoed),
        )
        stream.audio_from_app.clear()

    def _line(self, audio: bytes, *, max_s: float | None = None) -> None:
        """Run the line frame by frame with the caller's ``audio`` (or silence up to
        ``max_s`` call seconds when ``audio`` is empty) until it is over or the app closed
        every bidirectional stream; each frame is 20 ms of call time."""
        chunks = frames(audio) if audio else None
        limit = len(chunks) if chunks is not None else round((max_s or 0.0) * 50)
        # A virtual clock runs the line a few times faster than real time, no faster: the
        # app decides on the audio as it comes (a flood would leave it seconds behind).
        speed = self.behaviour.stream_speed if isinstance(self.clock, VirtualClock) else 0.0
        started = time.monotonic()
        for index in range(limit):
            if speed > 0:
                delay = started + index * 0.02 / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            live = [s for s in self.streams.values() if not s.closed_by_app and not s.stopped]
            if not any(s.bidirectional for s in live):
                return
            frame = chunks[index] if chunks is not None else SILENT_FRAME
            for stream in live:
                try:
                    stream.send_frame(frame)
                    if stream.bidirectional:
                        stream.tick()
                    elif index % 50 == 49:
                        stream.poll()
                except MediaStreamError:
                    continue
            self._advance(0.02)

    def _connect_open(self, stream: MediaStream) -> bool:
        return not stream.closed_by_app and not stream.stopped

    def _verb_start(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        for node in verb:
            if node.tag != "Stream":
                self.note("error", f"<Start><{node.tag}> is not emulated; skipped")
                continue
            self._open_stream(node, bidirectional=False)
        return None
        yield  # pragma: no cover

    def _verb_stop(
        self, verb: ET.Element, doc_url: str
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
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
    ) -> Generator[InputRequest, CallerAction, Fetch | None]:
        nodes = [n for n in verb if n.tag == "Stream"]
        if not nodes:
            raise ApplicationError(12200, "<Connect> without <Stream> is not emulated")
        stream = self._open_stream(nodes[0], bidirectional=True)
        if stream is not None:
            key = stream.name or stream.stream_sid
            while self._connect_open(stream):
                stream.poll()
                self._note_stream_events(stream)
                if not self._connect_open(stream):
                    break
                action = yield InputRequest("stream", dict(nodes[0].attrib))
                if action.kind == "hangup":
                    raise CallEnded("caller hung up")
                if action.kind == "audio":
                    assert action.audio is not None  # noqa: S101 - checked by CallerAction
                    try:
                        mulaw = wav_to_mulaw(action.audio)
                    except AudioError as exc:
                        raise ValueError(f"caller audio is not a usable WAV: {exc}") from exc
                    label = action.label or "audio"
                    self.note(
                        "input", f"said {label} ({len(mulaw) / 8000:.1f} s)", text=action.value
                    )
                    self._line(mulaw)
                    self._line(b"", max_s=AFTER_INPUT_S)  # the line goes on after the words
                elif action.kind == "press":
                    self.note("input", f"pressed {action.value}", keys=action.value)
                    for index, digit in enumerate(action.value):
                        if not self._connect_open(stream):
                            # Between the socket's close and the next <Gather> keys go nowhere.
                            lost = action.value[index:].replace("w", "")
                            if lost:
                                self.note("input", f"keys after the stream closed are lost: {lost}")
                            break
                        if digit == "w":
                            self._line(b"", max_s=0.5)
                            continue
                        with contextlib.suppress(MediaStreamError):
                            stream.send_dtmf(digit)
                        self._line(b"", max_s=KEY_INTERVAL_S)
                    # The app may wait for a pause after the last key (its inter-digit gap).
                    self._line(b"", max_s=self.behaviour.stream_silence_limit_s)
                else:
                    if action.kind == "speech":
                        self.note("input", f"said «{action.value}» (no audio to stream)")
                    else:
                        self.note("input", "silence")
                    self._line(b"", max_s=self.behaviour.stream_silence_limit_s)
                    stream.poll()
                    if self._connect_open(stream):
                        self._note_stream_audio(stream)
                        raise CallEnded("caller hung up (the stream never ended)")
            self._note_stream_audio(stream)
            self.note("stream", "the app closed the stream", stream_sid=stream.stream_sid)
            stream.stop()
            self.streams.pop(key, None)
        action_url = verb.get("action")
        if action_url:
            return Fetch(urljoin(doc_url, action_url), (verb.get("method") or "POST").upper())
        return None
