"""The Media Streams side of the sandbox: it opens our app's websocket like Twilio does.

Messages follow https://twilio.com/docs/voice/media-streams/websocket-messages:
``connected`` → ``start`` (with ``customParameters`` from ``<Parameter>``) → ``media``
(base64 μ-law 8 kHz, whole 160-byte 20 ms frames, ``sequenceNumber``/``chunk``/``timestamp``
as strings) / ``dtmf`` (bidirectional streams only) / ``mark`` echoes → ``stop``, then close.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from devtools.sandbox.audio import FRAME_BYTES, frames
from devtools.sandbox.wsclient import WebSocketClient, WebSocketClosed
from telephony.signing import SIGNATURE_HEADER, sign

WsConnect = Callable[[str, Mapping[str, str]], Any]


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
        self.audio_from_app = bytearray()
        self.closed_by_app = False
        self.stopped = False

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

    def send_audio(self, mulaw: bytes) -> int:
        """Send caller audio as 20 ms ``media`` frames; returns the number of frames."""
        count = 0
        for frame in frames(mulaw):
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
            count += 1
            if self.realtime:
                time.sleep(0.02)
            if count % 50 == 0:
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
        if event == "media":
            payload = (message.get("media") or {}).get("payload", "")
            try:
                self.audio_from_app.extend(base64.b64decode(payload))
            except ValueError:
                return
        elif event == "mark" and not self.stopped:
            # Our audio plays instantly in the sandbox, so the mark is echoed at once.
            name = (message.get("mark") or {}).get("name", "")
            with contextlib.suppress(MediaStreamError):  # closed meanwhile: nothing to echo
                self._send(
                    {
                        "event": "mark",
                        "sequenceNumber": self._next_seq(),
                        "streamSid": self.stream_sid,
                        "mark": {"name": name},
                    }
                )

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
