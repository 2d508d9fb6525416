"""Text-to-speech of barge-in prompts: the command contract, the disk cache, failures."""

from __future__ import annotations

import logging
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from speech import TextToSpeech, TtsError, text_to_speech, wav_to_ulaw
from speech.audio import encode_wav, ulaw_decode
from speech.tts import DEFAULT_TTS_COMMAND

# A stand-in engine: reads the text, writes a 16 kHz tone as long as the text (10 ms a
# character) the way a streaming writer does (WAV sizes left at 0x7FFFF000, as espeak-ng
# leaves them), and counts its runs in calls.txt next to itself.
ENGINE = """
import sys, struct
from pathlib import Path
text = sys.stdin.buffer.read().decode("utf-8")
with open(Path(__file__).with_name("calls.txt"), "a", encoding="utf-8") as log:
    log.write(text + "\\n")
if "FAIL" in text:
    sys.stderr.write("engine exploded\\n")
    sys.exit(3)
import math
rate = 16000
n = 160 * len(text)
samples = b"".join(
    struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
)
fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
head = b"RIFF" + struct.pack("<I", 0x7FFFF000 + 36) + b"WAVE"
head += b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0x7FFFF000)
sys.stdout.buffer.write(head + samples)
"""


@pytest.fixture
def engine(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "engine" / "tts.py"
    script.parent.mkdir()
    script.write_text(ENGINE, encoding="utf-8")
    return [sys.executable, str(script)], script.with_name("calls.txt")


def runs(calls: Path) -> list[str]:
    return calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []


def test_synthesis_is_8khz_ulaw_and_cached_on_disk(
    engine: tuple[list[str], Path], tmp_path: Path
) -> None:
    command, calls = engine
    tts = TextToSpeech(command, tmp_path / "cache")
    assert tts.available
    audio = tts.synthesize("  Назовите   номер  ")
    assert len(audio) == 8000 * len("Назовите номер") // 100  # 10 ms a character at 8 kHz
    assert np.abs(ulaw_decode(audio)).max() > 4000  # the tone, not silence
    assert tts.synthesize("Назовите номер") == audio
    assert runs(calls) == ["Назовите номер"]  # the second one came from the cache
    cached = tts.cache_path("Назовите номер")
    assert cached.read_bytes() == audio
    # Another engine (or voice) never reads this engine's cache.
    other = TextToSpeech([*command, "--voice=other"], tmp_path / "cache")
    assert other.cache_path("Назовите номер") != cached


def test_a_failing_engine_is_a_clear_error(engine: tuple[list[str], Path], tmp_path: Path) -> None:
    command, _ = engine
    tts = TextToSpeech(command, tmp_path / "cache")
    with pytest.raises(TtsError, match="exited with 3: engine exploded"):
        tts.synthesize("FAIL now")
    assert not tts.cache_path("FAIL now").exists()


def test_an_engine_writing_no_wav_is_a_clear_error(tmp_path: Path) -> None:
    tts = TextToSpeech([sys.executable, "-c", "print('hello')"], tmp_path / "cache")
    with pytest.raises(TtsError, match="not a WAV file"):
        tts.synthesize("Текст")


def test_a_missing_engine_is_unavailable_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="speech.tts")
    tts = TextToSpeech("no-such-tts-engine -v ru", tmp_path / "cache")
    assert not tts.available
    assert not tts.available
    assert "'no-such-tts-engine' is not installed" in tts.unavailable_reason
    assert len([r for r in caplog.records if "not installed" in r.getMessage()]) == 1
    with pytest.raises(TtsError, match="not installed"):
        tts.synthesize("Текст")
    off = TextToSpeech("", tmp_path / "cache")
    assert not off.available
    assert "off" in off.unavailable_reason


def test_one_engine_per_process_and_settings(tmp_path: Path) -> None:
    first = text_to_speech("no-such-tts-engine", str(tmp_path))
    assert text_to_speech("no-such-tts-engine", str(tmp_path)) is first
    assert text_to_speech("no-such-tts-engine", str(tmp_path / "x")) is not first


def test_prompt_files_of_any_common_rate_become_line_audio() -> None:
    t = np.arange(22050) / 22050
    samples = (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    audio = wav_to_ulaw(encode_wav(samples, 22050))
    assert len(audio) == 8000
    streamed = bytearray(encode_wav(samples, 22050))
    struct.pack_into("<I", streamed, 40, 0x7FFFF000)  # a streaming writer's data size
    assert wav_to_ulaw(bytes(streamed)) == audio


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_the_default_engine_speaks_russian(tmp_path: Path) -> None:
    tts = TextToSpeech(DEFAULT_TTS_COMMAND, tmp_path)
    audio = tts.synthesize("Назовите номер лицевого счёта.")
    assert 1.0 < len(audio) / 8000 < 5.0
    assert np.abs(ulaw_decode(audio)).max() > 3000
