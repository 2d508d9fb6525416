"""Media Streams: the sandbox's websocket client against a flask-sock server on loopback."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask, request
from flask_sock import Sock
from werkzeug.serving import make_server

from devtools.sandbox.audio import mulaw_decode, pcm_to_wav, wav_to_mulaw
from devtools.sandbox.media import MediaStream, default_ws_connect
from devtools.simulator import Simulator
from telephony.signing import SIGNATURE_HEADER, is_valid
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml


@dataclass
class StreamLog:
    """What the websocket endpoint received."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    signatures_ok: list[bool] = field(default_factory=list)
    signed_url: str = "wss://localhost/media"
    close_after_media: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


def add_stream_endpoint(app: Flask, log: StreamLog) -> None:
    """``/media``: records messages, sends a mark after ``start``, may close early."""
    sock = Sock(app)

    @sock.route("/media")
    def media(ws: Any) -> None:
        # Validate against the URL the TwiML named, as our app does with PUBLIC_BASE_URL.
        signature = request.headers.get(SIGNATURE_HEADER)
        log.signatures_ok.append(is_valid(TOKEN, log.signed_url, {}, signature))
        media_count = 0
        try:
            while True:
                raw = ws.receive(timeout=10)
                if raw is None:
                    break
                message = json.loads(raw)
                log.messages.append(message)
                event = message["event"]
                if event == "start":
                    sid = message["streamSid"]
                    ws.send(
                        json.dumps(
                            {
                                "event": "media",
                                "streamSid": sid,
                                "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
                            }
                        )
                    )
                    ws.send(
                        json.dumps(
                            {"event": "mark", "streamSid": sid, "mark": {"name": "greeting"}}
                        )
                    )
                elif event == "media":
                    media_count += 1
                    if log.close_after_media and media_count >= log.close_after_media:
                        break
                elif event == "stop":
                    break
        except Exception as exc:
            log.messages.append({"event": "error", "error": repr(exc)})
            raise
        finally:
            log.done.set()


def _wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    path.write_bytes(pcm_to_wav((6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)))
    return path


@pytest.fixture
def loopback() -> Iterator[tuple[StreamLog, str]]:
    app = Flask("stream_server")
    log = StreamLog()
    add_stream_endpoint(app, log)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    yield log, f"ws://127.0.0.1:{server.server_port}/media"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_client_sends_twilio_message_sequence_from_a_wav(
    loopback: tuple[StreamLog, str], tmp_path: Path
) -> None:
    log, url = loopback
    log.signed_url = url
    wav = _wav(tmp_path / "speech.wav", 0.5).read_bytes()
    stream = MediaStream(
        url,
        token=TOKEN,
        account_sid="AC" + "a" * 32,
        call_sid="CA" + "b" * 32,
        stream_sid="MZ" + "c" * 32,
        custom_parameters={"flow": "hotline", "lang": "ru"},
        bidirectional=True,
    )
    stream.open()
    frames = stream.send_audio(wav_to_mulaw(wav))
    stream.send_dtmf("5")
    stream.poll(wait_s=1.0)
    stream.stop()
    assert log.done.wait(5)
    assert log.signatures_ok == [True]
    events = [m["event"] for m in log.messages]
    assert events[:2] == ["connected", "start"]
    assert events[-1] == "stop"
    assert frames == 25  # 0.5 s of 20 ms frames
    start = log.messages[1]
    assert start["start"]["customParameters"] == {"flow": "hotline", "lang": "ru"}
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert start["start"]["callSid"] == "CA" + "b" * 32
    media = [m for m in log.messages if m["event"] == "media"]
    assert len(media) == 25
    assert [m["media"]["chunk"] for m in media] == [str(i) for i in range(1, 26)]
    assert [m["media"]["timestamp"] for m in media] == [str(20 * i) for i in range(25)]
    payloads = [base64.b64decode(m["media"]["payload"]) for m in media]
    assert {len(p) for p in payloads} == {160}
    decoded = mulaw_decode(b"".join(payloads))
    assert np.abs(decoded).max() > 3000  # the tone, not silence
    seqs = [int(m["sequenceNumber"]) for m in log.messages if "sequenceNumber" in m]
    assert seqs == list(range(1, len(seqs) + 1))
    dtmf = [m for m in log.messages if m["event"] == "dtmf"]
    assert dtmf[0]["dtmf"] == {"track": "inbound_track", "digit": "5"}
    marks = [m for m in log.messages if m["event"] == "mark"]
    assert marks[0]["mark"]["name"] == "greeting"
    assert len(stream.audio_from_app) == 160


def test_start_stream_continues_twiml_and_streams_caller_audio(tmp_path: Path) -> None:
    state: TwimlApp = make_twiml_app()
    log = StreamLog()
    add_stream_endpoint(state.app, log)
    state.on(
        "/voice/incoming",
        twiml(
            '<Start><Stream url="wss://localhost/media" name="asr">'
            '<Parameter name="step" value="account"/></Stream></Start>'
            '<Gather action="/voice/next" timeout="2"><Say>Назовите номер счёта</Say></Gather>'
            "<Say>Спасибо</Say>"
        ),
    )
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        assert call.heard("назовите номер")  # TwiML went on right after <Start>
        call.say(_wav(tmp_path / "account.wav", 1.0))
        assert call.ended
    assert log.done.wait(5)
    events = [m["event"] for m in log.messages]
    assert events[0] == "connected"
    assert events[-1] == "stop", log.messages
    assert events.count("media") == 50
    assert log.messages[1]["start"]["customParameters"] == {"step": "account"}
    assert call.heard("спасибо")
    assert "dtmf" not in events  # unidirectional stream


def test_connect_stream_blocks_until_the_app_closes(tmp_path: Path) -> None:
    state: TwimlApp = make_twiml_app()
    log = StreamLog(close_after_media=10)
    add_stream_endpoint(state.app, log)
    state.on(
        "/voice/incoming",
        twiml(
            '<Connect action="/voice/after"><Stream url="wss://localhost/media"/></Connect><Say>unreachable</Say>'
        ),
    )
    state.on("/voice/after", twiml("<Say>Поток закрыт</Say>"))
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "stream"
        call.say(_wav(tmp_path / "a.wav", 1.0))
        assert call.ended
    assert call.heard("поток закрыт")
    assert not call.heard("unreachable")
    assert len(state.hits("/voice/after")) == 1
    assert any(e.kind == "play" and "stream audio" in e.text for e in call.transcript)


def test_stream_that_cannot_connect_is_reported_and_twiml_goes_on() -> None:
    state: TwimlApp = make_twiml_app()
    state.on(
        "/voice/incoming",
        twiml('<Start><Stream url="ws://127.0.0.1:9/none"/></Start><Say>Дальше</Say>'),
    )
    with Simulator(state.app, TOKEN, PUBLIC, ws_connect=default_ws_connect) as sim:
        call = sim.call()  # a real connection attempt to a closed port
    assert call.heard("дальше")
    assert any(e.kind == "error" and "stream" in e.text for e in call.transcript)
