"""Server websockets read by the route's own thread (flask-sock, no reader thread).

``simple_websocket.Server`` (what flask-sock hands a route) normally starts a background
thread per socket that reads the socket and passes every message to the route's thread
through a list and an event. For Twilio Media Streams (a 20 ms frame per call, 50 times a
second) that costs two thread wake-ups and a GIL hand-off per frame, and the reader thread
and a route that sends (``mark``, ``clear``) share one ``wsproto`` connection unlocked.

Here the opening handshake is still simple_websocket's (flask-sock builds the ``Server``
with :data:`SERVER_OPTIONS`, whose ``thread_class`` never starts), and
:class:`InlineWebSocket` then owns the socket: one ``recv`` (one system call, its timeout
set on the socket) takes every frame that has arrived, :class:`FrameParser` unmasks and
checks them (RFC 6455 §5), pings and closes are answered in place and messages are
returned one by one. ``receive``/``send``/``close`` keep simple_websocket's signatures and
its :class:`~simple_websocket.ConnectionClosed`, so route code does not change.

Compression (permessage-deflate) is not negotiated: call :func:`refuse_extensions` on the
request environ before the handshake (base64 audio hardly compresses; inflating costs CPU).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from contextlib import suppress
from typing import Any

from simple_websocket import ConnectionClosed

log = logging.getLogger(__name__)

RECV_BYTES = 65536
MAX_MESSAGE_BYTES = 1 << 20  # a Media Streams message is about 400 bytes
SEND_TIMEOUT_S = 10.0  # a peer that stops reading does not hold a thread for ever

# RFC 6455 opcodes and close codes
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009


class NoReaderThread:
    """``thread_class`` for simple_websocket: accepts the reader target and never runs it."""

    def __init__(self, target: Callable[[], None] | None = None, **_kwargs: Any) -> None:
        self.name = "inline-websocket"
        self._target = target

    def start(self) -> None:
        """Nothing to start: :class:`InlineWebSocket` reads in the route's thread."""

    def is_alive(self) -> bool:
        """Never running."""
        return False

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


# flask-sock passes ``app.config["SOCK_SERVER_OPTIONS"]`` to ``simple_websocket.Server``.
SERVER_OPTIONS: dict[str, Any] = {"thread_class": NoReaderThread}


def refuse_extensions(environ: MutableMapping[str, Any]) -> None:
    """Drop the client's ``Sec-WebSocket-Extensions`` offer so none is negotiated."""
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


class ProtocolViolation(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.completed: list[tuple[int, str | bytes]] = []  # what came before it, in order


def unmask(payload: bytes | bytearray, key: bytes | bytearray) -> bytes:
    """``payload`` XOR the repeated 4-byte masking ``key`` (RFC 6455 §5.3)."""
    size = len(payload)
    if size == 0:
        return b""
    mask = (bytes(key) * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )


def encode_frame(opcode: int, payload: bytes, *, mask_key: bytes | None = None) -> bytes:
    """One final frame: unmasked (server → client), or masked with the 4-byte ``mask_key``
    (client → server, as a test client or Twilio's side sends)."""
    size = len(payload)
    mask_bit = 0x80 if mask_key is not None else 0
    if size < 126:
        header = bytes((0x80 | opcode, mask_bit | size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask_key is None:
        return header + payload
    return header + mask_key + unmask(payload, mask_key)  # masking is the same XOR


def close_payload(code: int, reason: str = "") -> bytes:
    """The body of a close frame (no body for 1005/1006, which must not be sent)."""
    if code in (CLOSE_NO_STATUS, CLOSE_ABNORMAL):
        return b""
    # At most 123 bytes, cut on a character boundary (the reason must stay UTF-8).
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + text


class FrameParser:
    """Sans-IO parser of client → server frames: bytes in, complete messages out.

    :meth:`feed` returns ``(opcode, payload)`` for every complete data message (text
    decoded to ``str``) and control frame, in order; a violation raises
    :class:`ProtocolViolation` carrying what the same bytes completed before it.
    """

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._message_opcode: int | None = None  # of a fragmented message in progress
        self._parts: list[bytes] = []
        self._message_bytes = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, str | bytes]]:
        """Take received bytes; return what they complete."""
        self._buffer += data
        out: list[tuple[int, str | bytes]] = []
        try:
            used = self._parse(out)
        except ProtocolViolation as exc:
            exc.completed = out
            self._buffer.clear()  # the connection is being failed: nothing more is read
            raise
        del self._buffer[:used]
        return out

    def _parse(self, out: list[tuple[int, str | bytes]]) -> int:
        """Append the complete frames' results to ``out``; return the bytes consumed."""
        buf = self._buffer
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not b1 & 0x80:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "client frame not masked")
            fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            head = pos + 2
            if length == 126:
                if size - head < 2:
                    break
                length = int.from_bytes(buf[head : head + 2], "big")
                head += 2
            elif length == 127:
                if size - head < 8:
                    break
                length = int.from_bytes(buf[head : head + 8], "big")
                head += 8
            if length > self.max_message_bytes:
                raise ProtocolViolation(CLOSE_TOO_BIG, "message too big")
            end = head + 4 + length
            if size < end:
                break
            payload = unmask(buf[head + 4 : end], buf[head : head + 4])
            pos = end
            message = self._frame(fin, opcode, payload)
            if message is not None:
                out.append(message)
                if message[0] == OP_CLOSE:
                    break  # nothing after a close counts
        return pos

    def _frame(self, fin: int, opcode: int, payload: bytes) -> tuple[int, str | bytes] | None:
        if opcode >= OP_CLOSE:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not fin or len(payload) > 125:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "bad control frame")
            return opcode, payload
        if opcode == OP_CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._message_opcode is not None:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:
                return opcode, self._decode(opcode, payload)
            self._message_opcode = opcode
        else:
            raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        self._message_bytes += len(payload)
        if self._message_bytes > self.max_message_bytes:
            raise ProtocolViolation(CLOSE_TOO_BIG, "message too big")
        self._parts.append(payload)
        if not fin:
            return None
        kind = self._message_opcode
        whole = b"".join(self._parts)
        self._message_opcode, self._parts, self._message_bytes = None, [], 0
        return kind, self._decode(kind, whole)

    @staticmethod
    def _decode(opcode: int, payload: bytes) -> str | bytes:
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not UTF-8") from None


