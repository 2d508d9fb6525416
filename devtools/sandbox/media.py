"""The Media Streams side of the sandbox: it opens our app's websocket like Twilio does.

Messages follow https://twilio.com/docs/voice/media-streams/websocket-messages:
``connected`` → ``start`` (with ``customParameters`` from ``<Parameter>``) → ``media``
(base64 μ-law 8 kHz, whole 160-byte 20 ms frames, ``sequenceNumber``/``chunk``/``timestamp``
as strings) / ``dtmf`` (bidirectional streams only) / ``mark`` echoes → ``stop``, then close.

A bidirectional stream (``<Connect><Stream>``) plays what the app sends: its ``media`` is
queued and played at the line's pace — 20 ms for every 20 ms caller frame the sandbox sends
(:meth:`MediaStream.tick`), so "time" is the call's own clock, however fast the sandbox
runs; a ``mark`` is echoed once the audio queued before it has played; ``clear`` drops the
queued audio and echoes the marks still pending. What the caller heard is kept
(:attr:`MediaStream.played_bytes`, :attr:`MediaStream.cut_at_ms`). While the app has a
prompt under way (audio sent, no mark after it yet) a tick waits briefly for more of it, so
a fast sandbox never outruns an app that paces its audio by the caller's frames. A one-way
stream (``<Start><Stream>``) ignores everything the app sends, as Twilio does (noted).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from devtools.sandbox.audio import FRAME_BYTES, frames
from devtools.sandbox.wsclient import WebSocketClient, WebSocketClosed
from telephony.signing import SIGNATURE_HEADER, sign

WsConnect = Callable[[str, Mapping[str, str]], Any]

#: Real seconds a tick waits for the app's audio while its prompt is under way (or for the
#: app's first message at the start of a bidirectional stream).
APP_AUDIO_WAIT_S = 1.0


class MediaStreamError(Exception):
    """The websocket could not be opened or broke."""


def default_ws_connect(url: str, headers: Mapping[str, str]) -> Any:
    """Open a websocket with the sandbox's single-threaded client."""
    try:
        return WebSocketClient(url, headers)
    except (OSError, ValueError) as exc:
        raise MediaStreamError(f"cannot open {url}: {exc}") from exc


