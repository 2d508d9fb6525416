"""SMS segments: how many parts (and which data coding) a text takes, as Twilio bills it.

Segments follow GSM 03.38: a GSM-7 message holds 160 septets (153 per part when
concatenated) and the extension characters ``^{}\\[~]|€`` take two septets; anything outside
the GSM-7 alphabet (Cyrillic, for one) switches the whole message to UCS-2: 70 UTF-16 code
units (67 per part), where a character outside the BMP (emoji) takes two. A character is
never split across parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding(StrEnum):
    """The data coding of a message."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


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
