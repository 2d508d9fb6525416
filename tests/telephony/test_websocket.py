"""``telephony.websocket``: the RFC 6455 frame parser, the inline websocket and the hub.

* :class:`FrameParser`, :func:`unmask`, :func:`encode_frame` and :func:`close_payload` are
  fed hand-built client frames (masked with a random key, RFC 6455 §5.2).
* :class:`InlineWebSocket` runs end to end: a Flask app with ``flask_sock`` (built with
  :data:`SERVER_OPTIONS`, extensions refused in ``before_request``) is served by werkzeug on
  loopback and driven by a raw-socket client written here and by the sandbox's
  :class:`WebSocketClient`.
* :class:`WebSocketHub` serves the routes' sockets: batches in order per socket,
  ``on_closed`` once, ``detach``, a failing handler, ``stop``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Self

import pytest
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from werkzeug.serving import make_server

from devtools.sandbox.wsclient import WebSocketClient, WebSocketClosed
from telephony.websocket import (
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    MAX_MESSAGE_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SERVER_OPTIONS,
    FrameParser,
    HubSubscription,
    InlineWebSocket,
    NoReaderThread,
    ProtocolViolation,
    WebSocketHub,
    close_payload,
    encode_frame,
    refuse_extensions,
    shared_hub,
    unmask,
)

WAIT_S = 5.0
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# --------------------------------------------------------------------------- helpers


def client_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client → server frame (RFC 6455 §5.2), masked with a random key.

    ``length`` overrides the length written in the header (the payload is sent as is).
    """
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    size = len(data) if length is None else length
    head = bytes(((0x80 if fin else 0) | (rsv << 4) | opcode,))
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes((mask_bit | size,))
    elif size < 1 << 16:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", size)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack("!Q", size)
    if not masked:
        return head + data
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def parse_server_frame(buffer: bytes | bytearray) -> tuple[tuple[bool, int, bytes], int] | None:
    """``((fin, opcode, payload), bytes used)`` for an unmasked server frame, None if partial."""
    if len(buffer) < 2:
        return None
    b0, b1 = buffer[0], buffer[1]
    assert not b1 & 0x80, "a server frame must not be masked"
    length, pos = b1 & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, pos = struct.unpack("!H", buffer[2:4])[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, pos = struct.unpack("!Q", buffer[2:10])[0], 10
    if len(buffer) < pos + length:
        return None
    return (bool(b0 & 0x80), b0 & 0x0F, bytes(buffer[pos : pos + length])), pos + length


class RawClient:
    """A websocket client on a plain socket: the upgrade request, raw frames both ways."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{k}: {v}" for k, v in (headers or {}).items()),
            ]
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            self.buffer = bytearray()
            while b"\r\n\r\n" not in self.buffer:
                self._recv_more()
            head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            self.buffer = bytearray(rest)
            status, *header_lines = head.decode("latin-1").split("\r\n")
            self.status = int(status.split()[1])
            self.headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines)
            }
            expected = base64.b64encode(
                hashlib.sha1((key + GUID).encode(), usedforsecurity=False).digest()
            ).decode()
            assert self.status == 101, head
            assert self.headers["sec-websocket-accept"] == expected
        except BaseException:
            self.sock.close()
            raise

    def _recv_more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes | str = b"", **kwargs: Any) -> None:
        self.sock.sendall(client_frame(opcode, payload, **kwargs))

    def read_frame(self) -> tuple[bool, int, bytes]:
        """The next server frame (within the socket timeout)."""
        while (parsed := parse_server_frame(self.buffer)) is None:
            self._recv_more()
        frame, used = parsed
        del self.buffer[:used]
        return frame

    def read_message(self) -> tuple[int, bytes]:
        """The next data frame (server frames are never fragmented here)."""
        fin, opcode, payload = self.read_frame()
        assert fin
        return opcode, payload

    def read_close(self) -> tuple[int, str]:
        """Skip to the server's close frame: ``(code, reason)``."""
        while True:
            _fin, opcode, payload = self.read_frame()
            if opcode == OP_CLOSE:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def read_to_eof(self) -> None:
        """Read (and drop) whatever follows until the server closes the connection."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return
            except ConnectionResetError:
                return
        raise AssertionError("the server did not close the connection")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def wait_for(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@dataclass
class HubConn:
    """What the hub did for one route's socket."""

    batches: list[list[str | bytes]] = field(default_factory=list)
    closed: int = 0
    subscription: HubSubscription | None = None
    done: threading.Event = field(default_factory=threading.Event)
    got_message: threading.Event = field(default_factory=threading.Event)
    route_result: list[Any] = field(default_factory=list)

    def messages(self) -> list[str | bytes]:
        return [m for batch in list(self.batches) for m in batch]


@dataclass
class Served:
    port: int
    events: queue.Queue[tuple[Any, ...]]
    hub: WebSocketHub
    conns: dict[str, HubConn]

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def event(self) -> tuple[Any, ...]:
        return self.events.get(timeout=WAIT_S)


def build_app(served: Served) -> Flask:
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = dict(SERVER_OPTIONS)
    sock = Sock(app)

    @app.before_request
    def no_extensions() -> None:
        refuse_extensions(request.environ)

    @sock.route("/echo")
    def echo(raw: Any) -> None:
        ws = InlineWebSocket(raw)
        try:
            while True:
                message = ws.receive(timeout=10)
                if message is None:
                    served.events.put(("timeout",))
                    return
                served.events.put(("message", message))
                if message == "bye":
                    ws.close(CLOSE_NORMAL, "bye")
                    return
                ws.send(message.upper() if isinstance(message, str) else message[::-1])
        except ConnectionClosed as exc:
            served.events.put(("closed", exc.reason))

    @sock.route("/timeouts")
    def timeouts(raw: Any) -> None:
        ws = InlineWebSocket(raw)
        started = time.monotonic()
        first = ws.receive(timeout=0.1)
        waited = time.monotonic() - started
        started = time.monotonic()
        second = ws.receive(timeout=0)
        polled = time.monotonic() - started
        served.events.put(("timeouts", first, waited, second, polled))
        ws.send("ready")
        head = ws.receive(timeout=WAIT_S)  # the client sends three messages in one write
        pending = ws.pending
        rest = [ws.receive(timeout=0), ws.receive(timeout=0)]
        served.events.put(("burst", head, pending, rest, ws.pending, ws.connected))
        ws.close()

    @sock.route("/hub/<name>")
    def on_hub(raw: Any, name: str) -> None:
        ws = InlineWebSocket(raw)
        conn = served.conns.setdefault(name, HubConn())

        def on_messages(batch: list[str | bytes]) -> None:
            assert isinstance(batch, list)
            conn.batches.append(batch)
            conn.got_message.set()
            if "boom" in batch:
                raise RuntimeError("handler failed")
            ws.send(f"ack:{batch[-1]!s}")

        def on_closed() -> None:
            conn.closed += 1
            conn.done.set()

        conn.subscription = served.hub.attach(ws, on_messages, on_closed)
        if name.startswith("detach"):
            # Take the socket back after the first batch, and read it in the route.
            conn.got_message.wait(WAIT_S)
            conn.subscription.detach()
            conn.route_result.append(conn.subscription.wait_released(WAIT_S))
            ws.send("detached")
            conn.route_result.append(ws.receive(timeout=WAIT_S))
            ws.close()
            conn.done.set()
            return
        conn.done.wait(10)

    return app


@pytest.fixture
def served() -> Iterator[Served]:
    hub = WebSocketHub(threads=2)
    state = Served(port=0, events=queue.Queue(), hub=hub, conns={})
    server = make_server("127.0.0.1", 0, build_app(state), threaded=True)
    state.port = int(server.server_port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=WAIT_S)
    hub.stop()


# --------------------------------------------------------------------------- FrameParser


def test_unmask_round_trips() -> None:
    key = os.urandom(4)
    for size in (0, 1, 3, 4, 5, 125, 4096, 70_001):
        payload = os.urandom(size)
        masked = unmask(payload, key)
        assert len(masked) == size
        assert unmask(masked, key) == payload
        assert unmask(bytearray(masked), bytearray(key)) == payload
        assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70_000, 10)],
)
def test_encode_frame_length_encodings(size: int, header: int) -> None:
    payload = os.urandom(size)
    frame = encode_frame(OP_BINARY, payload)
    assert len(frame) == header + size
    assert frame[0] == 0x80 | OP_BINARY
    assert not frame[1] & 0x80  # server frames are not masked
    assert parse_server_frame(frame) == ((True, OP_BINARY, payload), header + size)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_masked_frames_from_encode_frame_parse_back(size: int) -> None:
    payload = os.urandom(size)
    key = os.urandom(4)
    frame = encode_frame(OP_BINARY, payload, mask_key=key)
    assert frame[1] & 0x80  # the mask bit
    head = len(frame) - size - 4
    assert frame[head : head + 4] == key
    assert frame[head + 4 :] == bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    parser = FrameParser(max_message_bytes=1 << 17)
    assert parser.feed(frame) == [(OP_BINARY, payload)]


