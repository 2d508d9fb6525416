"""Call session state in Redis, keyed by CallSid.

A call's state lives in one Redis key with a TTL, so a call survives an app restart and
any app instance can serve its next webhook. Every state carries a ``version``; each
webhook URL the engine renders names the version it was rendered at (``seq``). A webhook
is applied at most once:

1. :meth:`SessionStore.claim` takes a short per-version lock (``SET NX``) — a duplicated
   webhook (Twilio retries after a timeout) finds the lock taken;
2. the winner runs the engine and :meth:`SessionStore.commit` writes the new state with
   ``version + 1``, together with the TwiML it answered, in one Lua script that first checks
   the stored version (one round trip: a compare-and-set);
3. the loser (or a late retry of an already applied event) gets that stored TwiML back
   from :meth:`SessionStore.wait_for_response` instead of applying the event again.

Values in ``variables`` may be ``Decimal``, ``date``, ``time`` and ``datetime``: they are
stored with a type tag and come back as the same types.
"""

from __future__ import annotations

import json
import time as _time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from redis import Redis

from ivr.errors import SessionConflict

DEFAULT_TTL_S = 4 * 3600
CLAIM_TTL_S = 30
KEY_PREFIX = "ivr:call:"

#: The sorted set of calls with CRM records not yet written (score: the first one's time).
PENDING_RECORDS_KEY = "ivr:crm:pending"
#: How long a call's unwritten CRM records are kept in Redis at most.
RECORDS_TTL_S = 7 * 24 * 3600

# KEYS: session, response, the call's CRM records, the pending set. ARGV: expected version,
# session JSON, response JSON, TTL (s), a CRM record ('' for none), now (s), the CallSid,
# the records' TTL (s). Returns {1} when written, {0, stored version} when another writer
# got there first.
_COMMIT = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local stored = cjson.decode(raw)['version']
  if tonumber(stored) ~= tonumber(ARGV[1]) then return {0, tostring(stored)} end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[8])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[6], ARGV[7])
