"""Server-side console sessions kept in Redis.

The browser holds only a random session id, signed with the console key
(``CONSOLE_SECRET_KEY``) in the ``cc_console`` cookie (``Path=/console``, ``HttpOnly``,
``SameSite=Lax``, ``Secure`` when ``PUBLIC_BASE_URL`` is https). The data (the user id,
their session epoch, when the session began, the CSRF token) lives in Redis under the
SHA-256 of the id, so logging out removes it for good and a copy of Redis holds no usable
cookie.

A session ends:

* after ``CONSOLE_IDLE_MINUTES`` without activity: the Redis key's TTL, renewed by every
  request except htmx GETs (an auto-refreshing fragment is not a person using the console);
* ``CONSOLE_SESSION_HOURS`` after the login, however active (the TTL never reaches past it,
  and :mod:`web.console.auth` checks the start time too);
* at logout, or when the user's ``session_epoch`` moves on (password changed, user disabled:
  checked on every request by :mod:`web.console.auth`).

The interface is the app's :class:`flask.sessions.SessionInterface`; since the cookie is
sent only to ``/console`` paths, the webhooks and the REST API never touch Redis for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, Signer
from redis import Redis
from werkzeug.datastructures import CallbackDict

from contactcenter.config import ConfigError, Settings
from web.common import OUTAGE_ERRORS

log = logging.getLogger(__name__)

COOKIE_NAME = "cc_console"
COOKIE_PATH = "/console"
KEY_PREFIX = "console:session:"
#: Session data keys set by the login (``web.console.auth``).
CREATED = "created"
SEEN = "seen"


class ConsoleSession(CallbackDict[str, Any], SessionMixin):
    """The data of one console session (a dict) and what the interface does with it.

    ``unavailable``: Redis could not be read (the console answers 503); ``passive``: a
    request that neither reads nor renews the session (static files); ``rotate``: store the
    data under a new id at the end of the request (a login: no session fixation).
    """

    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        sid: str | None = None,
        *,
        unavailable: bool = False,
        passive: bool = False,
    ) -> None:
        def on_update(_data: CallbackDict[str, Any]) -> None:
            self.modified = True
            self.accessed = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.accessed = False
        self.unavailable = unavailable
        self.passive = passive
        self.rotate = False

    def regenerate(self) -> None:
        """Keep the data under a new session id from now on (call at login)."""
        self.rotate = True
        self.modified = True


def storage_key(sid: str) -> str:
    """The Redis key of session ``sid`` (a hash: Redis never holds a usable id)."""
    return KEY_PREFIX + hashlib.sha256(sid.encode()).hexdigest()


class RedisSessionInterface(SessionInterface):
    """Console sessions in Redis (see the module docstring)."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        secret_key: str,
        *,
        idle_seconds: int,
        lifetime_seconds: int,
        secure: bool,
    ) -> None:
        self._redis = redis
        self._signer = Signer(secret_key, salt="console-session")
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self.secure = secure

    def open_session(self, app: Flask, request: Request) -> ConsoleSession:
        """The session named by the request's cookie; a new, empty one when there is none."""
        if not request.path.startswith(COOKIE_PATH + "/") or request.path.startswith(
            COOKIE_PATH + "/static/"
        ):
            return ConsoleSession(passive=True)
        raw = request.cookies.get(COOKIE_NAME)
        if not raw:
            return ConsoleSession()
        try:
            sid = self._signer.unsign(raw).decode()
        except (BadSignature, UnicodeDecodeError):
            return ConsoleSession()
        try:
            stored = self._redis().get(storage_key(sid))
        except OUTAGE_ERRORS as exc:
            log.warning("console session store unavailable: %s", type(exc).__name__)
            return ConsoleSession(unavailable=True)
        if stored is None:
            return ConsoleSession()
        try:
            data = json.loads(stored)
        except ValueError:
            return ConsoleSession()
        return ConsoleSession(data if isinstance(data, dict) else {}, sid)

    def ttl(self, data: dict[str, Any], now: float) -> int:
        """Seconds the session may live from ``now``: the idle timeout, never past its end."""
        created = data.get(CREATED)
        left = self.idle_seconds
        if isinstance(created, int | float):
            left = min(left, int(created + self.lifetime_seconds - now))
        return left

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Store, renew or delete the session, and set or clear its cookie."""
        if not isinstance(session, ConsoleSession) or session.unavailable or session.passive:
            return
        try:
            self._save(session, response)
        except OUTAGE_ERRORS as exc:
            log.warning("console session not saved: %s", type(exc).__name__)

    def _save(self, session: ConsoleSession, response: Response) -> None:
        redis = self._redis()
        if not session:
            if session.sid is not None:
                redis.delete(storage_key(session.sid))
                self._clear_cookie(response)
            return
        now = time.time()
        if session.rotate and session.sid is not None:
            redis.delete(storage_key(session.sid))
            session.sid = None
        active = is_activity(request)
        if active and session.get(CREATED) is not None:
            session[SEEN] = now
        ttl = self.ttl(dict(session), now)
        if ttl <= 0:
            if session.sid is not None:
                redis.delete(storage_key(session.sid))
            self._clear_cookie(response)
            return
        if session.sid is None:
            session.sid = secrets.token_urlsafe(32)
            redis.set(storage_key(session.sid), json.dumps(dict(session)), ex=ttl)
            self._set_cookie(response, session.sid)
        elif session.modified:
            redis.set(storage_key(session.sid), json.dumps(dict(session)), ex=ttl)
        elif active:
            redis.expire(storage_key(session.sid), ttl)

    def _set_cookie(self, response: Response, sid: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self._signer.sign(sid).decode(),
            path=COOKIE_PATH,
            httponly=True,
            secure=self.secure,
            samesite="Lax",
        )
        response.vary.add("Cookie")

    def _clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path=COOKIE_PATH, httponly=True, secure=self.secure, samesite="Lax"
        )


def is_activity(request: Request) -> bool:
    """True when ``request`` is a person using the console (anything but an htmx GET)."""
    return not (request.method == "GET" and request.headers.get("HX-Request") == "true")


def console_secret_key(settings: Settings) -> str:
    """The key signing console cookies: ``CONSOLE_SECRET_KEY``; required with
    ``TELEPHONY=twilio``; otherwise one generated once and kept (mode 0600) in
    ``settings.console_secret_key_file``, so every process of a development machine shares it.
    """
    if settings.console_secret_key:
        return settings.console_secret_key
    if settings.telephony == "twilio":
        raise ConfigError("CONSOLE_SECRET_KEY", "is required when TELEPHONY=twilio")
    path = Path(settings.console_secret_key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(draft, path)  # first writer wins: processes starting together agree
            log.info("generated a development console secret key in %s", path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < 32:
        raise ConfigError(
            "CONSOLE_SECRET_KEY", f"{path} holds no usable key; delete it to have one generated"
        )
    return key
