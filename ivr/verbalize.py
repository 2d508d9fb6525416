"""Russian verbalisation of prompt values and the prompt template language.

Numbers become words through ``num2words`` (``lang="ru"``); this module adds what it lacks:
plural agreement of units (рубль/рубля/рублей, копейка/копейки/копеек), dates with month
names in the genitive and optional year, digit-by-digit reading, times and phone numbers.
The output is plain text for ``<Say language="ru-RU">`` (Polly voices read words reliably,
digits far less so).

Templates
    Prompt and SMS texts hold fields ``{name}`` or ``{name:format}`` or
    ``{name:format:option,option}``; ``{{`` and ``}}`` are literal braces. Formats:

    ========== ============================== ==============================================
    format     options                        example
    ========== ============================== ==============================================
    (none)     —                              value as text (numbers, dates, bools spoken)
    text       —                              value as text
    money      ``acc`` (accusative)           одна тысяча двести тридцать четыре рубля
                                              пятьдесят шесть копеек; with ``acc``:
                                              одну тысячу … одну копейку
    number     ``m`` / ``f`` / ``n`` (gender) двадцать одна; ``f,acc``: двадцать одну
               and ``acc``
    reading    ``acc``                        двенадцать тысяч триста сорок пять
    digits     —                              семь семь ноль ноль; letters by their
                                              Russian names: «AB1» → а бэ один
    date       ``nom`` / ``gen``, ``year`` /  пятнадцатое марта; пятнадцатого марта две
               ``noyear``                     тысячи двадцать шестого года
    time       —                              восемь часов тридцать минут
    phone      —                              восемь, восемь ноль ноль, …
    yes_no     —                              да / нет
    plain      —                              for SMS: 1234,56; 25.03.2026; 10:30; digits
                                              and text unchanged
    address    —                              an address as it is said: «г. Москва, ул.
                                              Ленина, д. 1, кв. 2» → город Москва, улица
                                              Ленина, дом 1, квартира 2
    ========== ============================== ==============================================

    ``acc`` puts the numeral in the accusative after a verb that governs it («составляет
    девяносто одну тысячу рублей», «вы ввели двадцать одну тысячу»): only «одна» →
    «одну», «тысяча» → «тысячу», «копейка» → «копейку» change (inanimate accusative).

    Without ``year``/``noyear`` a date carries its year only when it is not in the current
    year (``today`` is passed by the caller; the engine uses the consumer's local date).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from num2words import num2words

from contactcenter.russian import MONTHS_GENITIVE
from ivr.errors import PromptTemplateError, RenderError

__all__ = [
    "FORMATS",
    "LETTER_NAMES",
    "Field",
    "accusative",
    "parse_template",
    "plain_text",
    "plural",
    "render_template",
    "say_address",
    "say_date",
    "say_digits",
    "say_money",
    "say_number",
    "say_phone",
    "say_time",
    "template_fields",
]

Gender = Literal["m", "f", "n"]

_DIGITS = ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять")

#: Formats and the options each accepts.
FORMATS: Mapping[str, frozenset[str]] = {
    "text": frozenset(),
    "money": frozenset({"acc"}),
    "number": frozenset({"m", "f", "n", "acc"}),
    "reading": frozenset({"acc"}),
    "digits": frozenset(),
    "date": frozenset({"nom", "gen", "year", "noyear"}),
    "time": frozenset(),
    "phone": frozenset(),
    "yes_no": frozenset(),
    "plain": frozenset(),
    "address": frozenset(),
}

_KOPECK = Decimal("0.01")

#: Letters of meter serials and codes as Russian speakers name them: Latin letters the way
#: they are read out in Russia («W» is «дубль-вэ», «Y» «игрек»), Cyrillic ones by their names.
LETTER_NAMES: Mapping[str, str] = {
    "A": "а", "B": "бэ", "C": "цэ", "D": "дэ", "E": "е", "F": "эф", "G": "гэ", "H": "аш",
    "I": "и", "J": "жи", "K": "ка", "L": "эль", "M": "эм", "N": "эн", "O": "о", "P": "пэ",
    "Q": "ку", "R": "эр", "S": "эс", "T": "тэ", "U": "у", "V": "вэ", "W": "дубль-вэ",
    "X": "икс", "Y": "игрек", "Z": "зэт",
    "А": "а", "Б": "бэ", "В": "вэ", "Г": "гэ", "Д": "дэ", "Е": "е", "Ё": "ё", "Ж": "жэ",
    "З": "зэ", "И": "и", "Й": "и краткое", "К": "ка", "Л": "эль", "М": "эм", "Н": "эн",
    "О": "о", "П": "пэ", "Р": "эр", "С": "эс", "Т": "тэ", "У": "у", "Ф": "эф", "Х": "ха",
    "Ц": "цэ", "Ч": "че", "Ш": "ша", "Щ": "ща", "Ы": "ы", "Э": "э", "Ю": "ю", "Я": "я",
}  # fmt: skip


def plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for ``n``: 1 рубль, 2 рубля, 5 рублей, 11 рублей, 21 рубль."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _to_decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise RenderError(f"{what}: expected a number, got a yes/no value")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ".").replace(" ", ""))
        except InvalidOperation:
            raise RenderError(f"{what}: not a number: {value!r}") from None
    else:
        raise RenderError(f"{what}: expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise RenderError(f"{what}: not a finite number: {value!r}")
    return number


def _int_words(n: int, gender: Gender = "m") -> str:
    words = str(num2words(abs(n), lang="ru", gender=gender))
    return f"минус {words}" if n < 0 else words


def say_number(value: int | Decimal | str, gender: Gender = "m") -> str:
    """A number in words; fractions as «двенадцать целых пять десятых»."""
    number = _to_decimal(value, "number")
    if number == number.to_integral_value():
        return _int_words(int(number), gender)
    words = str(num2words(abs(number), lang="ru"))
    return f"минус {words}" if number < 0 else words


def say_money(amount: int | Decimal | str) -> str:
    """Roubles and kopecks in words with the right plural forms.

    Zero kopecks are not spoken («пять рублей»), nor zero roubles before kopecks
    («пятьдесят копеек»); zero is «ноль рублей». Rounds half up to the kopeck.
    """
    number = _to_decimal(amount, "money").quantize(_KOPECK, rounding=ROUND_HALF_UP)
    sign = "минус " if number < 0 else ""
    number = abs(number)
    roubles = int(number)
    kopecks = int((number - roubles) * 100)
    parts: list[str] = []
    if roubles or not kopecks:
        parts.append(f"{_int_words(roubles, 'm')} {plural(roubles, 'рубль', 'рубля', 'рублей')}")
    if kopecks:
        parts.append(
            f"{_int_words(kopecks, 'f')} {plural(kopecks, 'копейка', 'копейки', 'копеек')}"
        )
    return sign + " ".join(parts)


_ACCUSATIVE = {"одна": "одну", "тысяча": "тысячу", "копейка": "копейку", "минута": "минуту"}


def accusative(words: str) -> str:
    """A spoken number (and its unit) in the accusative case of inanimate nouns: «девяносто
    одна тысяча рублей» → «девяносто одну тысячу рублей», «одна копейка» → «одну копейку»
    (the other words of a Russian numeral phrase do not change)."""
    return " ".join(_ACCUSATIVE.get(word, word) for word in words.split(" "))


def _ordinal(n: int, case: Literal["n", "g"], gender: Gender) -> str:
    return str(num2words(n, lang="ru", to="ordinal", case=case, gender=gender))


def say_date(
    value: date | datetime | str,
    case: Literal["nom", "gen"] = "nom",
    year: bool | None = None,
    today: date | None = None,
) -> str:
    """A date in words: «пятнадцатое марта» (``nom``) or «пятнадцатого марта» (``gen``).

    ``year=True`` always adds the year in the genitive («… две тысячи двадцать шестого года»),
    ``False`` never does, ``None`` adds it when the date is not in ``today``'s year (or when
    ``today`` is not given).
    """
    day = _to_date(value)
    ordinal = _ordinal(day.day, "g" if case == "gen" else "n", "n")
    words = f"{ordinal} {MONTHS_GENITIVE[day.month - 1]}"
    if year is None:
        year = today is None or today.year != day.year
    if year:
        words += f" {_ordinal(day.year, 'g', 'm')} года"
    return words


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise RenderError(f"date: not an ISO date: {value!r}") from None
    raise RenderError(f"date: expected a date, got {type(value).__name__}")


def say_digits(value: str | int) -> str:
    """Read a string digit by digit: «семь семь ноль ноль»; separators become pauses (commas),
    letters (Latin or Cyrillic) are named as Russian speakers name them: «AB12» is «а бэ один
    два» (:data:`LETTER_NAMES`); a letter with no Russian name is kept as it is."""
    text = str(value).strip()
    if not text:
        raise RenderError("digits: empty value")
    groups: list[list[str]] = [[]]
    for char in text:
        if char.isdigit() and char.isascii():
            groups[-1].append(_DIGITS[int(char)])
        elif char.isalpha():
            groups[-1].append(LETTER_NAMES.get(char.upper(), char.upper()))
        elif groups[-1]:
            groups.append([])
    return ", ".join(" ".join(group) for group in groups if group)


def say_phone(value: str) -> str:
    """A phone number digit by digit in the usual groups: «восемь, восемь ноль ноль, два два
    ноль, ноль два, два ноль» for +78002200220 (a Russian number is read with the leading 8)."""
    digits = re.sub(r"\D", "", str(value))
    if not digits:
        raise RenderError(f"phone: not a phone number: {value!r}")
    if len(digits) == 11 and digits[0] == "7":
        digits = "8" + digits[1:]
        groups = [digits[0], digits[1:4], digits[4:7], digits[7:9], digits[9:11]]
    else:
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return ", ".join(say_digits(group) for group in groups)


def say_time(value: time | datetime | str) -> str:
    """A clock time: «восемь часов», «девять часов тридцать минут», «двадцать один час одна
    минута»."""
    if isinstance(value, datetime):
        moment = value.time()
    elif isinstance(value, time):
        moment = value
    elif isinstance(value, str):
        try:
            moment = time.fromisoformat(value.strip())
        except ValueError:
            raise RenderError(f"time: not an ISO time: {value!r}") from None
    else:
        raise RenderError(f"time: expected a time, got {type(value).__name__}")
    words = f"{_int_words(moment.hour, 'm')} {plural(moment.hour, 'час', 'часа', 'часов')}"
    if moment.minute:
        minute = moment.minute
        words += f" {_int_words(minute, 'f')} {plural(minute, 'минута', 'минуты', 'минут')}"
    return words


def plain_text(value: Any) -> str:
    """A value written for reading, not listening (SMS): ``1234,50``, ``25.03.2026``,
    ``10:30``, ``да``/``нет``; anything else as it is."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, Decimal):
        if value != value.to_integral_value() and value.as_tuple().exponent in (-1, -2):
            value = value.quantize(_KOPECK)  # amounts: 1234,50 rather than 1234,5
        return f"{value:f}".replace(".", ",")
    if isinstance(value, datetime):
        return value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