class MediaStream:
    """One stream from a ``<Start><Stream>`` or ``<Connect><Stream>``."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        account_sid: str,
        call_sid: str,
        stream_sid: str,
        name: str | None = None,
        track: str = "inbound_track",
        custom_parameters: Mapping[str, str] | None = None,
        bidirectional: bool = False,
        ws_connect: WsConnect = default_ws_connect,
        realtime: bool = False,
    ) -> None:
        self.url = url
        self.token = token
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.name = name
        self.track = track
        self.custom_parameters = dict(custom_parameters or {})
        self.bidirectional = bidirectional
        self.realtime = realtime
        self._connect = ws_connect
        self._ws: Any = None
        self._seq = 0
        self._chunk = 0
        self._timestamp_ms = 0
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.audio_from_app = bytearray()  # every media payload the app sent
        self.closed_by_app = False
        self.stopped = False
        # Playout of a bidirectional stream: audio chunks and mark names, in order.
        self._playout: deque[bytes | str] = deque()
        self.queued_bytes = 0
        self.played_bytes = 0  # the app's audio the caller heard
        self.cleared_bytes = 0  # dropped by ``clear`` before it played
        self.cut_at_ms: int | None = None  # where the first ``clear`` cut the audio off
        self.marks_echoed: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []  # for the call's transcript
        self._app_busy = bidirectional  # a prompt under way (or the start): ticks wait

    # -- sending ----------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._ws is None or self.stopped:
            raise MediaStreamError("stream is not open")
        try:
            self._ws.send(json.dumps(message))
        except (WebSocketClosed, OSError) as exc:
            self.closed_by_app = True
            raise MediaStreamError(f"stream {self.stream_sid} closed: {exc}") from exc
        self.sent.append(message)

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def open(self) -> None:
        """Connect and send ``connected`` and ``start``."""
        headers = {SIGNATURE_HEADER: sign(self.token, self.url, {})}
        self._ws = self._connect(self.url, headers)
        self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        tracks = (
            ["inbound", "outbound"]
            if self.track == "both_tracks"
            else [self.track.replace("_track", "")]
        )
        self._send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "callSid": self.call_sid,
                    "streamSid": self.stream_sid,
                    "tracks": tracks,
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": 8000,
                        "channels": 1,
                    },
                },
            }
        )

    def send_frame(self, frame: bytes) -> None:
        """Send one frame of caller audio (a ``media`` message)."""
        self._chunk += 1
        self._send(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(self._timestamp_ms),
                    "payload": base64.b64encode(frame).decode("ascii"),
                },
            }
        )
        self._timestamp_ms += FRAME_BYTES // 8

    def send_audio(self, mulaw: bytes) -> int:
        """Send caller audio as 20 ms ``media`` frames; returns the number of frames.

        On a bidirectional stream every frame is a :meth:`tick` of the app's playout.
        """
        count = 0
        for frame in frames(mulaw):
            self.send_frame(frame)
            count += 1
            if self.realtime:
                time.sleep(0.02)
            if self.bidirectional:
                self.tick()
            elif count % 50 == 0:
                self.poll()
        return count

    def send_dtmf(self, digit: str) -> None:
        """Send a ``dtmf`` message (Twilio does this on bidirectional streams only)."""
        if not self.bidirectional:
            return
        self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    # -- receiving --------------------------------------------------------------------

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        self.received.append(message)
        event = message.get("event")
        if not self.bidirectional:
            if event in ("media", "mark", "clear"):
                # Twilio ignores what the app sends on a <Start> stream.
                self.events.append(("ignored", {"event": event}))
            return
        if event == "media":
            payload = (message.get("media") or {}).get("payload", "")
            try:
                audio = base64.b64decode(payload, validate=True)
            except (ValueError, binascii.Error):
                self.events.append(("bad_media", {}))
                return
            self.audio_from_app.extend(audio)
            if audio:
                self._playout.append(audio)
                self.queued_bytes += len(audio)
                self._app_busy = True
        elif event == "mark":
            name = str((message.get("mark") or {}).get("name", ""))
            self._playout.append(name)
            self._app_busy = False
            self._echo_ready_marks()
        elif event == "clear":
            self._clear()

    def _echo(self, name: str) -> None:
        """Echo a mark (the audio before it has played, or it was cleared)."""
        self.marks_echoed.append(name)
        if self.stopped:
            return
        with contextlib.suppress(MediaStreamError):  # closed meanwhile: nothing to echo
            self._send(
                {
                    "event": "mark",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "mark": {"name": name},
                }
            )

    def _echo_ready_marks(self) -> None:
        while self._playout and isinstance(self._playout[0], str):
            name = self._playout.popleft()
            assert isinstance(name, str)  # noqa: S101 - checked by the loop
            self._echo(name)

    def _clear(self) -> None:
        """``clear``: drop the queued audio, echo the pending marks (Twilio does both)."""
        dropped = self.queued_bytes
        pending = [item for item in self._playout if isinstance(item, str)]
        self._playout.clear()
        self.queued_bytes = 0
        self.cleared_bytes += dropped
        self._app_busy = False
        if dropped and self.cut_at_ms is None:
            self.cut_at_ms = self.played_bytes // 8
        self.events.append(
            ("clear", {"dropped_ms": dropped // 8, "heard_ms": self.played_bytes // 8})
        )
        for name in pending:
            self._echo(name)

    def play(self, nbytes: int) -> None:
        """Let ``nbytes`` of the queued app audio play (marks reached are echoed)."""
        remaining = nbytes
        while remaining > 0 and self._playout:
            head = self._playout[0]
            if isinstance(head, str):
                self._echo_ready_marks()
                continue
            take = min(len(head), remaining)
            if take == len(head):
                self._playout.popleft()
            else:
                self._playout[0] = head[take:]
            self.played_bytes += take
            self.queued_bytes -= take
            remaining -= take
        self._echo_ready_marks()

    def tick(self) -> None:
        """20 ms of call time passed on a bidirectional stream (the sandbox sent a caller
        frame): take what the app sent, waiting for it while its prompt is under way, and
        play 20 ms of it."""
        self.poll()
        if self._app_busy and not self.queued_bytes and not self.closed_by_app:
            deadline = time.monotonic() + APP_AUDIO_WAIT_S
            while self._app_busy and not self.queued_bytes and not self.closed_by_app:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._app_busy = False  # the app sends nothing (more) for now
                    break
                self.poll(wait_s=min(0.05, left))
        self.play(FRAME_BYTES)

    def poll(self, wait_s: float = 0.0) -> None:
        """Read what the app sent, waiting up to ``wait_s`` for the first message."""
        if self._ws is None:
            return
        timeout: float = wait_s
        while not self.closed_by_app:
            try:
                raw = self._ws.receive(timeout=timeout)
            except (WebSocketClosed, OSError):  # the app closed the socket
                self.closed_by_app = True
                return
            if raw is None:
                return
            self._handle(raw)
            # Then drain what follows closely (the app often sends media + mark together).
            timeout = min(0.05, wait_s)

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real time) for the app to close the socket."""
        deadline = time.monotonic() + timeout_s
        while not self.closed_by_app and time.monotonic() < deadline:
            self.poll(wait_s=min(0.1, max(0.0, deadline - time.monotonic())))
        return self.closed_by_app

    def stop(self, grace_s: float = 2.0) -> None:
        """Send ``stop``, give the app ``grace_s`` (real time) to close, then close.

        The sandbox streams faster than real time; without the grace period the socket
        would close while the app still has frames to read, and its replies would fail.
        """
        if self._ws is None or self.stopped:
            return
        if not self.closed_by_app:
            with contextlib.suppress(MediaStreamError):
                self._send(
                    {
                        "event": "stop",
                        "sequenceNumber": self._next_seq(),
                        "streamSid": self.stream_sid,
                        "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                    }
                )
            self.stopped = True
            self.wait_closed(grace_s)
        self.stopped = True
        with contextlib.suppress(WebSocketClosed, OSError):
            self._ws.close()
