"""Opt-out and opt-in keywords in inbound SMS (Russian and Twilio's English set).

Twilio's Advanced Opt-Out recognises English keywords and reports them in the inbound
webhook's ``OptOutType`` (``STOP``/``START``/``HELP``); Russian consumers write «СТОП»,
«ОТПИСАТЬСЯ» … which we recognise ourselves. A message counts as a keyword only when the
whole text (trimmed, case-insensitive, without trailing punctuation) is one of them, so
«не стоп-кран» or a sentence mentioning «стоп» is not an opt-out.
"""

from __future__ import annotations

import re
from enum import StrEnum


class KeywordAction(StrEnum):
    """What an inbound SMS asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_KEYWORDS: frozenset[str] = frozenset(
    {
        # Twilio's defaults
        "STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL",
        # Russian
        "СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА", "ОТКАЗ", "ХВАТИТ", "НЕ ПИСАТЬ", "НЕ ПРИСЫЛАТЬ",
        "ОТМЕНА", "ОТМЕНИТЬ", "ОТПИШИТЕ", "СТОП ВСЕ", "СТОП ВСЁ",
    }
)  # fmt: skip
OPT_IN_KEYWORDS: frozenset[str] = frozenset(
    {"START", "UNSTOP", "YES", "СТАРТ", "ПОДПИСАТЬСЯ", "ВОЗОБНОВИТЬ"}
)
HELP_KEYWORDS: frozenset[str] = frozenset({"HELP", "INFO", "ПОМОЩЬ", "СПРАВКА", "ИНФО"})

_TWILIO_OPT_OUT_TYPES = {
    "STOP": KeywordAction.OPT_OUT,
    "START": KeywordAction.OPT_IN,
    "HELP": KeywordAction.HELP,
}
_EDGE_PUNCTUATION = re.compile(r"^[\s\"'«».,!?;:()\-]+|[\s\"'«».,!?;:()\-]+$")
_SPACES = re.compile(r"\s+")


def normalize_keyword(text: str) -> str:
    """Upper-case, ``Ё``→``Е``-insensitive form of a short SMS body for keyword matching."""
    cleaned = _EDGE_PUNCTUATION.sub("", text or "")
    return _SPACES.sub(" ", cleaned).upper()


_OUT = {normalize_keyword(k).replace("Ё", "Е") for k in OPT_OUT_KEYWORDS}
_IN = {normalize_keyword(k).replace("Ё", "Е") for k in OPT_IN_KEYWORDS}
_HELP = {normalize_keyword(k).replace("Ё", "Е") for k in HELP_KEYWORDS}


def parse_sms_keyword(body: str | None, opt_out_type: str | None = None) -> KeywordAction | None:
    """The action an inbound SMS asks for, or None for ordinary text.

    Twilio's ``OptOutType`` wins when present; otherwise the whole body must be a keyword.
    """
    if opt_out_type:
        action = _TWILIO_OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if action is not None:
            return action
    key = normalize_keyword(body or "").replace("Ё", "Е")
    if not key:
        return None
    if key in _OUT:
        return KeywordAction.OPT_OUT
    if key in _IN:
        return KeywordAction.OPT_IN
    if key in _HELP:
        return KeywordAction.HELP
    return None