def test_close_payload() -> None:
    assert close_payload(CLOSE_NORMAL) == b"\x03\xe8"
    assert close_payload(1001, "going away") == b"\x03\xe9going away"
    assert close_payload(1005) == b""
    assert close_payload(1006, "lost") == b""
    assert len(close_payload(1000, "x" * 500)) == 125  # a control frame's limit


def test_close_payload_keeps_a_long_cyrillic_reason_valid_utf8() -> None:
    body = close_payload(CLOSE_NORMAL, "звонок завершён " * 10)
    assert len(body) <= 125
    body[2:].decode("utf-8")


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        pytest.param([client_frame(OP_TEXT, "привет")], [(OP_TEXT, "привет")], id="text"),
        pytest.param([client_frame(OP_TEXT, "")], [(OP_TEXT, "")], id="empty-text"),
        pytest.param(
            [client_frame(OP_BINARY, b"\x00\xff\x10")], [(OP_BINARY, b"\x00\xff\x10")], id="binary"
        ),
        pytest.param([client_frame(OP_TEXT, "a" * 200)], [(OP_TEXT, "a" * 200)], id="len-126"),
        pytest.param(
            [client_frame(OP_BINARY, b"\x01" * 65535)], [(OP_BINARY, b"\x01" * 65535)], id="65535"
        ),
        pytest.param(
            [client_frame(OP_PING, b"p1"), client_frame(OP_PONG, b"p2")],
            [(OP_PING, b"p1"), (OP_PONG, b"p2")],
            id="control",
        ),
        pytest.param(
            [client_frame(OP_TEXT, "one"), client_frame(OP_BINARY, b"two"), client_frame(OP_TEXT)],
            [(OP_TEXT, "one"), (OP_BINARY, b"two"), (OP_TEXT, "")],
            id="several",
        ),
        pytest.param(
            [
                client_frame(OP_BINARY, b"ab", fin=False),
                client_frame(OP_CONTINUATION, b"cd", fin=False),
                client_frame(OP_CONTINUATION, b"", fin=False),
                client_frame(OP_CONTINUATION, b"ef"),
            ],
            [(OP_BINARY, b"abcdef")],
            id="fragmented-binary",
        ),
        pytest.param(
            [client_frame(OP_CLOSE, b"\x03\xe9bye"), client_frame(OP_TEXT, "after")],
            [(OP_CLOSE, b"\x03\xe9bye")],
            id="nothing-after-close",
        ),
    ],
)
def test_parser_messages_in_one_feed(
    frames: list[bytes], expected: list[tuple[int, str | bytes]]
) -> None:
    assert FrameParser().feed(b"".join(frames)) == expected


