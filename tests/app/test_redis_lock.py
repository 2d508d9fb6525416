"""contactcenter.redis_lock against the test Redis."""

from __future__ import annotations

import threading
import time
from typing import Any

from contactcenter.redis_lock import RedisLock


def test_one_holder_at_a_time_and_only_the_holder_releases(redis_client: Any) -> None:
    first = RedisLock(redis_client, "t:lock", ttl_ms=60_000)
    second = RedisLock(redis_client, "t:lock", ttl_ms=60_000)
    assert first.acquire()
    assert not second.acquire()
    second.release()  # never held: the first keeps the lock
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    assert redis_client.get("t:lock") is None


def test_an_expired_holder_does_not_release_its_successor(redis_client: Any) -> None:
    stale = RedisLock(redis_client, "t:lock", ttl_ms=50)
    assert stale.acquire()
    time.sleep(0.1)
    successor = RedisLock(redis_client, "t:lock", ttl_ms=60_000)
    assert successor.acquire()
    stale.release()
    assert not RedisLock(redis_client, "t:lock", ttl_ms=60_000).acquire()


def test_a_waiting_acquire_gets_the_lock_when_it_is_released(redis_client: Any) -> None:
    holder = RedisLock(redis_client, "t:lock", ttl_ms=60_000)
    assert holder.acquire()
    threading.Timer(0.1, holder.release).start()
    waiter = RedisLock(redis_client, "t:lock", ttl_ms=60_000)
    assert waiter.acquire(wait_s=5)
    waiter.release()
