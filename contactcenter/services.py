"""The per-process service container shared by the web app, the CLI and RQ jobs.

:class:`Services` holds the settings and builds each client lazily on first use (database,
Redis, telephony provider), so importing a module never opens a connection and a forked
RQ worker builds its own. Every collaborator is a typed attribute:

- ``settings`` (:class:`~contactcenter.config.Settings`), ``db``
  (:class:`~crm_store.db.Database`), ``redis`` (rebuilt after a fork);
- ``telephony``: the :class:`~telephony.base.TelephonyProvider`, built on first use by the
  ``provider_factory`` the application wired in (:mod:`contactcenter.wiring`); without one,
  only ``TELEPHONY=twilio`` can be built; tests assign their own provider;
- ``clock``: ``() -> datetime`` (tz-aware UTC), the wall clock unless a test replaces it;
- ``status_hooks``: :class:`StatusHooks`, the subscribers to status callbacks (the campaigns
  package subscribes to call, AMD and SMS statuses there).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from redis import Redis

from contactcenter.config import ConfigError, Settings, load_settings
from crm_store.db import Database
from crm_store.user_cache import UserCache, watch_user_changes
from telephony.base import TelephonyProvider
from telephony.status import StatusCallback, StatusKind
from telephony.twilio_provider import TwilioProvider

#: Builds the telephony provider of a :class:`Services` on first use.
ProviderFactory = Callable[["Services"], TelephonyProvider]
#: A subscriber to status callbacks: True when the callback was its own and it handled it.
StatusHook = Callable[["Services", StatusCallback], bool]


def utcnow() -> datetime:
    """The wall clock, tz-aware UTC."""
    return datetime.now(UTC)


class StatusHooks:
    """Subscribers to status callbacks, per kind (call, AMD, SMS), called in order."""

    def __init__(self) -> None:
        self._hooks: dict[StatusKind, list[StatusHook]] = {kind: [] for kind in StatusKind}

    def subscribe(self, kind: StatusKind, hook: StatusHook) -> None:
        """Call ``hook`` for every status callback of ``kind`` (once, however often asked)."""
        if hook not in self._hooks[kind]:
            self._hooks[kind].append(hook)

    def subscribers(self, kind: StatusKind) -> tuple[StatusHook, ...]:
        """The hooks subscribed to ``kind``, in subscription order."""
        return tuple(self._hooks[kind])

    def publish(self, services: Services, callback: StatusCallback) -> bool:
        """Hand ``callback`` to every subscriber of its kind; True if any handled it."""
        handled = False
        for hook in self._hooks[callback.kind]:
            handled = hook(services, callback) or handled
        return handled


def default_provider(services: Services) -> TelephonyProvider:
    """The provider without application wiring: only Twilio's REST API can be built here."""
    settings = services.settings
    if settings.telephony == "twilio":
        return TwilioProvider.from_settings(settings)
    raise ConfigError(
        "TELEPHONY",
        f"{settings.telephony!r} is wired by the application (create_app, `contactcenter "
        "worker`, contactcenter.wiring.build_services); this process has no such wiring",
    )


class Services:
    """Lazily built clients for one process (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider_factory: ProviderFactory | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.clock = clock
        self.status_hooks = StatusHooks()
        self.provider_factory: ProviderFactory = provider_factory or default_provider
        self._provider: TelephonyProvider | None = None
        self._redis: Redis | None = None
        self._redis_pid = os.getpid()
        self._lock = threading.Lock()
        self.user_cache = UserCache(lambda: self.redis)
        watch_user_changes(self.db, lambda: self.redis)

    @property
    def redis(self) -> Redis:
        """The Redis client (rebuilt after a fork)."""
        with self._lock:
            if self._redis is None or self._redis_pid != os.getpid():
                self._redis = Redis.from_url(
                    self.settings.redis_url, socket_timeout=5, socket_connect_timeout=2
                )
                self._redis_pid = os.getpid()
            return self._redis

    @property
    def telephony(self) -> TelephonyProvider:
        """The telephony provider, built by ``provider_factory`` on first use."""
        provider = self._provider
        if provider is None:
            provider = self.provider_factory(self)
            self._provider = provider
        return provider

    @telephony.setter
    def telephony(self, provider: TelephonyProvider | None) -> None:
        """Replace the provider (None: build it again on next use)."""
        self._provider = provider

    def built_telephony(self) -> TelephonyProvider | None:
        """The provider if one has been built or assigned, else None (nothing is built)."""
        return self._provider


_current: Services | None = None
_current_lock = threading.Lock()


def current_services() -> Services:
    """The process-wide :class:`Services`, built from the environment on first use.

    RQ jobs call this; the web app and ``contactcenter worker`` install a wired one with
    :func:`install_services` before any job runs.
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
