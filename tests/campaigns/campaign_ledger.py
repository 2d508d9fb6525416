"""A provider whose "network" is a Redis list: what the crash test uses across processes.

Every accepted call is appended to ``ledger:calls`` (JSON) before ``place_call`` returns, so
the test sees exactly which calls reached the network, whichever process placed them and
however it died. ``ledger:die-at`` makes the N-th call block *after* it was accepted (the
worst moment: the provider has the call, our database does not have its SID yet) or
*before* it is placed, until the test kills the process.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from contactcenter.services import Services
from telephony.base import CallInfo, MessageInfo
from telephony.errors import CallNotFound
from telephony.status import DEFAULT_STATUS_EVENTS

CALLS = "ledger:calls"
DIE_AT = "ledger:die-at"
DIE_WHEN = "ledger:die-when"
READY = "ledger:ready"
PLACED = "ledger:placed"
HORSE_PID = "ledger:horse-pid"


class LedgerProvider:
    """:class:`telephony.base.TelephonyProvider` recording calls in Redis."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _maybe_die(self, moment: str) -> None:
        redis = self.services.redis
        die_at = redis.get(DIE_AT)
        raw = redis.get(DIE_WHEN) or b"after"
        when = raw.decode() if isinstance(raw, bytes) else str(raw)
        if die_at is None or when != moment:
            return
        if int(redis.get(PLACED) or 0) == int(die_at):
            # RQ puts the work-horse in its own process group (os.setpgrp), so killing the
            # worker's group misses it: the test kills it by this pid, and it leaves by itself
            # once its worker is gone (never a process left behind).
            parent = os.getppid()
            redis.set(HORSE_PID, str(os.getpid()))
            redis.set(READY, "1")
            while True:  # wait for SIGKILL, like a worker stuck in a network call
                if os.getppid() != parent:
                    os._exit(1)
                time.sleep(0.05)

    def place_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: Any = None,
        async_amd: bool = True,
        amd_callback: str | None = None,
        timeout_s: int = 30,
        time_limit_s: int | None = None,
    ) -> CallInfo:
        """Accept the call: append it to the ledger."""
        redis = self.services.redis
        redis.incr(PLACED)
        self._maybe_die("before")
        sid = "CA" + uuid.uuid4().hex
        record = {"sid": sid, "to": to, "url": url, "status_callback": status_callback}
        redis.rpush(CALLS, json.dumps(record))
        self._maybe_die("after")
        return CallInfo(sid=sid, status="queued")

    def start_recording(self, call_sid: str, **_: Any) -> Any:
        """Campaign calls are not recorded."""
        raise AssertionError("no call recordings in campaign tests")

    def update_call(self, sid: str, **_: Any) -> CallInfo:
        """Nothing to update in a ledger."""
        return CallInfo(sid=sid, status="completed")

    def fetch_call(self, sid: str) -> CallInfo:
        """A call of the ledger is live until its callbacks say otherwise."""
        if not any(
            json.loads(raw)["sid"] == sid for raw in self.services.redis.lrange(CALLS, 0, -1)
        ):
            raise CallNotFound(f"call {sid} was not found", code=20404, status=404)
        return CallInfo(sid=sid, status="in-progress")

    def fetch_message(self, sid: str) -> MessageInfo:
        """SMS are not used by the crash test."""
        raise NotImplementedError("the ledger provider only places calls")

    def send_sms(
        self, to: str, from_: str, body: str, *, status_callback: str | None
    ) -> MessageInfo:
        """SMS are not used by the crash test."""
        raise NotImplementedError("the ledger provider only places calls")

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        """No recordings."""
        raise NotImplementedError("the ledger provider has no recordings")


def ledger_calls(services: Services) -> list[dict[str, str]]:
    """Every call that reached the network, in order."""
    return [json.loads(raw) for raw in services.redis.lrange(CALLS, 0, -1)]
