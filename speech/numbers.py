"""Number and yes/no understanding of recognised speech («ноль ноль сорок пять» → "0045").

Public API::

    parse_digits(text, lang="ru") -> str | None      # a digit string, leading zeros kept
    parse_number(text, lang="ru") -> Decimal | None  # a value, decimals included
    parse_yes_no(text, lang="ru") -> bool | None     # True, False or None (undecided)
    grammar_words(kind, lang="ru") -> list[str]      # vocabulary for a recognizer grammar

All four raise :class:`speech.errors.UnknownLanguageError` (a ``ValueError``) for a language
without a pack, and ``grammar_words`` raises ``ValueError`` for an unknown kind; any text
gives a result, never an exception.

Why our own parser: of the word-to-number packages we measured on 17 Russian and 8 English
IVR phrases, ``text2num`` 2.5.2 does best for Russian (16 of 17; its 3.x releases dropped
Russian, hence the ``<3`` pin) but splits digit runs inconsistently («семь семь ноль ноль
один» → "7 7 001"), leaves «запятая» and «десятых» in the text, and has no notion of fillers,
self-corrections or stutters; the others (``number-parser``, ``russian-numerals``,
``rus2num`` …) fail on decimals or add up digit runs instead of joining them, and
``text2digits`` (English) does not know "double". None covers the whole job, so the parser
below works from the language-pack tables (``speech.lang``) and the tests cross-check it
against ``num2words`` and ``text2num`` on compound numerals.

How a phrase is read
--------------------
1. The text is normalised (lower case, «ё» → «е»), split into words (hyphens split words,
   digits typed as ``12`` or ``12,5`` are accepted), and every word is classified by the
   pack. Fillers («э», «ну», «так», "um"), conjunctions («и», "and"), ``[unk]`` and words the
   pack does not know are skipped; they never split a number.
2. Numeral words are joined into **groups**: a word joins the current group when the group
   could continue with it (tens after hundreds, a unit after tens, a scale smaller than the
   last one, "hundred" after 1..99); otherwise it starts a new group. «ноль» is always a group
   of its own. So «сто двадцать три четыреста пятьдесят шесть» is two groups, 123 and 456,
   and «ноль ноль сорок пять» is three: 0, 0, 45. The digit string of an utterance is the
   concatenation of its groups' digits; so is the integer part of a number.
3. **Stutters**: a scale word or "hundred" said twice in a row is said once («две тысячи
   тысячи» → 2000, "one hundred hundred" → 100), and so is a marker («нет нет», «запятая
   запятая»). Other repeated numerals are real groups, because people read numbers in
   chunks that often share a word: «пять пять» → "55", «сорок сорок пять» → "4045",
   «триста триста один» → "300301".
4. **Self-corrections** start at a correction marker («нет», «вернее», «точнее», «ой»,
   «то есть»; "no", "sorry", "I mean") and consist of the groups that follow it:

   - nothing follows: the last group is withdrawn («три четыре нет» → "3");
   - two or more groups whose first equals one of the last three groups said: the caller is
     restating from there, everything from that group on is replaced
     («семь восемь нет семь девять» → "79"); if several of those groups match, the one
     followed by as many groups as the correction holds is chosen, else the nearest
     («семь семь ноль ноль нет ноль один» → "7701");
   - one group that, put in place of the tail of the last compound group, makes a numeral of
     the same length: it replaces that tail («сто двадцать три нет четыре» → 124,
     «двенадцать тысяч триста сорок пять нет шесть» → 12346);
   - otherwise the corrected groups replace the last group («три нет четыре» → "4",
     «один два три нет четыре пять» → "1245").
5. **Decimals** (``parse_number`` only): the first decimal marker («целых», «запятая»,
   «точка», "point") separates the integer part from the fraction, whose digits are the
   concatenated following groups (leading zeros kept: «запятая ноль пять» → .05). A fraction
   word («десятых», «сотых», «тысячных») gives the number of places and ends the number
   («пять сотых» → 0.05; anything after it is ignored). ``parse_digits`` ignores decimal
   markers and returns all digits.
6. «полтора»/«полторы» is 1.5: before a scale it is part of the group («полторы тысячи» →
   1500); alone it is the number 1.5 and no digit string.
7. English: "oh"/"o" are zeros, "double"/"triple" repeat the digits of the next group
   ("double five" → "55"), "a" is 1 before "hundred" or a scale.

Yes/no: the answer is the **last** decisive expression in the text. Yes words («да»,
«верно», «ага»), no words («нет», «неверно»), a negation before a yes word («не верно»,
"not right") is no, fixed phrases («да нет» and «не так» are no, «так точно» is yes), and
phrases of doubt («не знаю», "not sure") decide nothing (None). So «нет-нет, всё верно» is
True and «не знаю» is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, auto

from speech.lang import LanguagePack, Phrase, get_pack

GRAMMAR_KINDS = ("digits", "number", "yes_no")

# restating a correction looks back at most this many groups for its first group
_RESTATE_WINDOW = 3

_POINT = "<point>"  # a decimal point typed between digits; the tokenizer cannot produce it
_ASCII_DIGITS = frozenset("0123456789")
_TOKEN_RE = re.compile(r"\[unk\]|[0-9]+(?:[.,][0-9]+)?|[^\W\d_]+(?:'[^\W\d_]+)*")


class _Kind(Enum):
    UNIT = auto()
    TEEN = auto()
    TENS = auto()
    HUNDREDS = auto()
    HUNDRED_MUL = auto()
    SCALE = auto()
    HALF = auto()
    LITERAL = auto()
    REPEAT = auto()
    CORRECTION = auto()
    DECIMAL = auto()
    FRACTION = auto()


_MARKERS = frozenset({_Kind.CORRECTION, _Kind.DECIMAL, _Kind.FRACTION})
_STUTTER_KINDS = frozenset({_Kind.SCALE, _Kind.HUNDRED_MUL})


@dataclass(frozen=True)
class _Item:
    """A classified word: a numeral, a typed digit string or a marker."""

    kind: _Kind
    word: str
    value: int = 0
    amount: Decimal = Decimal(0)  # HALF only


@dataclass
class _Group:
    """Numeral words read as one number («двенадцать тысяч триста сорок пять»)."""

    repeat: int = 1
    items: list[_Item] = field(default_factory=list)
    literal: str | None = None
    total: int = 0  # completed parts before the last scale word
    current: int = 0  # the part after the last scale word
    half: Decimal | None = None  # «полтора» not (yet) multiplied by a scale
    has_hundreds: bool = False
    has_tens: bool = False
    has_units: bool = False
    closed: bool = False
    last_scale: int | None = None

    def _sub_empty(self) -> bool:
        return not (self.has_hundreds or self.has_tens or self.has_units)

    def accepts(self, item: _Item) -> bool:
        """Whether ``item`` can continue this (non-empty) group."""
        if self.closed or self.literal is not None:
            return False
        if self.half is not None:
            return item.kind is _Kind.SCALE
        kind = item.kind
        if kind is _Kind.UNIT:
            return item.value != 0 and not self.has_units
        if kind in (_Kind.TEEN, _Kind.TENS):
            return not (self.has_units or self.has_tens)
        if kind is _Kind.HUNDREDS:
            return self._sub_empty()
        if kind is _Kind.HUNDRED_MUL:
            return not self.has_hundreds and (self.has_units or self.has_tens)
        if kind is _Kind.SCALE:
            return self.last_scale is None or item.value < self.last_scale
        return False

    def add(self, item: _Item) -> None:
        """Add ``item``: the first word of the group or one :meth:`accepts` allowed."""
        self.items.append(item)
        kind = item.kind
        if kind is _Kind.LITERAL:
            self.literal = item.word
        elif kind is _Kind.HALF:
            self.half = item.amount
        elif kind is _Kind.UNIT:
            self.current += item.value
            self.has_units = True
            self.closed = item.value == 0
        elif kind is _Kind.TEEN:
            self.current += item.value
            self.has_units = self.has_tens = True
        elif kind is _Kind.TENS:
            self.current += item.value
            self.has_tens = True
        elif kind is _Kind.HUNDREDS:
            self.current += item.value
            self.has_hundreds = True
        elif kind is _Kind.HUNDRED_MUL:
            self.current = (self.current or 1) * 100
            self.has_hundreds = True
            self.has_tens = self.has_units = False
        elif kind is _Kind.SCALE:
            if self.half is not None:
                self.total += int(self.half * item.value)
                self.half = None
            else:
                self.total += (self.current or 1) * item.value
            self.current = 0
            self.has_hundreds = self.has_tens = self.has_units = False
            self.last_scale = item.value

    def digits(self) -> str | None:
        """The group's digit string, or None for a bare «полтора»."""
        if self.literal is not None:
            return self.literal * self.repeat
        if self.half is not None:
            return None
        return str(self.total + self.current) * self.repeat


