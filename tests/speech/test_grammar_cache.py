"""Built grammars are cached per (model, kind, lang, keywords); missing words warn once."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from speech import grammar as grammar_module
from speech.errors import GrammarError
from speech.grammar import build_grammar, check_vocabulary, clear_grammar_cache
from speech.model_store import LoadedModel
from speech.stream import MediaStreamSession, StreamConfig

from .conftest import fake_model, make_fake_factory


def lacks_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lacks" in r.getMessage()]


def start_message(**params: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "streamSid": "MZ1",
            "start": {
                "callSid": "CA1",
                "streamSid": "MZ1",
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
        }
    )


def test_same_grammar_object_for_the_same_request(fake_loaded_model: LoadedModel) -> None:
    first = build_grammar(fake_loaded_model, "yes_no", "ko")
    assert build_grammar(fake_loaded_model, "yes_no", "ko") is first
    assert build_grammar(fake_loaded_model, "digits", "ko") is not first
    menu = build_grammar(fake_loaded_model, "menu", "ko", ["네"])
    assert build_grammar(fake_loaded_model, "menu", "ko", ["아니"]) is not menu
    assert build_grammar(fake_model(), "yes_no", "ko") is not first  # another model


def test_missing_words_warn_once_per_model_and_word(caplog: pytest.LogCaptureFixture) -> None:
    model = fake_model()  # knows no [unk] and only some digits
    with caplog.at_level(logging.WARNING, logger="speech.grammar"):
        for _ in range(3):
            build_grammar(model, "digits", "ko")
        build_grammar(model, "yes_no", "ko")  # lacks only [unk], already reported
        grammar = build_grammar(model, "number", "ko")  # lacks more words
    warnings = lacks_warnings(caplog)
    assert len(warnings) == 2
    assert "[unk]" in warnings[0]
    assert "[unk]" not in warnings[1]
    assert "십" in warnings[1]
    assert "[unk]" in grammar.missing  # the grammar itself still says what is missing
    with caplog.at_level(logging.WARNING, logger="speech.grammar"):
        build_grammar(fake_model(), "digits", "ko")  # another model: reported again
    assert len(lacks_warnings(caplog)) == 3


def test_every_stream_start_reuses_the_grammar(caplog: pytest.LogCaptureFixture) -> None:
    model = fake_model()
    grammars = []
    with caplog.at_level(logging.WARNING, logger="speech.grammar"):
        for _ in range(5):
            session = MediaStreamSession(
                model, lambda event: None, StreamConfig(), recognizer_factory=make_fake_factory()
            )
            session.handle_message(start_message(grammar="yes_no", lang="ko"))
            grammars.append(session.grammar)
    assert len(lacks_warnings(caplog)) == 1
    assert all(g is grammars[0] for g in grammars)


def test_start_up_check_still_reports_every_problem(caplog: pytest.LogCaptureFixture) -> None:
    model = fake_model()
    build_grammar(model, "digits", "ko")
    problems = check_vocabulary(model, "ko")
    assert problems["digits"][-1] == "[unk]"
    assert "[unk]" in problems["yes_no"]


def test_errors_are_not_cached(fake_loaded_model: LoadedModel) -> None:
    for _ in range(2):
        with pytest.raises(GrammarError):
            build_grammar(fake_loaded_model, "nonsense", "ko")
    nothing = fake_model({"zzz"})
    for _ in range(2):
        with pytest.raises(GrammarError, match="knows none"):
            build_grammar(nothing, "yes_no", "ko")


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = grammar_module._GrammarCache(max_grammars=3, max_models=2)
    monkeypatch.setattr(grammar_module, "_cache", cache)
    models = [fake_model() for _ in range(5)]
    for model in models:
        build_grammar(model, "yes_no", "ko")
    assert len(cache._grammars) == 3
    assert len(cache._warned) == 2
    newest = build_grammar(models[-1], "yes_no", "ko")
    assert build_grammar(models[-1], "yes_no", "ko") is newest


def test_clear_forgets_grammars_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    model = fake_model()
    with caplog.at_level(logging.WARNING, logger="speech.grammar"):
        first = build_grammar(model, "yes_no", "ko")
        clear_grammar_cache()
        again = build_grammar(model, "yes_no", "ko")
    assert again is not first
    assert again == first
    assert len(lacks_warnings(caplog)) == 2


def test_threads_build_one_grammar_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    model = fake_model()
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(20):
            results.append(build_grammar(model, "digits", "ko"))

    with caplog.at_level(logging.WARNING, logger="speech.grammar"):
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 160
    assert len({g.words for g in results}) == 1
    assert len(lacks_warnings(caplog)) == 1
