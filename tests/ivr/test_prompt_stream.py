"""The prompts of barge-in steps: their audio in Redis, paced frames, the keys collected."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask, Response
from werkzeug.serving import make_server

from contactcenter.config import Settings
from ivr.prompt_stream import (
    FRAME_BYTES,
    KeyCollector,
    PromptAudioStore,
    PromptPlayer,
    barge_in_readiness,
    load_prompt_audio,
)
from ivr.twiml import Pause, Play, Prompt, Say
from ivr.validate import load_flows
from speech import TextToSpeech
from speech.audio import encode_wav

from .test_voice_capture import ROOT

BARGE_IN_FLOWS = ROOT / "fixtures" / "voice_flows" / "voice_ko_barge_in.yaml"

# A stand-in engine: 10 ms of a tone per character of text, as a WAV on stdout.
ENGINE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from speech.audio import encode_wav
text = sys.stdin.buffer.read().decode("utf-8")
t = np.arange(80 * len(text)) / 8000
sys.stdout.buffer.write(encode_wav((5000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 8000))
"""


@pytest.fixture
def tts(tmp_path: Path) -> TextToSpeech:
    script = tmp_path / "tts.py"
    script.write_text(ENGINE, encoding="utf-8")
    repo = str(Path(__file__).resolve().parents[2])
    return TextToSpeech([sys.executable, str(script), repo], tmp_path / "cache")


@pytest.fixture
def audio_server() -> Iterator[str]:
    """Our own server's prompt files (``/audio/beep.wav``: 0.5 s at 16 kHz)."""
    app = Flask("prompt_files")
    t = np.arange(8000) / 16000
    wav = encode_wav((6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16), 16000)

    @app.get("/audio/beep.wav")
    def beep() -> Response:
        return Response(wav, mimetype="audio/wav")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_prompts_become_one_clip_in_redis(
    redis_client: Any, tts: TextToSpeech, audio_server: str
) -> None:
    store = PromptAudioStore(redis_client, tts, audio_server)
    prompts: list[Prompt] = [
        Say("Привет"),
        Pause(1),
        Play(f"{audio_server}/audio/beep.wav", loop=2),
    ]
    key = store.prepare(prompts)
    assert key is not None
    audio = load_prompt_audio(redis_client, key)
    assert audio is not None
    # 6 characters × 80 samples, 1 s of silence, twice 0.5 s of the file at 8 kHz
    assert len(audio) == 6 * 80 + 8000 + 2 * 4000
    assert audio[480 : 480 + 8000] == b"\xff" * 8000
    assert 0 < redis_client.ttl(PromptAudioStore.PREFIX + key) <= PromptAudioStore.TTL_S
    # The same prompts again: the same clip, not rendered twice.
    redis_client.delete(*redis_client.keys(PromptAudioStore.PREFIX + "*"))
    redis_client.set(PromptAudioStore.PREFIX + key, b"kept")
    assert store.prepare(prompts) == key
    assert load_prompt_audio(redis_client, key) == b"kept"
    assert store.prepare([Say("Другой текст")]) != key


def test_prompts_we_cannot_play_give_none(
    redis_client: Any, tts: TextToSpeech, audio_server: str, tmp_path: Path
) -> None:
    store = PromptAudioStore(redis_client, tts, audio_server)
    assert store.prepare([Play("https://cdn.example.com/hello.wav")]) is None  # not ours
    assert store.prepare([Play(f"{audio_server}/audio/missing.wav")]) is None  # 404
    silent = PromptAudioStore(redis_client, TextToSpeech("no-such-tts", tmp_path), audio_server)
    assert silent.prepare([Say("Привет")]) is None
    assert silent.prepare([Play(f"{audio_server}/audio/beep.wav")]) is not None  # no text
    assert load_prompt_audio(redis_client, "0" * 64) is None
    assert load_prompt_audio(redis_client, "not-a-key") is None


def messages(player: PromptPlayer, inbound: int) -> list[dict[str, Any]]:
    return [json.loads(m) for m in player.pump(inbound)]