_Event = _Group | _Item


def _is_digits(token: str) -> bool:
    """ASCII digits only: «²» or «٣» are word characters, not digits we accept."""
    return token[:1] in _ASCII_DIGITS


def _tokens(text: str, pack: LanguagePack) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(pack.normalize(text)):
        token = match.group()
        if _is_digits(token):
            whole, _, fraction = token.replace(",", ".").partition(".")
            tokens.append(whole)
            if fraction:
                tokens.extend((_POINT, fraction))
        else:
            tokens.append(token)
    return tokens


def _match_phrase(tokens: list[str], start: int, phrases: tuple[Phrase, ...]) -> int:
    """Length of the longest phrase in ``phrases`` at ``tokens[start:]``, 0 if none."""
    best = 0
    for phrase in phrases:
        end = start + len(phrase)
        if len(phrase) > best and tuple(tokens[start:end]) == phrase:
            best = len(phrase)
    return best


def _classify_word(token: str, following: list[str], pack: LanguagePack) -> _Item | None:
    if token == _POINT:
        return _Item(_Kind.DECIMAL, token)
    if _is_digits(token):
        return _Item(_Kind.LITERAL, token)
    if token in pack.units:
        return _Item(_Kind.UNIT, token, pack.units[token])
    if token in pack.teens:
        return _Item(_Kind.TEEN, token, pack.teens[token])
    if token in pack.tens:
        return _Item(_Kind.TENS, token, pack.tens[token])
    if token in pack.hundreds:
        return _Item(_Kind.HUNDREDS, token, pack.hundreds[token])
    if token in pack.hundred_words:
        return _Item(_Kind.HUNDRED_MUL, token, 100)
    if token in pack.scales:
        return _Item(_Kind.SCALE, token, pack.scales[token])
    if token in pack.halves:
        return _Item(_Kind.HALF, token, amount=pack.halves[token])
    if token in pack.repeaters:
        return _Item(_Kind.REPEAT, token, pack.repeaters[token])
    if token in pack.articles:
        after = next((t for t in following if t not in pack.fillers), None)
        if after is not None and (after in pack.hundred_words or after in pack.scales):
            return _Item(_Kind.UNIT, token, 1)
        return None
    if token in pack.correction_words:
        return _Item(_Kind.CORRECTION, token)
    if token in pack.decimal_words:
        return _Item(_Kind.DECIMAL, token)
    if token in pack.fraction_words:
        return _Item(_Kind.FRACTION, token, pack.fraction_words[token])
    return None  # filler, conjunction, [unk] or a word we do not know


