"""The ``/media-stream`` websocket route with Twilio-format Media Streams messages.

The app is served on loopback (werkzeug, threaded: the Flask test client cannot do
websockets) and driven with ``simple_websocket.Client``; the call's webhooks go through the
Flask test client, signed like Twilio's. Speech is the real Korean development model.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from simple_websocket import Client, ConnectionClosed
from werkzeug.serving import make_server

from contactcenter.config import Settings
from crm_store.db import Database
from ivr.media_stream import StreamResults
from speech.audio import decode_wav, ulaw_encode
from telephony.signing import sign
from tests.ivr.test_voice_capture import (
    AUDIO,
    AppProvider,
    build_app,
    ko_dither0_path,
    transcripts,
)
from tests.ivr.test_webhooks_app import TwilioCall
from webhooks import services_of

pytestmark = pytest.mark.asr

STREAM_URL = "ws://localhost/media-stream"  # PUBLIC_BASE_URL is http://localhost


@pytest.fixture(scope="session")
def ko_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ko_dither0_path(tmp_path_factory)


@pytest.fixture
def served(
    settings: Settings, db: Database, redis_client: Any, ko_model_path: Path
) -> Iterator[tuple[Flask, AppProvider, int]]:
    app, provider = build_app(settings, model_path=ko_model_path)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield app, provider, int(server.server_port)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    services_of(app).db.dispose()


class TwilioStream:
    """One Media Stream as Twilio sends it, for the ``<Start><Stream>`` of an answer."""

    def __init__(self, port: int, token: str, stream: ET.Element, *, signature: str | None = None):
        self.params = {p.get("name", ""): p.get("value", "") for p in stream}
        self.call_sid = self.params["call_sid"]
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.seq = 0
        self.chunk = 0
        headers = {"X-Twilio-Signature": signature or sign(token, STREAM_URL, {})}
        self.ws = Client(f"ws://127.0.0.1:{port}/media-stream", headers=headers)

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def connected_and_start(self) -> None:
        self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.send(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC" + "0" * 32,
                    "callSid": self.call_sid,
                    "streamSid": self.stream_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.params,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    def media(self, samples: np.ndarray) -> None:
        payload = ulaw_encode(samples)
        for start in range(0, len(payload), 160):
            self.chunk += 1
            self.send(
                {
                    "event": "media",
                    "sequenceNumber": self._next(),
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(self.chunk),
                        "timestamp": str((self.chunk - 1) * 20),
                        "payload": base64.b64encode(payload[start : start + 160]).decode(),
                    },
                }
            )

    def stop(self) -> None:
        self.send(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid},
            }
        )

    def received(self, wait_s: float = 0.5) -> list[dict[str, Any]]:
        messages = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            raw = self.ws.receive(timeout=0.05)
            if raw is not None:
                messages.append(json.loads(raw))
        return messages


def words(name: str) -> np.ndarray:
    return decode_wav((AUDIO / name).read_bytes()).samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(8000 * seconds), dtype=np.int16)


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def start_call(app: Flask, settings: Settings) -> tuple[TwilioCall, ET.Element]:
    call = TwilioCall(app.test_client(), settings)
    answer = call.start()
    start = answer.first("Start")
    assert start is not None, answer.xml
    stream = start.find("Stream")
    assert stream is not None
    assert stream.get("url") == STREAM_URL
    return call, stream


def test_media_stream_session_moves_the_call_on(
    served: tuple[Flask, AppProvider, int], settings: Settings, db: Database
) -> None:
    app, provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node)
    assert stream.params["grammar"] == "menu"
    assert stream.params["lang"] == "ko"
    assert "계좌" in stream.params["keywords"].split(",")
    assert float(stream.params["prompt_seconds"]) > 2  # the menu prompt plays meanwhile
    stream.connected_and_start()
    stream.media(words("menu_gyejwa.wav"))
    stream.media(silence(1.5))  # a live line keeps streaming after the words
    assert wait_for(lambda: provider.updates), "no update_call after the utterance"
    # The caller talked over the prompt, but nothing of ours plays on a one-way stream
    # (Twilio plays the <Say>): a clear there would be pointless, so none is sent.
    assert not any(m.get("event") == "clear" for m in stream.received())
    sid, url = provider.updates[0]
    assert sid == call.call_sid
    assert url is not None
    assert "ev=speech" in url
    assert "step=menu" in url
    # Twilio fetches the redirect URL: the call moves on with what the stream heard.
    answer = call.post(url, call.base_params())
    assert answer.step == "hotline:ask_stream"
    assert answer.recognized is not None
    assert "계좌" in answer.recognized
    assert answer.xml.index("<Stop>") < answer.xml.index("<Start>")  # old stream stopped
    stream.stop()
    call.flush_crm()
    rows = transcripts(db, call.call_sid)
    assert [(r.step, r.decision) for r in rows] == [("hotline:menu", "input:ask_stream")]
    assert "계좌" in rows[0].text
    assert rows[0].audio_ref == f"stream:{stream.stream_sid}"


def test_malformed_and_out_of_order_messages_are_survived(
    served: tuple[Flask, AppProvider, int], settings: Settings
) -> None:
    app, provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node)
    stream.send("not json at all")
    stream.send(json.dumps([1, 2, 3]))
    stream.send({"event": "media", "media": {"payload": "AAAA"}})  # before start
    stream.connected_and_start()
    stream.send({"event": "bogus"})
    stream.send({"event": "media", "media": {"chunk": "1", "payload": "%%% not base64"}})
    stream.send({"event": "start", "start": {}})  # a second start
    stream.send({"event": "dtmf"})  # no dtmf body
    stream.media(silence(0.3))
    samples = words("menu_yogeum.wav")
    # Two frames swapped in transit: the session reorders them by chunk number.
    first, second = samples[:160], samples[160:320]
    stream.media(second)
    stream.chunk -= 2
    stream.media(first)
    stream.chunk += 1
    stream.media(samples[320:])
    stream.media(silence(1.5))
    assert wait_for(lambda: provider.updates), "no final result after malformed messages"
    answer = call.post(provider.updates[0][1] or "", call.base_params())
    assert answer.step == "hotline:ask_record"
    stream.stop()


def test_socket_dropped_mid_utterance(
    served: tuple[Flask, AppProvider, int], settings: Settings
) -> None:
    app, provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node)
    stream.connected_and_start()
    stream.media(words("menu_sangdamwon.wav")[:4000])  # half the word, then the line dies
    stream.ws.close()
    store = StreamResults(services_of(app).redis)
    seq = int(stream.params["step_token"].rsplit(":", 1)[1])
    assert wait_for(lambda: store.load(call.call_sid, seq).get("state") == "final")
    result = json.loads(store.load(call.call_sid, seq)["result"])
    assert result["reason"] == "hangup"
    assert result["speech_detected"] is True
    assert provider.updates == []  # no redirect for a dropped socket
    # The keypad Gather's fall-through picks the stored result up; never a traceback.
    redirect = call.last.first("Redirect")
    assert redirect is not None
    assert "ev=listen" in (redirect.text or "")
    answer = call.post(redirect.text or "", call.base_params())
    assert answer.status == 200
    assert answer.step is not None
    assert answer.step.startswith("hotline:")


def test_a_silent_half_open_stream_is_closed_as_dead(
    served: tuple[Flask, AppProvider, int], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ivr.media_stream.STREAM_IDLE_CLOSE_S", 0.6)
    app, provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node)
    stream.connected_and_start()
    stream.media(words("menu_sangdamwon.wav")[:4000])
    # ... and then nothing, without closing: a peer gone without a FIN.
    store = StreamResults(services_of(app).redis)
    seq = int(stream.params["step_token"].rsplit(":", 1)[1])
    assert wait_for(lambda: store.load(call.call_sid, seq).get("state") == "final")
    result = json.loads(store.load(call.call_sid, seq)["result"])
    assert result["reason"] == "hangup"
    assert provider.updates == []

    def closed_by_server() -> bool:
        try:
            stream.ws.receive(timeout=0.05)
        except ConnectionClosed:
            return True
        return False

    assert wait_for(closed_by_server), "the server let the dead stream's socket go"


def test_a_dtmf_event_on_the_stream_wins_over_speech(
    served: tuple[Flask, AppProvider, int], settings: Settings
) -> None:
    app, provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node)
    stream.connected_and_start()
    stream.media(words("menu_yogeum.wav")[:3000])  # speech has started ...
    stream.send(
        {
            "event": "dtmf",
            "streamSid": stream.stream_sid,
            "sequenceNumber": "99",
            "dtmf": {"track": "inbound_track", "digit": "2"},
        }
    )  # ... and a key cancels it
    assert wait_for(lambda: provider.updates)
    answer = call.post(provider.updates[0][1] or "", call.base_params())
    assert answer.step == "hotline:ask_stream"  # key 2, not «요금» (which leads to 1)
    assert answer.recognized is None
    stream.stop()


def test_a_forged_handshake_is_refused(
    served: tuple[Flask, AppProvider, int], settings: Settings
) -> None:
    app, _provider, port = served
    call, node = start_call(app, settings)
    stream = TwilioStream(port, settings.webhook_auth_token, node, signature="forged")
    assert wait_for(lambda: not stream.ws.connected)
    with pytest.raises(ConnectionClosed):
        stream.connected_and_start()
    seq = int(stream.params["step_token"].rsplit(":", 1)[1])
    assert StreamResults(services_of(app).redis).load(call.call_sid, seq) == {}
