"""Phone numbers: one place that turns what people type into E.164.

Russian notations (``8 903 …``, ``+7 (903) …``, ``903…``) are understood; ``+7 6xx`` and
``+7 7xx`` are Kazakhstan and are rejected where a Russian number is required.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as pn_timezone


class InvalidPhoneError(ValueError):
    """The text is not a valid phone number (or not a Russian one where required)."""


_JUNK = re.compile(r"[\s()\-.\u00a0]")


def parse_phone(raw: str, *, require_russian: bool = True) -> phonenumbers.PhoneNumber:
    """Parse ``raw`` into a valid :class:`phonenumbers.PhoneNumber`.

    Raises :class:`InvalidPhoneError` with a short English reason otherwise.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneError("empty phone number")
    compact = _JUNK.sub("", text)
    if re.fullmatch(r"8\d{10}", compact):
        compact = "+7" + compact[1:]
    elif re.fullmatch(r"7\d{10}", compact):
        compact = "+" + compact
    elif re.fullmatch(r"9\d{9}", compact):
        compact = "+7" + compact
    try:
        number = phonenumbers.parse(compact, "RU")
    except NumberParseException as exc:
        raise InvalidPhoneError(f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneError(f"impossible phone number: {raw!r}")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneError(f"invalid phone number: {raw!r}")
    if require_russian and phonenumbers.region_code_for_number(number) != "RU":
        region = phonenumbers.region_code_for_number(number) or "unknown"
        raise InvalidPhoneError(f"not a Russian number ({region}): {raw!r}")
    return number


def normalize_phone(raw: str, *, require_russian: bool = True) -> str:
    """Return ``raw`` as E.164 (``+79031234567``) or raise :class:`InvalidPhoneError`."""
    return phonenumbers.format_number(
        parse_phone(raw, require_russian=require_russian), PhoneNumberFormat.E164
    )


def is_russian_mobile(e164: str) -> bool:
    """True for a valid Russian mobile number (``+7 9xx``), False for anything else."""
    try:
        number = parse_phone(e164)
    except InvalidPhoneError:
        return False
    return phonenumbers.number_type(number) in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


# phonenumbers labels some Russian ranges with foreign zones: Kaliningrad landlines get
# Europe/Bucharest (which has DST; Kaliningrad has none), and the +7 9xx mobile block lists
# Kazakh zones too. For a Russian number we use the Russian zone with the same standard
# offset and drop the Kazakh ones (their offsets are covered by Russian zones).
_RU_ZONE_ALIASES = {"Europe/Bucharest": "Europe/Kaliningrad"}
_FOREIGN_ZONES_IN_RU_BLOCKS = frozenset({"Asia/Almaty", "Asia/Aqtobe"})


def timezones_for_phone(e164: str) -> tuple[str, ...]:
    """IANA zones ``phonenumbers`` associates with the number (``Etc/Unknown`` dropped).

    For Russian numbers the zones are corrected to Russian ones (see above); the result
    has no duplicates and keeps phonenumbers' order.
    """
    try:
        number = parse_phone(e164, require_russian=False)
    except InvalidPhoneError:
        return ()
    russian = phonenumbers.region_code_for_number(number) == "RU"
    zones: list[str] = []
    for name in pn_timezone.time_zones_for_number(number):
        if name == "Etc/Unknown":
            continue
        if russian:
            name = _RU_ZONE_ALIASES.get(name, name)
            if name in _FOREIGN_ZONES_IN_RU_BLOCKS:
                continue
        if name not in zones:
            zones.append(name)
    return tuple(zones)


def mask_phone(e164: str) -> str:
    """Mask a number for logs: ``+7903***4567``."""
    if len(e164) < 8:
        return "***"
    return e164[:5] + "***" + e164[-4:]