def _classify(tokens: list[str], pack: LanguagePack) -> list[_Item]:
    items: list[_Item] = []
    index = 0
    while index < len(tokens):
        length = _match_phrase(tokens, index, pack.correction_phrases)
        if length:
            items.append(_Item(_Kind.CORRECTION, " ".join(tokens[index : index + length])))
            index += length
            continue
        item = _classify_word(tokens[index], tokens[index + 1 :], pack)
        if item is not None:
            items.append(item)
        index += 1
    return items


def _is_stutter(item: _Item, previous: _Item | None, group: _Group) -> bool:
    return (
        previous is not None
        and item.word == previous.word
        and item.kind in _STUTTER_KINDS
        and not group.accepts(item)
    )


def _events(items: list[_Item]) -> list[_Event]:
    """Join numeral items into groups; markers stay as items (repeats collapsed)."""
    events: list[_Event] = []
    group: _Group | None = None
    repeat = 1
    previous: _Item | None = None
    for item in items:
        if item.kind is _Kind.REPEAT:
            group, previous, repeat = None, None, item.value
            continue
        if item.kind in _MARKERS:
            group, previous = None, None
            last = events[-1] if events else None
            if not (isinstance(last, _Item) and last.kind is item.kind):
                events.append(item)
            continue
        if group is not None and _is_stutter(item, previous, group):
            continue
        if group is None or not group.accepts(item):
            group = _Group(repeat=repeat)
            repeat = 1
            events.append(group)
        group.add(item)
        previous = item
    return events


