"""A single-threaded websocket client for the Media Streams emulation.

``simple_websocket.Client`` reads the socket in a background thread that shares one
``wsproto`` connection with the sending thread; when our app sends (``mark``, ``media``)
while the sandbox streams caller audio, the two race and the stream breaks now and then.
This client does both in the caller's thread with ``wsproto``, so nothing races and tests
stay deterministic.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

RECV_BYTES = 65536


class WebSocketClosed(ConnectionError):
    """The websocket is closed (by the peer or by us)."""


class WebSocketClient:
    """Connect on construction; ``send``, ``receive(timeout)`` and ``close`` in one thread."""

    def __init__(
        self, url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 5.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a websocket URL: {url}")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock = socket.create_connection((parts.hostname, port), timeout=timeout_s)
        try:
            if secure:
                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=parts.hostname)
            self._sock = sock
            self._ws = WSConnection(ConnectionType.CLIENT)
            self._messages: list[str] = []
            self._partial: list[str] = []
            self.connected = False
            extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
            self._sock.sendall(
                self._ws.send(Request(host=parts.netloc, target=target, extra_headers=extra))
            )
            self._await_accept(url, time.monotonic() + timeout_s)
        except BaseException:
            sock.close()
            raise

    def _await_accept(self, url: str, deadline: float) -> None:
        while not self.connected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"websocket handshake with {url} timed out")
            self._read(max(0.01, deadline - time.monotonic()))

    def _read(self, timeout: float) -> bool:
        """Read and process what arrived within ``timeout``; False when nothing came."""
        self._sock.settimeout(timeout if timeout > 0 else 0.0)
        try:
            data = self._sock.recv(RECV_BYTES)
        except (TimeoutError, BlockingIOError):
            return False
        except OSError as exc:
            self._closed()
            raise WebSocketClosed(str(exc)) from exc
        if not data:
            self._closed()
            return True
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, AcceptConnection):
                self.connected = True
            elif isinstance(event, RejectConnection | RejectData):
                raise ConnectionError("websocket upgrade rejected")
            elif isinstance(event, TextMessage):
                self._partial.append(event.data)
                if event.message_finished:
                    self._messages.append("".join(self._partial))
                    self._partial.clear()
            elif isinstance(event, BytesMessage):
                continue
            elif isinstance(event, Ping):
                self._sock.sendall(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._sock.sendall(self._ws.send(event.response()))
                self._closed()
        return True

    def _closed(self) -> None:
        self.connected = False

    def send(self, text: str) -> None:
        """Send a text message."""
        if not self.connected:
            raise WebSocketClosed("websocket is closed")
        try:
            self._sock.sendall(self._ws.send(TextMessage(data=text)))
        except OSError as exc:
            self._closed()
            raise WebSocketClosed(str(exc)) from exc

    def receive(self, timeout: float | None = None) -> str | None:
        """The next text message, or None when none arrived within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if not self.connected:
                raise WebSocketClosed("websocket is closed")
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            if not self._read(max(0.0, remaining)) and remaining <= 0:
                return None
        return self._messages.pop(0)

    def close(self, timeout_s: float = 1.0) -> None:
        """The closing handshake: send a close, read until the peer's close or EOF, close.

        Reading to the end matters: closing a socket with unread data makes the kernel
        send RST, and the peer may lose frames it has not read yet.
        """
        try:
            if self.connected and self._ws.state is ConnectionState.OPEN:
                self._sock.sendall(self._ws.send(CloseConnection(code=1000)))
            deadline = time.monotonic() + timeout_s
            while self._ws.state is not ConnectionState.CLOSED and time.monotonic() < deadline:
                if self._read(max(0.0, deadline - time.monotonic())) and not self.connected:
                    break
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            self._closed()
            self._sock.close()