#: Abbreviations of address parts and what is said for them (tried longest first).
_ADDRESS_WORDS: Mapping[str, str] = {
    "г": "город",
    "гор": "город",
    "обл": "область",
    "р-н": "район",
    "мкр": "микрорайон",
    "мкрн": "микрорайон",
    "пгт": "посёлок городского типа",
    "рп": "рабочий посёлок",
    "пос": "посёлок",
    "п": "посёлок",
    "с": "село",
    "дер": "деревня",
    "ст-ца": "станица",
    "снт": "садовое товарищество",
    "ул": "улица",
    "пр-т": "проспект",
    "просп": "проспект",
    "пр-кт": "проспект",
    "пер": "переулок",
    "пр": "проезд",
    "пл": "площадь",
    "наб": "набережная",
    "ш": "шоссе",
    "б-р": "бульвар",
    "бул": "бульвар",
    "туп": "тупик",
    "корп": "корпус",
    "стр": "строение",
    "кв": "квартира",
    "эт": "этаж",
    "пом": "помещение",
}
#: Before a house number these are house parts, before a name a settlement («д. Ивановка»).
_BEFORE_NUMBER: Mapping[str, str] = {"д": "дом", "к": "корпус"}
_BEFORE_NAME: Mapping[str, str] = {"д": "деревня"}
#: Written without a dot.
_UNDOTTED = frozenset({"пгт", "снт", "рп", "мкрн", "р-н", "пр-т", "пр-кт", "ст-ца", "б-р"})
#: Words, numbers and the separators between them; «д.1» is two words.
_ADDRESS_PARTS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*\.?|\d+[^\s,./]*|/|\s+|.", re.UNICODE)


