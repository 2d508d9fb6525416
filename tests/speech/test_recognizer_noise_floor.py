"""The energy detector's noise floor: speech never raises it, steady line noise does.

Regression for the benchmark finding "long continuous speech is cut early": with −60 dBFS
line noise around a 4.3 s digit string the floor used to climb 20 dB/s during the speech
itself and the utterance ended 1.26 s before the last digit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.bench_speech import load_utterances
from speech.grammar import build_grammar
from speech.model_store import LoadedModel
from speech.recognizer import EndpointConfig, EnergyVad, RecognitionSession

from .conftest import silence, yes_no_grammar

RATE = 8000
FRAME = 160

# The level envelope (dBFS per 20 ms frame) of the middle of a 10-digit utterance: syllable
# peaks near −11 dBFS, held vowels around −22 dBFS, dips between words only to −28 dBFS —
# nothing ever falls back to the line noise while the digits are spoken.
DIGIT_STRING_ENVELOPE = [
    -25, -22, -18, -17, -16, -14, -11, -11, -10, -11, -13, -15, -18, -23, -26, -23, -22,
    -23, -23, -26, -26, -24, -20, -18, -16, -15, -12, -11, -11, -11, -12, -14, -17, -21,
    -25, -28, -28, -28, -27, -24, -20, -17, -16, -16, -17, -19, -22, -22, -22, -22, -22,
    -22, -21, -22, -22, -20, -17, -15, -16, -18, -20, -22, -22, -21, -21, -22, -21, -22,
    -22, -22, -19, -15, -16, -17, -19, -22, -23, -27,
]  # fmt: skip


def line_noise(seconds: float, dbfs: float = -60.0, seed: int = 1) -> np.ndarray:
    """Gaussian line noise at ``dbfs`` RMS (float, to be mixed)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 32768.0 * 10 ** (dbfs / 20), round(seconds * RATE))


def continuous_speech(seconds: float, envelope: list[int] = DIGIT_STRING_ENVELOPE) -> np.ndarray:
    """A 300 Hz tone following ``envelope`` frame by frame (float, to be mixed)."""
    frames = round(seconds / 0.02)
    levels = np.array([envelope[i % len(envelope)] for i in range(frames)], dtype=np.float64)
    amplitude = np.repeat(32768.0 * np.sqrt(2.0) * 10 ** (levels / 20), FRAME)
    t = np.arange(frames * FRAME) / RATE
    return np.asarray(amplitude * np.sin(2 * np.pi * 300 * t), dtype=np.float64)