def _replace_tail(last: _Group, correction: _Group) -> _Group | None:
    """``last`` with its tail replaced by ``correction`` if that reads as one numeral."""
    if last.literal is not None or last.repeat != 1 or correction.repeat != 1:
        return None
    old = last.digits()
    if old is None:
        return None
    for keep in range(len(last.items) - 1, 0, -1):
        groups = _events(last.items[:keep] + correction.items)
        if len(groups) == 1 and isinstance(groups[0], _Group):
            new = groups[0].digits()
            if new is not None and len(new) == len(old):
                return groups[0]
    return None


def _restart_index(out: list[_Event], correction: list[_Group]) -> int | None:
    """Where a restating correction starts: a recent group equal to its first group.

    Among the last ``_RESTATE_WINDOW`` groups equal to the correction's first group, the one
    after which as many groups were said as the correction holds wins, then the nearest.
    """
    first = correction[0].digits()
    candidates: list[int] = []
    for index in range(len(out) - 1, max(0, len(out) - _RESTATE_WINDOW) - 1, -1):
        event = out[index]
        if not isinstance(event, _Group):
            break
        if event.digits() == first:
            candidates.append(index)
    if not candidates:
        return None
    return min(candidates, key=lambda index: (abs(len(out) - index - len(correction)), -index))


def _correct(out: list[_Event], correction: list[_Group]) -> None:
    """Apply one self-correction (see the module docstring) to ``out`` in place."""
    while out and not isinstance(out[-1], _Group):
        out.pop()  # a correction right after a decimal marker withdraws the marker
    if not out:
        out.extend(correction)
        return
    if not correction:
        out.pop()
        return
    if len(correction) >= 2:
        restart = _restart_index(out, correction)
        if restart is not None:
            del out[restart:]
            out.extend(correction)
            return
    last = out[-1]
    if len(correction) == 1 and isinstance(last, _Group):
        replaced = _replace_tail(last, correction[0])
        if replaced is not None:
            out[-1] = replaced
            return
    out[-1:] = correction


def _apply_corrections(events: list[_Event]) -> list[_Event]:
    out: list[_Event] = []
    index = 0
    while index < len(events):
        event = events[index]
        if isinstance(event, _Item) and event.kind is _Kind.CORRECTION:
            index += 1
            correction: list[_Group] = []
            while index < len(events):
                following = events[index]
                if not isinstance(following, _Group):
                    break
                correction.append(following)
                index += 1
            _correct(out, correction)
            continue
        out.append(event)
        index += 1
    return out


def _understand(text: str, lang: str) -> list[_Event]:
    pack = get_pack(lang)
    return _apply_corrections(_events(_classify(_tokens(text, pack), pack)))


def parse_digits(text: str, lang: str = "ru") -> str | None:
    """Read ``text`` as a digit string, leading zeros kept; None when it holds no digits.

    «ноль ноль сорок пять» → "0045", «сто двадцать три четыреста пятьдесят шесть» →
    "123456", "double five oh" → "550". Decimal markers are ignored. Raises
    :class:`speech.errors.UnknownLanguageError` for an unsupported language.
    """
    parts = [
        digits
        for event in _understand(text, lang)
        if isinstance(event, _Group) and (digits := event.digits()) is not None
    ]
    return "".join(parts) or None