def say_address(value: Any) -> str:
    """An address written the postal way as it is read aloud: the abbreviations of its
    parts spelt out («г. Москва, ул. Ленина, д. 1, кв. 2» → «город Москва, улица Ленина,
    дом 1, квартира 2»; «д.» before a name is «деревня»), «/» between numbers read as
    «дробь»; words that are not abbreviations are left as written."""
    parts = _ADDRESS_PARTS.findall(" ".join(str(value).split()))
    words = [i for i, part in enumerate(parts) if part.strip() and part != ","]
    out = list(parts)
    for n, i in enumerate(words):
        part = parts[i]
        dotted = part.endswith(".")
        key = part.rstrip(".").lower()
        following = parts[words[n + 1]] if n + 1 < len(words) else ""
        spoken: str | None = None
        if dotted and following[:1].isdigit() and key in _BEFORE_NUMBER:
            spoken = _BEFORE_NUMBER[key]
        elif dotted and following[:1].isupper() and key in _BEFORE_NAME:
            spoken = _BEFORE_NAME[key]
        elif key in _ADDRESS_WORDS and (dotted or key in _UNDOTTED):
            spoken = _ADDRESS_WORDS[key]
        elif (
            part == "/" and n > 0 and parts[words[n - 1]][:1].isdigit() and following[:1].isdigit()
        ):
            spoken = "дробь"
        if spoken is not None:
            out[i] = spoken
            if i + 1 < len(parts) and not parts[i + 1].isspace() and parts[i + 1] != ",":
                out[i] += " "
            if part == "/" and i > 0 and not parts[i - 1].isspace():
                out[i] = " " + out[i]
    return "".join(out)


