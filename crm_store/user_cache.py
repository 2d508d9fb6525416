"""Who a request's user is, without a database round trip on every request.

The API's bearer-token check (:meth:`UserCache.token_scope`) and the console's session check
(:meth:`UserCache.get`, by user and session epoch) keep what they read from the users table
in the process for at most ``ttl`` seconds, tagged with the *users epoch*: a random value in
Redis, replaced after every committed change to any user (:data:`crm_store.users.USERS_CHANGED`
marks the transaction, :meth:`crm_store.db.Database.on_commit` acts on it,
:func:`watch_user_changes` wires the two). A request reads the epoch (one Redis ``GET``) and
uses a cached answer only when the epoch is the one it was cached under, so a token reset, a
disabled user, a changed password or changed roles take effect at the next request in every
process. The epoch is read *before* the database, so a change that commits during a lookup
leaves the entry tagged with the older epoch, which no longer matches.

When Redis cannot be read, checks go to the database (nothing is cached) and Redis is not
tried again for :data:`REDIS_RETRY_AFTER` seconds, so an outage does not add a connect
timeout to every request. When the
epoch cannot be replaced after a change, entries live out their ``ttl``: that is the bound on
how long a change can go unseen, and it is logged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from redis import Redis
from redis.exceptions import RedisError

from crm_store.access import Scope, scope_of_user
from crm_store.db import Database
from crm_store.users import USERS_CHANGED, authenticate_token, hash_token

#: The Redis key of the users epoch.
USERS_EPOCH_KEY = "cc:users:epoch"


def bump_users_epoch(redis: Redis) -> None:
    """Replace the users epoch: every process's cached token checks become stale."""
    redis.set(USERS_EPOCH_KEY, secrets.token_hex(8))


def watch_user_changes(db: Database, redis: Callable[[], Redis]) -> None:
    """Replace the users epoch after every commit of ``db`` that changed a user (when Redis
    cannot be written, the hook's failure is logged and other processes' cached checks live
    out their TTL)."""
    db.on_commit(USERS_CHANGED, lambda: bump_users_epoch(redis()))


_T = TypeVar("_T")

#: Seconds the cache leaves Redis alone after failing to read it (the database answers).
REDIS_RETRY_AFTER = 5.0


class UserCache:
    """Facts read from the users table, cached per process under the users epoch (see the
    module)."""

    def __init__(self, redis: Callable[[], Redis], *, ttl: float = 60.0, size: int = 1024):
        self._redis = redis
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_down_until = 0.0

    def _epoch(self) -> bytes | None:
        if time.monotonic() < self._redis_down_until:
            return None
        try:
            value = self._redis().get(USERS_EPOCH_KEY)
            # No epoch yet (a new or restarted Redis): set one, so entries have a tag to match.
            if value is None:
                self._redis().set(USERS_EPOCH_KEY, secrets.token_hex(8), nx=True)
                value = self._redis().get(USERS_EPOCH_KEY)
        except RedisError:
            # Not again for a while: each try may wait for a connect timeout.
            self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            return None
        return value if isinstance(value, bytes) else None

    def get(self, key: str, load: Callable[[], _T | None]) -> _T | None:
        """What ``load`` (a read of the users table) answers for ``key``: cached while no
        user changed, read again after any change. None answers are not cached, so a stream
        of wrong keys cannot push the right ones out."""
        epoch = self._epoch()
        now = time.monotonic()
        if epoch is not None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == epoch and entry[1] > now:
                    self._entries.move_to_end(key)
                    return cast(_T, entry[2])
        value = load()
        if epoch is not None and value is not None:
            with self._lock:
                self._entries[key] = (epoch, now + self._ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return value

    def token_scope(self, db: Database, token: str) -> Scope | None:
        """The scope of the active user holding the API ``token``, or None (unknown or
        disabled)."""

        def load() -> Scope | None:
            with db.reading() as session:
                user = authenticate_token(session, token)
                return scope_of_user(user) if user is not None else None

        return self.get("token:" + hash_token(token), load)
