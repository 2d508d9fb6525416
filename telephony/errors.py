"""Exceptions raised by every telephony provider (Twilio adapter and sandbox alike).

Callers catch at the level they care about::

    TelephonyError                  base class; ``retryable`` says whether a retry can help
    ├── ProviderUnavailable         network failure, timeout or 5xx after our retries (retryable)
    ├── RateLimited                 HTTP 429 / Twilio 20429 after our retries (retryable)
    ├── InvalidNumber               the number cannot be called or texted (Twilio 21211,
    │                               21214, 21217, 21401, 21407, 21408, 21421, 21614)
    ├── OptedOut                    the recipient replied STOP; sending is refused (Twilio 21610)
    ├── CallNotFound                no such call / recording, or the call is no longer live
    │                               (HTTP 404, Twilio 20404, 21220)
    ├── AuthenticationFailed        bad account SID or auth token (HTTP 401, Twilio 20003)
    └── ProviderRejected            any other refusal; carries Twilio's ``code`` and HTTP ``status``

    InvalidStatusCallback (ValueError)  a status callback Twilio's contract does not allow: no
                                    SID, or a status outside :mod:`telephony.status`'s
                                    vocabulary (the web layer answers 400 and stores nothing)

Every exception carries ``code`` (the Twilio error code, or None) and ``status`` (the HTTP
status, or None). Campaign jobs re-raise the retryable ones so RQ's ``Retry`` applies, and
record the others as a final outcome of the attempt.
"""

from __future__ import annotations


class TelephonyError(Exception):
    """Base class of all telephony errors."""

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class ProviderUnavailable(TelephonyError):
    """The provider could not be reached or answered 5xx; retrying later may succeed."""

    retryable = True


class RateLimited(TelephonyError):
    """The provider throttled us (HTTP 429); retrying after a pause may succeed."""

    retryable = True


class InvalidNumber(TelephonyError):
    """The destination (or caller ID) is not a callable/textable number."""


class OptedOut(TelephonyError):
    """The recipient opted out of messages from this sender (Twilio 21610)."""


class CallNotFound(TelephonyError):
    """The call or recording does not exist, or the call is no longer in progress."""


class AuthenticationFailed(TelephonyError):
    """The account SID or auth token was rejected."""


class ProviderRejected(TelephonyError):
    """The provider refused the request for another reason (see ``code`` and ``status``)."""


class InvalidStatusCallback(ValueError):
    """A status callback without its SID or with a status Twilio does not define."""


INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21408, 21421, 21614})
OPTED_OUT_CODES = frozenset({21610})
NOT_FOUND_CODES = frozenset({20404, 21220})
AUTH_CODES = frozenset({20003})
RATE_LIMIT_CODES = frozenset({20429})


def error_for(status: int | None, code: int | None, message: str) -> TelephonyError:
    """Map an HTTP status and Twilio error code to the matching exception."""
    if code in INVALID_NUMBER_CODES:
        return InvalidNumber(message, code=code, status=status)
    if code in OPTED_OUT_CODES:
        return OptedOut(message, code=code, status=status)
    if code in AUTH_CODES or status == 401:
        return AuthenticationFailed(message, code=code, status=status)
    if code in RATE_LIMIT_CODES or status == 429:
        return RateLimited(message, code=code, status=status)
    if code in NOT_FOUND_CODES or status == 404:
        return CallNotFound(message, code=code, status=status)
    if status is not None and status >= 500:
        return ProviderUnavailable(message, code=code, status=status)
    return ProviderRejected(message, code=code, status=status)
