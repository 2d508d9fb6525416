"""Exceptions of the IVR, in one place.

Callers catch at the level they care about::

    Flow files (``contactcenter flows check``, app start-up)
    FlowError                           a flow file is invalid; ``issues`` lists every
                                        :class:`FlowIssue` (file, line, column, message)
    ExpressionError (ValueError)        a ``branch`` condition does not parse; ``position``
                                        is the offending character (0-based)
    PromptTemplateError (ValueError)    a prompt or SMS template of a flow is malformed
                                        (braces, names, formats); ``position`` as above

    A call in progress
    ActionFailed (RuntimeError)         an action could not do its work; the engine says
                                        sorry and puts the caller in the operator queue
    RenderError (ValueError)            a prompt field cannot be rendered (variable not
                                        set, value of the wrong kind); runs as ActionFailed
    ActionContractError (ValueError)    an action returned an outcome or variables its
                                        declaration (``ivr.action_names``) does not allow
    UnknownActionError (KeyError)       no action of that name is declared
    SessionError (RuntimeError)         the call session store failed
    └── SessionConflict                 another request changed the session first (the
                                        event was already applied: a replayed webhook)
    WebhookError (ValueError)           a webhook request lacks what we need (no
                                        ``CallSid``, an unknown flow …): answered with 400
    └── BadRecordingCallback            a recording status callback without its SIDs or
                                        with a status, duration or channels out of range

    Call recordings (:mod:`ivr.recordings`, :mod:`ivr.recording_storage`)
    RecordingError (RuntimeError)       a whole-call recording cannot be stored or read
    ├── RecordingStorageError           the storage failed (a directory not writable, the
    │                                   bucket missing or refusing our credentials …)
    └── RecordingNotStored (LookupError)  no stored copy: unknown SID, not downloaded yet,
                                        deleted by the retention job, or the copy is gone

:class:`FlowIssue` is not an exception: it is the value a :class:`FlowError` carries and
:func:`ivr.validate.check_flows` returns, defined here with the error it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ActionContractError",
    "ActionFailed",
    "BadRecordingCallback",
    "ExpressionError",
    "FlowError",
    "FlowIssue",
    "PromptTemplateError",
    "RecordingError",
    "RecordingNotStored",
    "RecordingStorageError",
    "RenderError",
    "SessionConflict",
    "SessionError",
    "UnknownActionError",
    "WebhookError",
]


# --------------------------------------------------------------------------- flow files


@dataclass(frozen=True, order=True)
class FlowIssue:
    """One problem in a flow file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class FlowError(Exception):
    """A flow file is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: Sequence[FlowIssue]) -> None:
        self.issues: list[FlowIssue] = sorted(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class ExpressionError(ValueError):
    """An invalid expression; ``position`` is the 0-based offset in the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.message = message
        self.position = position


class PromptTemplateError(ValueError):
    """A malformed prompt template; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.message = message
        self.position = position


# --------------------------------------------------------------------------- a call


class ActionFailed(RuntimeError):
    """An action could not do its work; the engine transfers the caller to an operator."""


class RenderError(ValueError):
    """A template field cannot be rendered (variable not set, or a value of the wrong kind)."""


class ActionContractError(ValueError):
    """An action implementation returned an outcome or variables its declaration does not allow."""


class UnknownActionError(KeyError):
    """No action with this name is declared."""


class SessionError(RuntimeError):
    """Base of the session store errors."""


class SessionConflict(SessionError):
    """Another request changed the session first (the event was already applied)."""


class WebhookError(ValueError):
    """A webhook request lacks what we need (e.g. no ``CallSid``); answered with 400."""


class BadRecordingCallback(WebhookError):
    """A recording status callback without the fields we need (answered with 400)."""


# --------------------------------------------------------------------------- call recordings


class RecordingError(RuntimeError):
    """A whole-call recording cannot be stored or read."""


class RecordingStorageError(RecordingError):
    """The recording storage failed (directory, bucket, credentials, network)."""


class RecordingNotStored(RecordingError, LookupError):
    """No stored copy of a recording (unknown, not downloaded yet, deleted, or gone)."""
