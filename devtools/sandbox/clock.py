"""Time for the sandbox: virtual (tests never sleep) or real (``--realtime`` demos)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of time the sandbox waits on."""

    def now(self) -> datetime:
        """The current tz-aware UTC time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class VirtualClock:
    """A clock that advances instantly when slept on; thread-safe.

    It starts at ``start`` (default: the real present, so the stamps it puts on webhooks,
    ``Timestamp``, agree with the server's clock — not a fixed date months away) and moves
    only by :meth:`sleep`.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("start must be tz-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current virtual time."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the virtual time by ``seconds`` without waiting."""
        if seconds < 0:
            raise ValueError("cannot sleep a negative time")
        with self._lock:
            self._now += timedelta(seconds=seconds)


class RealClock:
    """Wall-clock time (``time.sleep``)."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Really wait ``seconds``."""
        if seconds > 0:
            time.sleep(seconds)
