"""The decoder is gated by the energy detector: silence before speech is not decoded, nor
a pause after it beyond ``postroll`` unless speech resumes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from speech.audio import AudioClip, Resampler, pcm16_to_bytes
from speech.model_store import LoadedModel
from speech.recognizer import EndpointConfig, RecognitionSession, transcribe

from .conftest import FakeKaldi, silence, syllables, tone, yes_no_grammar
from .test_recognizer_session import feed_frames, make_session

RATE = 8000


def quiet(seconds: float, seed: int = 3) -> np.ndarray:
    """Line noise well below speech (about -60 dBFS)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 30, int(RATE * seconds)), -32768, 32767).astype(np.int16)


def test_silence_before_speech_is_not_decoded_but_the_preroll_is(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    lead = quiet(2.0)
    audio = np.concatenate([lead, tone(0.5), silence(1.0)])
    session = make_session(fake_loaded_model, fake_factory)
    events = feed_frames(session, audio)
    result = events[-1][1].result
    assert result is not None
    assert result.reason == "silence"
    assert result.text == "네"
    assert result.duration == pytest.approx(session.audio_seconds)
    fed = bytes(fake_recognizers[0].fed)
    # The decoder started 0.3 s (the pre-roll) before the detected start of speech and
    # stopped 0.3 s (the post-roll) into the pause that ended the utterance: it got exactly
    # the audio in between, resampled as a stream of its own.
    skipped = lead.size - round(0.3 * RATE)
    held_from = round((2.0 + 0.5 + 0.3) * RATE)
    assert session.audio_seconds == pytest.approx(2.0 + 0.5 + 0.6)  # ended by the silence
    decoded = audio[skipped:held_from]
    assert fed == pcm16_to_bytes(Resampler(RATE, 16000).process(decoded))
    # Word times are in the stream's time, not the decoder's.
    assert result.words[0].start == pytest.approx(skipped / RATE)
    assert result.decoded_seconds == pytest.approx((held_from - skipped) / RATE)
    assert result.to_dict()["decoded"] == round(result.decoded_seconds, 3)


def test_no_speech_decodes_nothing(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    session = make_session(
        fake_loaded_model, fake_factory, config=EndpointConfig(no_input_timeout=2.0)
    )
    events = feed_frames(session, quiet(3.0))
    result = events[-1][1].result
    assert result is not None
    assert result.reason == "no_input"
    assert result.text == ""
    assert result.decoded_seconds == 0.0
    assert fake_recognizers[0].fed == b""
    assert fake_recognizers[0].finalised


@pytest.mark.parametrize("reason", ["dtmf", "hangup", "end_of_audio"])
def test_finish_while_gated(
    fake_loaded_model: LoadedModel,
    fake_factory: Any,
    fake_recognizers: list[FakeKaldi],
    reason: Any,
) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    session.feed(quiet(1.0))
    result = session.finish(reason)
    assert result.reason == reason
    assert result.text == ""
    assert not result.speech_detected
    assert fake_recognizers[0].fed == b""


def test_speech_within_the_preroll_is_decoded_whole(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    audio = np.concatenate([quiet(0.2), syllables(1.0), silence(1.0)])
    session = make_session(fake_loaded_model, fake_factory)
    feed_frames(session, audio)
    fed = bytes(fake_recognizers[0].fed)
    # everything up to the post-roll after the last syllable (its 80 ms gaps are decoded)
    decoded = audio[: round((0.2 + 1.0 + 0.3) * RATE)]
    assert fed == pcm16_to_bytes(Resampler(RATE, 16000).process(decoded))


@pytest.mark.parametrize(
    "config",
    [EndpointConfig(gate_decoder=False), EndpointConfig(preroll=100.0, postroll=100.0)],
)
def test_ungated_sessions_decode_everything(
    fake_loaded_model: LoadedModel,
    fake_factory: Any,
    fake_recognizers: list[FakeKaldi],
    config: EndpointConfig,
) -> None:
    audio = np.concatenate([quiet(2.0), tone(0.5), silence(1.0)])
    session = make_session(fake_loaded_model, fake_factory, config=config)
    feed_frames(session, audio)
    decoded = audio[: round(session.audio_seconds * RATE)]
    fed = bytes(fake_recognizers[0].fed)
    assert fed == pcm16_to_bytes(Resampler(RATE, 16000).process(decoded))


def test_a_pause_within_the_utterance_is_decoded_whole_when_speech_resumes(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    # 0.5 s pauses: the decoder is held after 0.3 s of each, then gets all of it when the
    # caller goes on (the audio it decodes is the audio of the line, in order, no gap).
    audio = np.concatenate(
        [silence(0.2), tone(0.4), silence(0.5), tone(0.4), silence(0.5), tone(0.4), silence(1.0)]
    )
    # (the fake's partial never changes: keep the stable-partial rule out of this test)
    config = EndpointConfig(stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    events = feed_frames(session, audio)
    result = events[-1][1].result
    assert result is not None
    assert result.reason == "silence"
    end_of_speech = 0.2 + 0.4 + 0.5 + 0.4 + 0.5 + 0.4
    decoded = audio[: round((end_of_speech + 0.3) * RATE)]
    assert bytes(fake_recognizers[0].fed) == pcm16_to_bytes(Resampler(RATE, 16000).process(decoded))
    assert result.decoded_seconds == pytest.approx(end_of_speech + 0.3)
    assert result.duration == pytest.approx(end_of_speech + 0.6)


@pytest.mark.parametrize("reason", ["dtmf", "hangup"])
def test_finish_in_a_held_pause_decodes_no_more(
    fake_loaded_model: LoadedModel,
    fake_factory: Any,
    fake_recognizers: list[FakeKaldi],
    reason: Any,
) -> None:
    session = make_session(fake_loaded_model, fake_factory)
    feed_frames(session, np.concatenate([silence(0.2), tone(0.5), silence(0.5)]))
    assert not session.done
    fed = len(fake_recognizers[0].fed)
    result = session.finish(reason)
    assert result.reason == reason
    assert result.text == "네"
    assert len(fake_recognizers[0].fed) == fed  # the held 0.2 s were not decoded
    assert fake_recognizers[0].finalised
    assert result.decoded_seconds == pytest.approx(0.2 + 0.5 + 0.3)


def test_no_partial_result_is_searched_for_in_a_held_pause(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    config = EndpointConfig(trailing_silence=3.0, stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    feed_frames(session, np.concatenate([silence(0.2), tone(0.5), silence(0.6)]))
    searches = fake_recognizers[0].partial_calls
    feed_frames(session, silence(2.0))
    assert fake_recognizers[0].partial_calls == searches


def test_whole_recordings_are_decoded_whole(
    fake_loaded_model: LoadedModel, fake_factory: Any, fake_recognizers: list[FakeKaldi]
) -> None:
    audio = np.concatenate([quiet(2.0), tone(0.5), silence(0.5)])
    clip = AudioClip(samples=audio, sample_rate=RATE, encoding="pcm16")
    session_factory = fake_factory()
    original = RecognitionSession.__init__.__kwdefaults__["recognizer_factory"]
    RecognitionSession.__init__.__kwdefaults__["recognizer_factory"] = session_factory
    try:
        result = transcribe(fake_loaded_model, clip, yes_no_grammar())
    finally:
        RecognitionSession.__init__.__kwdefaults__["recognizer_factory"] = original
    assert result.reason == "end_of_audio"
    assert len(fake_recognizers[0].fed) >= 2 * 16000 * 2.9  # all of it (minus the filter delay)


def test_preroll_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="preroll"):
        EndpointConfig(preroll=-0.1)
    with pytest.raises(ValueError, match="postroll"):
        EndpointConfig(postroll=-0.1)
