"""RecognitionSession logic with a recording stand-in for the recognizer (no model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from speech.audio import Resampler, pcm16_to_bytes, ulaw_encode
from speech.grammar import build_grammar
from speech.model_store import LoadedModel
from speech.recognizer import EndpointConfig, RecognitionEvent, RecognitionSession

from .conftest import FakeKaldi, silence, syllables, tone, yes_no_grammar


def feed_frames(
    session: RecognitionSession, samples: np.ndarray, frame: int = 160
) -> list[tuple[float, RecognitionEvent]]:
    """Feed 20 ms frames; return (audio time, event) pairs until the session is done."""
    events = []
    for start in range(0, samples.size, frame):
        for event in session.feed(samples[start : start + frame]):
            events.append((session.audio_seconds, event))
        if session.done:
            break
    return events


def make_session(model: LoadedModel, factory: Any, **kwargs: Any) -> RecognitionSession:
    return RecognitionSession(model, yes_no_grammar(), recognizer_factory=factory(), **kwargs)


def test_final_after_trailing_silence_within_budget(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    # (the fake's partial never changes: keep the stable-partial rule out of this test)
    config = EndpointConfig(stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    audio = np.concatenate([silence(0.3), tone(1.0), silence(2.0)])
    events = feed_frames(session, audio)
    kinds = [e.kind for _, e in events]
    assert kinds.count("speech_start") == 1
    assert "partial" in kinds
    end_time, final = events[-1]
    assert final.kind == "final"
    assert final.result is not None
    assert final.result.reason == "silence"
    assert final.result.text == "네"
    assert final.result.confidence == pytest.approx(0.8)
    assert final.result.words[0].word == "네"
    # speech ended at 1.3 s; the result must be ready within 0.7 s of that
    assert 1.3 + 0.58 <= end_time <= 1.3 + 0.7
    assert session.done
    assert session.feed(tone(0.1)) == []  # nothing more after the end


def test_recognizer_gets_upsampled_pcm(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    # Ungated: the decoder gets every batch from the first sample (the gate: test_decoder_gate).
    session = make_session(
        fake_loaded_model, fake_factory, config=EndpointConfig(gate_decoder=False)
    )
    audio = tone(0.21)
    feed_frames(session, audio)
    rec = fake_recognizers[0]
    assert len(rec.fed) == 2 * 2 * 1600  # two 100 ms batches so far; 10 ms still gathered
    session.finish("hangup")
    assert rec.rate == 16000
    assert rec.grammar == ["네", "아니요"]
    assert rec.words is True
    expected = Resampler(8000, 16000).process(audio)
    assert bytes(rec.fed) == pcm16_to_bytes(expected)


def test_ulaw_feed(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    session.feed_ulaw(ulaw_encode(tone(0.5)))
    assert session.speech_started
    session.feed_ulaw(ulaw_encode(silence(0.7)))
    assert session.result is not None
    assert session.result.reason == "silence"


def test_no_input_timeout(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    config = EndpointConfig(no_input_timeout=1.0)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    events = feed_frames(session, silence(3.0))
    assert [e.kind for _, e in events] == ["final"]
    when, final = events[0]
    assert when == pytest.approx(1.0, abs=0.07)  # decided per 60 ms batch
    assert final.result is not None
    assert final.result.reason == "no_input"
    assert final.result.text == ""
    assert final.result.confidence == 0.0
    assert not final.result.speech_detected


def test_no_input_timer_starts_after_the_prompt(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    config = EndpointConfig(no_input_timeout=1.0)
    session = make_session(fake_loaded_model, fake_factory, config=config, prompt_seconds=2.0)
    events = feed_frames(session, silence(5.0))
    when, final = events[-1]
    assert final.result is not None
    assert final.result.reason == "no_input"
    assert when == pytest.approx(3.0, abs=0.07)


def test_max_length(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    config = EndpointConfig(max_length=2.0, stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    events = feed_frames(session, syllables(5.0))
    when, final = events[-1]
    assert final.result is not None
    assert final.result.reason == "max_length"
    assert when == pytest.approx(2.0, abs=0.07)


def test_stable_partial_ends_on_a_noisy_line(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    # The line never goes quiet, but the hypothesis stops changing: the utterance ends.
    config = EndpointConfig(stable_partial=1.0)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    events = feed_frames(session, tone(6.0))
    partial_times = [t for t, e in events if e.kind == "partial"]
    when, final = events[-1]
    assert final.result is not None
    assert final.result.reason == "silence"
    assert when == pytest.approx(partial_times[-1] + 1.0, abs=0.21)


def test_barge_in_while_prompt_plays(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    session = make_session(fake_loaded_model, fake_factory, prompt_seconds=3.0)
    events = feed_frames(session, np.concatenate([silence(0.5), tone(0.5), silence(1.0)]))
    kinds = [e.kind for _, e in events]
    start = kinds.index("speech_start")
    # the noise floor is still being learnt in the first second: barge-in waits for words
    assert kinds.index("barge_in") > kinds.index("partial") > start
    assert kinds.count("barge_in") == 1
    assert kinds[-1] == "final"


def test_barge_in_at_speech_start_once_settled(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    session = make_session(fake_loaded_model, fake_factory, prompt_seconds=3.0)
    events = feed_frames(session, np.concatenate([silence(1.5), tone(0.5), silence(1.0)]))
    kinds = [e.kind for _, e in events]
    assert kinds[kinds.index("speech_start") + 1] == "barge_in"


def test_no_barge_in_after_prompt(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    session = make_session(fake_loaded_model, fake_factory, prompt_seconds=0.3)
    events = feed_frames(session, np.concatenate([silence(0.5), tone(0.5), silence(1.0)]))
    assert "barge_in" not in [e.kind for _, e in events]


def test_prompt_flag(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    session.set_prompt_playing(True)
    assert session.prompt_playing
    kinds = [e.kind for e in session.feed(tone(0.2))]
    assert "barge_in" in kinds
    session.set_prompt_playing(False)
    assert not session.prompt_playing


def noise(seconds: float, std: float = 500.0, seed: int = 1) -> np.ndarray:
    """White noise; std 500 is about -36 dBFS, louder than min_speech_db."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(8000 * seconds)) * std).astype(np.int16)


