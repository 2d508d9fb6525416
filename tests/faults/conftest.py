"""Fixtures of the fault suite: a redis-server of the test's own (restarted by the tests, never
the shared one) and the campaign test helpers (``tests/campaigns`` has no package)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contactcenter.config import Settings
from tests.netutil import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "campaigns"))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a free port with an append-only file, for this test alone."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def fault_settings(settings: Settings, own_redis: RedisServer) -> Settings:
    """The test settings on :func:`own_redis`."""
    return settings.with_overrides(redis_url=own_redis.url)
