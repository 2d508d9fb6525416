"""Barge-in: the prompts of ``barge_in`` steps, played by our server over ``<Connect><Stream>``.

The flow is ``tests/fixtures/voice_flows/voice_ko_barge_in.yaml`` (``defaults.barge_in``: the
menu, a yes/no step and a keypad-number step take it; ``ask_plain`` opts out, ``ask_record``
records), heard by the real Korean development model; the prompts are spoken by espeak-ng
(``TTS_COMMAND``'s default). The sandbox plays the app's audio at the line's pace, echoes
marks once it played, honours ``clear`` and sends keys as ``dtmf`` events; its transcript
tells what the caller heard (``heard_ms``, ``cut_at_ms``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import Settings
from crm_store.db import Database
from devtools.sandbox.twiml import TranscriptEntry
from devtools.simulator import SimulatedCall
from ivr.media_stream import StreamResults
from ivr.prompt_stream import load_prompt_audio
from ivr.session import SessionStore
from ivr.voice_policy import VOICE_UNAVAILABLE_PROMPT
from webhooks import create_app, services_of

from .test_voice_capture import (
    AUDIO,
    ROOT,
    AppProvider,
    SpyingSimulator,
    ko_dither0_path,
    transcripts,
    with_trailing_silence,
)
from .test_webhooks_app import TwilioCall

FLOWS = ROOT / "fixtures" / "voice_flows" / "voice_ko_barge_in.yaml"
DONE = "Спасибо, ответы приняты."

pytestmark = [
    pytest.mark.asr,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]


@pytest.fixture(scope="session")
def ko_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ko_dither0_path(tmp_path_factory)


def build(settings: Settings, model: Path, tmp_path: Path, **overrides: Any) -> Flask:
    app = create_app(
        settings.with_overrides(
            flows_file=str(FLOWS),
            vosk_model_path=str(model),
            tts_cache_dir=str(tmp_path / "tts"),
            **overrides,
        )
    )
    services_of(app).telephony = AppProvider()
    return app


@pytest.fixture
def barge_app(
    settings: Settings, db: Database, redis_client: Any, ko_model_path: Path, tmp_path: Path
) -> Iterator[Flask]:
    app = build(settings, ko_model_path, tmp_path)
    yield app
    services_of(app).db.dispose()


def played(call: SimulatedCall) -> list[TranscriptEntry]:
    """What the caller heard of the app's audio, one entry per bidirectional stream."""
    return [e for e in call.transcript if e.kind == "play" and "heard_ms" in e.data]


def clears(call: SimulatedCall) -> list[TranscriptEntry]:
    return [e for e in call.transcript if e.kind == "stream" and "dropped_ms" in e.data]


def prompt_ms(app: Flask, call: TwilioCall) -> int:
    """The length of the prompt clip the last answer's ``<Connect><Stream>`` plays (in whole
    20 ms frames, as it is sent)."""
    connect = call.last.first("Connect")
    assert connect is not None, call.last.xml
    stream = connect.find("Stream")
    assert stream is not None
    params = {p.get("name"): p.get("value") for p in stream}
    audio = load_prompt_audio(services_of(app).redis, params["prompt"] or "")
    assert audio is not None
    return math.ceil(len(audio) / 160) * 20


# --------------------------------------------------------------------------- rendering


def test_a_barge_in_step_connects_a_bidirectional_stream(
    barge_app: Flask, settings: Settings
) -> None:
    call = TwilioCall(barge_app.test_client(), settings)
    answer = call.start()
    assert [v.tag for v in answer.verbs] == ["Connect", "Redirect"]
    assert answer.heard == []  # Twilio says nothing: our server plays the prompt
    stream = answer.verbs[0].find("Stream")
    assert stream is not None
    assert stream.get("url") == "ws://localhost/media-stream"
    assert stream.get("track") is None  # <Connect> takes the inbound track only
    params = {p.get("name"): p.get("value") for p in stream}
    assert params["grammar"] == "menu"
    assert params["lang"] == "ko"
    assert params["step_token"] == "hotline:menu:1"
    assert params["prompt_mark"] == "prompt"
    assert (params["keys_max"], params["keys_end"], params["no_input_s"]) == ("1", "", "5")
    assert "prompt_seconds" not in params  # the mark tells when the prompt ended
    assert len(params["prompt"] or "") == 64
    assert 4000 < prompt_ms(barge_app, call) < 20000  # the menu text, spoken by espeak-ng
    redirect = answer.verbs[1].text or ""
    assert "step=menu" in redirect
    assert "ev=speech" in redirect


