"""Console authentication and the protections every console page shares.

* :func:`login_required` guards a view: without a valid session → the login page (an htmx
  request gets 401 with ``HX-Redirect``); without the permission → the 403 page. It sets
  ``g.user`` (the username), ``g.scope`` (:class:`crm_store.access.Scope`, read from the
  database or :class:`crm_store.user_cache.UserCache`, whose entries no longer count once any
  user changed, so role and region changes apply at the next request) and
  ``g.user_display``. :func:`current_scope` returns the scope; :func:`console_actor` the
  actor name audit rows get (``console:<username>``).
* Sessions (:mod:`web.console.sessions`) end after ``CONSOLE_SESSION_HOURS``, after
  ``CONSOLE_IDLE_MINUTES`` without activity, at logout, and when the user's session epoch
  moves on (password changed, user disabled).
* CSRF: every POST/PUT/PATCH/DELETE to the console carries the session's token, as the form
  field ``csrf_token`` (``{{ csrf_field() }}`` in a template) or the ``X-CSRF-Token`` header
  (``console.js`` adds it to htmx requests from ``<meta name="csrf-token">``); otherwise 400.
* Security headers on every ``/console`` answer: a CSP without inline scripts or styles,
  ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options: DENY``, ``no-store``
  caching of pages, HSTS when ``PUBLIC_BASE_URL`` is https.

Views here: ``/console/login``, ``/console/logout`` (POST), ``/console/password``.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Flask,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.wrappers import Response

from contactcenter.services import Services
from crm_store.access import PERMISSIONS, Scope, scope_of_user
from crm_store.users import session_user
from web.common import OUTAGE_ERRORS, services_of
from web.console import NAV, bp
from web.console.forms import change_own_password
from web.console.login import attempt_login
from web.console.sessions import (
    CREATED,
    SEEN,
    ConsoleSession,
    RedisSessionInterface,
    console_secret_key,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
#: Times on console pages are shown in this zone.
DISPLAY_ZONE = ZoneInfo("Europe/Moscow")


def install(app: Flask) -> None:
    """Server-side sessions, the signing key and the security headers on ``app``."""
    services = services_of(app)
    settings = services.settings
    key = console_secret_key(settings)
    app.secret_key = key
    app.session_interface = RedisSessionInterface(
        lambda: services.redis,
        key,
        idle_seconds=settings.console_idle_minutes * 60,
        lifetime_seconds=settings.console_session_hours * 3600,
        secure=settings.public_base_url.startswith("https://"),
    )
    app.after_request(_security_headers)


def _services() -> Services:
    return services_of(current_app)


def _security_headers(response: Response) -> Response:
    if request.path == "/console" or request.path.startswith("/console/"):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["X-Frame-Options"] = "DENY"
        if not request.path.startswith("/console/static/"):
            headers["Cache-Control"] = "no-store"
        if _services().settings.public_base_url.startswith("https://"):
            headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


# ------------------------------------------------------------------------- CSRF


@bp.app_template_global()
def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


@bp.app_template_global()
def csrf_field() -> Markup:
    """The hidden form field carrying the CSRF token (put in every console POST form)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def _csrf_ok() -> bool:
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return (
        isinstance(expected, str)
        and bool(expected)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


@bp.before_request
def _guard() -> Response | None:
    """Every console request: the session store must answer, unsafe methods carry the token."""
    if isinstance(session, ConsoleSession) and session.unavailable:
        return error_page(503)
    if request.method not in SAFE_METHODS and not _csrf_ok():
        if isinstance(session, ConsoleSession) and session.new and not _session_store_up():
            return error_page(503)  # the form's session could not be stored, not a forgery
        log.warning("console: %s %s without a valid CSRF token", request.method, request.path)
        return error_page(
            400,
            "Форма устарела или отправлена не со страницы консоли. Обновите страницу и повторите.",
        )
    return None


def _session_store_up() -> bool:
    try:
        _services().redis.ping()
    except OUTAGE_ERRORS:
        return False
    return True


# ------------------------------------------------------------------------- sessions


def _landing() -> str:
    """Where a login lands: the first section the user may open (else the password page)."""
    scope: Scope | None = g.get("scope")
    for _label, endpoint, permission in NAV:
        if scope is not None and scope.can(permission) and endpoint in current_app.view_functions:
            return url_for(endpoint)
    return url_for("console.password")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a console path of this site (no open redirect), else None."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return None
    if parts.path.startswith(("/console/login", "/console/logout", "/console/static/")):
        return None
    return target


def _to_login() -> Response:
    if request.headers.get("HX-Request") == "true":
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        page = current.path + (f"?{current.query}" if current.query else "")
        target = url_for("console.login", next=safe_next(page))
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    wanted = request.full_path if request.method == "GET" else None
    return redirect(url_for("console.login", next=safe_next((wanted or "").rstrip("?"))))


def _session_user() -> bool:
    """Load the session's user into ``g`` (True), or end a session that may not go on."""
    if "scope" in g:
        return True
    user_id, epoch, created = session.get("uid"), session.get("epoch"), session.get(CREATED)
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        return False
    settings = _services().settings
    now = time.time()
    seen = session.get(SEEN, created)
    if (
        not isinstance(created, int | float)
        or not isinstance(seen, int | float)
        or now > created + settings.console_session_hours * 3600
        or now > seen + settings.console_idle_minutes * 60
    ):
        session.clear()
        return False
    services = _services()

    def load() -> tuple[Scope, str] | None:
        with services.db.reading() as s:
            user = session_user(s, user_id, epoch)
            return (scope_of_user(user), user.display_name) if user is not None else None

    found = services.user_cache.get(f"session:{user_id}:{epoch}", load)
    if found is None:
        session.clear()
        return False
    g.scope, display = found
    g.user = g.scope.user
    g.user_display = display or g.user
    return True


def current_scope() -> Scope:
    """The scope of the logged-in user of this request (inside a :func:`login_required` view)."""
    scope: Scope = g.scope
    return scope


def console_actor() -> str:
    """The actor audit rows of this request's changes name: ``console:<username>``."""
    return f"console:{g.user}"


def login_required(
    permission: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Guard a console view: a logged-in user holding ``permission`` (any user when None)."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            if not _session_user():
                return _to_login()
            if permission is not None and not current_scope().can(permission):
                return error_page(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


# ------------------------------------------------------------------------- pages

_ERRORS = {
    400: ("Неверный запрос", "Запрос не может быть выполнен."),
    403: ("Доступ запрещён", "У вашей роли нет доступа к этому разделу."),
    404: ("Не найдено", "Такой страницы или записи нет."),
    503: (
        "Сервис временно недоступен",
        "База данных или хранилище сессий не отвечает. Повторите через минуту.",
    ),
}


def error_page(status: int, message: str | None = None) -> Response:
    """A console error page (400, 403, 404, 503) with ``status``."""
    title, text = _ERRORS.get(status, ("Ошибка", "Запрос не выполнен."))
    body = render_template("console/errors.html", title=title, message=message or text)
    return make_response(body, status)


def _outage(exc: Exception) -> Response:
    log.warning("console outage on %s: %s", request.path, type(exc).__name__)
    return error_page(503)


@bp.errorhandler(404)
def _not_found(_exc: Exception) -> Response:
    return error_page(404)


for _error in OUTAGE_ERRORS:
    bp.register_error_handler(cast(type[Exception], _error), _outage)


@bp.app_template_filter("msk")
def format_time(value: datetime | None, with_seconds: bool = False) -> str:
    """A UTC time as shown on console pages: ``05.12.2026 16:20`` (Moscow time)."""
    if value is None:
        return "—"
    pattern = "%d.%m.%Y %H:%M:%S" if with_seconds else "%d.%m.%Y %H:%M"
    return value.astimezone(DISPLAY_ZONE).strftime(pattern)


@bp.context_processor
def _layout() -> dict[str, Any]:
    """The navigation the user may use, and who is logged in, for ``base.html``."""
    scope: Scope | None = g.get("scope")
    nav = [
        (label, url_for(endpoint), request.endpoint == endpoint)
        for label, endpoint, permission in NAV
        if scope is not None and scope.can(permission) and endpoint in current_app.view_functions
    ]
    return {"nav_items": nav, "console_user": g.get("user_display")}


def client_address() -> str:
    """The client's address for the login lockout: the TCP peer's, or, behind
    ``CONSOLE_PROXY_COUNT`` proxies, the address the outermost proxy saw (``X-Forwarded-For``,
    counted from the right: the entries the client wrote itself are never trusted)."""
    proxies = _services().settings.console_proxy_count
    if proxies:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= proxies:
            return forwarded[-proxies][:64]
    return request.remote_addr or "-"


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """The login form; a right password starts a new session (new id: no fixation)."""
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if _session_user():
            return redirect(target or _landing())
        return render_template(
            "console/login.html", next=target, logged_out=request.args.get("out") == "1"
        )
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username.strip() or not password:
        error = "Введите имя пользователя и пароль."
        result = None
    else:
        result = attempt_login(_services(), username, password, client_address())
        if result.locked_seconds:
            minutes = max(1, (result.locked_seconds + 59) // 60)
            error = (
                "Слишком много неудачных попыток входа. "
                f"Вход временно заблокирован, повторите через {minutes} мин."
            )
        else:
            error = "Неверное имя пользователя или пароль."
    if result is None or not result.ok:
        body = render_template(
            "console/login.html", next=target, error=error, username=username.strip()[:64]
        )
        return make_response(body, 429 if result is not None and result.locked_seconds else 401)
    _start_session(result.user_id or 0, result.epoch)
    _session_user()
    return redirect(target or _landing())


def _start_session(user_id: int, epoch: int) -> None:
    """A fresh session (new id, new CSRF token) for ``user_id``."""
    now = time.time()
    session.clear()
    if isinstance(session, ConsoleSession):
        session.regenerate()
    session.update({"uid": user_id, "epoch": epoch, CREATED: now, SEEN: now})
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


@bp.post("/logout")
def logout() -> Response:
    """End the session (POST with the CSRF token; the session is deleted from Redis)."""
    if g.get("user") or _session_user():
        log.info("console logout: user %s", g.user)
    session.clear()
    return redirect(url_for("console.login", out="1"))


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def password() -> Response | str:
    """The user's own password change: the current password, the new one twice."""
    if request.method == "GET":
        return render_template("console/password.html", errors={})
    outcome = change_own_password(
        _services(),
        g.user,
        actor=console_actor(),
        old=request.form.get("old_password", ""),
        new=request.form.get("new_password", ""),
        confirm=request.form.get("confirm_password", ""),
    )
    if outcome.errors:
        body = render_template("console/password.html", errors=outcome.errors)
        return make_response(body, 422)
    # this session goes on under the new epoch; every other session of the user has ended
    _start_session(session["uid"], outcome.epoch)
    return render_template("console/password.html", errors={}, changed=True)