def test_the_player_paces_frames_by_the_callers_audio() -> None:
    audio = bytes(range(256)) * 5  # 1280 bytes: 8 frames
    player = PromptPlayer(audio, "MZ1", "prompt", start_frame=10, lead=3)
    first = messages(player, 10)
    assert [m["event"] for m in first] == ["media"] * 3  # the lead, before any caller frame
    assert base64.b64decode(first[0]["media"]["payload"]) == audio[:FRAME_BYTES]
    assert {m["streamSid"] for m in first} == {"MZ1"}
    assert messages(player, 10) == []
    assert len(messages(player, 12)) == 2  # two caller frames: two more
    rest = messages(player, 100)
    assert [m["event"] for m in rest] == ["media"] * 3 + ["mark"]
    assert rest[-1]["mark"] == {"name": "prompt"}
    assert messages(player, 200) == []
    assert player.playing  # until the mark comes back
    player.heard = True
    assert not player.playing
    assert not player.stop()  # heard in full: no clear


def test_a_stopped_player_sends_nothing_and_asks_for_a_clear() -> None:
    player = PromptPlayer(b"\x01" * 1000, "MZ1", "prompt", start_frame=0, lead=2)
    assert len(messages(player, 0)) == 2
    assert player.stop()
    assert messages(player, 50) == []
    assert json.loads(player.clear_message()) == {"event": "clear", "streamSid": "MZ1"}
    assert not PromptPlayer(b"\x01", "MZ1", "p", start_frame=0).stop()  # nothing sent yet


def test_a_lost_mark_echo_does_not_hold_the_capture() -> None:
    player = PromptPlayer(b"\x01" * 160, "MZ1", "prompt", start_frame=0, lead=1)
    messages(player, 0)
    assert not player.overdue(100)
    assert player.overdue(1 + 1 + 500 + 1)


@pytest.mark.parametrize(
    ("params", "keys", "complete_at"),
    [
        ({"keys_max": "1", "keys_end": "", "keys_gap": "5"}, "3", 1),
        ({"keys_max": "4", "keys_end": "#", "keys_gap": "5"}, "1234", 4),
        ({"keys_max": "0", "keys_end": "#", "keys_gap": "5"}, "77001#", 6),
        ({"keys_max": "0", "keys_end": "", "keys_gap": "5"}, "12345", None),
    ],
)
def test_keys_end_like_the_steps_gather(
    params: dict[str, str], keys: str, complete_at: int | None
) -> None:
    collector = KeyCollector.from_parameters(params)
    done = [collector.add(key, frame=i * 10) for i, key in enumerate(keys)]
    assert (done.index(True) + 1 if True in done else None) == complete_at
    assert collector.digits == keys


def test_a_pause_after_the_last_key_ends_the_entry() -> None:
    collector = KeyCollector.from_parameters({"keys_max": "0", "keys_end": "#", "keys_gap": "3"})
    assert not collector.expired(10_000)  # no key yet: nothing to end
    collector.add("1", frame=100)
    assert not collector.expired(100 + 149)
    assert collector.expired(100 + 150)  # 3 s of line time
    odd = KeyCollector.from_parameters({"keys_max": "x", "keys_end": "5", "keys_gap": "?"})
    assert (odd.max_keys, odd.end_key, odd.gap_frames) == (0, "", 250)


def test_readiness_names_the_barge_in_steps_without_tts(settings: Settings, tmp_path: Path) -> None:
    flows = load_flows(BARGE_IN_FLOWS)
    missing = settings.with_overrides(tts_command="no-such-tts -v ru", tts_cache_dir=str(tmp_path))
    problem = barge_in_readiness(flows, missing)
    assert problem is not None
    assert "3 barge-in step(s) (hotline:menu, hotline:ask_yes, hotline:ask_number)" in problem
    assert "'no-such-tts' is not installed" in problem
    off = barge_in_readiness(flows, missing.with_overrides(tts_command=""))
    assert off is not None
    assert "off" in off
    engine = settings.with_overrides(tts_command=sys.executable, tts_cache_dir=str(tmp_path))
    assert barge_in_readiness(flows, engine) is None
    assert barge_in_readiness(load_flows(ROOT.parent / "call_flows.yaml"), missing) is None
