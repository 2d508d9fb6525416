"""Where the sandbox keeps state that must outlive one process.

Live-call status and pending ``update_call`` requests, recordings, per-number attempt
counters (for deterministic scenarios) and SMS opt-outs. In one process a dict is enough
(:class:`MemoryCallState`); when call lives run in RQ workers and ``update_call`` or
``fetch_recording`` come from the web process, it lives in Redis (:class:`RedisCallState`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from devtools.sandbox.twiml import CallUpdate

if TYPE_CHECKING:
    from redis import Redis

STATE_TTL_S = 24 * 3600


@dataclass(frozen=True)
class CallRecordingStart:
    """A whole-call recording started by ``start_recording``: its SID, status callback and
    channels (``mono`` or ``dual``)."""

    sid: str
    callback: str | None
    channels: str


class CallState(Protocol):
    """Shared sandbox state, keyed by call SID, recording SID or phone number."""

    def set_status(self, sid: str, status: str) -> None:
        """Record the current status of a call or a message."""
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

    def put_recording(self, sid: str, call_sid: str, wav: bytes, duration_s: int) -> None:
        """Store a recording."""
        ...

    def get_recording(self, sid: str) -> bytes | None:
        """A recording's WAV bytes, or None."""
        ...

    def start_call_recording(self, call_sid: str, started: CallRecordingStart) -> bool:
        """Note a whole-call recording of ``call_sid``; False when one is already running."""
        ...

    def take_call_recording(self, call_sid: str) -> CallRecordingStart | None:
        """Remove and return the whole-call recording of ``call_sid``, if one was started."""
        ...

    def next_attempt(self, key: str) -> int:
        """Count one more attempt for ``key`` and return the count (1 for the first)."""
        ...

    def set_opted_out(self, number: str, sender: str, opted_out: bool) -> None:
        """Record a STOP (True) or START (False) from ``number`` to ``sender``."""
        ...

    def is_opted_out(self, number: str, sender: str) -> bool:
        """Whether ``number`` opted out of messages from ``sender``."""
        ...


class MemoryCallState:
    """In-process state (inline and thread modes)."""

    def __init__(self) -> None:
        self._status: dict[str, str] = {}
        self._updates: dict[str, list[CallUpdate]] = {}
        self._recordings: dict[str, bytes] = {}
        self._call_recordings: dict[str, CallRecordingStart] = {}
        self._attempts: dict[str, int] = {}
        self._opted_out: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def set_status(self, sid: str, status: str) -> None:
        """Record the current status of a call or a message."""
        with self._lock:
            self._status[sid] = status

    def get_status(self, sid: str) -> str | None:
        """The current status of a call or a message, or None."""
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

    def put_recording(self, sid: str, call_sid: str, wav: bytes, duration_s: int) -> None:
        """Store a recording."""
        with self._lock:
            self._recordings[sid] = wav

    def get_recording(self, sid: str) -> bytes | None:
        """A recording's WAV bytes, or None."""
        with self._lock:
            return self._recordings.get(sid)

    def start_call_recording(self, call_sid: str, started: CallRecordingStart) -> bool:
        """Note a whole-call recording (one per call)."""
        with self._lock:
            if call_sid in self._call_recordings:
                return False
            self._call_recordings[call_sid] = started
            return True

    def take_call_recording(self, call_sid: str) -> CallRecordingStart | None:
        """Remove and return the call's recording."""
        with self._lock:
            return self._call_recordings.pop(call_sid, None)

    def next_attempt(self, key: str) -> int:
        """Count one more attempt for ``key``."""
        with self._lock:
            self._attempts[key] = self._attempts.get(key, 0) + 1
            return self._attempts[key]

    def set_opted_out(self, number: str, sender: str, opted_out: bool) -> None:
        """Record a STOP or START."""
        with self._lock:
            if opted_out:
                self._opted_out.add((number, sender))
            else:
                self._opted_out.discard((number, sender))

    def is_opted_out(self, number: str, sender: str) -> bool:
        """Whether ``number`` opted out of ``sender``."""
        with self._lock:
            return (number, sender) in self._opted_out


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisCallState:
    """State in Redis, shared by the web process and RQ workers (keys expire after a day)."""

    def __init__(self, redis: Redis, prefix: str = "sandbox:") -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def set_status(self, sid: str, status: str) -> None:
        """Record the current status of a call or a message."""
        self._redis.set(self._key("call", sid, "status"), status, ex=STATE_TTL_S)

    def get_status(self, sid: str) -> str | None:
        """The current status of a call or a message, or None."""
        return _text(self._redis.get(self._key("call", sid, "status")))

    def push_update(self, sid: str, update: CallUpdate) -> None:
        """Queue an update."""
        key = self._key("call", sid, "updates")
        payload = json.dumps({"url": update.url, "twiml": update.twiml, "status": update.status})
        pipe = self._redis.pipeline()
        pipe.rpush(key, payload)
        pipe.expire(key, STATE_TTL_S)
        pipe.execute()

    def pop_update(self, sid: str) -> CallUpdate | None:
        """Take the oldest pending update."""
        raw = _text(self._redis.lpop(self._key("call", sid, "updates")))
        if raw is None:
            return None
        data = json.loads(raw)
        return CallUpdate(url=data.get("url"), twiml=data.get("twiml"), status=data.get("status"))

    def put_recording(self, sid: str, call_sid: str, wav: bytes, duration_s: int) -> None:
        """Store a recording."""
        self._redis.set(self._key("recording", sid), wav, ex=STATE_TTL_S)

    def get_recording(self, sid: str) -> bytes | None:
        """A recording's WAV bytes, or None."""
        raw: Any = self._redis.get(self._key("recording", sid))
        return None if raw is None else bytes(raw)

    def start_call_recording(self, call_sid: str, started: CallRecordingStart) -> bool:
        """Note a whole-call recording (one per call, atomic across processes)."""
        payload = json.dumps(
            {"sid": started.sid, "callback": started.callback, "channels": started.channels}
        )
        key = self._key("call", call_sid, "recording")
        return bool(self._redis.set(key, payload, nx=True, ex=STATE_TTL_S))

    def take_call_recording(self, call_sid: str) -> CallRecordingStart | None:
        """Remove and return the call's recording."""
        key = self._key("call", call_sid, "recording")
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        value, _ = pipe.execute()
        raw = _text(value)
        if raw is None:
            return None
        data = json.loads(raw)
        return CallRecordingStart(data["sid"], data.get("callback"), data["channels"])

    def next_attempt(self, key: str) -> int:
        """Count one more attempt for ``key`` (atomic across processes)."""
        redis_key = self._key("attempts", key)
        pipe = self._redis.pipeline()
        pipe.incr(redis_key)
        pipe.expire(redis_key, STATE_TTL_S)
        count, _ = pipe.execute()
        return int(count)

    def set_opted_out(self, number: str, sender: str, opted_out: bool) -> None:
        """Record a STOP or START."""
        key = self._key("optout", number, sender)
        if opted_out:
            self._redis.set(key, "1")
        else:
            self._redis.delete(key)

    def is_opted_out(self, number: str, sender: str) -> bool:
        """Whether ``number`` opted out of ``sender``."""
        return bool(self._redis.exists(self._key("optout", number, sender)))
