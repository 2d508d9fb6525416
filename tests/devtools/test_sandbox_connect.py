"""``<Connect><Stream>`` in the sandbox: the app's audio played at the line's pace, marks
echoed once played, ``clear`` honoured, keys as ``dtmf`` events, the TwiML after it."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask_sock import Sock

from devtools.sandbox.audio import pcm_to_wav
from devtools.sandbox.media import MediaStream
from devtools.simulator import SimulatedCall, Simulator
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml

PROMPT_FRAMES = 50  # the app's "prompt": 1 s of audio
LEAD = 2  # frames it sends ahead of the caller's frames received
SILENCE = b"\xff" * 160


@dataclass
class App:
    """What the bidirectional endpoint saw."""

    events: list[str] = field(default_factory=list)
    digits: str = ""
    inbound_at_echo: int | None = None  # caller frames received when the mark came back
    done: threading.Event = field(default_factory=threading.Event)


def add_bidirectional_endpoint(state: TwimlApp, app: App) -> None:
    """``/bot``: plays 1 s of audio then the mark ``end``, paced by the caller's frames (two
    frames ahead, as a real app paces by the line); a loud caller frame makes it stop and
    send ``clear``; closes when the mark comes back, on ``#``, or on the first quiet frame
    after a clear (the caller finished talking)."""
    sock = Sock(state.app)

    @sock.route("/bot")
    def bot(ws: Any) -> None:
        sid = ""
        inbound = 0
        sent = 0
        playing = False
        cleared = False

        def pump() -> None:
            nonlocal sent, playing
            while playing and sent < min(PROMPT_FRAMES, inbound + LEAD):
                payload = base64.b64encode(b"\x10" * 160).decode()
                ws.send(
                    json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
                )
                sent += 1
            if playing and sent == PROMPT_FRAMES:
                playing = False
                ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "end"}}))

        try:
            while True:
                raw = ws.receive(timeout=10)
                if raw is None:
                    break
                message = json.loads(raw)
                event = message["event"]
                app.events.append(event)
                if event == "start":
                    sid = message["streamSid"]
                    playing = True
                    pump()
                elif event == "media":
                    inbound += 1
                    frame = base64.b64decode(message["media"]["payload"])
                    if frame != SILENCE and playing:
                        playing, cleared = False, True
                        ws.send(json.dumps({"event": "clear", "streamSid": sid}))
                    elif frame == SILENCE and cleared:
                        break
                    pump()
                elif event == "mark":
                    app.inbound_at_echo = inbound
                    break
                elif event == "dtmf":
                    app.digits += message["dtmf"]["digit"]
                    if message["dtmf"]["digit"] == "#":
                        break
                elif event == "stop":
                    break
        finally:
            app.done.set()


def connect_app(attrs: str = "") -> tuple[TwimlApp, App]:
    state = make_twiml_app()
    app = App()
    add_bidirectional_endpoint(state, app)
    state.on(
        "/voice/incoming",
        twiml(f'<Connect><Stream url="wss://localhost/bot"{attrs}/></Connect><Say>Дальше</Say>'),
    )
    return state, app


def words_wav(tmp_path: Path) -> Path:
    """0.4 s of a loud tone: the caller talking."""
    t = np.arange(int(8000 * 0.4)) / 8000
    path = tmp_path / "words.wav"
    path.write_bytes(pcm_to_wav((6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)))
    return path


def heard(call: SimulatedCall) -> dict[str, Any]:
    entries = [e for e in call.transcript if e.kind == "play" and "heard_ms" in e.data]
    assert len(entries) == 1, call.transcript_text()
    return entries[0].data


def test_the_apps_audio_plays_at_the_lines_pace_and_its_mark_after_it() -> None:
    state, app = connect_app()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "stream"
        call.wait_silence()
        assert call.heard("дальше"), call.transcript_text()  # the TwiML after <Connect>
    assert app.done.wait(5)
    # The mark came back once its second of audio had played: after 50 caller frames (the
    # sandbox plays 20 ms of it per caller frame, waiting for an app that lags behind).
    assert app.inbound_at_echo is not None
    assert PROMPT_FRAMES <= app.inbound_at_echo <= PROMPT_FRAMES + LEAD
    data = heard(call)
    assert data["heard_ms"] == data["received_ms"] == 1000
    assert data["cut_at_ms"] is None
    assert data["marks"] == ["end"]


def test_clear_drops_the_queued_audio(tmp_path: Path) -> None:
    state, app = connect_app()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        call.say(words_wav(tmp_path))  # the caller talks at once: the app clears its prompt
        assert call.heard("дальше"), call.transcript_text()
    assert app.done.wait(5)
    data = heard(call)
    # Cut within the frames the app had sent ahead when the first loud frame reached it.
    assert data["cut_at_ms"] is not None
    assert data["heard_ms"] == data["cut_at_ms"] <= 20 * (LEAD + 1)
    assert data["received_ms"] == data["heard_ms"] + data["cleared_ms"]
    assert data["cleared_ms"] > 0
    assert data["marks"] == []  # the app never sent its mark
    assert app.inbound_at_echo is None
    clear = [e for e in call.transcript if e.kind == "stream" and "dropped_ms" in e.data]
    assert [e.data["dropped_ms"] for e in clear] == [data["cleared_ms"]]


def test_keys_reach_a_connect_stream_as_dtmf_events() -> None:
    state, app = connect_app()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        call.press("12#")
        assert call.heard("дальше"), call.transcript_text()
    assert app.done.wait(5)
    assert app.digits == "12#"
    assert app.events.count("dtmf") == 3


def test_connect_takes_only_the_inbound_track() -> None:
    state, _ = connect_app(' track="both_tracks"')
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
    assert call.ended
    assert call.live.error_code == 31941
    assert not call.heard("дальше")


def test_a_one_way_stream_ignores_what_the_app_sends(tmp_path: Path) -> None:
    state, app = connect_app()
    state.on(
        "/voice/incoming",
        twiml(
            '<Start><Stream url="wss://localhost/bot"/></Start>'
            '<Gather timeout="1"><Say>Говорите</Say></Gather><Say>Конец</Say>'
        ),
    )
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        call.say(words_wav(tmp_path))  # the app answers with clear: ignored, as all it sends
        assert call.ended
    assert app.done.wait(5)
    ignored = {e.data["ignored"] for e in call.transcript if e.data.get("ignored")}
    assert ignored == {"media", "clear"}
    assert not [e for e in call.transcript if e.kind == "play" and "stream audio" in e.text]
    assert app.inbound_at_echo is None  # no mark echo on a one-way stream


def playout_stream() -> MediaStream:
    return MediaStream(
        "ws://127.0.0.1:9/unused",
        token=TOKEN,
        account_sid="AC" + "0" * 32,
        call_sid="CA" + "0" * 32,
        stream_sid="MZ" + "0" * 32,
        bidirectional=True,
    )


def app_says(stream: MediaStream, event: str, **body: Any) -> None:
    message: dict[str, Any] = {"event": event, "streamSid": stream.stream_sid}
    if event == "media":
        message["media"] = {"payload": base64.b64encode(body["audio"]).decode()}
    elif event == "mark":
        message["mark"] = {"name": body["name"]}
    stream._handle(json.dumps(message))


def test_marks_wait_for_the_audio_before_them() -> None:
    stream = playout_stream()
    app_says(stream, "media", audio=b"\x01" * 320)
    app_says(stream, "mark", name="half")
    app_says(stream, "media", audio=b"\x02" * 160)
    app_says(stream, "mark", name="end")
    app_says(stream, "mark", name="right-after")
    stream.play(160)
    assert stream.marks_echoed == []
    stream.play(160)
    assert stream.marks_echoed == ["half"]  # echoed once the audio before it played
    stream.play(400)  # more than is queued: the rest plays, then silence
    assert stream.marks_echoed == ["half", "end", "right-after"]
    assert (stream.played_bytes, stream.queued_bytes, stream.cut_at_ms) == (480, 0, None)


def test_clear_echoes_the_pending_marks_and_keeps_what_was_heard() -> None:
    stream = playout_stream()
    app_says(stream, "media", audio=b"\x01" * 800)
    app_says(stream, "mark", name="prompt")
    stream.play(320)
    app_says(stream, "clear")
    assert stream.marks_echoed == ["prompt"]  # Twilio sends pending marks back on clear
    assert (stream.played_bytes, stream.cleared_bytes, stream.cut_at_ms) == (320, 480, 40)
    assert stream.events == [("clear", {"dropped_ms": 60, "heard_ms": 40})]
    app_says(stream, "clear")  # nothing queued: nothing dropped, the cut stays where it was
    assert stream.cut_at_ms == 40


def test_keys_after_the_app_closed_are_lost_and_the_stream_let_go() -> None:
    state, app = connect_app()
    with Simulator(state.app, TOKEN, PUBLIC) as sim:
        call = sim.call()
        call.press("#12")  # the app closes on '#': the rest reaches no one
        assert call.heard("дальше"), call.transcript_text()
        assert call.live.streams == {}
    assert app.digits == "#"
    # Usually both keys come after the close; a slow app may still have been open for "1".
    lost = [e.text.rsplit(" ", 1)[1] for e in call.transcript if "are lost" in e.text]
    assert lost in (["12"], ["2"])