def _say_yes_no(value: Any) -> str:
    if isinstance(value, bool):
        return "да" if value else "нет"
    raise RenderError(f"yes_no: expected a yes/no value, got {type(value).__name__}")


def _say_any(value: Any, today: date | None) -> str:
    if isinstance(value, bool):
        return _say_yes_no(value)
    if isinstance(value, int | Decimal):
        return say_number(value)
    if isinstance(value, date | datetime):
        return say_date(value, today=today)
    if isinstance(value, time):
        return say_time(value)
    if isinstance(value, list | tuple):
        return ", ".join(_say_any(item, today) for item in value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class Field:
    """A ``{name:format:options}`` field of a template."""

    name: str
    format: str | None
    options: frozenset[str]
    position: int
    """0-based offset of the opening brace."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_template(text: str) -> tuple[str | Field, ...]:
    """Split a template into literal text and :class:`Field` items.

    Raises :class:`PromptTemplateError` for unbalanced braces, bad names, unknown formats or
    options.
    """
    parts: list[str | Field] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
            continue
        if char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
            continue
        if char == "}":
            raise PromptTemplateError("unmatched '}' (write '}}' for a literal brace)", i)
        if char == "{":
            end = text.find("}", i + 1)
            if end < 0:
                raise PromptTemplateError("unclosed '{' (write '{{' for a literal brace)", i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_parse_field(text[i + 1 : end], i))
            i = end + 1
            continue
        literal.append(char)
        i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _parse_field(body: str, position: int) -> Field:
    pieces = [piece.strip() for piece in body.split(":")]
    if len(pieces) > 3:
        raise PromptTemplateError(f"too many ':' in field {{{body}}}", position)
    name = pieces[0]
    if not _NAME.match(name):
        raise PromptTemplateError(f"invalid variable name {name!r} in field {{{body}}}", position)
    fmt = pieces[1] if len(pieces) > 1 else None
    if fmt is not None and fmt not in FORMATS:
        raise PromptTemplateError(
            f"unknown format {fmt!r} in field {{{body}}}; known: {', '.join(FORMATS)}", position
        )
    options = (
        frozenset(option.strip() for option in pieces[2].split(","))
        if len(pieces) > 2
        else frozenset()
    )
    allowed = FORMATS.get(fmt or "text", frozenset())
    unknown = sorted(options - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise PromptTemplateError(
            f"unknown option {unknown[0]!r} for format {fmt!r} (options: {known})", position
        )
    if (
        {"nom", "gen"} <= options
        or {"year", "noyear"} <= options
        or len(options & {"m", "f", "n"}) > 1
    ):
        raise PromptTemplateError(f"conflicting options in field {{{body}}}", position)
    return Field(name, fmt, options, position)


def template_fields(text: str) -> tuple[Field, ...]:
    """The fields of a template (raises :class:`PromptTemplateError` when it is malformed)."""
    return tuple(part for part in parse_template(text) if isinstance(part, Field))


#: Verbs that put the number after them in the accusative («составит девяносто одну
#: тысячу»): a money/number/reading field right after one needs the ``acc`` option.
ACCUSATIVE_VERBS = frozenset(
    {
        "составляет",
        "составит",
        "составила",
        "составил",
        "составят",
        "ввели",
        "введите",
        "оплатите",
        "оплатили",
        "внесите",
        "внесли",
        "передали",
        "получили",
        "заплатите",
    }
)
_CASED_FORMATS = frozenset({"money", "number", "reading"})


def missing_accusative(text: str) -> tuple[Field, ...]:
    """The money/number/reading fields of a template that follow a verb of
    :data:`ACCUSATIVE_VERBS` without the ``acc`` option (they would say «составит одна
    тысяча»). Raises :class:`PromptTemplateError` when the template is malformed."""
    parts = parse_template(text)
    missing = []
    for index, part in enumerate(parts):
        if isinstance(part, str) or part.format not in _CASED_FORMATS or "acc" in part.options:
            continue
        before = parts[index - 1] if index else ""
        words = re.findall(r"[а-яё]+", str(before).lower())
        if words and words[-1] in ACCUSATIVE_VERBS:
            missing.append(part)
    return tuple(missing)


def render_field(item: Field, value: Any, today: date | None = None) -> str:
    """Verbalise one value by the field's format."""
    fmt = item.format or "text"
    if fmt == "text":
        return _say_any(value, today)
    case_of = accusative if "acc" in item.options else str
    if fmt == "money":
        return case_of(say_money(value))
    if fmt == "number":
        gender: Gender = "f" if "f" in item.options else "n" if "n" in item.options else "m"
        return case_of(say_number(value, gender))
    if fmt == "reading":
        return case_of(say_number(value))
    if fmt == "digits":
        return say_digits(value)
    if fmt == "date":
        case: Literal["nom", "gen"] = "gen" if "gen" in item.options else "nom"
        year = True if "year" in item.options else False if "noyear" in item.options else None
        return say_date(value, case=case, year=year, today=today)
    if fmt == "time":
        return say_time(value)
    if fmt == "phone":
        return say_phone(value)
    if fmt == "plain":
        return plain_text(value)
    if fmt == "address":
        return say_address(value)
    return _say_yes_no(value)


def render_template(text: str, variables: Mapping[str, Any], today: date | None = None) -> str:
    """Render a template with ``variables``; raises :class:`RenderError` when a field's
    variable is not set (or ``None``) or has a value its format cannot speak, and
    :class:`PromptTemplateError` when the template is malformed."""
    out: list[str] = []
    for part in parse_template(text):
        if isinstance(part, str):
            out.append(part)
            continue
        value = variables.get(part.name)
        if value is None:
            raise RenderError(f"variable {part.name!r} is not set")
        try:
            out.append(render_field(part, value, today))
        except RenderError as exc:
            raise RenderError(f"variable {part.name!r}: {exc}") from None
    return "".join(out)