def test_steps_without_barge_in_keep_their_captures(barge_app: Flask, settings: Settings) -> None:
    call = TwilioCall(barge_app.test_client(), settings)
    call.start()
    store = StreamResults(services_of(barge_app).redis)
    store.store_digit(call.call_sid, 1, "2")  # «2» pressed on the menu's stream
    answer = call.post(call.last.verbs[1].text or "", call.base_params())
    assert answer.step == "hotline:ask_plain"  # barge_in: false
    assert [v.tag for v in answer.verbs] == ["Start", "Gather", "Redirect"]
    assert answer.heard == ["Подтвердите ещё раз: «네» или «아니요»."]  # Twilio says it
    stream = answer.verbs[0].find("Stream")
    assert stream is not None
    params = {p.get("name"): p.get("value") for p in stream}
    assert "prompt" not in params
    assert float(params["prompt_seconds"] or 0) > 2

    record_call = TwilioCall(barge_app.test_client(), settings)
    record_call.start()
    store.store_digit(record_call.call_sid, 1, "1")
    record_call.post(record_call.last.verbs[1].text or "", record_call.base_params())
    store.store_digit(record_call.call_sid, 2, "1")  # ask_yes: «да» by keypad
    answer = record_call.post(record_call.last.verbs[1].text or "", record_call.base_params())
    assert answer.step == "hotline:ask_record"  # capture: record ignores defaults.barge_in
    assert [v.tag for v in answer.verbs] == ["Say", "Record", "Redirect"]


def test_a_stream_that_never_started_goes_on_by_keypad(
    barge_app: Flask, settings: Settings
) -> None:
    call = TwilioCall(barge_app.test_client(), settings)
    call.start()
    # Twilio could not open the websocket: it went on with the <Redirect> at once.
    answer = call.post(call.last.verbs[1].text or "", call.base_params())
    assert answer.step == "hotline:menu"
    assert answer.heard[0] == VOICE_UNAVAILABLE_PROMPT
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf"
    assert answer.first("Connect") is None


# --------------------------------------------------------------------------- calls


def test_speech_over_the_prompt_cuts_it_and_is_heard(barge_app: Flask, db: Database) -> None:
    with SpyingSimulator.for_app(barge_app) as sim:
        call = sim.call()
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "stream"
        call.say(AUDIO / "menu_yogeum.wav")  # at once, over the menu's prompt
        assert call.steps[-1] == "hotline:ask_yes", call.transcript_text()
        menu = played(call)[0]
        cut = clears(call)
        sid = call.sid
    services_of(barge_app).db.dispose()
    assert len(cut) == 1  # the app sent clear ...
    assert menu.data["cut_at_ms"] is not None  # ... and the caller stopped hearing the prompt
    assert menu.data["heard_ms"] == menu.data["cut_at_ms"]
    # Cut soon after the words began (the app keeps its frames 0.4 s ahead of the line),
    # well before the end of a prompt of over 4 s.
    assert 0 < menu.data["heard_ms"] < 3000
    assert menu.data["marks"] == []  # never heard to its end (the mark was never sent)
    assert sim.updates == []  # the app closed the socket: no REST redirect
    rows = transcripts(db, sid)
    assert [(r.step, r.decision) for r in rows] == [("hotline:menu", "input:ask_yes")]
    assert "요금" in rows[0].text
    assert rows[0].audio_ref is not None
    assert rows[0].audio_ref.startswith("stream:MZ")


def test_a_silent_caller_hears_the_whole_prompt_then_no_input(
    barge_app: Flask, settings: Settings
) -> None:
    check = TwilioCall(barge_app.test_client(), settings)
    check.start()
    menu_ms = prompt_ms(barge_app, check)
    with SpyingSimulator.for_app(barge_app) as sim:
        call = sim.call()
        call.wait_silence()
        first = played(call)[0]
        assert first.data["heard_ms"] == first.data["received_ms"] == menu_ms
        assert first.data["cut_at_ms"] is None
        assert first.data["marks"] == ["prompt"]  # echoed once it had played
        assert clears(call) == []
        # No input: the menu again (a new stream). The no-input timer (5 s) ran from the
        # prompt's end (its mark), in line time: the recognizer heard the prompt + 5 s.
        assert call.steps[-2:] == ["hotline:menu", "hotline:menu"]
        stored = StreamResults(services_of(barge_app).redis).load(call.sid, 1)
        result = json.loads(stored["result"])
        assert (result["reason"], result["speech_detected"]) == ("no_input", False)
        assert result["duration"] == pytest.approx(menu_ms / 1000 + 5, abs=0.3)
        call.wait_silence()  # max_no_input 2: the operator
        assert call.steps[-1] == "hotline:operator"
        assert any(e.kind == "enqueue" for e in call.transcript)


