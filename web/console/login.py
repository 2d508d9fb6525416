"""Console logins: the password check behind a rate limit with lockout.

Failed logins are counted in Redis per username and per client address, each counter living
as long as a lock does (``CONSOLE_LOCKOUT_MINUTES``). ``CONSOLE_LOGIN_MAX_FAILURES`` failures
for one username, or four times as many from one address (whatever the usernames), lock it
for ``CONSOLE_LOCKOUT_MINUTES``: while locked, logins are refused without checking the
password. Unknown usernames are counted and locked like real ones, and the message is the
same, so neither tells whether a user exists. A success clears the username's counter (not
the address's: one known password must not reset an attacker's budget).

Logs name the username and the address, never a password.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from redis import Redis

from contactcenter.services import Services
from crm_store.users import authenticate_password, record_login

log = logging.getLogger(__name__)

KEY_PREFIX = "console:login:"
#: An address is locked after this many times the per-username limit.
ADDRESS_FACTOR = 4


@dataclass(frozen=True)
class LoginResult:
    """The answer to a login attempt: the user (id, name, session epoch) when it succeeded,
    else ``locked_seconds`` when refused by a lock (0: a wrong name or password)."""

    user_id: int | None = None
    username: str | None = None
    epoch: int = 0
    locked_seconds: int = 0

    @property
    def ok(self) -> bool:
        """True when the user is logged in."""
        return self.user_id is not None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


class LoginThrottle:
    """Failure counters and locks in Redis (see the module docstring)."""

    def __init__(self, redis: Redis, *, max_failures: int, lockout_minutes: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.lockout_seconds = lockout_minutes * 60

    def _keys(self, kind: str, value: str) -> tuple[str, str]:
        base = f"{KEY_PREFIX}{kind}:{_digest(value)}"
        return base + ":failures", base + ":lock"

    def locked_seconds(self, username: str, address: str) -> int:
        """Seconds left of the longest lock on ``username`` or ``address`` (0: not locked)."""
        left = 0
        for kind, value in (("user", username), ("addr", address)):
            ttl = int(self.redis.ttl(self._keys(kind, value)[1]))
            left = max(left, max(0, ttl))
        return left

    def failed(self, username: str, address: str) -> bool:
        """Count a failure; True when it locked the username or the address."""
        locked = False
        for kind, value, limit in (
            ("user", username, self.max_failures),
            ("addr", address, self.max_failures * ADDRESS_FACTOR),
        ):
            failures, lock = self._keys(kind, value)
            count = int(self.redis.incr(failures))
            if count == 1:
                self.redis.expire(failures, self.lockout_seconds)
            if count >= limit:
                self.redis.set(lock, "1", ex=self.lockout_seconds)
                self.redis.delete(failures)
                log.warning(
                    "console login locked for %d min: %s %s after %d failures",
                    self.lockout_seconds // 60,
                    "user" if kind == "user" else "address",
                    value,
                    count,
                )
                locked = True
        return locked

    def succeeded(self, username: str) -> None:
        """Forget the username's failures."""
        self.redis.delete(self._keys("user", username)[0])

    def user_locked_seconds(self, username: str) -> int:
        """Seconds left of the lock on ``username`` (0: not locked)."""
        ttl = int(self.redis.ttl(self._keys("user", normalize_username(username))[1]))
        return max(0, ttl)

    def unlock(self, username: str) -> None:
        """Lift the lock of ``username`` and forget its failures (an admin's reset)."""
        self.redis.delete(*self._keys("user", normalize_username(username)))


def normalize_username(username: str) -> str:
    """The username as stored (stripped, lower case), cut to 64 characters for the counters."""
    return username.strip().lower()[:64]


def throttle_of(services: Services) -> LoginThrottle:
    """The login throttle configured by the settings of ``services``."""
    settings = services.settings
    return LoginThrottle(
        services.redis,
        max_failures=settings.console_login_max_failures,
        lockout_minutes=settings.console_lockout_minutes,
    )


def attempt_login(services: Services, username: str, password: str, address: str) -> LoginResult:
    """Check a console login (see the module docstring); the caller starts the session."""
    name = normalize_username(username)
    throttle = throttle_of(services)
    locked = throttle.locked_seconds(name, address)
    if locked:
        log.info("console login refused (locked): user %s from %s", name, address)
        return LoginResult(locked_seconds=locked)
    with services.db.transaction() as session:
        user = authenticate_password(session, name, password) if name and password else None
        if user is not None:
            record_login(session, user)
            result = LoginResult(user_id=user.id, username=user.username, epoch=user.session_epoch)
        else:
            result = LoginResult()
    if result.ok:
        throttle.succeeded(name)
        log.info("console login: user %s from %s", name, address)
        return result
    log.info("console login failed: user %s from %s", name, address)
    if throttle.failed(name, address):
        return LoginResult(locked_seconds=throttle.lockout_seconds)
    return result
