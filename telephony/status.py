"""Twilio's call and message status vocabularies, their order, and status callbacks.

The one definition of what a ``CallStatus``, a ``MessageStatus`` and an ``AnsweredBy`` may
be, which statuses are terminal and which status may replace which. Every layer that
stores or acts on a status imports it from here.

Status callbacks arrive unordered and sometimes twice, so a stored status only moves
forward: :func:`call_status_supersedes` and :func:`message_status_supersedes` say whether a
new status may replace the current one (a higher rank wins, a terminal status is never
replaced). A stored value that is not in the vocabulary (the CRM's own ``started`` of a call
whose first callback has not come yet) ranks below every status.

:func:`parse_status_callback` turns the form of ``POST /voice/status``, ``/voice/amd`` or
``/sms/status`` into a :class:`StatusCallback`; a missing SID or an unknown status raises
:class:`InvalidStatusCallback`, which the web layer answers with 400 (nothing is stored).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from telephony.errors import InvalidStatusCallback

# Call statuses Twilio reports (``CallStatus``), in the order a call goes through them.
CALL_STATUSES: tuple[str, ...] = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
TERMINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_CALL_RANK: dict[str, int] = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    **dict.fromkeys(TERMINAL_CALL_STATUSES, 4),
}

# Message statuses Twilio reports (``MessageStatus``): outbound ones move from accepted to
# delivered/read or a failure; an inbound one is receiving, then received.
MESSAGE_STATUSES: tuple[str, ...] = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "receiving",
    "received",
    "partially_delivered",
    "delivered",
    "undelivered",
    "failed",
    "canceled",
    "read",
)
TERMINAL_MESSAGE_STATUSES = frozenset(
    {"delivered", "read", "undelivered", "failed", "canceled", "received"}
)
_MESSAGE_RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "receiving": 3,
    "received": 4,
    "partially_delivered": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}

#: ``StatusCallbackEvent`` values a call may subscribe to (``answered`` is an event, not a
#: ``CallStatus``: its callback carries ``CallStatus=in-progress``).
DEFAULT_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")
STATUS_EVENTS = frozenset(DEFAULT_STATUS_EVENTS)

#: ``AnsweredBy`` values of answering-machine detection.
ANSWERED_BY_VALUES: tuple[str, ...] = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)


def call_status_rank(status: str | None) -> int:
    """Rank of a call status (-1 for a value outside the vocabulary)."""
    return _CALL_RANK.get((status or "").lower(), -1)


def message_status_rank(status: str | None) -> int:
    """Rank of a message status (-1 for a value outside the vocabulary)."""
    return _MESSAGE_RANK.get((status or "").lower(), -1)


def call_status_supersedes(new: str, current: str | None) -> bool:
    """Whether call status ``new`` may replace the stored ``current`` one."""
    if (current or "").lower() in TERMINAL_CALL_STATUSES:
        return False
    return call_status_rank(new) > call_status_rank(current)


def message_status_supersedes(new: str, current: str | None) -> bool:
    """Whether message status ``new`` may replace the stored ``current`` one."""
    if (current or "").lower() in TERMINAL_MESSAGE_STATUSES:
        return False
    return message_status_rank(new) > message_status_rank(current)


def call_status(raw: str | None) -> str:
    """``raw`` as a known ``CallStatus`` (lower case); :class:`InvalidStatusCallback` if not."""
    status = (raw or "").strip().lower()
    if status not in _CALL_RANK:
        raise InvalidStatusCallback(f"unknown CallStatus {raw!r}")
    return status


def message_status(raw: str | None) -> str:
    """``raw`` as a known ``MessageStatus`` (lower case); :class:`InvalidStatusCallback` if not."""
    status = (raw or "").strip().lower()
    if status not in _MESSAGE_RANK:
        raise InvalidStatusCallback(f"unknown MessageStatus {raw!r}")
    return status


class StatusKind(enum.StrEnum):
    """Which callback a :class:`StatusCallback` came from."""

    CALL = "call"  # POST /voice/status
    AMD = "amd"  # POST /voice/amd (asynchronous answering-machine detection)
    SMS = "sms"  # POST /sms/status


@dataclass(frozen=True)
class StatusCallback:
    """One status callback, checked: its SID, status and every field posted with it.

    ``params`` are the form fields merged with the callback URL's query (``?attempt=ID``);
    ``status`` is the ``CallStatus``, the ``MessageStatus`` or, for AMD, ``AnsweredBy``.
    """

    kind: StatusKind
    sid: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def sequence(self) -> int | None:
        """Twilio's ``SequenceNumber`` of a call callback, when given."""
        return _int(self.params.get("SequenceNumber"))

    @property
    def timestamp(self) -> datetime | None:
        """When the status happened (Twilio's ``Timestamp``, RFC 2822) in UTC, when given."""
        raw = self.params.get("Timestamp")
        if not raw:
            return None
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    def int_param(self, name: str) -> int | None:
        """An integer field (``CallDuration`` …), None when absent or not a number."""
        return _int(self.params.get(name))


def parse_status_callback(
    kind: StatusKind | str, form: Mapping[str, str], query: Mapping[str, str] | None = None
) -> StatusCallback:
    """Check a status callback's form (and URL query); raise :class:`InvalidStatusCallback`.

    A call callback needs ``CallSid`` and a known ``CallStatus``; an AMD result ``CallSid``
    and a known ``AnsweredBy``; an SMS callback ``MessageSid`` (or ``SmsSid``) and a known
    ``MessageStatus`` (or ``SmsStatus``).
    """
    kind = StatusKind(kind)
    params = {**form, **(query or {})}
    if kind is StatusKind.SMS:
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        raw = params.get("MessageStatus") or params.get("SmsStatus") or ""
        if not sid or not raw:
            raise InvalidStatusCallback("MessageSid and MessageStatus are required")
        return StatusCallback(kind, sid.strip(), message_status(raw), params)
    sid = (params.get("CallSid") or "").strip()
    if not sid:
        raise InvalidStatusCallback("missing CallSid")
    if kind is StatusKind.AMD:
        answered_by = (params.get("AnsweredBy") or "").strip().lower()
        if answered_by not in ANSWERED_BY_VALUES:
            raise InvalidStatusCallback(f"unknown AnsweredBy {params.get('AnsweredBy')!r}")
        return StatusCallback(kind, sid, answered_by, params)
    if not params.get("CallStatus"):
        raise InvalidStatusCallback("missing CallStatus")
    return StatusCallback(kind, sid, call_status(params.get("CallStatus")), params)


def _int(raw: str | None) -> int | None:
    if raw is None or not raw.strip().lstrip("-").isdigit():
        return None
    return int(raw)
