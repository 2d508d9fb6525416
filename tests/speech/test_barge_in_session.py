"""Barge-in support of the stream session: marks, the step's no-input timeout, and an
utterance length that a long prompt does not eat into (recognizer stand-in, no model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from speech.model_store import LoadedModel
from speech.recognizer import EndpointConfig
from speech.stream import MediaStreamSession, StreamConfig, StreamEvent

from .conftest import silence, syllables
from .test_recognizer_session import feed_frames, make_session
from .test_stream_session import Twilio


def stream_session(
    model: LoadedModel, factory: Any, events: list[StreamEvent]
) -> MediaStreamSession:
    config = StreamConfig(default_lang="ko", endpoint=EndpointConfig(stable_partial=100))
    return MediaStreamSession(model, events.append, config, recognizer_factory=factory())


def test_an_echoed_mark_is_reported(fake_loaded_model: LoadedModel, fake_factory: Any) -> None:
    events: list[StreamEvent] = []
    session = stream_session(fake_loaded_model, fake_factory, events)
    tw = Twilio()
    session.handle_message(tw.start(prompt_mark="prompt"))
    session.handle_message(tw.mark("prompt"))
    marks = [e for e in events if e.kind == "mark"]
    assert [m.text for m in marks] == ["prompt"]
    assert session.utterance is not None
    assert not session.utterance.prompt_playing


def test_the_step_timeout_is_the_no_input_timeout_after_the_prompt(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    events: list[StreamEvent] = []
    session = stream_session(fake_loaded_model, fake_factory, events)
    tw = Twilio()
    session.handle_message(tw.start(prompt_mark="prompt", no_input_s="2"))
    for message in tw.media_frames(silence(4.0)):  # the prompt plays: no timer yet
        session.handle_message(message)
    assert "final" not in [e.kind for e in events]
    session.handle_message(tw.mark("prompt"))
    for message in tw.media_frames(silence(2.1)):
        session.handle_message(message)
    final = next(e for e in events if e.kind == "final")
    assert final.result is not None
    assert final.result.reason == "no_input"
    assert final.result.duration == pytest.approx(6.0, abs=0.08)


def test_a_bad_no_input_parameter_keeps_the_default(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    events: list[StreamEvent] = []
    session = stream_session(fake_loaded_model, fake_factory, events)
    session.handle_message(Twilio().start(no_input_s="soon"))
    assert session.utterance is not None
    assert session.utterance.config.no_input_timeout == EndpointConfig().no_input_timeout


def test_a_long_prompt_does_not_shorten_the_utterance(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    config = EndpointConfig(max_length=2.0, stable_partial=100)
    session = make_session(fake_loaded_model, fake_factory, config=config, prompt_seconds=3.0)
    audio = np.concatenate([silence(3.5), syllables(5.0)])
    events = feed_frames(session, audio)
    when, final = events[-1]
    assert final.result is not None
    assert final.result.reason == "max_length"
    assert when == pytest.approx(5.0, abs=0.1)  # 2 s after the prompt's end, not at 2 s


def test_speech_over_the_prompt_counts_from_its_start(
    fake_loaded_model: LoadedModel, fake_factory: Any
) -> None:
    config = EndpointConfig(max_length=2.0, stable_partial=100, noise_settle=0.0)
    session = make_session(fake_loaded_model, fake_factory, config=config)
    session.set_prompt_playing(True)  # a bidirectional stream's prompt, until its mark
    events = feed_frames(session, np.concatenate([silence(1.0), syllables(5.0)]))
    kinds = [e.kind for _, e in events]
    assert "barge_in" in kinds
    when, final = events[-1]
    assert final.result is not None
    assert final.result.reason == "max_length"
    assert when == pytest.approx(3.0, abs=0.1)
