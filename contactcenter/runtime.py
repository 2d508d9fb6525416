"""The per-process service container shared by the web app, the CLI and RQ jobs.

``Services`` holds the settings and builds each client lazily on first use (database,
Redis, telephony provider), so importing a module never opens a connection and a forked
RQ worker builds its own.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from contactcenter.config import Settings, load_settings
from crm_store.db import Database

if TYPE_CHECKING:
    from redis import Redis


class Services:
    """Lazily built clients for one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self._redis: Redis | None = None
        self._redis_pid = os.getpid()
        self._lock = threading.Lock()
        self._extras: dict[str, Any] = {}

    @property
    def redis(self) -> Redis:
        """The Redis client (rebuilt after a fork)."""
        from redis import Redis

        with self._lock:
            if self._redis is None or self._redis_pid != os.getpid():
                self._redis = Redis.from_url(
                    self.settings.redis_url, socket_timeout=5, socket_connect_timeout=2
                )
                self._redis_pid = os.getpid()
            return self._redis

    def get(self, key: str) -> Any:
        """A registered extra (e.g. the telephony provider), or None."""
        return self._extras.get(key)

    def set(self, key: str, value: Any) -> None:
        """Register an extra client for this process."""
        self._extras[key] = value


_current: Services | None = None
_current_lock = threading.Lock()


def current_services() -> Services:
    """The process-wide :class:`Services`, built from the environment on first use.

    RQ jobs call this; the web app installs its own with :func:`install_services`.
    """
    global _current
    with _current_lock:
        if _current is None:
            _current = Services(load_settings())
        return _current


def install_services(services: Services | None) -> None:
    """Make ``services`` the process-wide container (tests and ``create_app`` use it)."""
    global _current
    with _current_lock:
        _current = services
