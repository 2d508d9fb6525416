"""The :class:`LanguagePack` type: the data a language gives number and yes/no understanding.

Each language module of :mod:`speech.lang` (``ru``, ``en``) defines one ``PACK``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class LanguagePack:
    """Everything the number and yes/no parsers need to know about one language.

    Numeral tables map every accepted word form to its value:

    - ``units``: 0..9, including variant and inflected forms («нуль», «одна», «две», "oh").
    - ``teens``: 10..19; ``tens``: 20..90; ``hundreds``: whole-hundred words (Russian «двести»).
    - ``hundred_words``: a multiplier of the preceding 1..99 (English "hundred").
    - ``scales``: 1000, 10**6 … in every case form («тысяча», «тысячи», «тысяч», «тысячу»).
    - ``halves``: «полтора»/«полторы» = 1.5, meaningful alone or before a scale.
    - ``articles``: words that mean 1 only right before a hundred or scale word ("a hundred").
    - ``repeaters``: "double" → 2, "triple" → 3: repeat the digits of the next group.

    Markers and vocabulary:

    - ``conjunctions`` («и», "and") and ``fillers`` («э», «ну», "um") are skipped.
    - ``correction_words`` and ``correction_phrases`` («нет», «то есть», "I mean") start a
      self-correction (rule in ``speech.numbers``).
    - ``decimal_words`` («целых», «запятая», «точка», "point") separate the fraction;
      ``fraction_words`` («десятых» → 1 place, «сотых» → 2) close it.
    - ``yes_words``/``no_words`` are single-word answers, ``negations`` («не», "not") turn a
      following yes word into no, ``yes_phrases``/``no_phrases`` are multi-word answers and
      ``unsure_phrases`` («не знаю») are answers that decide nothing.
    - ``letter_map`` normalises spelling variants (Russian «ё» → «е»).
    """

    code: str
    units: Mapping[str, int]
    teens: Mapping[str, int]
    tens: Mapping[str, int]
    hundreds: Mapping[str, int]
    hundred_words: frozenset[str]
    scales: Mapping[str, int]
    halves: Mapping[str, Decimal]
    articles: frozenset[str]
    repeaters: Mapping[str, int]
    conjunctions: frozenset[str]
    fillers: frozenset[str]
    correction_words: frozenset[str]
    correction_phrases: tuple[Phrase, ...]
    decimal_words: frozenset[str]
    fraction_words: Mapping[str, int]
    yes_words: frozenset[str]
    no_words: frozenset[str]
    negations: frozenset[str]
    yes_phrases: tuple[Phrase, ...]
    no_phrases: tuple[Phrase, ...]
    unsure_phrases: tuple[Phrase, ...]
    letter_map: Mapping[str, str] = field(default_factory=dict)

    def normalize(self, text: str) -> str:
        """Lower-case ``text`` and apply the pack's spelling normalisation."""
        lowered = text.lower().replace("’", "'")
        for source, target in self.letter_map.items():
            lowered = lowered.replace(source, target)
        return lowered

    def numeral_words(self) -> list[str]:
        """Every numeral word form, in table order (units, teens, tens, hundreds, scales)."""
        return _unique(
            [
                *self.units,
                *self.teens,
                *self.tens,
                *self.hundreds,
                *sorted(self.hundred_words),
                *self.scales,
            ]
        )


def _unique(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))