def parse_number(text: str, lang: str = "ru") -> Decimal | None:
    """Read ``text`` as a number; None when it holds none.

    «двенадцать тысяч триста сорок пять» → 12345, «сто двадцать целых пять десятых» →
    120.5, «сто двадцать запятая пять» → 120.5, "three point one four" → 3.14. Several
    groups are concatenated like digits («сто двадцать три четыреста пятьдесят шесть» →
    123456). Raises :class:`speech.errors.UnknownLanguageError` for an unsupported language.
    """
    events = _understand(text, lang)
    groups = [event for event in events if isinstance(event, _Group)]
    if len(groups) == 1 and groups[0].half is not None:
        return groups[0].half
    whole: list[str] = []
    fraction: list[str] = []
    places: int | None = None
    in_fraction = False
    for event in events:
        if isinstance(event, _Group):
            digits = event.digits()
            if digits is not None:
                (fraction if in_fraction else whole).append(digits)
        elif event.kind is _Kind.DECIMAL:
            in_fraction = True
        elif event.kind is _Kind.FRACTION:
            if not in_fraction and whole:
                fraction.append(whole.pop())  # «пять десятых»: the last group is the fraction
            places = event.value
            break
    if not whole and not fraction:
        return None
    integer = "".join(whole) or "0"
    decimals = "".join(fraction)
    if places is not None and decimals:
        decimals = decimals.zfill(places)
    return Decimal(f"{integer}.{decimals}") if decimals else Decimal(integer)


def parse_yes_no(text: str, lang: str = "ru") -> bool | None:
    """Read ``text`` as an answer to a yes/no question: True, False or None (undecided).

    «да», «верно», «всё верно», «ага» → True; «нет», «неверно», «не верно», «не так» → False;
    «не знаю» or noise → None. The last decisive expression wins («нет-нет, всё верно» →
    True). Raises :class:`speech.errors.UnknownLanguageError` for an unsupported language.
    """
    pack = get_pack(lang)
    tokens = _tokens(text, pack)
    answer: bool | None = None
    index = 0
    while index < len(tokens):
        matched = 0
        for phrases, meaning in (
            (pack.unsure_phrases, None),
            (pack.no_phrases, False),
            (pack.yes_phrases, True),
        ):
            length = _match_phrase(tokens, index, phrases)
            if length > matched:
                matched, decided = length, meaning
        if matched:
            answer = decided
            index += matched
            continue
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token in pack.negations and following in pack.yes_words:
            answer, index = False, index + 2
            continue
        if token in pack.negations and following in pack.no_words:
            answer, index = True, index + 2
            continue
        if token in pack.yes_words:
            answer = True
        elif token in pack.no_words:
            answer = False
        index += 1
    return answer


def _phrase_words(phrases: tuple[Phrase, ...]) -> list[str]:
    return [word for phrase in phrases for word in phrase]


def grammar_words(kind: str, lang: str = "ru") -> list[str]:
    """Every word form the parser understands for ``kind`` ("digits", "number", "yes_no").

    The list is what a recognizer grammar for that kind needs (without ``[unk]``, which the
    recognizer adds): numerals in every form, fillers and correction markers for digits;
    the same plus decimal and fraction words and «полтора» for numbers; yes, no, negation
    and doubt words for yes/no. Order is stable and words are unique.
    """
    pack = get_pack(lang)
    if kind not in GRAMMAR_KINDS:
        raise ValueError(f"unknown grammar kind {kind!r}; expected one of {GRAMMAR_KINDS}")
    words: list[str]
    if kind == "yes_no":
        words = [
            *sorted(pack.yes_words),
            *sorted(pack.no_words),
            *sorted(pack.negations),
            *_phrase_words(pack.yes_phrases),
            *_phrase_words(pack.no_phrases),
            *_phrase_words(pack.unsure_phrases),
        ]
    else:
        words = [
            *pack.numeral_words(),
            *sorted(pack.articles),
            *pack.repeaters,
            *sorted(pack.conjunctions),
            *sorted(pack.fillers),
            *sorted(pack.correction_words),
            *_phrase_words(pack.correction_phrases),
        ]
        if kind == "number":
            words += [*pack.halves, *sorted(pack.decimal_words), *pack.fraction_words]
    return list(dict.fromkeys(words))


__all__ = ["GRAMMAR_KINDS", "grammar_words", "parse_digits", "parse_number", "parse_yes_no"]
