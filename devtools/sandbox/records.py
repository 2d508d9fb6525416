"""The sandbox's records of calls and messages, and how their callbacks go out.

A :class:`CallRecord` or :class:`MessageRecord` is what the sandbox knows of one call or SMS
(and what the REST emulation shows); :class:`DeliveryPolicy` and :class:`Outbox` deliver its
status callbacks in order, reordered or duplicated; :func:`call_spec` /
:func:`call_from_spec` carry a call to the RQ job that runs its life in another process.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devtools.sandbox.interpreter import LiveCall
from devtools.sandbox.scenario import CallOutcome

SANDBOX_ACCOUNT_SID = "AC" + "5a" * 16
TWILIO_API_BASE = "https://api.twilio.com"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How status callbacks are delivered: in order (default), reordered and/or duplicated.

    ``reorder`` holds a call's or message's status callbacks until it ends and sends them
    shuffled; ``duplicate_rate`` sends each callback twice with that probability. Both are
    deterministic with ``seed``.
    """

    reorder: bool = False
    duplicate_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")


@dataclass
class SentCallback:
    """A callback the sandbox sent and what our app answered (None: unreachable)."""

    url: str
    params: dict[str, str]
    status: int | None


@dataclass
class CallRecord:
    """A sandbox call and its history."""

    sid: str
    to: str
    from_: str
    direction: str
    url: str | None
    twiml: str | None
    status: str
    status_callback: str | None = None
    status_events: tuple[str, ...] = ("completed",)
    machine_detection: str | None = None
    async_amd: bool = True
    amd_callback: str | None = None
    timeout_s: int = 30
    time_limit_s: int | None = None
    attempt: int = 1
    outcome: CallOutcome | None = None
    answered_by: str | None = None
    duration_s: int = 0
    live: LiveCall | None = None
    callbacks: list[SentCallback] = field(default_factory=list)
    error: str | None = None
    delivery_key: str = ""


@dataclass
class MessageRecord:
    """A sandbox SMS and its history."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    segments: int
    status_callback: str | None
    attempt: int = 1
    error_code: int | None = None
    callbacks: list[SentCallback] = field(default_factory=list)
    delivery_key: str = ""


@dataclass(frozen=True)
class StoredRecording:
    """A recording made by ``<Record>``: WAV bytes and duration in seconds."""

    sid: str
    call_sid: str
    wav: bytes
    duration_s: int


class Outbox:
    """Sends one call's or message's callbacks according to the delivery policy."""

    def __init__(
        self,
        send: Callable[[str, dict[str, str]], int | None],
        sent: list[SentCallback],
        policy: DeliveryPolicy,
        key: str,
    ) -> None:
        self._send = send
        self._sent = sent
        self._policy = policy
        self._rng = random.Random(f"{policy.seed}:{key}")  # noqa: S311 - test scheduling
        self._held: list[tuple[str, dict[str, str]]] = []

    def emit(self, url: str, params: dict[str, str]) -> None:
        """Send (or hold, when reordering) one callback, twice at the duplicate rate."""
        copies = 2 if self._rng.random() < self._policy.duplicate_rate else 1
        for _ in range(copies):
            if self._policy.reorder:
                self._held.append((url, params))
            else:
                self._deliver(url, params)

    def _deliver(self, url: str, params: dict[str, str]) -> None:
        self._sent.append(SentCallback(url, params, self._send(url, params)))

    def flush(self) -> None:
        """Send the held callbacks, shuffled (reordering policy)."""
        held, self._held = self._held, []
        self._rng.shuffle(held)
        for url, params in held:
            self._deliver(url, params)


def call_spec(record: CallRecord) -> dict[str, Any]:
    """What an RQ job needs to run a call placed in another process (JSON-safe)."""
    return {
        "sid": record.sid,
        "to": record.to,
        "from": record.from_,
        "url": record.url,
        "twiml": record.twiml,
        "status_callback": record.status_callback,
        "status_events": list(record.status_events),
        "machine_detection": record.machine_detection,
        "async_amd": record.async_amd,
        "amd_callback": record.amd_callback,
        "timeout_s": record.timeout_s,
        "time_limit_s": record.time_limit_s,
        "attempt": record.attempt,
        "delivery_key": record.delivery_key,
    }


def call_from_spec(spec: Mapping[str, Any]) -> CallRecord:
    """The :class:`CallRecord` of a :func:`call_spec`."""
    return CallRecord(
        sid=str(spec["sid"]),
        to=str(spec["to"]),
        from_=str(spec["from"]),
        direction="outbound-api",
        url=spec.get("url"),
        twiml=spec.get("twiml"),
        status="queued",
        status_callback=spec.get("status_callback"),
        status_events=tuple(spec.get("status_events") or ("completed",)),
        machine_detection=spec.get("machine_detection"),
        async_amd=bool(spec.get("async_amd", True)),
        amd_callback=spec.get("amd_callback"),
        timeout_s=int(spec.get("timeout_s", 30)),
        time_limit_s=spec.get("time_limit_s"),
        attempt=int(spec.get("attempt", 1)),
        delivery_key=str(spec.get("delivery_key", "")),
    )
