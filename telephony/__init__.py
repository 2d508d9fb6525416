"""The provider seam: how the application reaches the phone network.

The provider interface, the Twilio adapter (:mod:`telephony.twilio_provider`), the status
vocabularies (:mod:`telephony.status`), webhook signatures, SMS segments
(:mod:`telephony.sms`) and the ``/media-stream`` websocket transport
(:mod:`telephony.websocket`). It imports nothing of the application above
:mod:`contactcenter.config` and :mod:`contactcenter.phones`; the local Twilio emulator is a
developer tool (:mod:`devtools.sandbox`).

Public API: :class:`TelephonyProvider` (the interface), :class:`CallInfo`,
:data:`TELEPHONY_QUEUE` (the RQ queue of the sandbox provider's call and SMS lives),
:class:`MessageInfo`, the exceptions of :mod:`telephony.errors`, :func:`sign` /
:func:`is_valid` for ``X-Twilio-Signature``. The status vocabularies are in
:mod:`telephony.status`. Which provider a process uses is wired by the application
(:mod:`contactcenter.wiring`) into ``Services.telephony``.
"""

from __future__ import annotations

from telephony.base import (
    TELEPHONY_QUEUE,
    CallInfo,
    MessageInfo,
    TelephonyProvider,
)
from telephony.errors import (
    AuthenticationFailed,
    CallNotFound,
    InvalidNumber,
    OptedOut,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TelephonyError,
)
from telephony.signing import SIGNATURE_HEADER, is_valid, sign
from telephony.status import (
    ANSWERED_BY_VALUES,
    DEFAULT_STATUS_EVENTS,
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
)

__all__ = [
    "ANSWERED_BY_VALUES",
    "DEFAULT_STATUS_EVENTS",
    "SIGNATURE_HEADER",
    "TELEPHONY_QUEUE",
    "TERMINAL_CALL_STATUSES",
    "TERMINAL_MESSAGE_STATUSES",
    "AuthenticationFailed",
    "CallInfo",
    "CallNotFound",
    "InvalidNumber",
    "MessageInfo",
    "OptedOut",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "TelephonyError",
    "TelephonyProvider",
    "is_valid",
    "sign",
]
