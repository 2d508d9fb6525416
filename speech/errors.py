"""Exceptions of the speech package, in one place.

Callers catch at the level they care about::

    SpeechError                         anything this package raises on purpose
    ├── SpeechUnavailable (RuntimeError)
    │                                   no usable speech model: none configured or found, not
    │                                   a Vosk model, or it failed to load; voice steps fall
    │                                   back to the keypad
    ├── AudioError (ValueError)         audio that cannot be used: corrupt, empty, wrong
    │                                   format or too long
    ├── GrammarError (ValueError)       a recognizer grammar cannot be built (unknown kind or
    │                                   language, no usable word)
    ├── UnknownLanguageError (ValueError)
    │                                   no language pack for the language (number and yes/no
    │                                   understanding, :mod:`speech.lang`)
    ├── DownloadError (RuntimeError)    ``contactcenter models download``: a model could not
    │                                   be downloaded or installed; the message says what to do
    ├── TtsError (RuntimeError)         text-to-speech of a prompt failed (no engine, the
    │                                   command failed, unusable output); the step then plays
    │                                   its prompts through the provider, without barge-in
    └── DatasetError (ValueError)       ``contactcenter speech eval``: the dataset folder or
                                        its manifest is unusable

The IVR catches :class:`SpeechUnavailable`, :class:`AudioError` and :class:`GrammarError` and
goes on with the keypad; the CLI commands turn the others into a message and an exit status.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "DatasetError",
    "DownloadError",
    "GrammarError",
    "SpeechError",
    "SpeechUnavailable",
    "TtsError",
    "UnknownLanguageError",
]


class SpeechError(Exception):
    """Base of every error raised on purpose by ``speech``."""


class SpeechUnavailable(SpeechError, RuntimeError):
    """No usable speech model: voice steps must fall back to the keypad."""


class AudioError(SpeechError, ValueError):
    """Audio that cannot be used: corrupt, empty, wrong format or too long."""


class GrammarError(SpeechError, ValueError):
    """A grammar cannot be built (unknown kind or language, no usable word)."""


class UnknownLanguageError(SpeechError, ValueError):
    """The requested language has no language pack."""


class DownloadError(SpeechError, RuntimeError):
    """A model could not be downloaded or installed; the message says why and what to do."""


class TtsError(SpeechError, RuntimeError):
    """Text-to-speech of a prompt failed: no engine, the command failed, unusable output."""


class DatasetError(SpeechError, ValueError):
    """The dataset folder or its manifest is unusable."""