class InlineWebSocket:
    """A connected ``simple_websocket.Server`` (built with :data:`SERVER_OPTIONS`), read inline.

    One thread receives; :meth:`send` may be called from any thread (sends are locked).
    """

    def __init__(self, ws: Any, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if not isinstance(getattr(ws, "thread", None), NoReaderThread):
            raise TypeError("the websocket was not created with telephony.websocket.SERVER_OPTIONS")
        self._server = ws
        self._sock: socket.socket = ws.sock
        self._parser = FrameParser(max_message_bytes)
        # recv_into one buffer: a recv() would malloc 64 KB per read (and consolidate the heap)
        self._recv_buffer = memoryview(bytearray(RECV_BYTES))
        self._messages: deque[str | bytes] = deque()
        self._send_lock = threading.Lock()
        self._sent_close = False
        self._recv_timeout: float | None = None  # what SO_RCVTIMEO is set to
        self._native_timeout = True  # False: fall back to Python's poll-based timeouts
        self._sock.settimeout(None)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(SEND_TIMEOUT_S))
        except (OSError, struct.error):
            self._native_timeout = False

    @property
    def connected(self) -> bool:
        """True until either side has closed the connection."""
        return bool(self._server.connected)

    @property
    def pending(self) -> int:
        """Messages already read from the socket and not yet returned by :meth:`receive`."""
        return len(self._messages)

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message; None when nothing arrived within ``timeout`` seconds.

        ``timeout=None`` waits indefinitely, ``0`` only takes what has already arrived.
        Raises :class:`~simple_websocket.ConnectionClosed` once the connection is closed and
        every message received before the close has been returned.
        """
        if self._messages:
            return self._messages.popleft()
        while self._server.connected:
            if not self._read(timeout):
                return None
            if self._messages:
                return self._messages.popleft()
        raise ConnectionClosed(self._server.close_reason, self._server.close_message)

    def fileno(self) -> int:
        """The socket's file descriptor (for a selector)."""
        return self._sock.fileno()

    def read_ready(self) -> list[str | bytes]:
        """Every message one non-blocking read completes (plus any already buffered).

        For a reader that learnt from a selector that the socket is readable; never waits
        and never raises: check :attr:`connected` afterwards.
        """
        if self._server.connected:
            self._read(0)
        messages = list(self._messages)
        self._messages.clear()
        return messages

    def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        if not self._server.connected:
            raise ConnectionClosed(self._server.close_reason, self._server.close_message)
        if isinstance(data, bytes):
            frame = encode_frame(OP_BINARY, data)
        else:
            frame = encode_frame(OP_TEXT, str(data).encode("utf-8"))
        try:
            self._send(frame)
        except OSError as exc:
            self._lost(f"send failed: {exc}")
            raise ConnectionClosed(self._server.close_reason, self._server.close_message) from exc

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        """Start the closing handshake (the peer's reply is not waited for)."""
        if not self._server.connected:
            raise ConnectionClosed(self._server.close_reason, self._server.close_message)
        self._close(reason or CLOSE_NORMAL, message or "")

    # ------------------------------------------------------------------ internals

    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(frame)

    def _close(self, code: int, reason: str) -> None:
        """Send our close frame (once) and stop: no message is taken after it."""
        self._server.connected = False
        self._server.close_reason = code
        self._server.close_message = reason or None
        if self._sent_close:
            return
        self._sent_close = True
        try:
            self._send(encode_frame(OP_CLOSE, close_payload(code, reason)))
        except OSError as exc:
            log.info("websocket close frame not sent: %s", exc)

    def _set_recv_timeout(self, timeout: float | None) -> None:
        if timeout == self._recv_timeout:
            return
        if self._native_timeout:
            # SO_RCVTIMEO: one recv() system call waits (Python's own timeout polls first).
            try:
                self._sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout or 0.0)
                )
            except (OSError, struct.error):
                self._native_timeout = False
        if not self._native_timeout:
            self._sock.settimeout(timeout)
        self._recv_timeout = timeout

    def _read(self, timeout: float | None) -> bool:
        """Read what has arrived (waiting up to ``timeout``); False when nothing came."""
        try:
            if timeout is not None and timeout <= 0:
                size = self._sock.recv_into(self._recv_buffer, RECV_BYTES, socket.MSG_DONTWAIT)
            else:
                self._set_recv_timeout(timeout)
                size = self._sock.recv_into(self._recv_buffer, RECV_BYTES)
        except (TimeoutError, BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._lost(f"receive failed: {exc}")
            return True
        if not size:
            self._lost("the peer closed the connection without a close frame")
            return True
        violation: ProtocolViolation | None = None
        try:
            frames = self._parser.feed(self._recv_buffer[:size])
        except ProtocolViolation as exc:
            violation, frames = exc, exc.completed
        for opcode, payload in frames:
            if opcode in (OP_TEXT, OP_BINARY):
                self._messages.append(payload)
            elif opcode == OP_PING:
                self._pong(payload)
            elif opcode == OP_CLOSE:
                self._peer_closed(payload)
        if violation is not None and self._server.connected:
            log.warning(
                "websocket protocol error, closing (%d): %s", violation.code, violation.reason
            )
            self._close(violation.code, violation.reason)
        return True

    def _pong(self, payload: str | bytes) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        try:
            self._send(encode_frame(OP_PONG, data))
        except OSError as exc:
            self._lost(f"send failed: {exc}")

    def _peer_closed(self, payload: str | bytes) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        code, reason = CLOSE_NO_STATUS, ""
        if len(data) >= 2:
            code = int.from_bytes(data[:2], "big")
            reason = data[2:].decode("utf-8", "replace")
        # Echo a valid code (RFC 6455 §5.5.1, §7.4), then we are closed too.
        valid = 1000 <= code <= 1014 and code not in (1004, CLOSE_NO_STATUS, CLOSE_ABNORMAL)
        valid = valid or 3000 <= code <= 4999
        if len(data) == 1 or (len(data) >= 2 and not valid):
            self._close(CLOSE_PROTOCOL_ERROR, "bad close frame")
            return
        self._close(code if len(data) >= 2 else CLOSE_NORMAL, "")
        self._server.close_reason = code
        self._server.close_message = reason or None

    def _lost(self, why: str) -> None:
        log.info("websocket lost: %s", why)
        self._server.connected = False
        self._server.close_reason = CLOSE_ABNORMAL
        self._sent_close = True  # the connection is gone: nothing more can be sent


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (0 = wait for ever)."""
    whole = int(seconds)
    micro = round((seconds - whole) * 1_000_000)
    if seconds > 0 and whole == 0 and micro == 0:
        micro = 1
    return struct.pack("ll", whole, micro)


# --------------------------------------------------------------------------- hub


class HubSubscription:
    """One websocket served by a :class:`WebSocketHub` thread."""

    def __init__(
        self,
        ws: InlineWebSocket,
        on_messages: Callable[[list[str | bytes]], None],
        on_closed: Callable[[], None],
    ) -> None:
        self.ws = ws
        self.on_messages = on_messages
        self.on_closed = on_closed
        self.detached = False
        self.released = threading.Event()  # the hub no longer touches the socket

    def detach(self) -> None:
        """Stop reading this websocket (from any thread); ``on_closed`` is not called."""
        self.detached = True

    def wait_released(self, timeout: float = 2.0) -> bool:
        """After :meth:`detach` (not from ``on_messages``): wait until the hub let go."""
        return self.released.wait(timeout)


class _HubThread:
    def __init__(self, hub: WebSocketHub, number: int) -> None:
        self.hub = hub
        self.lock = threading.Lock()
        self.incoming: list[HubSubscription] = []
        self.serving = 0  # subscriptions attached and not yet let go
        self.wake = threading.Event()  # set on attach: an idle thread starts at once
        self.thread = threading.Thread(target=self.run, name=f"{hub.name}-{number}", daemon=True)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        registered: dict[HubSubscription, int] = {}  # -> the descriptor it was registered as
        tick, idle = self.hub.tick_s, self.hub.idle_s
        while not self.hub.stopped:
            started = time.monotonic()
            with self.lock:
                new, self.incoming = self.incoming, []
            for sub in new:
                try:
                    fd = sub.ws.fileno()
                    selector.register(fd, selectors.EVENT_READ, sub)
                    registered[sub] = fd
                except (OSError, ValueError) as exc:
                    log.info("websocket not served (%s)", exc)
                    self._let_go(selector, registered, sub, closed=True)
            for sub in [s for s in registered if s.detached]:
                self._let_go(selector, registered, sub, closed=False)
            if registered:
                ready = selector.select(idle)
            else:
                ready = []
                self.wake.wait(idle)
                self.wake.clear()
            for key, _ in ready:
                sub = key.data
                if sub.detached:
                    self._let_go(selector, registered, sub, closed=False)
                    continue
                closed = False
                try:
                    messages = sub.ws.read_ready()
                    if messages:
                        sub.on_messages(messages)
                    closed = not sub.ws.connected
                except Exception:
                    log.exception("websocket handler failed; dropping the stream")
                    closed = True
                if closed or sub.detached:
                    self._let_go(selector, registered, sub, closed=closed and not sub.detached)
            if ready:
                # Pace the rounds: frames of many sockets are read per wake-up, not one.
                rest = tick - (time.monotonic() - started)
                if rest > 0:
                    time.sleep(rest)
        selector.close()
        with self.lock:
            dropped, self.incoming = [*registered, *self.incoming], []
        for sub in dropped:  # stopped: whoever waits for these is let go
            sub.released.set()

    def _let_go(
        self,
        selector: selectors.BaseSelector,
        registered: dict[HubSubscription, int],
        sub: HubSubscription,
        *,
        closed: bool,
    ) -> None:
        fd = registered.pop(sub, None)
        if fd is not None:
            # By the descriptor registered: the socket may be closed already.
            with suppress(KeyError, ValueError):
                selector.unregister(fd)
        with self.lock:
            self.serving -= 1
        sub.released.set()
        if closed:
            try:
                sub.on_closed()
            except Exception:
                log.exception("websocket close handler failed")


class WebSocketHub:
    """A few threads read many :class:`InlineWebSocket` with selectors, in paced rounds.

    A thread per socket wakes up for every 20 ms media frame; here each hub thread wakes at
    most every ``tick_s`` and handles the frames of all its ready sockets in that round
    (``on_messages`` runs on the hub thread, so it must not block on the network: hand
    slow work to another thread). ``threads`` defaults to two per CPU: work that releases
    the GIL (speech decoding) keeps every core busy, and a thread that is preempted or
    decoding holds up only its share of the sockets (one per CPU used about the same CPU,
    within this machine's noise). Threads start on first use and are daemons.
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        tick_s: float = 0.004,
        idle_s: float = 0.05,
        name: str = "websocket-hub",
    ) -> None:
        self.size = max(1, threads) if threads else 2 * (os.cpu_count() or 1)
        self.tick_s = tick_s
        self.idle_s = idle_s
        self.name = name
        self.stopped = False
        self._lock = threading.Lock()
        self._threads: list[_HubThread] = []

    def attach(
        self,
        ws: InlineWebSocket,
        on_messages: Callable[[list[str | bytes]], None],
        on_closed: Callable[[], None],
    ) -> HubSubscription:
        """Serve ``ws``: ``on_messages(batch)`` for what arrives, ``on_closed()`` once when
        the connection closes or breaks (not after :meth:`HubSubscription.detach`)."""
        sub = HubSubscription(ws, on_messages, on_closed)
        with self._lock:
            if self.stopped:
                raise RuntimeError("the websocket hub is stopped")
            if not self._threads:
                self._threads = [_HubThread(self, i) for i in range(self.size)]
                for worker in self._threads:
                    worker.thread.start()
            worker = min(self._threads, key=lambda t: t.serving)
            with worker.lock:
                worker.serving += 1
                worker.incoming.append(sub)
            worker.wake.set()
        return sub

    def stop(self) -> None:
        """Stop the threads (subscriptions are dropped without ``on_closed``)."""
        with self._lock:
            self.stopped = True
            threads, self._threads = self._threads, []
        for worker in threads:
            worker.thread.join(timeout=2 * self.idle_s + 1)


_shared: tuple[int, WebSocketHub] | None = None
_shared_lock = threading.Lock()


def shared_hub() -> WebSocketHub:
    """This process's hub (a new one after a fork: threads do not survive it)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            _shared = (os.getpid(), WebSocketHub(name="media-hub"))
        return _shared[1]
