"""The sandbox's TwiML vocabulary: what a live call and its drivers exchange.

The caller's actions (:class:`CallerAction`), the call's requests for input
(:class:`InputRequest`), transcript entries, pending ``update_call`` requests, the scripted
behaviour of the far end (:class:`CallBehaviour`), the application errors Twilio reports
(11200, 12100, …) and the small parsers of TwiML attributes. The call itself is
:class:`devtools.sandbox.interpreter.LiveCall`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

API_VERSION = "2010-04-01"
STEP_HEADER = "x-ivr-step"
RECOGNIZED_HEADER = "x-ivr-recognized"
DTMF_KEYS = frozenset("0123456789*#w")
SAY_CHARS_PER_S = 14.0
PLAY_ASSUMED_S = 3.0
INFINITE_LOOP = 0
VERBS = frozenset(
    {
        "Say",
        "Play",
        "Pause",
        "Gather",
        "Record",
        "Dial",
        "Enqueue",
        "Redirect",
        "Hangup",
        "Reject",
        "Start",
        "Stop",
        "Connect",
    }
)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class CallerAction:
    """What the caller does when the call waits for input.

    ``press``: DTMF digits (``0-9 * #``); ``speech``: words (become ``SpeechResult``);
    ``audio``: WAV bytes (recorded by ``<Record>``, streamed to Media Streams; ``text`` is
    what Twilio's recogniser would return for a speech ``<Gather>``); ``silence``;
    ``hangup``.
    """

    kind: Literal["press", "speech", "audio", "silence", "hangup"]
    value: str = ""
    confidence: float = 0.92
    audio: bytes | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind == "press":
            if not self.value or set(self.value) - DTMF_KEYS:
                raise ValueError(f"DTMF keys must be 0-9, * or #, got {self.value!r}")
        elif self.kind == "speech" and not self.value.strip():
            raise ValueError("speech needs some words")
        elif self.kind == "audio" and not self.audio:
            raise ValueError("audio needs WAV bytes")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("confidence must be between 0 and 1")

    @classmethod
    def press(cls, digits: str) -> CallerAction:
        """Press DTMF keys."""
        return cls("press", digits)

    @classmethod
    def speech(cls, text: str, confidence: float = 0.92) -> CallerAction:
        """Say words (Twilio's recogniser result)."""
        return cls("speech", text, confidence)

    @classmethod
    def silence(cls) -> CallerAction:
        """Say and press nothing."""
        return cls("silence")

    @classmethod
    def hangup(cls) -> CallerAction:
        """Hang up."""
        return cls("hangup")


@dataclass(frozen=True)
class InputRequest:
    """The call waits for the caller: at a Gather, a Record or a bidirectional stream."""

    kind: Literal["gather", "record", "stream"]
    attrs: Mapping[str, str]
    prompts: tuple[str, ...] = ()


@dataclass
class TranscriptEntry:
    """One thing that happened on the call, ``at_s`` seconds after it was answered."""

    at_s: float
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallUpdate:
    """A pending ``update_call``: redirect to ``url`` / ``twiml``, or end with ``status``."""

    url: str | None = None
    twiml: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Fetch:
    """The next TwiML document to execute: fetched from ``url`` or given as ``twiml``."""

    url: str
    method: str = "POST"
    params: Mapping[str, str] = field(default_factory=dict)
    twiml: str | None = None


class CallEnded(Exception):
    """The call ends (``reason``, final ``status``): raised by a verb, caught by the call."""

    def __init__(self, reason: str, status: str = "completed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ApplicationError(Exception):
    """Our app answered a webhook with an error or with invalid TwiML (Twilio 11200/12100)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class CallBehaviour:
    """What the far end and the network do beyond input (scripted outcomes)."""

    hangup_after_s: float | None = None
    hangup_after_verbs: int | None = None
    dial_status: str = "completed"
    dial_duration_s: int = 60
    queue_result: str = "bridged"
    queue_time_s: int = 30
    time_limit_s: int = 4 * 3600
    stream_silence_limit_s: float = 60.0
    """Call seconds a caller stays silent on a ``<Connect><Stream>`` before hanging up."""
    stream_speed: float = 4.0
    """How many times faster than real time a ``<Connect><Stream>`` line runs on a virtual
    clock (0: as fast as it can; a real clock runs it in real time)."""
    max_documents: int = 500


def attr_bool(value: str | None, default: bool = False) -> bool:
    """A TwiML boolean attribute (``true``/``false``, any case)."""
    if value is None:
        return default
    return value.strip().lower() == "true"


def attr_int(value: str | None, default: int) -> int:
    """A TwiML integer attribute; ``default`` when missing, empty or malformed."""
    try:
        return int(value) if value is not None and value.strip() != "" else default
    except ValueError:
        return default


def attr_float(value: str | None, default: float) -> float:
    """A TwiML number attribute; ``default`` when missing, empty or malformed."""
    try:
        return float(value) if value is not None and value.strip() != "" else default
    except ValueError:
        return default


def say_duration_s(text: str) -> float:
    """How long Twilio's TTS takes to say ``text`` (a rough estimate)."""
    return max(0.5, len(text.strip()) / SAY_CHARS_PER_S)