def test_noisy_line_is_learnt_and_speech_over_it_ends(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    # Hiss from the start: taken for speech until the noise floor is learnt, but no words
    # come, so the session keeps listening; then speech over the hiss ends 0.6 s after it.
    config = EndpointConfig(stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    speech = syllables(0.56) + noise(0.56, seed=2)
    events = feed_frames(session, np.concatenate([noise(2.5), speech, noise(1.5, seed=3)]))
    finals = [(t, e) for t, e in events if e.kind == "final"]
    assert len(finals) == 1
    when, final = finals[0]
    assert final.result is not None
    assert final.result.reason == "silence"
    assert final.result.text == "네"
    assert 3.06 + 0.5 <= when <= 3.06 + 0.7
    starts = [t for t, e in events if e.kind == "speech_start"]
    assert len(starts) == 2  # the hiss at first (a false start, dropped), then the speech
    assert starts[0] < 0.2
    assert 2.5 <= starts[1] <= 2.5 + 0.12  # the real start is found at once


def test_noise_during_the_prompt_is_no_barge_in(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    session = make_session(fake_loaded_model, fake_factory, prompt_seconds=3.0)
    events = feed_frames(session, noise(3.0))
    assert "barge_in" not in [e.kind for _, e in events]
    assert not session.done


def test_speech_at_once_is_detected(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    events = feed_frames(session, np.concatenate([tone(0.5), silence(1.0)]))
    assert [e.kind for _, e in events].count("speech_start") == 1
    assert events[-1][1].result is not None
    assert events[-1][1].result.reason == "silence"


def test_finish_is_idempotent_and_frees_the_recognizer(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    session.feed(tone(0.3))
    first = session.finish("dtmf")
    assert first.reason == "dtmf"
    assert session.finish("hangup") is first
    assert fake_recognizers[0].finalised
    assert first.to_dict()["words"][0]["word"] == "네"


def test_new_recognizer_per_session(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    for _ in range(3):
        session = make_session(fake_loaded_model, fake_factory)
        feed_frames(session, np.concatenate([tone(0.3), silence(1.0)]))
        assert session.done
    assert len(fake_recognizers) == 3
    assert all(r.finalised for r in fake_recognizers)


def test_free_vocabulary_only_when_asked(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    RecognitionSession(
        fake_loaded_model,
        build_grammar(fake_loaded_model, "yes_no", "ko"),
        recognizer_factory=fake_factory(),
    )
    RecognitionSession(
        fake_loaded_model,
        build_grammar(fake_loaded_model, "free", "ko"),
        recognizer_factory=fake_factory(),
    )
    assert fake_recognizers[0].grammar == ["네", "예", "아니요", "아니오", "아니"]
    assert fake_recognizers[1].grammar is None


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="trailing_silence"):
        EndpointConfig(trailing_silence=0)
