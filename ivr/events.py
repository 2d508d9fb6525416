"""What goes into the engine and what comes out: events, effects and the outcome of one event.

An :data:`Event` is one webhook of a call, already parsed by the runtime (a new call, what a
``<Gather>`` returned, what our recognizer heard, a recording, the end of a transfer).
:meth:`ivr.engine.Engine.handle` answers it with an :class:`Outcome`: the TwiML verbs, the
IVR path entries (:class:`StepRecord`), the speech it acted on (:class:`Heard`) and the
slow work the caller must do outside the webhook (:data:`Effect`: an SMS to enqueue, the
hand-off to people).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ivr.session import CallSession
from ivr.twiml import Verb

__all__ = [
    "Effect",
    "Event",
    "Handoff",
    "Heard",
    "Input",
    "Outcome",
    "Recording",
    "SendSms",
    "Start",
    "StepRecord",
    "TransferEnded",
    "VoiceInput",
]


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    """A new call: run ``flow`` from its start with ``variables`` (flow parameters)."""

    flow: str = "hotline"
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Input:
    """What a ``<Gather>`` returned: keypad digits and/or recognised speech."""

    digits: str = ""
    speech: str | None = None
    confidence: float | None = None
    audio_ref: str | None = None


@dataclass(frozen=True)
class VoiceInput:
    """What our own recognizer made of a voice capture (``record`` or ``stream``).

    ``digits``: a key pressed during the capture (it wins over speech); ``failed``: why
    recognition could not run (the step then goes on keypad-only after a spoken notice);
    ``speech_detected`` False with no text is silence (a no-input).
    """

    text: str = ""
    confidence: float | None = None
    digits: str = ""
    audio_ref: str | None = None
    speech_detected: bool = True
    failed: str | None = None


@dataclass(frozen=True)
class Recording:
    """A ``<Record>`` finished."""

    url: str | None = None
    duration: int | None = None
    sid: str | None = None


@dataclass(frozen=True)
class TransferEnded:
    """A ``<Dial>`` or ``<Enqueue>`` returned (``DialCallStatus`` or ``QueueResult``)."""

    status: str = ""


Event = Start | Input | VoiceInput | Recording | TransferEnded


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class SendSms:
    """Send a text (the runtime enqueues it on RQ; never sent inline)."""

    to: str
    body: str
    purpose: str = "ivr"


@dataclass(frozen=True)
class Handoff:
    """The call was handed to people; ``context`` is what their screen shows."""

    kind: str
    destination: str
    context: Mapping[str, Any]


Effect = SendSms | Handoff


# --------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class StepRecord:
    """One entry of the IVR path (an ``InteractionStep`` row)."""

    step: str
    event: str
    input: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Heard:
    """Speech the engine acted on (a ``Transcript`` row): where, what, and what it decided."""

    step: str
    text: str
    confidence: float | None
    decision: str | None
    audio_ref: str | None = None


@dataclass
class Outcome:
    """What :meth:`ivr.engine.Engine.handle` produced."""

    verbs: list[Verb] = field(default_factory=list)
    session: CallSession | None = None
    steps: list[StepRecord] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)

    @property
    def current_step(self) -> str | None:
        """``flow:step`` the call is at (for the ``X-IVR-Step`` header)."""
        if self.session is None:
            return None
        return f"{self.session.flow}:{self.session.step}"