def pcm(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def run(session: RecognitionSession, audio: np.ndarray) -> None:
    for start in range(0, audio.size, FRAME):
        session.feed(audio[start : start + FRAME])
        if session.done:
            return


def test_long_continuous_speech_over_line_noise_is_not_cut(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    speech = continuous_speech(4.5) + line_noise(4.5, seed=2)
    audio = pcm(np.concatenate([line_noise(0.5), speech, line_noise(1.5, seed=3)]))
    session = RecognitionSession(
        fake_loaded_model,
        yes_no_grammar(),
        config=EndpointConfig(stable_partial=100),
        recognizer_factory=fake_factory(),
    )
    run(session, audio)
    assert session.result is not None
    assert session.result.reason == "silence"
    speech_end = 5.0
    # not before the end of speech (it was cut 1.76 s early), and within 0.7 s of it
    assert speech_end + 0.5 <= session.result.duration <= speech_end + 0.7
    # the floor is still the line's noise, not the speech's level
    assert session._vad.noise_floor_db == pytest.approx(-60.0, abs=3.0)


def test_the_floor_does_not_move_during_speech() -> None:
    vad = EnergyVad(EndpointConfig(), RATE)
    vad.frames(pcm(line_noise(1.0)))
    before = vad.noise_floor_db
    floors = []
    speech = pcm(continuous_speech(6.0) + line_noise(6.0, seed=4))
    for start in range(0, speech.size, FRAME):
        vad.frames(speech[start : start + FRAME])
        floors.append(vad.noise_floor_db)
    assert before == pytest.approx(-60.0, abs=3.0)
    assert max(floors) <= before + 3.0


def test_speech_frames_stay_speech_to_the_end() -> None:
    vad = EnergyVad(EndpointConfig(), RATE)
    vad.frames(pcm(line_noise(0.5)))
    decisions = vad.frames(pcm(continuous_speech(6.0) + line_noise(6.0, seed=5)))
    speech = [is_speech for is_speech, _ in decisions]
    # every frame louder than −22 dBFS in the last two seconds is still speech
    late = [s for s, (_, level) in zip(speech[-100:], decisions[-100:], strict=True) if level > -22]
    assert late
    assert all(late)


@pytest.mark.parametrize("hiss_dbfs", [-36.0, -30.0])
def test_steady_hiss_is_learnt_as_noise(hiss_dbfs: float) -> None:
    vad = EnergyVad(EndpointConfig(), RATE)
    decisions = vad.frames(pcm(line_noise(3.0, dbfs=hiss_dbfs, seed=6)))
    assert decisions[0][0]  # taken for speech before the floor is learnt
    assert not any(s for s, _ in decisions[-25:])  # then noise
    assert vad.noise_floor_db == pytest.approx(hiss_dbfs, abs=3.0)


def test_a_louder_line_is_learnt_after_speech() -> None:
    # The line gets noisier mid-call (−60 → −40 dBFS, steady): learnt as noise, and speech
    # over it is still speech.
    vad = EnergyVad(EndpointConfig(), RATE)
    vad.frames(pcm(line_noise(1.0)))
    louder = vad.frames(pcm(line_noise(5.0, dbfs=-40.0, seed=7)))
    assert not any(s for s, _ in louder[-150:])  # noise after a second or two
    assert vad.noise_floor_db == pytest.approx(-40.0, abs=3.0)  # fully learnt in 5 s
    decisions = vad.frames(pcm(continuous_speech(1.0) + line_noise(1.0, dbfs=-40.0, seed=8)))
    assert sum(s for s, _ in decisions) > len(decisions) // 2


def test_quieter_frames_lower_the_floor_at_once() -> None:
    vad = EnergyVad(EndpointConfig(), RATE)
    vad.frames(pcm(line_noise(3.0, dbfs=-36.0, seed=9)))
    vad.frames(silence(0.02))
    assert vad.noise_floor_db == pytest.approx(-100.0)


def test_hiss_false_start_then_long_speech_over_it(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    # A hiss from the start is a false start (no words); speech over it then runs its full
    # length and ends within 0.7 s of its end.
    hiss = -40.0
    speech = continuous_speech(4.5) + line_noise(4.5, dbfs=hiss, seed=10)
    audio = pcm(
        np.concatenate(
            [line_noise(3.0, dbfs=hiss, seed=11), speech, line_noise(1.5, dbfs=hiss, seed=12)]
        )
    )
    session = RecognitionSession(
        fake_loaded_model,
        yes_no_grammar(),
        config=EndpointConfig(stable_partial=100),
        recognizer_factory=fake_factory(),
    )
    run(session, audio)
    assert session.result is not None
    assert session.result.reason == "silence"
    assert 7.5 + 0.4 <= session.result.duration <= 7.5 + 0.7


@pytest.mark.asr
def test_ten_digit_fixture_over_line_noise_is_not_cut(ko_model: LoadedModel) -> None:
    """The benchmark's case, built the benchmark's way: the speech of the 10-digit ko
    recording cut out and put between 0.5 s and 1.0 s of −60 dBFS line noise, μ-law."""
    (utterance,) = [
        u
        for u in load_utterances("ko", ko_model.info.sample_rate, kinds=["digits"])
        if u.name == "digits_7700112233.wav"
    ]
    session = RecognitionSession(ko_model, build_grammar(ko_model, "digits", "ko"))
    for start in range(0, len(utterance.ulaw), FRAME):
        session.feed_ulaw(utterance.ulaw[start : start + FRAME])
        if session.done:
            break
    result = session.result
    assert result is not None
    assert result.reason == "silence"
    # it was ended 1.26 s before the end of speech, with 7 of the 11 words
    assert utterance.speech_end <= result.duration <= utterance.speech_end + 0.7
    assert len(result.words) >= 10
    assert result.words[-1].end >= utterance.speech_end - 0.4
