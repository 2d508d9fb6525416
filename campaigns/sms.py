"""SMS text: template rendering with variables, GSM-7 / UCS-2 segment counting, preview.

Segments follow GSM 03.38 and what Twilio bills: a GSM-7 message holds 160 septets (153
per part when concatenated) and the extension characters ``^{}\\[~]|€`` take two septets;
anything outside the GSM-7 alphabet (Cyrillic, for one) switches the whole message to UCS-2:
70 UTF-16 code units (67 per part), where a character outside the BMP (emoji) takes two.
A character is never split across parts.

Templates use ``{name}`` placeholders (no attribute access or indexing); money is written
the Russian way (``1 234,56 руб.``) and dates as ``ДД.ММ.ГГГГ``.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_SEGMENTS = 10
"""Longest message we agree to send (operators reassemble up to about 10 parts)."""


class Encoding(StrEnum):
    """The data coding of a message."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


class TemplateError(ValueError):
    """A template is malformed or needs a variable that was not supplied."""


@dataclass(frozen=True)
class SmsPreview:
    """What a rendered message will cost and look like."""

    text: str
    encoding: Encoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int
    per_segment: int
    """Capacity of one part for this message (160/153 or 70/67)."""

    @property
    def characters(self) -> int:
        """Number of characters as a person counts them."""
        return len(self.text)


def encoding_of(text: str) -> Encoding:
    """GSM-7 if every character is in the GSM-7 alphabet (with extension), else UCS-2."""
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED:
            return Encoding.UCS2
    return Encoding.GSM7


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in GSM7_EXTENDED else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count_segments(text: str) -> tuple[Encoding, int, int]:
    """``(encoding, units, segments)`` of ``text``; an empty text is one segment."""
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    single, part = (
        (GSM7_SINGLE, GSM7_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    )
    if units <= single:
        return encoding, units, 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return encoding, units, segments


def preview(text: str) -> SmsPreview:
    """Encoding, size and number of parts of a ready message."""
    encoding, units, segments = count_segments(text)
    if encoding is Encoding.GSM7:
        per = GSM7_SINGLE if segments == 1 else GSM7_PART
    else:
        per = UCS2_SINGLE if segments == 1 else UCS2_PART
    return SmsPreview(text=text, encoding=encoding, units=units, segments=segments, per_segment=per)


def format_money(amount: Decimal) -> str:
    """``Decimal('1234.5')`` → ``1 234,50 руб.`` (space between thousands)."""
    if not isinstance(amount, Decimal):
        raise TypeError("money must be a Decimal")
    quantized = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if quantized < 0 else ""
    whole, _, cents = f"{abs(quantized):.2f}".partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{' '.join(groups)},{cents} руб."


def format_value(value: Any) -> str:
    """How a template variable is written: money, dates and datetimes the Russian way."""
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float):
        raise TypeError("floats are not allowed in SMS templates: pass money as a Decimal")
    return str(value)


def template_fields(template: str) -> list[str]:
    """The variable names a template uses, in order; raises TemplateError if malformed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"placeholder {{{field}}} must be a plain name like {{amount}}")
        if spec or conversion:
            raise TemplateError(f"placeholder {{{field}}} must not carry a format or conversion")
        if field not in names:
            names.append(field)
    return names


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``template`` with ``variables``; every placeholder must be supplied."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in variables]
    if missing:
        raise TemplateError(f"no value for {', '.join('{' + m + '}' for m in missing)}")
    values = {f: format_value(variables[f]) for f in fields}
    return template.format_map(values)


def render_preview(template: str, variables: Mapping[str, Any]) -> SmsPreview:
    """Render and measure in one step (what the campaign preview shows)."""
    return preview(render(template, variables))


SAMPLE_VARIABLES: Mapping[str, Any] = {
    "supplier": "ЭнергоСбыт",
    "account": "000-1234-5678",
    "amount": Decimal("12345.67"),
    "due_date": dt.date(2026, 12, 25),
    "days_overdue": 45,
    "phone": "8-800-000-00-00",
    "name": "Иван Петрович",
}
"""Placeholder values for previewing a template before any real account is chosen."""
