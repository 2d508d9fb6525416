"""Pacing in Redis: token buckets for calls per second and leased concurrency slots.

One Lua script admits a contact atomically against four limits — the campaign's and the
global calls-per-second bucket, the campaign's and the global concurrent-call slots — so
several workers on several machines never exceed them together. Nothing sleeps: when a
limit is hit the script says how long to wait and the caller re-enqueues itself with
``enqueue_in``.

Slots are members of a sorted set scored by their lease expiry. A job that dies (SIGKILL,
lost machine) never releases its slot, so every admission first drops expired leases: a
crashed call frees its slot when its lease runs out. Calls hold their slot until the final
status callback releases it; the lease (ring timeout + call time limit + margin) bounds it.

Time comes from the Redis server (``TIME``) so that workers with skewed clocks agree;
tests may pass ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis

GLOBAL = "global"

# KEYS: 1 campaign bucket, 2 global bucket, 3 campaign slots, 4 global slots
# ARGV: 1 campaign rate/s, 2 campaign burst, 3 global rate/s, 4 global burst,
#       5 campaign slot limit (0 = no slot needed), 6 global slot limit, 7 holder,
#       8 lease ms, 9 now ms (empty: Redis TIME)
# Returns {1, 0, ""} when admitted, else {0, wait_ms, reason}.
_ADMIT = """
local now
if ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function bucket(key, rate, burst)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil then
    tokens = burst
    ts = now
  end
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000.0)
    ts = now
  end
  return tokens, ts
end

local holder = ARGV[7]
local lease = tonumber(ARGV[8])
local climit = tonumber(ARGV[5])
local glimit = tonumber(ARGV[6])
if climit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  local held = redis.call('ZSCORE', KEYS[3], holder)
  if not held then
    if redis.call('ZCARD', KEYS[3]) >= climit then
      local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
      return {0, math.max(1, math.min(1000, tonumber(first[2]) - now)), 'campaign_concurrency'}
    end
    if redis.call('ZCARD', KEYS[4]) >= glimit then
      local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
      return {0, math.max(1, math.min(1000, tonumber(first[2]) - now)), 'global_concurrency'}
    end
  end
end

local crate, cburst = tonumber(ARGV[1]), tonumber(ARGV[2])
local grate, gburst = tonumber(ARGV[3]), tonumber(ARGV[4])
local ctokens, cts = bucket(KEYS[1], crate, cburst)
local gtokens, gts = bucket(KEYS[2], grate, gburst)
if ctokens < 1 then
  return {0, math.ceil((1 - ctokens) * 1000 / crate), 'campaign_rate'}
end
if gtokens < 1 then
  return {0, math.ceil((1 - gtokens) * 1000 / grate), 'global_rate'}
end
redis.call('HSET', KEYS[1], 'tokens', ctokens - 1, 'ts', cts)
redis.call('HSET', KEYS[2], 'tokens', gtokens - 1, 'ts', gts)
redis.call('PEXPIRE', KEYS[1], 3600000)
redis.call('PEXPIRE', KEYS[2], 3600000)
if climit > 0 then
  redis.call('ZADD', KEYS[3], now + lease, holder)
  redis.call('ZADD', KEYS[4], now + lease, holder)
  redis.call('PEXPIRE', KEYS[3], lease + 60000)
  redis.call('PEXPIRE', KEYS[4], lease + 60000)
end
return {1, 0, ''}
"""

# KEYS: 1 campaign slots, 2 global slots; ARGV: 1 holder
_RELEASE = """
local a = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return a
"""


@dataclass(frozen=True)
class Limits:
    """The four limits a contact is admitted against (slot limits 0: no slot needed)."""

    rate: float
    global_rate: float
    max_concurrent: int = 0
    global_max_concurrent: int = 0
    burst: float | None = None
    global_burst: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.global_rate <= 0:
            raise ValueError("rates must be positive")
        if self.max_concurrent < 0 or self.global_max_concurrent < 0:
            raise ValueError("concurrency limits must not be negative")
        if self.max_concurrent > 0 and self.global_max_concurrent <= 0:
            raise ValueError("a campaign slot limit needs a global slot limit")


@dataclass(frozen=True)
class Admission:
    """The answer of :meth:`Pacer.admit`: admitted, or how long to wait and why."""

    admitted: bool
    wait_s: float = 0.0
    reason: str = ""


class Pacer:
    """Token buckets and concurrency slots for campaigns, shared through Redis."""

    def __init__(self, redis: Redis, *, prefix: str = "cc:pace", channel: str = "voice") -> None:
        self.redis = redis
        self.prefix = f"{prefix}:{channel}"
        self._admit: Any = redis.register_script(_ADMIT)
        self._release: Any = redis.register_script(_RELEASE)

    def _keys(self, campaign_id: int | str) -> list[str]:
        return [
            f"{self.prefix}:bucket:{campaign_id}",
            f"{self.prefix}:bucket:{GLOBAL}",
            f"{self.prefix}:slots:{campaign_id}",
            f"{self.prefix}:slots:{GLOBAL}",
        ]

    def admit(
        self,
        campaign_id: int | str,
        holder: str,
        limits: Limits,
        *,
        lease_s: float = 600.0,
        now_ms: int | None = None,
    ) -> Admission:
        """Take one token from both buckets and (if limited) a slot leased to ``holder``.

        Either everything is taken or nothing is. Re-admitting a holder that already has
        a slot does not take a second slot (a retried job keeps its own).
        """
        burst = limits.burst if limits.burst is not None else max(1.0, limits.rate)
        gburst = (
            limits.global_burst if limits.global_burst is not None else max(1.0, limits.global_rate)
        )
        result = self._admit(
            keys=self._keys(campaign_id),
            args=[
                repr(float(limits.rate)),
                repr(float(burst)),
                repr(float(limits.global_rate)),
                repr(float(gburst)),
                limits.max_concurrent,
                limits.global_max_concurrent,
                holder,
                int(lease_s * 1000),
                "" if now_ms is None else int(now_ms),
            ],
        )
        ok, wait_ms, reason = int(result[0]), int(result[1]), result[2]
        if isinstance(reason, bytes):
            reason = reason.decode()
        return Admission(admitted=ok == 1, wait_s=wait_ms / 1000.0, reason=str(reason))

    def release(self, campaign_id: int | str, holder: str) -> bool:
        """Free ``holder``'s slot (idempotent); True if it was still held."""
        keys = self._keys(campaign_id)
        return bool(self._release(keys=[keys[2], keys[3]], args=[holder]))

    def active(self, campaign_id: int | str, *, now_ms: int | None = None) -> int:
        """Slots of a campaign whose lease has not expired (``GLOBAL`` for all campaigns)."""
        key = self._keys(campaign_id)[2]
        if now_ms is None:
            seconds, micros = self.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
        return int(self.redis.zcount(key, f"({now_ms}", "+inf"))

    def reset(self, campaign_id: int | str) -> None:
        """Forget a campaign's bucket and slots (after it is cancelled or completed)."""
        keys = self._keys(campaign_id)
        self.redis.delete(keys[0], keys[2])
