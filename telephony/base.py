"""The provider interface the whole application uses to reach the phone network.

Two implementations: :class:`telephony.twilio_provider.TwilioProvider` (Twilio's REST API
through the official SDK) and the developer tools' :class:`devtools.sandbox.SandboxProvider`
(a local Twilio emulator). Both raise only the exceptions of :mod:`telephony.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from telephony.status import DEFAULT_STATUS_EVENTS, STATUS_EVENTS

#: The RQ queue of the sandbox provider's call and SMS lives (a worker must listen on it).
TELEPHONY_QUEUE = "telephony"

MachineDetection = Literal["Enable", "DetectMessageEnd"]
CallStatusUpdate = Literal["completed", "canceled"]


@dataclass(frozen=True)
class CallInfo:
    """A call the provider accepted: its SID and status at creation (usually ``queued``);
    fetched later (:meth:`TelephonyProvider.fetch_call`), its status then and, once it has
    ended, its duration in seconds."""

    sid: str
    status: str
    duration_s: int | None = None


@dataclass(frozen=True)
class MessageInfo:
    """An SMS the provider accepted: SID, status at creation, number of billed segments."""

    sid: str
    status: str
    segments: int


@dataclass(frozen=True)
class RecordingInfo:
    """A call recording the provider started: its SID, call SID and status (``in-progress``)."""

    sid: str
    call_sid: str
    status: str


RecordingChannels = Literal["mono", "dual"]


@runtime_checkable
class TelephonyProvider(Protocol):
    """What the application needs from a telephony provider.

    All phone numbers are E.164 strings; all URLs are absolute public URLs of our app.
    """

    def place_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: MachineDetection | None = None,
        async_amd: bool = True,
        amd_callback: str | None = None,
        timeout_s: int = 30,
        time_limit_s: int | None = None,
    ) -> CallInfo:
        """Start an outbound call that fetches TwiML from ``url`` once answered.

        ``status_events`` are the ``StatusCallbackEvent`` values posted to
        ``status_callback``; ``machine_detection`` turns on answering-machine detection,
        whose result goes to ``amd_callback`` when ``async_amd`` is true.
        """
        ...

    def update_call(
        self,
        sid: str,
        *,
        url: str | None = None,
        twiml: str | None = None,
        status: CallStatusUpdate | None = None,
    ) -> CallInfo:
        """Redirect a live call to ``url`` or to new ``twiml``, or end it with ``status``."""
        ...

    def fetch_call(self, sid: str) -> CallInfo:
        """The call's status now (``GET /Calls/{sid}.json``): what a lost status callback
        would have said. An unknown SID raises :class:`~telephony.errors.CallNotFound`."""
        ...

    def send_sms(
        self, to: str, from_: str, body: str, *, status_callback: str | None
    ) -> MessageInfo:
        """Send an SMS; delivery progress is posted to ``status_callback``."""
        ...

    def fetch_message(self, sid: str) -> MessageInfo:
        """The message's status now (``GET /Messages/{sid}.json``). An unknown SID raises
        :class:`~telephony.errors.CallNotFound` (HTTP 404)."""
        ...

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        """Download a call recording as WAV bytes (authenticated)."""
        ...

    def start_recording(
        self,
        call_sid: str,
        *,
        status_callback: str | None,
        channels: RecordingChannels = "dual",
    ) -> RecordingInfo:
        """Start recording the whole call ``call_sid``, which must be in progress.

        When the recording is ready the provider posts ``RecordingSid``, ``RecordingUrl``,
        ``RecordingStatus`` (``completed``, or ``absent``), ``RecordingDuration`` and
        ``RecordingChannels`` to ``status_callback``. A call not in progress yet (or any
        more) is refused with 21220, an unknown one with 20404 (both
        :class:`~telephony.errors.CallNotFound`).
        """
        ...


def check_call_arguments(
    status_events: Sequence[str],
    machine_detection: str | None,
    timeout_s: int,
    time_limit_s: int | None,
) -> tuple[str, ...]:
    """Validate the common ``place_call`` options; return the events as a tuple.

    Raises ``ValueError`` with a clear message on a programming error.
    """
    events = tuple(status_events)
    unknown = [e for e in events if e not in STATUS_EVENTS]
    if unknown:
        raise ValueError(f"unknown status events {unknown}; allowed: {sorted(STATUS_EVENTS)}")
    if machine_detection not in (None, "Enable", "DetectMessageEnd"):
        raise ValueError("machine_detection must be None, 'Enable' or 'DetectMessageEnd'")
    if not 5 <= timeout_s <= 600:
        raise ValueError("timeout_s must be between 5 and 600 seconds")
    if time_limit_s is not None and not 1 <= time_limit_s <= 86400:
        raise ValueError("time_limit_s must be between 1 and 86400 seconds")
    return events


def check_update_arguments(url: str | None, twiml: str | None, status: str | None) -> None:
    """Exactly one of ``url``, ``twiml`` or ``status`` must be given to ``update_call``."""
    given = [name for name, v in (("url", url), ("twiml", twiml), ("status", status)) if v]
    if len(given) != 1:
        raise ValueError("update_call needs exactly one of url, twiml or status")
    if status is not None and status not in ("completed", "canceled"):
        raise ValueError("status must be 'completed' or 'canceled'")
