"""Where the sandbox keeps live-call state ``update_call`` must reach.

In one process a dict is enough (:class:`MemoryCallState`). When calls run in RQ workers
and ``update_call`` comes from the web process, the state lives in Redis
(:class:`RedisCallState`): the call's status, and a list of pending updates the live call
polls between verbs.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Protocol

from telephony.sandbox.interpreter import CallUpdate

if TYPE_CHECKING:
    from redis import Redis

STATE_TTL_S = 24 * 3600


class CallState(Protocol):
    """Status and pending updates of sandbox calls, by call SID."""

    def set_status(self, sid: str, status: str) -> None:
        """Record the call's current status."""
        ...

    def get_status(self, sid: str) -> str | None:
        """The call's status, or None for an unknown call."""
        ...

    def push_update(self, sid: str, update: CallUpdate) -> None:
        """Queue an ``update_call`` for the live call."""
        ...

    def pop_update(self, sid: str) -> CallUpdate | None:
        """Take the oldest pending update, if any."""
        ...


class MemoryCallState:
    """In-process state (inline and thread modes)."""

    def __init__(self) -> None:
        self._status: dict[str, str] = {}
        self._updates: dict[str, list[CallUpdate]] = {}
        self._lock = threading.Lock()

    def set_status(self, sid: str, status: str) -> None:
        """Record the call's current status."""
        with self._lock:
            self._status[sid] = status

    def get_status(self, sid: str) -> str | None:
        """The call's status, or None."""
        with self._lock:
            return self._status.get(sid)

    def push_update(self, sid: str, update: CallUpdate) -> None:
        """Queue an update."""
        with self._lock:
            self._updates.setdefault(sid, []).append(update)

    def pop_update(self, sid: str) -> CallUpdate | None:
        """Take the oldest pending update."""
        with self._lock:
            pending = self._updates.get(sid)
            return pending.pop(0) if pending else None


class RedisCallState:
    """State in Redis, shared by the web process and RQ workers."""

    def __init__(self, redis: Redis, prefix: str = "sandbox:call:") -> None:
        self._redis = redis
        self._prefix = prefix

    def set_status(self, sid: str, status: str) -> None:
        """Record the call's current status."""
        self._redis.set(f"{self._prefix}{sid}:status", status, ex=STATE_TTL_S)

    def get_status(self, sid: str) -> str | None:
        """The call's status, or None."""
        raw: Any = self._redis.get(f"{self._prefix}{sid}:status")
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    def push_update(self, sid: str, update: CallUpdate) -> None:
        """Queue an update."""
        key = f"{self._prefix}{sid}:updates"
        payload = json.dumps({"url": update.url, "twiml": update.twiml, "status": update.status})
        pipe = self._redis.pipeline()
        pipe.rpush(key, payload)
        pipe.expire(key, STATE_TTL_S)
        pipe.execute()

    def pop_update(self, sid: str) -> CallUpdate | None:
        """Take the oldest pending update."""
        raw: Any = self._redis.lpop(f"{self._prefix}{sid}:updates")
        if raw is None:
            return None
        data = json.loads(raw)
        return CallUpdate(url=data.get("url"), twiml=data.get("twiml"), status=data.get("status"))