def test_parser_127_length_with_a_raised_limit() -> None:
    payload = os.urandom(70_000)
    frame = client_frame(OP_BINARY, payload)
    assert frame[1] & 0x7F == 127
    assert FrameParser(max_message_bytes=100_000).feed(frame) == [(OP_BINARY, payload)]


def test_parser_one_byte_at_a_time() -> None:
    parser = FrameParser()
    text = "по байту " * 20  # > 125 bytes: a 16-bit length
    stream = client_frame(OP_TEXT, text) + client_frame(OP_PING, b"x")
    out: list[tuple[int, str | bytes]] = []
    first_end = len(client_frame(OP_TEXT, text))
    for i in range(len(stream)):
        got = parser.feed(stream[i : i + 1])
        if i < first_end - 1:
            assert got == [], i
        out += got
    assert out == [(OP_TEXT, text), (OP_PING, b"x")]


def test_parser_frames_split_anywhere() -> None:
    stream = b"".join(
        [
            client_frame(OP_TEXT, "один"),
            client_frame(OP_BINARY, os.urandom(300)),
            client_frame(OP_TEXT, "три"),
        ]
    )
    whole = FrameParser().feed(stream)
    assert [m[0] for m in whole] == [OP_TEXT, OP_BINARY, OP_TEXT]
    for cut in range(len(stream) + 1):
        parser = FrameParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == whole, cut


