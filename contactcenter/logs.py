"""Logging of a process: JSON or text lines, a bound context, personal data masked.

:func:`configure_logging` installs one handler on the root logger (``LOG_FORMAT``: ``json``,
the default with ``TELEPHONY=twilio``, one object per line; or ``text``). Every record gets
the fields bound in the current context — request id, call SID, campaign, attempt, import
run — by :func:`bind_log_context`: the web layer binds them per request, RQ jobs at their
start (``fresh=True``: a job is a new unit of work). Context lives in a
:class:`~contextvars.ContextVar`, so threads and requests never see each other's.

:class:`MaskingFilter` is the safety net for personal data: phone numbers (E.164 and Russian
written forms: ``+7 916 123-45-67``, ``8 (916) 123-45-67``, ``89161234567``) become
``+7916***4567`` (:func:`contactcenter.phones.mask_phone`), 10-12 digit numbers (account
numbers) ``***4567``, in the message, its arguments, extra fields and tracebacks; extra
fields named like personal data (``name``, ``phone``, ``account`` …) are masked whole.
Names cannot be recognised in free text: code must not log them (mask at the call site).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from contactcenter.phones import mask_phone

LOG_FORMATS = ("json", "text")
#: Context fields, in the order text lines show them.
CONTEXT_FIELDS = ("request_id", "call_sid", "campaign_id", "attempt_id", "target_id", "job")
#: Extra fields whose values are personal data whatever they look like.
SENSITIVE_FIELDS = frozenset(
    {
        "name",
        "full_name",
        "holder_name",
        "caller_name",
        "phone",
        "to",
        "from",
        "caller",
        "called",
        "account",
        "account_number",
        "address",
        "body",
    }
)

_context: ContextVar[Mapping[str, Any] | None] = ContextVar("cc_log_context", default=None)

# A phone-like run: an optional +, a digit, 8-18 digits/separators, a digit; not inside a
# word (SIDs, hex ids) and not a masked number already.
_NUMBER = re.compile(r"(?<![\w+*])(\+?)(\d[\d \-()\u00a0]{8,18}\d)(?![\w*])")
_SEPARATORS = re.compile(r"[ \-()\u00a0]")
#: Attributes every LogRecord has; anything else on a record came as ``extra``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "log_context", "taskName"}
)
_HANDLER_MARK = "_contactcenter_handler"


# ---------------------------------------------------------------------- context


def bind_log_context(*, fresh: bool = False, **fields: Any) -> None:
    """Add ``fields`` (``call_sid``, ``campaign_id``, ``attempt_id`` …) to every record of
    the current context; None values are left out. ``fresh`` starts from an empty context
    (an RQ job's start)."""
    base = {} if fresh else dict(_context.get() or {})
    base.update({key: value for key, value in fields.items() if value is not None})
    _context.set(base)


def clear_log_context() -> None:
    """Forget every bound field (the end of a request)."""
    _context.set(None)


def log_context() -> dict[str, Any]:
    """The fields bound now."""
    return dict(_context.get() or {})


def new_request_id(candidate: str | None = None) -> str:
    """``candidate`` (e.g. a proxy's ``X-Request-Id``) when it is a plain token of at most 64
    characters, else a new random id (32 hex digits)."""
    if candidate and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", candidate):
        return candidate
    return uuid.uuid4().hex


# ---------------------------------------------------------------------- masking


def _mask_number(match: re.Match[str]) -> str:
    plus, run = match.group(1), match.group(2)
    digits = _SEPARATORS.sub("", run)
    separated = digits != run
    if plus and 10 <= len(digits) <= 15:
        return mask_phone("+" + digits)
    if len(digits) == 11 and digits[0] in "78":
        return mask_phone("+7" + digits[1:])
    if not separated and 10 <= len(digits) <= 12:
        return "***" + digits[-4:]
    return match.group(0)


def mask_text(text: str) -> str:
    """``text`` with phone numbers and 10-12 digit numbers masked (see the module docstring)."""
    if not any(ch.isdigit() for ch in text):
        return text
    return _NUMBER.sub(_mask_number, text)


def _mask_value(key: str, value: Any) -> Any:
    if key.lower() in SENSITIVE_FIELDS and value is not None:
        return mask_phone(value) if isinstance(value, str) and value.startswith("+") else "***"
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**9 else mask_text(str(value))
    return mask_text(str(value))


class MaskingFilter(logging.Filter):
    """Masks personal data in a record's message, arguments and extra fields, and stamps
    the bound context on it (``record.log_context``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string still gets logged, masked
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = mask_text(message), None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, _mask_value(key, value))
        if not hasattr(record, "log_context"):
            record.log_context = log_context()
        return True


# ---------------------------------------------------------------------- formatting


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return mask_text("".join(traceback.format_exception(*record.exc_info)).rstrip())
    if record.stack_info:
        return mask_text(record.stack_info)
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC), ``level``, ``logger``, ``message``, the bound
    context, the record's extra fields and ``exception`` (masked traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "ts": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        entry.update(getattr(record, "log_context", None) or log_context())
        for key, value in _extras(record).items():
            entry.setdefault(key, _mask_value(key, value))
        exception = _exception_text(record)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message [key=value …]`` with the bound context and extras."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as a text line (a masked traceback on the following lines)."""
        line = mask_text(super().formatMessage(self._prepared(record)))
        fields = {**(getattr(record, "log_context", None) or log_context()), **_extras(record)}
        if fields:
            line += " [" + " ".join(f"{k}={_mask_value(k, v)}" for k, v in fields.items()) + "]"
        exception = _exception_text(record)
        return f"{line}\n{exception}" if exception else line

    def _prepared(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        return record


def configure_logging(level: str, fmt: str = "text", *, stream: IO[str] | None = None) -> None:
    """Configure the root logger of this process: level, format (``json`` or ``text``) and
    the masking filter, on one handler writing to ``stream`` (stderr).

    Called again (each app a process creates), it replaces its own handler. A root logger
    that already has someone else's handlers (pytest's capture, a ``--log-config``) is left
    as it is, like :func:`logging.basicConfig` does, unless a ``stream`` is given.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]
    if stream is None and len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))


def remove_logging_handler() -> None:
    """Remove the handler :func:`configure_logging` installed (tests restore the root)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
        handler.close()