end
return {1}
"""

# KEYS: the call's CRM records, the pending set. ARGV: how many were written, the CallSid.
# Drops the written records; the call leaves the pending set when none are left.
_DROP_RECORDS = """
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
return 1
"""


def encode_value(value: Any) -> Any:
    """Turn a session variable into JSON-safe data, tagging Decimal and dates."""
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a call session")


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, raw),) = value.items()
            if tag == "$decimal":
                return Decimal(raw)
            if tag == "$datetime":
                return datetime.fromisoformat(raw)
            if tag == "$date":
                return date.fromisoformat(raw)
            if tag == "$time":
                return time.fromisoformat(raw)
        return {k: decode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


@dataclass
class Frame:
    """A subflow return point: continue at ``step`` of ``flow`` after ``return``."""

    flow: str
    step: str


@dataclass
class CallSession:
    """Everything the engine knows about one live call."""

    call_sid: str
    flow: str
    step: str
    caller: str | None = None
    called: str | None = None
    direction: str = "inbound"
    variables: dict[str, Any] = field(default_factory=dict)
    stack: list[Frame] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    visits: dict[str, int] = field(default_factory=dict)
    no_input: int = 0
    no_match: int = 0
    typeahead: str = ""
    pending: dict[str, Any] | None = None
    interaction_id: int | None = None
    ended: bool = False
    version: int = 0
    step_seq: int = 0
    speech_notice: bool = False
    """The caller was told once that voice input is unavailable (keypad fallback)."""
    keypad_step: str | None = None
    """``flow:step`` that runs keypad-only for now (voice failed or a key was pressed)."""
    stream: str | None = None
    """Name of the media stream the last answer started (stopped by the next answer)."""

    def to_json(self) -> str:
        """Serialise for Redis."""
        data = asdict(self)
        data["variables"] = encode_value(self.variables)
        data["pending"] = encode_value(self.pending) if self.pending is not None else None
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> CallSession:
        """Deserialise what :meth:`to_json` wrote."""
        data = json.loads(raw)
        data["variables"] = decode_value(data.get("variables") or {})
        pending = data.get("pending")
        data["pending"] = decode_value(pending) if pending is not None else None
        data["stack"] = [Frame(**f) for f in data.get("stack") or []]
        return cls(**data)


class SessionStore:
    """Redis-backed store of :class:`CallSession` with optimistic concurrency."""

    def __init__(
        self, redis: Redis, *, ttl_s: int = DEFAULT_TTL_S, prefix: str = KEY_PREFIX
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._commit = redis.register_script(_COMMIT)
        self._drop_records = redis.register_script(_DROP_RECORDS)

    def _key(self, call_sid: str) -> str:
        return f"{self.prefix}{call_sid}"

    def _response_key(self, call_sid: str) -> str:
        return f"{self.prefix}{call_sid}:response"

    def _records_key(self, call_sid: str) -> str:
        return f"{self.prefix}{call_sid}:crm"

    def records_lock_key(self, call_sid: str) -> str:
        """The key of the lock held while the call's CRM records are written."""
        return f"{self.prefix}{call_sid}:crm:lock"

    def _claim_key(self, call_sid: str, version: int) -> str:
        return f"{self.prefix}{call_sid}:claim:{version}"

    def load(self, call_sid: str) -> CallSession | None:
        """The session of ``call_sid``, or None when there is none (or it expired)."""
        raw = self.redis.get(self._key(call_sid))
        if raw is None:
            return None
        return CallSession.from_json(raw)

    def create(self, session: CallSession) -> bool:
        """Store a new session; False if the call already has one (a duplicated start)."""
        created = self.redis.set(
            self._key(session.call_sid), session.to_json(), nx=True, ex=self.ttl_s
        )
        return bool(created)

    def claim(self, call_sid: str, version: int) -> bool:
        """Take the right to apply the event that arrives at ``version``; False if taken."""
        return bool(
            self.redis.set(self._claim_key(call_sid, version), "1", nx=True, ex=CLAIM_TTL_S)
        )

    def release(self, call_sid: str, version: int) -> None:
        """Give a claim back (the event could not be applied and may be retried)."""
        self.redis.delete(self._claim_key(call_sid, version))

    def commit(
        self,
        session: CallSession,
        *,
        expected_version: int,
        response: str,
        record: str | None = None,
    ) -> None:
        """Write ``session`` as ``expected_version + 1`` with the TwiML answered and, in the
        same script, queue ``record`` (what the step writes to the CRM, JSON) for
        :func:`ivr.crm.flush_call_records`: the record exists exactly when the step does.

        Raises :class:`SessionConflict` if the stored version is no longer
        ``expected_version`` (someone else applied an event in between).
        """
        session.version = expected_version + 1
        payload = json.dumps({"version": session.version, "twiml": response})
        sid = session.call_sid
        keys = [self._key(sid), self._response_key(sid), self._records_key(sid)]
        keys.append(PENDING_RECORDS_KEY)
        args: list[str | int | float] = [expected_version, session.to_json(), payload]
        args += [self.ttl_s, record or "", _time.time(), sid, RECORDS_TTL_S]
        try:
            result = self._commit(keys=keys, args=args)
        except BaseException:
            session.version = expected_version
            raise
        if int(result[0]) != 1:
            session.version = expected_version
            stored = result[1].decode() if isinstance(result[1], bytes) else result[1]
            raise SessionConflict(
                f"session {session.call_sid} is at version {stored}, expected {expected_version}"
            )

    def last_response(self, call_sid: str) -> tuple[int, str] | None:
        """(version, TwiML) of the last committed answer, or None."""
        raw = self.redis.get(self._response_key(call_sid))
        if raw is None:
            return None
        data = json.loads(raw)
        return int(data["version"]), str(data["twiml"])

    def wait_for_response(
        self, call_sid: str, *, after_version: int, timeout_s: float = 8.0, poll_s: float = 0.05
    ) -> str | None:
        """Wait until an answer newer than ``after_version`` is committed; its TwiML or None."""
        deadline = _time.monotonic() + timeout_s
        while True:
            last = self.last_response(call_sid)
            if last is not None and last[0] > after_version:
                return last[1]
            if _time.monotonic() >= deadline:
                return None
            _time.sleep(poll_s)

    def expire_soon(self, call_sid: str, seconds: int = 300) -> None:
        """Keep a finished call's state only briefly (late webhooks may still arrive)."""
        for key in (self._key(call_sid), self._response_key(call_sid)):
            ttl = self.redis.ttl(key)
            if isinstance(ttl, int) and ttl > seconds:
                self.redis.expire(key, seconds)

    def records(self, call_sid: str) -> list[bytes]:
        """The call's CRM records not yet written, oldest first."""
        items = self.redis.lrange(self._records_key(call_sid), 0, -1)
        return [item if isinstance(item, bytes) else str(item).encode() for item in items]

    def drop_records(self, call_sid: str, count: int) -> None:
        """Forget the call's ``count`` oldest CRM records (written to the database)."""
        self._drop_records(
            keys=[self._records_key(call_sid), PENDING_RECORDS_KEY], args=[count, call_sid]
        )

    def calls_with_records(self, *, older_than_s: float, limit: int = 500) -> list[str]:
        """Calls whose oldest unwritten CRM record is older than ``older_than_s``."""
        cutoff = _time.time() - older_than_s
        sids = self.redis.zrangebyscore(PENDING_RECORDS_KEY, "-inf", cutoff, start=0, num=limit)
        return [sid.decode() if isinstance(sid, bytes) else str(sid) for sid in sids]

    def delete(self, call_sid: str) -> None:
        """Forget a call (its state, last answer)."""
        self.redis.delete(self._key(call_sid), self._response_key(call_sid))
