"""The API token check's cache (crm_store.user_cache): a database round trip is saved only
while no user changed, in this process or another, and a change is seen at the next check."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import event

from contactcenter.cli import main
from crm_store.db import Database
from crm_store.user_cache import USERS_EPOCH_KEY, UserCache, watch_user_changes
from crm_store.users import (
    authenticate_token,
    create_user,
    issue_api_token,
    set_active,
    update_user,
)
from tests.netutil import free_port

pytestmark = pytest.mark.usefixtures("redis_client")


class Statements:
    """Counts the statements a database sends."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def other_process(database_url: str, client: redis.Redis) -> Iterator[Database]:
    """A second Database wired like another process's (the console, the CLI)."""
    other = Database(database_url)
    watch_user_changes(other, lambda: client)
    yield other
    other.dispose()


def _operator(db: Database, name: str = "olga") -> str:
    with db.transaction() as s:
        create_user(s, name, roles=["operator"], regions=["Москва"])
        return issue_api_token(s, name)


def _cached_operator(db: Database, client: redis.Redis) -> tuple[str, UserCache]:
    """An operator's token, already checked once through a new cache (so cached)."""
    token = _operator(db)
    cache = UserCache(lambda: client)
    assert cache.token_scope(db, token) is not None
    return token, cache


def test_a_checked_token_is_answered_without_the_database(
    db: Database, client: redis.Redis
) -> None:
    token = _operator(db)
    cache = UserCache(lambda: client)
    statements = Statements(db)
    first = cache.token_scope(db, token)
    assert first is not None
    assert first.user == "olga"
    assert first.roles == frozenset({"operator"})
    assert first.regions == frozenset({"Москва"})
    after_first = statements.count
    assert after_first >= 1
    for _ in range(5):
        assert cache.token_scope(db, token) == first
    assert statements.count == after_first


def test_a_reissued_token_stops_working_at_once_in_every_process(
    db: Database, client: redis.Redis, other_process: Database
) -> None:
    old, cache = _cached_operator(db, client)
    with other_process.transaction() as s:
        new = issue_api_token(s, "olga")
    assert cache.token_scope(db, old) is None
    scope = cache.token_scope(db, new)
    assert scope is not None
    assert scope.user == "olga"


def test_disabling_a_user_or_changing_roles_and_regions_is_seen_at_the_next_check(
    db: Database, client: redis.Redis, other_process: Database
) -> None:
    token, cache = _cached_operator(db, client)
    with other_process.transaction() as s:
        update_user(s, "olga", roles=["auditor"], regions=["Тверь"], display_name="")
    scope = cache.token_scope(db, token)
    assert scope is not None
    assert (scope.roles, scope.regions) == (frozenset({"auditor"}), frozenset({"Тверь"}))
    with other_process.transaction() as s:
        set_active(s, "olga", False)
    assert cache.token_scope(db, token) is None


def test_a_rolled_back_change_keeps_the_epoch(
    db: Database, client: redis.Redis, other_process: Database
) -> None:
    token, cache = _cached_operator(db, client)
    epoch = client.get(USERS_EPOCH_KEY)

    def abandoned() -> None:
        with other_process.transaction() as s:
            issue_api_token(s, "olga")
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError):
        abandoned()
    assert client.get(USERS_EPOCH_KEY) == epoch
    assert cache.token_scope(db, token) is not None


def test_a_lost_epoch_never_revalidates_old_entries(
    db: Database, database_url: str, client: redis.Redis
) -> None:
    """A restarted Redis (no epoch) gets a new random one: nothing cached before matches it,
    even when the change that follows happens before any check."""
    token, cache = _cached_operator(db, client)
    client.flushall()
    unwired = Database(database_url)  # replaces no epoch: only the lost one protects
    with unwired.transaction() as s:
        set_active(s, "olga", False)
    unwired.dispose()
    assert client.get(USERS_EPOCH_KEY) is None
    assert cache.token_scope(db, token) is None


def test_wrong_tokens_are_not_cached(db: Database, client: redis.Redis) -> None:
    _operator(db)
    cache = UserCache(lambda: client, size=2)
    statements = Statements(db)
    for _ in range(3):
        assert cache.token_scope(db, "cc_" + "x" * 43) is None
    assert statements.count == 3


def test_without_redis_every_check_reads_the_database(db: Database) -> None:
    token = _operator(db)
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    tries: list[int] = []

    def unreachable() -> redis.Redis:
        tries.append(1)
        return dead

    cache = UserCache(unreachable)
    statements = Statements(db)
    for _ in range(5):
        assert cache.token_scope(db, token) is not None
    assert statements.count == 5
    # One try, not one a request: the dead Redis is left alone for a while.
    assert len(tries) == 1
    with db.transaction() as s:
        set_active(s, "olga", False)
    assert cache.token_scope(db, token) is None


def test_an_epoch_that_cannot_be_replaced_bounds_staleness_by_the_ttl(
    db: Database, database_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    token = _operator(db)
    cache = UserCache(lambda: client, ttl=0.3)
    assert cache.token_scope(db, token) is not None
    broken = Database(database_url)
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    watch_user_changes(broken, lambda: dead)
    with caplog.at_level(logging.ERROR, logger="crm_store.db"), broken.transaction() as s:
        set_active(s, "olga", False)
    broken.dispose()
    assert "the commit hook of users_changed failed" in caplog.text
    with db.reading() as s:
        assert authenticate_token(s, token) is None  # the change was committed
    time.sleep(0.4)
    assert cache.token_scope(db, token) is None


def test_the_cli_retires_a_token_in_running_servers(
    db: Database,
    client: redis.Redis,
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, cache = _cached_operator(db, client)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    result = CliRunner().invoke(main, ["users", "token", "olga"])
    assert result.exit_code == 0, result.output
    assert cache.token_scope(db, old) is None
    assert cache.token_scope(db, result.output.splitlines()[0]) is not None