def test_parser_fragmented_text_with_an_interleaved_ping() -> None:
    parser = FrameParser()
    text = "фрагменты"
    data = text.encode()
    # The cut falls inside a two-byte character: only the whole message is decoded.
    parts = [data[:3], data[3:9], data[9:]]
    assert parser.feed(client_frame(OP_TEXT, parts[0], fin=False)) == []
    assert parser.feed(client_frame(OP_PING, b"keepalive")) == [(OP_PING, b"keepalive")]
    got = parser.feed(
        client_frame(OP_CONTINUATION, parts[1], fin=False)
        + client_frame(OP_PING, b"2")
        + client_frame(OP_CONTINUATION, parts[2])
    )
    assert got == [(OP_PING, b"2"), (OP_TEXT, text)]
    # And a new message may start afterwards.
    assert parser.feed(client_frame(OP_TEXT, "next")) == [(OP_TEXT, "next")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(
            client_frame(OP_TEXT, "hi", masked=False), CLOSE_PROTOCOL_ERROR, id="unmasked"
        ),
        pytest.param(client_frame(OP_TEXT, "hi", rsv=0b100), CLOSE_PROTOCOL_ERROR, id="rsv1"),
        pytest.param(client_frame(OP_TEXT, "hi", rsv=0b010), CLOSE_PROTOCOL_ERROR, id="rsv2"),
        pytest.param(client_frame(OP_TEXT, "hi", rsv=0b001), CLOSE_PROTOCOL_ERROR, id="rsv3"),
        pytest.param(client_frame(0x3, b"hi"), CLOSE_PROTOCOL_ERROR, id="opcode-3"),
        pytest.param(client_frame(0xB, b"hi"), CLOSE_PROTOCOL_ERROR, id="opcode-B"),
        pytest.param(client_frame(OP_PING, b"x" * 126), CLOSE_PROTOCOL_ERROR, id="long-ping"),
        pytest.param(client_frame(OP_CLOSE, b"x" * 200), CLOSE_PROTOCOL_ERROR, id="long-close"),
        pytest.param(client_frame(OP_PING, b"x", fin=False), CLOSE_PROTOCOL_ERROR, id="ping-fin0"),
        pytest.param(
            client_frame(OP_CONTINUATION, b"x"), CLOSE_PROTOCOL_ERROR, id="lone-continuation"
        ),
        pytest.param(
            client_frame(OP_TEXT, "a", fin=False) + client_frame(OP_TEXT, "b"),
            CLOSE_PROTOCOL_ERROR,
            id="text-inside-fragmented",
        ),
        pytest.param(
            client_frame(OP_BINARY, b"a", fin=False) + client_frame(OP_BINARY, b"b", fin=False),
            CLOSE_PROTOCOL_ERROR,
            id="binary-inside-fragmented",
        ),
        pytest.param(client_frame(OP_TEXT, b"\xff\xfe"), CLOSE_INVALID_DATA, id="bad-utf8"),
        pytest.param(
            client_frame(OP_TEXT, "ж".encode()[:1]), CLOSE_INVALID_DATA, id="truncated-utf8"
        ),
        pytest.param(
            client_frame(OP_TEXT, b"ok", fin=False) + client_frame(OP_CONTINUATION, b"\xc3"),
            CLOSE_INVALID_DATA,
            id="bad-utf8-fragmented",
        ),
    ],
)
def test_parser_violations(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        FrameParser().feed(data)
    assert caught.value.code == code
    assert caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_parser_violation_fed_byte_by_byte() -> None:
    parser = FrameParser()
    frame = client_frame(OP_CONTINUATION, b"orphan")
    for i in range(len(frame) - 1):
        assert parser.feed(frame[i : i + 1]) == []
    with pytest.raises(ProtocolViolation) as caught:
        parser.feed(frame[-1:])
    assert caught.value.code == CLOSE_PROTOCOL_ERROR


def test_parser_message_too_big_as_one_frame() -> None:
    parser = FrameParser(max_message_bytes=100)
    assert parser.feed(client_frame(OP_BINARY, b"x" * 100)) == [(OP_BINARY, b"x" * 100)]
    with pytest.raises(ProtocolViolation) as caught:
        # The header alone is enough: the payload is not waited for.
        parser.feed(client_frame(OP_BINARY, b"x" * 101)[:8])
    assert caught.value.code == CLOSE_TOO_BIG


def test_parser_message_too_big_from_the_127_length() -> None:
    header = bytes((0x80 | OP_BINARY, 0x80 | 127)) + struct.pack("!Q", MAX_MESSAGE_BYTES + 1)
    with pytest.raises(ProtocolViolation) as caught:
        FrameParser().feed(header)
    assert caught.value.code == CLOSE_TOO_BIG


def test_parser_message_too_big_as_fragments() -> None:
    parser = FrameParser(max_message_bytes=100)
    assert parser.feed(client_frame(OP_TEXT, "x" * 60, fin=False)) == []
    assert parser.feed(client_frame(OP_CONTINUATION, "x" * 40, fin=False)) == []
    with pytest.raises(ProtocolViolation) as caught:
        parser.feed(client_frame(OP_CONTINUATION, "x"))
    assert caught.value.code == CLOSE_TOO_BIG


def test_parser_fragments_up_to_the_limit_pass() -> None:
    parser = FrameParser(max_message_bytes=100)
    data = client_frame(OP_TEXT, "x" * 60, fin=False) + client_frame(OP_CONTINUATION, "y" * 40)
    assert parser.feed(data) == [(OP_TEXT, "x" * 60 + "y" * 40)]
    # The count starts again for the next message.
    data = client_frame(OP_TEXT, "z" * 70, fin=False) + client_frame(OP_CONTINUATION, "w" * 30)
    assert parser.feed(data) == [(OP_TEXT, "z" * 70 + "w" * 30)]


# --------------------------------------------------------------------------- InlineWebSocket


def test_refuse_extensions_drops_the_offer() -> None:
    environ: dict[str, Any] = {"HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate", "X": 1}
    refuse_extensions(environ)
    assert environ == {"X": 1}
    refuse_extensions(environ)  # nothing offered: nothing to do
    assert environ == {"X": 1}


def test_no_reader_thread_never_runs() -> None:
    ran: list[bool] = []
    thread = NoReaderThread(target=lambda: ran.append(True), daemon=True)
    thread.start()
    thread.join(timeout=1)
    assert not thread.is_alive()
    assert ran == []
    assert SERVER_OPTIONS["thread_class"] is NoReaderThread


def test_inline_websocket_refuses_a_websocket_with_a_reader_thread() -> None:
    with pytest.raises(TypeError, match="SERVER_OPTIONS"):
        InlineWebSocket(object())
    with pytest.raises(TypeError):
        InlineWebSocket(SimpleNamespace(thread=threading.Thread(target=print), sock=None))


def test_echo_with_the_sandbox_client(served: Served) -> None:
    client = WebSocketClient(served.url("/echo"))
    try:
        client.send("hello")
        assert client.receive(timeout=WAIT_S) == "HELLO"
        client.send("привет")
        assert client.receive(timeout=WAIT_S) == "ПРИВЕТ"
        client.send("bye")
        with pytest.raises(WebSocketClosed):
            client.receive(timeout=WAIT_S)
    finally:
        client.close()
    assert [served.event() for _ in range(3)] == [
        ("message", "hello"),
        ("message", "привет"),
        ("message", "bye"),
    ]


def test_many_messages_with_the_sandbox_client(served: Served) -> None:
    client = WebSocketClient(served.url("/echo"))
    try:
        for i in range(200):
            client.send(f"m{i}")
        assert [client.receive(timeout=WAIT_S) for _ in range(200)] == [f"M{i}" for i in range(200)]
    finally:
        client.close()
    assert [served.event()[1] for _ in range(200)] == [f"m{i}" for i in range(200)]
    assert served.event() == ("closed", CLOSE_NORMAL)


def test_echo_with_the_raw_client(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_TEXT, "abc")
        assert client.read_message() == (OP_TEXT, b"ABC")
        client.send_frame(OP_BINARY, b"\x01\x02\x03")
        assert client.read_message() == (OP_BINARY, b"\x03\x02\x01")
        big = os.urandom(70_000)  # both ways with a 64-bit length
        client.send_frame(OP_BINARY, big)
        assert client.read_message() == (OP_BINARY, big[::-1])
        client.send_frame(OP_TEXT, "bye")
        assert client.read_close() == (CLOSE_NORMAL, "bye")
        client.read_to_eof()
    assert [served.event()[0] for _ in range(4)] == ["message"] * 4


def test_several_messages_in_one_tcp_write_arrive_in_order(served: Served) -> None:
    words = [f"слово{i}" for i in range(30)]
    with RawClient(served.port, "/echo") as client:
        client.send(b"".join(client_frame(OP_TEXT, w) for w in words))
        assert [client.read_message() for _ in words] == [
            (OP_TEXT, w.upper().encode()) for w in words
        ]
        client.send_frame(OP_TEXT, "bye")
        assert client.read_close()[0] == CLOSE_NORMAL
    assert [served.event() for _ in words] == [("message", w) for w in words]


def test_a_message_split_over_several_tcp_writes_arrives_whole(served: Served) -> None:
    text = "кусочек " * 400  # 6,000 bytes: a 16-bit length
    frame = client_frame(OP_TEXT, text)
    cuts = [0, 1, 3, 7, 100, 3000, len(frame) - 1, len(frame)]
    with RawClient(served.port, "/echo") as client:
        for start, end in itertools.pairwise(cuts):
            client.send(frame[start:end])
            time.sleep(0.03)  # separate segments: the route reads each part on its own
        assert client.read_message() == (OP_TEXT, text.upper().encode())
        # A fragmented message, with a ping between the fragments.
        client.send_frame(OP_TEXT, "frag", fin=False)
        time.sleep(0.03)
        client.send_frame(OP_PING, b"mid")
        assert client.read_frame() == (True, OP_PONG, b"mid")
        client.send_frame(OP_CONTINUATION, "mented")
        assert client.read_message() == (OP_TEXT, b"FRAGMENTED")
        client.send_frame(OP_TEXT, "bye")
        assert client.read_close()[0] == CLOSE_NORMAL
    assert served.event() == ("message", text)
    assert served.event() == ("message", "fragmented")


def test_ping_gets_a_pong_with_the_same_payload(served: Served) -> None:
    payload = os.urandom(125)
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_PING, payload)
        assert client.read_frame() == (True, OP_PONG, payload)
        client.send_frame(OP_PING)
        assert client.read_frame() == (True, OP_PONG, b"")
        # A ping between messages of one write: answered in order.
        client.send(
            client_frame(OP_TEXT, "a") + client_frame(OP_PING, b"p") + client_frame(OP_TEXT, "b")
        )
        frames = [client.read_frame() for _ in range(3)]
        assert (True, OP_PONG, b"p") in frames
        assert [f for f in frames if f[1] == OP_TEXT] == [
            (True, OP_TEXT, b"A"),
            (True, OP_TEXT, b"B"),
        ]
        client.send_frame(OP_TEXT, "bye")
        client.read_close()


