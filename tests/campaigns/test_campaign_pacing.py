"""Redis pacing: token buckets and leased concurrency slots, atomic across workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from campaigns.pacing import GLOBAL, Limits, Pacer


@pytest.fixture
def pacer(redis_client: Any) -> Pacer:
    return Pacer(redis_client)


def test_rate_limit_with_injected_time(pacer: Pacer) -> None:
    limits = Limits(rate=2, global_rate=100)
    t = 1_000_000
    assert pacer.admit(1, "a", limits, now_ms=t).admitted
    assert pacer.admit(1, "b", limits, now_ms=t).admitted  # burst of 2
    denied = pacer.admit(1, "c", limits, now_ms=t)
    assert not denied.admitted
    assert denied.reason == "campaign_rate"
    assert denied.wait_s == pytest.approx(0.5)
    assert not pacer.admit(1, "c", limits, now_ms=t + 499).admitted
    assert pacer.admit(1, "c", limits, now_ms=t + 500).admitted


def test_global_rate_is_shared_by_campaigns(pacer: Pacer) -> None:
    limits = Limits(rate=10, global_rate=1)
    t = 5_000_000
    assert pacer.admit(1, "a", limits, now_ms=t).admitted
    denied = pacer.admit(2, "b", limits, now_ms=t)
    assert (denied.admitted, denied.reason) == (False, "global_rate")
    # A denied admission takes nothing: campaign 2's own bucket is still full.
    assert pacer.admit(2, "b", limits, now_ms=t + 1000).admitted


def test_concurrency_slots_and_release(pacer: Pacer) -> None:
    limits = Limits(rate=100, global_rate=100, max_concurrent=2, global_max_concurrent=3)
    t = 9_000_000
    assert pacer.admit(1, "a", limits, lease_s=60, now_ms=t).admitted
    assert pacer.admit(1, "b", limits, lease_s=60, now_ms=t).admitted
    full = pacer.admit(1, "c", limits, lease_s=60, now_ms=t)
    assert (full.admitted, full.reason) == (False, "campaign_concurrency")
    assert pacer.active(1, now_ms=t) == 2
    # Campaign 2 may use the third global slot, but not a fourth.
    assert pacer.admit(2, "x", limits, lease_s=60, now_ms=t).admitted
    assert pacer.admit(2, "y", limits, lease_s=60, now_ms=t).reason == "global_concurrency"
    assert pacer.release(1, "a")
    assert not pacer.release(1, "a")  # idempotent
    assert pacer.admit(1, "c", limits, lease_s=60, now_ms=t).admitted
    assert pacer.active(GLOBAL, now_ms=t) == 3


def test_expired_lease_frees_the_slot_of_a_crashed_job(pacer: Pacer) -> None:
    limits = Limits(rate=100, global_rate=100, max_concurrent=1, global_max_concurrent=1)
    t = 20_000_000
    assert pacer.admit(7, "crashed", limits, lease_s=30, now_ms=t).admitted
    assert not pacer.admit(7, "next", limits, lease_s=30, now_ms=t + 29_999).admitted
    assert pacer.admit(7, "next", limits, lease_s=30, now_ms=t + 30_000).admitted


def test_re_admitting_the_same_holder_keeps_one_slot(pacer: Pacer) -> None:
    limits = Limits(rate=100, global_rate=100, max_concurrent=1, global_max_concurrent=5)
    t = 30_000_000
    assert pacer.admit(3, "job", limits, now_ms=t).admitted
    assert pacer.admit(3, "job", limits, now_ms=t + 100).admitted
    assert pacer.active(3, now_ms=t + 100) == 1


def test_real_clock_and_concurrent_workers_never_exceed_the_slot_limit(redis_url: str) -> None:
    limits = Limits(rate=1000, global_rate=1000, max_concurrent=5, global_max_concurrent=5)
    admitted: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = redis.Redis.from_url(redis_url)
        p = Pacer(client, prefix="cc:pace:test-threads")
        for i in range(20):
            if p.admit(42, f"w{n}-{i}", limits, lease_s=60).admitted:
                with lock:
                    admitted.append(f"w{n}-{i}")
        client.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(admitted) == 5


def test_limits_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        Limits(rate=0, global_rate=1)
    with pytest.raises(ValueError, match="global slot"):
        Limits(rate=1, global_rate=1, max_concurrent=2)