def test_keys_during_the_prompt_are_collected_none_lost(barge_app: Flask, db: Database) -> None:
    with SpyingSimulator.for_app(barge_app) as sim:
        call = sim.call()
        call.press("3")  # over the menu's prompt: one key is the whole menu answer
        assert call.steps[-1] == "hotline:ask_number"
        assert clears(call), "the key cut the prompt"
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "stream"
        call.press("12")  # over the number's prompt, then a pause: handed over as type-ahead
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "gather"  # a silent keypad Gather for the rest
        assert call.waiting_for.attrs["input"] == "dtmf"
        assert call.waiting_for.prompts == ()
        call.press("34#")
        assert call.ended, call.transcript_text()
        assert call.heard(DONE)
        session = SessionStore(services_of(barge_app).redis).load(call.sid)
        pressed = StreamResults(services_of(barge_app).redis).load(call.sid, 2)
    services_of(barge_app).db.dispose()
    assert session is not None
    assert session.variables["number"] == "1234"
    assert pressed["digit"] == "12"
    assert sim.updates == []


def test_a_whole_entry_typed_over_the_prompt(barge_app: Flask) -> None:
    with SpyingSimulator.for_app(barge_app) as sim:
        call = sim.call()
        call.press("3")
        call.press("5678#")  # complete on the stream: no keypad Gather needed
        assert call.ended, call.transcript_text()
        assert call.heard(DONE)
        assert not any(e.kind == "gather" for e in call.transcript)
        session = SessionStore(services_of(barge_app).redis).load(call.sid)
    assert session is not None
    assert session.variables["number"] == "5678"


def test_one_way_streams_never_get_clear(barge_app: Flask, db: Database, tmp_path: Path) -> None:
    spoken = with_trailing_silence(AUDIO / "yes_ne.wav", tmp_path / "yes.wav")
    with SpyingSimulator.for_app(barge_app) as sim:
        call = sim.call()
        call.press("2")  # ask_plain: a one-way stream while Twilio says the prompt
        assert call.steps[-1] == "hotline:ask_plain"
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "gather"
        call.say(spoken)  # the recognizer hears speech "over" the estimated prompt time
        assert call.ended, call.transcript_text()
        sid = call.sid
        ignored = [e for e in call.transcript if e.data.get("ignored")]
    services_of(barge_app).db.dispose()
    assert ignored == []  # the app sent nothing (no clear) on the one-way stream
    rows = transcripts(db, sid)
    assert [(r.step, r.decision) for r in rows] == [("hotline:ask_plain", "input:accepted")]


def test_without_tts_barge_in_steps_fall_back_to_one_way_streams(
    settings: Settings,
    db: Database,
    redis_client: Any,
    ko_model_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr("ivr.engine_voice._FALLBACK_LOGGED", set())
    app = build(settings, ko_model_path, tmp_path, tts_command="no-such-tts-engine -v ru")
    startup = [r.getMessage() for r in caplog.records if "barge-in step(s)" in r.getMessage()]
    assert len(startup) == 1
    assert "hotline:menu" in startup[0]
    assert "'no-such-tts-engine' is not installed" in startup[0]
    call = TwilioCall(app.test_client(), settings)
    answer = call.start()
    assert [v.tag for v in answer.verbs] == ["Start", "Gather", "Redirect"]
    menu = (
        "Здравствуйте! Скажите «요금» или нажмите 1; скажите «계좌» или нажмите 2; "
        "чтобы ввести номер с клавиатуры, нажмите 3."
    )
    assert answer.heard == [menu]  # never silence: Twilio says the prompt
    answer = call.press("1")
    assert answer.step == "hotline:ask_yes"
    assert answer.first("Connect") is None
    assert answer.first("Start") is not None
    fallbacks = [r for r in caplog.records if "cannot be played by us" in r.getMessage()]
    steps = {r.getMessage().split()[2].rstrip(":") for r in fallbacks}
    assert steps == {"hotline:menu", "hotline:ask_yes"}
    again = TwilioCall(app.test_client(), settings)
    again.start()
    assert len([r for r in caplog.records if "cannot be played by us" in r.getMessage()]) == 2
    services_of(app).db.dispose()