def test_client_close_is_echoed_and_the_route_sees_connection_closed(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_TEXT, "x")
        assert client.read_message() == (OP_TEXT, b"X")
        client.send_frame(OP_CLOSE, close_payload(1001, "going away"))
        assert client.read_close() == (1001, "")
        client.read_to_eof()
    assert served.event() == ("message", "x")
    assert served.event() == ("closed", 1001)


def test_close_without_a_code_is_answered_with_1000(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_CLOSE)
        assert client.read_close() == (CLOSE_NORMAL, "")
        client.read_to_eof()
    assert served.event() == ("closed", 1005)


@pytest.mark.parametrize("payload", [b"\x03", struct.pack("!H", 1004), struct.pack("!H", 999)])
def test_a_bad_close_frame_is_answered_with_1002(served: Served, payload: bytes) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_CLOSE, payload)
        assert client.read_close()[0] == CLOSE_PROTOCOL_ERROR
        client.read_to_eof()
    assert served.event()[0] == "closed"


def test_an_unmasked_frame_makes_the_server_close_with_1002(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_TEXT, "fine")
        assert client.read_message() == (OP_TEXT, b"FINE")
        client.send_frame(OP_TEXT, "naked", masked=False)
        code, reason = client.read_close()
        assert code == CLOSE_PROTOCOL_ERROR
        assert "mask" in reason
        client.read_to_eof()
    assert served.event() == ("message", "fine")
    assert served.event() == ("closed", CLOSE_PROTOCOL_ERROR)


