"""Russian calendar words shared by spoken prompts and CRM messages."""

from __future__ import annotations

MONTHS_NOMINATIVE: tuple[str, ...] = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)
"""Month names, «январь» … «декабрь» (index 0 = January)."""

MONTHS_GENITIVE: tuple[str, ...] = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)
"""Month names in the genitive, as in «25 марта» (index 0 = January)."""
