"""How a caller's entry becomes a value, and how a value is read back or kept out of logs.

Keypad entries are parsed here (:func:`parse_keypad`); speech goes through the number
understanding of :mod:`speech.grammar` (:func:`parse_speech`, yes/no answers). Captured
values are read back digit by digit where that is how people say them (:func:`spoken`),
and secrets (PINs, passport numbers …) never reach the IVR path in clear (:func:`is_secret`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ivr.schema import CollectStep
from ivr.voice_policy import VALUE_GRAMMARS
from speech import parse_value

__all__ = [
    "KEYPAD_PROBLEMS",
    "MASK",
    "SECRET_HINTS",
    "has_phrase",
    "is_secret",
    "keypad_problem",
    "parse_keypad",
    "parse_speech",
    "parse_yes_no",
    "speech_problem",
    "spoken",
]

MASK = "***"
#: Variables whose captured values are never written to the IVR path in clear.
SECRET_HINTS = ("pin", "password", "secret", "birth", "passport", "snils", "code_word")


def has_phrase(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words (``text`` is lower case)."""
    phrase = phrase.strip().lower()
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def is_secret(name: str) -> bool:
    """Whether the variable ``name`` holds a secret (masked in the IVR path and transcripts)."""
    lowered = name.lower()
    return any(hint in lowered for hint in SECRET_HINTS)


#: Why a keypad entry of a digit value was refused, as the caller hears it before the reprompt.
KEYPAD_PROBLEMS = {
    "not_digits": "Вводите только цифры, без звёздочки.",
    "too_long": "Вы ввели слишком много цифр.",
    "too_short": "Вы ввели слишком мало цифр.",
}


def keypad_problem(step: CollectStep, entry: str) -> str | None:
    """Why a keypad ``entry`` for a digit-like ``step`` is not valid (a key of
    :data:`KEYPAD_PROBLEMS`: ``not_digits``, ``too_long``, ``too_short``), None when it is
    valid or the step is not a digit value (yes/no, date)."""
    if step.value in ("yes_no", "date") or not entry:
        return None
    if not entry.isdigit() or not entry.isascii():
        return "not_digits"
    if step.max_length is not None and len(entry) > step.max_length:
        return "too_long"
    if step.min_length is not None and len(entry) < step.min_length:
        return "too_short"
    return None


def speech_problem(step: CollectStep, text: str, lang: str = "ru") -> str | None:
    """Why a spoken digit value was refused (``too_long``/``too_short``, as
    :func:`keypad_problem`), None when no digits were understood or the value is valid."""
    if VALUE_GRAMMARS.get(step.value) != "digits":
        return None
    try:
        value = parse_value("digits", text, lang)
    except (ValueError, InvalidOperation):
        return None
    return keypad_problem(step, value) if isinstance(value, str) else None


def _digits_ok(step: CollectStep, entry: str) -> bool:
    if not entry.isdigit() or not entry.isascii():
        return False
    if step.min_length is not None and len(entry) < step.min_length:
        return False
    return not (step.max_length is not None and len(entry) > step.max_length)


def parse_keypad(step: CollectStep, entry: str, now: datetime) -> Any:
    """The value typed on the keypad for ``step``, or None when it is not valid."""
    if step.value == "yes_no":
        return {"1": True, "2": False}.get(entry)
    if step.value == "date":
        return _parse_date(entry, now)
    if not _digits_ok(step, entry):
        return None
    if step.value == "number":
        return Decimal(entry)
    return entry


def _parse_date(entry: str, now: datetime) -> date | None:
    if not entry.isdigit() or len(entry) not in (4, 8):
        return None
    day, month = int(entry[:2]), int(entry[2:4])
    year = int(entry[4:]) if len(entry) == 8 else now.year
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_yes_no(text: str, lang: str = "ru") -> bool | None:
    """True/False for a spoken yes/no answer in ``lang``, None when it is neither."""
    try:
        value = parse_value("yes_no", text, lang)
    except ValueError:  # no language pack for ``lang``
        return None
    return value if isinstance(value, bool) else None


def parse_speech(step: CollectStep, text: str, lang: str = "ru") -> Any:
    """The value recognised in ``text`` for ``step`` (via :mod:`speech.numbers` and the
    development language table of :mod:`speech.grammar`), or None."""
    kind = VALUE_GRAMMARS.get(step.value)
    if kind is None:
        return None
    try:
        value = parse_value(kind, text, lang)
    except (ValueError, InvalidOperation):  # no language pack; the parser's own guard
        return None
    if kind == "digits" and (not isinstance(value, str) or not _digits_ok(step, value)):
        return None
    return value


def spoken(step: CollectStep, value: Any) -> str:
    """How a captured value is read back to the caller (digit-like values digit by digit)."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    text = str(value)
    if step.value in ("digits", "account_number") and text.isdigit():
        return " ".join(text)
    return text
