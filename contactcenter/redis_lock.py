"""A lock in Redis held by one owner at a time: ``SET NX PX`` with a random token, released
only by its holder (a Lua compare-and-delete), expiring by itself if the holder dies."""

from __future__ import annotations

import time
import uuid

from redis import Redis

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLock:
    """The lock named ``key``, expiring ``ttl_ms`` after it is taken."""

    def __init__(self, redis: Redis, key: str, *, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self._token = uuid.uuid4().hex
        self.held = False

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 0.02) -> bool:
        """Take the lock, trying for up to ``wait_s``; True when it is ours."""
        deadline = time.monotonic() + wait_s
        while not self.redis.set(self.key, self._token, nx=True, px=self.ttl_ms):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        self.held = True
        return True

    def release(self) -> None:
        """Give the lock back if it is still ours (nothing when it was never taken)."""
        if self.held:
            self.held = False
            self.redis.eval(_UNLOCK, 1, self.key, self._token)
