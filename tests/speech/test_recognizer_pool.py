"""Free-vocabulary recognizers are reused after FinalResult(); grammar ones never are."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from speech.audio import read_wav
from speech.grammar import Grammar, build_grammar
from speech.model_store import LoadedModel
from speech.recognizer import (
    EndpointConfig,
    RecognitionSession,
    RecognizerPool,
    shared_recognizer_pool,
)

from .conftest import fake_model, silence, tone, yes_no_grammar

FREE = Grammar(kind="free", lang="ko", words=())


class ResettingKaldi:
    """Like ``vosk.KaldiRecognizer``: after ``FinalResult()`` the next audio starts a new
    utterance (nothing of the previous one is carried over)."""

    made: ClassVar[list[ResettingKaldi]] = []

    def __init__(self, model: Any, rate: int, grammar_json: str | None) -> None:
        self.grammar_json = grammar_json
        self.utterance = bytearray()
        self.finals = 0
        self.in_use = False
        ResettingKaldi.made.append(self)

    def SetWords(self, enabled: bool) -> None:
        pass

    def AcceptWaveform(self, data: bytes) -> int:
        self.utterance.extend(data)
        return 0

    def _text(self) -> str:
        return "네" if len(self.utterance) else ""

    def PartialResult(self) -> str:
        return json.dumps({"partial": self._text()})

    def Result(self) -> str:
        return json.dumps({"text": ""})

    def FinalResult(self) -> str:
        text = f"{self._text()} {len(self.utterance)}".strip() if self.utterance else ""
        self.utterance = bytearray()
        self.finals += 1
        return json.dumps({"text": text})


def factory(model: Any, rate: int, grammar_json: str | None) -> ResettingKaldi:
    return ResettingKaldi(model, rate, grammar_json)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ResettingKaldi.made.clear()


def utterance(
    model: LoadedModel, pool: RecognizerPool, seconds: float = 0.5, grammar: Grammar = FREE
) -> RecognitionSession:
    session = RecognitionSession(
        model,
        grammar,
        config=EndpointConfig(stable_partial=100),
        recognizer_factory=factory,
        recognizer_pool=pool,
    )
    audio = np.concatenate([tone(seconds), silence(1.0)])
    for start in range(0, audio.size, 160):
        session.feed(audio[start : start + 160])
        if session.done:
            break
    assert session.result is not None
    return session


def test_free_recognizer_is_reused_across_utterances(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool()
    texts = [utterance(fake_loaded_model, pool).result.text for _ in range(5)]  # type: ignore[union-attr]
    assert len(ResettingKaldi.made) == 1
    assert ResettingKaldi.made[0].finals == 5
    assert ResettingKaldi.made[0].grammar_json is None
    assert pool.created == 1
    assert pool.reused == 4
    # each utterance got exactly its own audio (the same length each time)
    assert len(set(texts)) == 1
    assert texts[0].startswith("네")


def test_grammar_recognizers_are_never_reused(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool()
    for _ in range(3):
        utterance(fake_loaded_model, pool, grammar=yes_no_grammar())
    assert len(ResettingKaldi.made) == 3
    assert pool.created == 0
    assert pool.idle == 0


def test_recognizer_is_retired_after_max_utterances(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool(max_utterances=3)
    for _ in range(7):
        utterance(fake_loaded_model, pool)
    assert [r.finals for r in ResettingKaldi.made] == [3, 3, 1]


def test_recognizer_is_retired_after_max_audio(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool(max_audio_seconds=3.0)  # each utterance is about 1.1 s
    for _ in range(6):
        utterance(fake_loaded_model, pool)
    assert [r.finals for r in ResettingKaldi.made] == [3, 3]


def test_no_reuse_with_max_idle_0(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool(max_idle=0)
    for _ in range(3):
        utterance(fake_loaded_model, pool)
    assert len(ResettingKaldi.made) == 3


def test_a_recognizer_serves_one_session_at_a_time(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool(max_idle=1)
    first = RecognitionSession(
        fake_loaded_model, FREE, recognizer_factory=factory, recognizer_pool=pool
    )
    second = RecognitionSession(
        fake_loaded_model, FREE, recognizer_factory=factory, recognizer_pool=pool
    )
    assert len(ResettingKaldi.made) == 2  # the first is busy: a second one is made
    first.finish("hangup")
    second.finish("hangup")
    assert pool.idle == 1  # the pool keeps at most max_idle; the other is freed
    utterance(fake_loaded_model, pool)
    assert len(ResettingKaldi.made) == 2


def test_a_session_never_finished_keeps_its_recognizer(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool()
    RecognitionSession(fake_loaded_model, FREE, recognizer_factory=factory, recognizer_pool=pool)
    utterance(fake_loaded_model, pool)
    assert len(ResettingKaldi.made) == 2


def test_other_model_or_factory_is_not_mixed_up(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool()
    utterance(fake_loaded_model, pool)
    utterance(fake_model(), pool)
    assert len(ResettingKaldi.made) == 2
    utterance(fake_loaded_model, pool)
    assert len(ResettingKaldi.made) == 2


def test_threads_never_share_a_recognizer(fake_loaded_model: LoadedModel) -> None:
    pool = RecognizerPool(max_idle=4)
    errors: list[str] = []
    lock = threading.Lock()

    def guarded(model: Any, rate: int, grammar_json: str | None) -> Any:
        rec = ResettingKaldi(model, rate, grammar_json)
        original = rec.FinalResult

        def final() -> str:
            with lock:
                if not rec.in_use:
                    errors.append("FinalResult on an idle recognizer")
                rec.in_use = False
            return original()

        rec.FinalResult = final  # type: ignore[method-assign]
        return rec

    def work() -> None:
        for _ in range(5):
            session = RecognitionSession(
                fake_loaded_model, FREE, recognizer_factory=guarded, recognizer_pool=pool
            )
            with lock:
                if session._rec.in_use:
                    errors.append("a recognizer handed to two sessions at once")
                session._rec.in_use = True
            session.feed(tone(0.2))
            session.finish("end_of_audio")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert pool.created <= 4 + 4  # at most one per concurrent session, plus retired ones
    assert pool.reused > 0


def test_a_forked_child_starts_empty(
    fake_loaded_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = RecognizerPool()
    utterance(fake_loaded_model, pool)
    assert pool.idle == 1
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked child
    utterance(fake_loaded_model, pool)
    assert len(ResettingKaldi.made) == 2


def test_shared_pool_is_the_default(fake_loaded_model: LoadedModel) -> None:
    shared = shared_recognizer_pool()
    assert shared is shared_recognizer_pool()
    created = shared.created
    for _ in range(2):
        session = RecognitionSession(fake_loaded_model, FREE, recognizer_factory=factory)
        session.feed(tone(0.1))
        session.finish("end_of_audio")
    assert shared.created == created + 1
    shared.clear()
    assert shared.idle == 0


def test_invalid_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        RecognizerPool(max_utterances=0)


@pytest.mark.asr
def test_reused_real_recognizer_decodes_like_a_new_one(ko_model: LoadedModel) -> None:
    """Nothing of an utterance leaks into the next (dither 0: decodes are repeatable)."""
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "ko"
    free = build_grammar(ko_model, "free", "ko")

    def run(name: str, pool: RecognizerPool) -> str:
        clip = read_wav(fixtures / name)
        session = RecognitionSession(
            ko_model, free, config=EndpointConfig(endpointing=False), recognizer_pool=pool
        )
        for start in range(0, clip.samples.size, 1600):
            session.feed(clip.samples[start : start + 1600])
        return session.finish("end_of_audio").text

    names = ["menu_yogeum.wav", "no_aniyo.wav"]
    fresh = [run(name, RecognizerPool(max_idle=0)) for name in names]
    pool = RecognizerPool()
    reused = [run(name, pool) for name in names]
    assert pool.created == 1
    assert pool.reused == 1
    assert reused == fresh
    assert all(fresh)
