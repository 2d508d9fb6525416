"""Language packs for number and yes/no understanding (``speech.numbers``).

A :class:`LanguagePack` (:mod:`speech.lang.pack`) is pure data: word → value tables,
fillers, correction markers, decimal markers and yes/no vocabulary. Adding a language means
adding one module in this package that defines ``PACK`` and listing it in ``_PACKS``; the
parser in ``speech.numbers`` is language-independent.

All words are stored in the pack's normalised spelling (lower case, and for Russian «ё»
written as «е»), the same form :meth:`LanguagePack.normalize` gives recognised text.
"""

from __future__ import annotations

from speech.errors import UnknownLanguageError
from speech.lang import en, ru
from speech.lang.pack import LanguagePack, Phrase

# language code → its pack
_PACKS: dict[str, LanguagePack] = {pack.code: pack for pack in (ru.PACK, en.PACK)}


def available_languages() -> list[str]:
    """The codes of all languages that have a pack, sorted."""
    return sorted(_PACKS)


def language_code(lang: str) -> str:
    """Reduce a language tag ("ru", "ru-RU", "en_US") to a pack code, or raise.

    Raises :class:`UnknownLanguageError` for a language without a pack.
    """
    code = lang.strip().replace("_", "-").split("-")[0].lower()
    if code not in _PACKS:
        known = ", ".join(available_languages())
        raise UnknownLanguageError(f"unsupported language {lang!r}; supported: {known}")
    return code


def get_pack(lang: str) -> LanguagePack:
    """Return the language pack for ``lang`` (see :func:`language_code`)."""
    return _PACKS[language_code(lang)]


__all__ = [
    "LanguagePack",
    "Phrase",
    "UnknownLanguageError",
    "available_languages",
    "get_pack",
    "language_code",
]