def test_invalid_utf8_makes_the_server_close_with_1007(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_TEXT, b"\xc3\x28")
        assert client.read_close()[0] == CLOSE_INVALID_DATA
        client.read_to_eof()
    assert served.event() == ("closed", CLOSE_INVALID_DATA)


def test_messages_before_a_violation_in_the_same_read_are_delivered(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send(client_frame(OP_TEXT, "kept") + client_frame(OP_TEXT, "naked", masked=False))
        code = client.read_close()[0]
        client.read_to_eof()
    assert code == CLOSE_PROTOCOL_ERROR
    assert served.event() == ("message", "kept")


def test_receive_timeouts_and_pending(served: Served) -> None:
    with RawClient(served.port, "/timeouts") as client:
        assert client.read_message() == (OP_TEXT, b"ready")
        kind, first, waited, second, polled = served.event()
        assert (kind, first, second) == ("timeouts", None, None)
        assert waited < WAIT_S
        assert polled < 1.0
        client.send(b"".join(client_frame(OP_TEXT, m) for m in ("a", "b", "c")))
        assert client.read_close()[0] == CLOSE_NORMAL
        client.read_to_eof()
    assert served.event() == ("burst", "a", 2, ["b", "c"], 0, True)


def test_extensions_are_not_negotiated(served: Served) -> None:
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    with RawClient(served.port, "/echo", headers=offer) as client:
        assert client.status == 101
        assert "sec-websocket-extensions" not in client.headers
        # Frames are plain: an uncompressed text frame (RSV1 clear) is understood.
        client.send_frame(OP_TEXT, "plain")
        assert client.read_message() == (OP_TEXT, b"PLAIN")
        client.send_frame(OP_TEXT, "bye")
        client.read_close()


def test_peer_dropping_tcp_raises_connection_closed(served: Served) -> None:
    with RawClient(served.port, "/echo") as client:
        client.send_frame(OP_TEXT, "last")
        assert client.read_message() == (OP_TEXT, b"LAST")
        client.sock.shutdown(socket.SHUT_RDWR)
    assert served.event() == ("message", "last")
    assert served.event() == ("closed", 1006)


# --------------------------------------------------------------------------- WebSocketHub


def test_hub_delivers_every_message_in_order_per_socket(served: Served) -> None:
    names = [f"c{i}" for i in range(10)]
    clients = [WebSocketClient(served.url(f"/hub/{name}")) for name in names]
    try:
        for round_ in range(20):
            for name, client in zip(names, clients, strict=True):
                client.send(f"{name}-{round_}")
        expected = {name: [f"{name}-{r}" for r in range(20)] for name in names}
        assert wait_for(
            lambda: (
                all(served.conns[n].messages() == expected[n] for n in names if n in served.conns)
                and len(served.conns) == len(names)
            )
        ), {n: c.messages() for n, c in served.conns.items()}
        for name in names:
            conn = served.conns[name]
            assert all(isinstance(b, list) and b for b in conn.batches)
            assert conn.closed == 0
    finally:
        for client in clients:
            client.close()
    for name in names:
        assert served.conns[name].done.wait(WAIT_S), name
    served.hub.stop()  # no callback can come after this
    assert {name: served.conns[name].closed for name in names} == dict.fromkeys(names, 1)


def test_hub_on_closed_once_after_a_close_frame(served: Served) -> None:
    with RawClient(served.port, "/hub/framed") as client:
        client.send_frame(OP_TEXT, "hi")
        assert client.read_message() == (OP_TEXT, b"ack:hi")
        client.send_frame(OP_CLOSE, close_payload(1001))
        assert client.read_close() == (1001, "")
        client.read_to_eof()
    conn = served.conns["framed"]
    assert conn.done.wait(WAIT_S)
    served.hub.stop()
    assert conn.closed == 1
    assert conn.messages() == ["hi"]


def test_hub_on_closed_once_after_a_bare_tcp_close(served: Served) -> None:
    with RawClient(served.port, "/hub/bare") as client:
        client.send(client_frame(OP_TEXT, "one") + client_frame(OP_TEXT, "two"))
        assert wait_for(
            lambda: "bare" in served.conns and served.conns["bare"].messages() == ["one", "two"]
        )
    conn = served.conns["bare"]
    assert conn.done.wait(WAIT_S)
    served.hub.stop()
    assert conn.closed == 1


def test_hub_stops_calling_after_detach(served: Served) -> None:
    with RawClient(served.port, "/hub/detach") as client:
        client.send_frame(OP_TEXT, "first")
        assert client.read_message() == (OP_TEXT, b"ack:first")
        assert client.read_message() == (OP_TEXT, b"detached")
        client.send_frame(OP_TEXT, "second")  # read by the route, not the hub
        assert client.read_close()[0] == CLOSE_NORMAL
        client.read_to_eof()
    conn = served.conns["detach"]
    assert conn.done.wait(WAIT_S)
    assert conn.route_result == [True, "second"]
    served.hub.stop()
    assert conn.messages() == ["first"]
    assert conn.closed == 0  # detach: on_closed is not called
    assert conn.subscription is not None
    assert conn.subscription.released.is_set()


def test_hub_failing_handler_drops_only_its_socket(served: Served) -> None:
    good = WebSocketClient(served.url("/hub/good"))
    try:
        with RawClient(served.port, "/hub/bad") as bad:
            good.send("g1")
            assert good.receive(timeout=WAIT_S) == "ack:g1"
            bad.send_frame(OP_TEXT, "b1")
            assert bad.read_message() == (OP_TEXT, b"ack:b1")
            bad.send_frame(OP_TEXT, "boom")
            assert served.conns["bad"].done.wait(WAIT_S)
            assert served.conns["bad"].closed == 1
            # The route returned: flask-sock closes the socket it still holds.
            assert bad.read_close()[0] == CLOSE_NORMAL
            bad.read_to_eof()
            for i in range(2, 12):
                good.send(f"g{i}")
                assert good.receive(timeout=WAIT_S) == f"ack:g{i}"
        assert served.conns["good"].closed == 0
    finally:
        good.close()
    assert served.conns["good"].done.wait(WAIT_S)
    served.hub.stop()
    assert served.conns["bad"].messages() == ["b1", "boom"]
    assert served.conns["bad"].closed == 1
    assert served.conns["good"].closed == 1
    assert served.conns["good"].messages() == [f"g{i}" for i in range(1, 12)]


def test_hub_attach_after_stop_raises() -> None:
    hub = WebSocketHub(threads=1)
    hub.stop()
    left, right = socket.socketpair()
    try:
        ws = InlineWebSocket(SimpleNamespace(thread=NoReaderThread(), sock=left, connected=True))
        with pytest.raises(RuntimeError, match="stopped"):
            hub.attach(ws, lambda _batch: None, lambda: None)
    finally:
        left.close()
        right.close()


def test_hub_serves_a_socketpair_websocket() -> None:
    hub = WebSocketHub(threads=1, tick_s=0.001, idle_s=0.01)
    left, right = socket.socketpair()
    batches: list[list[str | bytes]] = []
    closed: list[bool] = []
    try:
        server = SimpleNamespace(
            thread=NoReaderThread(),
            sock=left,
            connected=True,
            close_reason=None,
            close_message=None,
        )
        ws = InlineWebSocket(server)
        assert ws.fileno() == left.fileno()
        hub.attach(ws, batches.append, lambda: closed.append(True))
        right.sendall(client_frame(OP_TEXT, "x") + client_frame(OP_BINARY, b"y"))
        assert wait_for(lambda: [m for b in batches for m in b] == ["x", b"y"])
        right.sendall(client_frame(OP_CLOSE, close_payload(CLOSE_NORMAL)))
        assert wait_for(lambda: closed == [True])
        assert not ws.connected
        assert server.close_reason == CLOSE_NORMAL
    finally:
        hub.stop()
        left.close()
        right.close()
    assert closed == [True]


def test_shared_hub_is_one_per_process() -> None:
    hub = shared_hub()
    assert shared_hub() is hub
    assert isinstance(hub, WebSocketHub)
    assert not hub.stopped
