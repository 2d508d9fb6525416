"""The API's bearer-token check without a database round trip on every request.

A token's scope (the user, their roles and regions) is kept in the process for at most
``ttl`` seconds, tagged with the *users epoch*: a random value in Redis that is replaced after
every committed change to any user (:data:`crm_store.users.USERS_CHANGED`, acted on by
:meth:`crm_store.db.Database.on_commit`; :func:`watch_user_changes` wires it). A request reads
the epoch (one Redis ``GET``) and uses its cached scope only when the epoch is the one it
was cached under, so a token reset, a disabled user or changed roles take effect at the next
request in every process. The epoch is read *before* the database, so a change that commits
during a lookup leaves the entry tagged with the older epoch, which no longer matches.

When Redis cannot be read, every check goes to the database (nothing is cached). When the
epoch cannot be replaced after a change, entries live out their ``ttl``: that is the bound on
how long a change can go unseen, and it is logged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

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


class TokenCache:
    """Bearer tokens' scopes, cached per process under the users epoch (see the module)."""

    def __init__(self, redis: Callable[[], Redis], *, ttl: float = 60.0, size: int = 1024):
        self._redis = redis
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes, float, Scope]] = OrderedDict()
        self._lock = threading.Lock()

    def _epoch(self) -> bytes | None:
        try:
            value = self._redis().get(USERS_EPOCH_KEY)
        except RedisError:
            return None
        # No epoch yet (a new or restarted Redis): set one, so entries have a tag to match.
        if value is None:
            try:
                self._redis().set(USERS_EPOCH_KEY, secrets.token_hex(8), nx=True)
                value = self._redis().get(USERS_EPOCH_KEY)
            except RedisError:
                return None
        return value if isinstance(value, bytes) else None

    def scope(self, db: Database, token: str) -> Scope | None:
        """The scope of the active user holding ``token``, or None (unknown or disabled;
        not cached, so a stream of wrong tokens cannot push the right ones out)."""
        key = hash_token(token)
        epoch = self._epoch()
        now = time.monotonic()
        if epoch is not None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == epoch and entry[1] > now:
                    self._entries.move_to_end(key)
                    return entry[2]
        with db.reading() as session:
            user = authenticate_token(session, token)
            scope = scope_of_user(user) if user is not None else None
        if epoch is not None and scope is not None:
            with self._lock:
                self._entries[key] = (epoch, now + self._ttl, scope)
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return scope
