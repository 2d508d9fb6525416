"""Console authentication without a browser: argon2 passwords, sessions, lockout, CSRF,
headers, permissions and the secret key — on SQLite and PostgreSQL (``TEST_DB``)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask, url_for
from flask.testing import FlaskClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from contactcenter.config import ConfigError, Settings, load_settings
from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.models import AuditLog, User
from crm_store.users import (
    authenticate_password,
    change_password,
    create_user,
    issue_api_token,
    password_needs_rehash,
    session_user,
    set_active,
    update_user,
    verify_password,
)
from tests.console.conftest import PASSWORD, client_login, console_settings, csrf_of
from web.common import services_of
from web.console import NAV
from web.console.auth import CONTENT_SECURITY_POLICY, client_address, safe_next
from web.console.login import LoginThrottle, attempt_login
from web.console.sessions import COOKIE_NAME, KEY_PREFIX, console_secret_key
from webhooks import create_app


def _pbkdf2(password: str, iterations: int = 1000) -> str:
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


# ------------------------------------------------------------------ passwords (argon2)


def test_new_passwords_are_argon2id(db: Database) -> None:
    with db.transaction() as s:
        user = create_user(s, "anna", roles=["supervisor"], password=PASSWORD)
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert not password_needs_rehash(user.password_hash)
    assert verify_password(PASSWORD, user.password_hash)
    assert not verify_password("wrong password!", user.password_hash)
    assert not verify_password(PASSWORD, None)
    assert not verify_password(PASSWORD, "$argon2id$garbage")


def test_pbkdf2_hashes_verify_and_are_rehashed_at_login(db: Database) -> None:
    with db.transaction() as s:
        create_user(s, "old", roles=["operator"])
        s.scalars(select(User).where(User.username == "old")).one().password_hash = _pbkdf2(
            PASSWORD
        )
    with db.transaction() as s:
        assert authenticate_password(s, "old", "not the password") is None
    with db.transaction() as s:
        stored = s.scalars(select(User.password_hash).where(User.username == "old")).one()
        assert stored is not None
        assert stored.startswith("pbkdf2_sha256$")
        assert password_needs_rehash(stored)
        assert authenticate_password(s, "OLD ", PASSWORD) is not None
    with db.transaction() as s:
        stored = s.scalars(select(User.password_hash).where(User.username == "old")).one()
        assert stored is not None
        assert stored.startswith("$argon2id$")
        assert authenticate_password(s, "old", PASSWORD) is not None


def test_disabled_users_and_users_without_password_do_not_log_in(db: Database) -> None:
    with db.transaction() as s:
        create_user(s, "anna", roles=["supervisor"], password=PASSWORD)
        create_user(s, "robot", roles=["supervisor"])
        set_active(s, "anna", False)
    with db.transaction() as s:
        assert authenticate_password(s, "anna", PASSWORD) is None
        assert authenticate_password(s, "robot", "") is None
        assert authenticate_password(s, "nobody", PASSWORD) is None


def test_password_change_and_disabling_end_sessions_and_are_audited(db: Database) -> None:
    with acting_as("console:boss"), db.transaction() as s:
        user = create_user(s, "anna", roles=["supervisor"], password=PASSWORD)
        issue_api_token(s, "anna")
        uid, epoch = user.id, user.session_epoch
    with db.transaction() as s:
        assert session_user(s, uid, epoch) is not None
        with pytest.raises(ValueError, match="current password is wrong"):
            change_password(s, "anna", "wrong password!", "another good one")
        change_password(s, "anna", PASSWORD, "another good one")
    with db.transaction() as s:
        assert session_user(s, uid, epoch) is None
        epoch = s.get(User, uid).session_epoch  # type: ignore[union-attr]
        assert session_user(s, uid, epoch) is not None
    with acting_as("console:boss"), db.transaction() as s:
        set_active(s, "anna", False)
    with db.transaction() as s:
        assert session_user(s, uid, epoch) is None
        user = s.get(User, uid)
        assert user is not None
        assert user.api_token_hash is None
        rows = list(
            s.scalars(select(AuditLog).where(AuditLog.entity == "user").order_by(AuditLog.id))
        )
    assert [(r.action, r.actor) for r in rows] == [
        ("insert", "console:boss"),
        ("update", "console:boss"),  # the token
        ("update", "system"),  # the password change (no acting_as here)
        ("update", "console:boss"),  # disabled
    ]
    stored = json.dumps([[r.before, r.after] for r in rows])
    assert "argon2" not in stored
    assert "hash" not in stored
    assert rows[-1].before["active"] is True
    assert rows[-1].after["active"] is False
    assert rows[0].after["roles"] == ["supervisor"]
    assert rows[0].after["regions"] is None


# ------------------------------------------------------------------ lockout


def test_lockout_per_username_hides_whether_the_user_exists(console_app: Flask) -> None:
    services = services_of(console_app)
    with services.db.transaction() as s:
        create_user(s, "anna", roles=["supervisor"], password=PASSWORD)
    for name in ("anna", "ghost"):
        for _ in range(4):
            result = attempt_login(services, name, "wrong password!", "10.0.0.1")
            assert not result.ok
            assert result.locked_seconds == 0
        fifth = attempt_login(services, name, "wrong password!", "10.0.0.1")
        assert fifth.locked_seconds > 0
    locked = attempt_login(services, "anna", PASSWORD, "10.0.0.2")
    assert not locked.ok
    assert locked.locked_seconds > 14 * 60
    # another user is not affected, and a success clears the user's counter
    with services.db.transaction() as s:
        create_user(s, "boris", roles=["operator"], password=PASSWORD)
    for _ in range(4):
        attempt_login(services, "boris", "wrong password!", "10.0.0.3")
    assert attempt_login(services, "boris", PASSWORD, "10.0.0.3").ok
    for _ in range(4):
        assert attempt_login(services, "boris", "wrong password!", "10.0.0.4").locked_seconds == 0
    throttle = LoginThrottle(services.redis, max_failures=5, lockout_minutes=15)
    throttle.unlock("Anna")
    assert attempt_login(services, "anna", PASSWORD, "10.0.0.5").ok


def test_lockout_per_address_across_usernames(redis_client: Any) -> None:
    client = redis_client
    throttle = LoginThrottle(client, max_failures=2, lockout_minutes=1)
    locked = [throttle.failed(f"user{i}", "192.0.2.7") for i in range(8)]
    assert locked == [False] * 7 + [True]  # 2 × 4 failures from one address
    assert throttle.locked_seconds("someone-else", "192.0.2.7") > 0
    assert throttle.locked_seconds("someone-else", "192.0.2.8") == 0
    assert 0 < throttle.locked_seconds("someone-else", "192.0.2.7") <= 60


# ------------------------------------------------------------------ HTTP: sessions, CSRF


def test_pages_redirect_to_login_and_htmx_gets_401(console_client: FlaskClient) -> None:
    page = console_client.get("/console/users?x=1")
    assert page.status_code == 302
    assert page.headers["Location"] == "/console/login?next=/console/users?x%3D1"
    fragment = console_client.get(
        "/console/audit",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/console/audit"},
    )
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/console/login?next=/console/audit"


def first_section(app: Flask) -> str:
    """The URL of the first navigation entry the app has (an admin may open them all)."""
    with app.test_request_context():
        return next(url_for(e) for _label, e, _perm in NAV if e in app.view_functions)


def test_login_logout_cookie_flags_and_headers(
    console_app: Flask, console_client: FlaskClient, make_user: Any, redis_client: Any
) -> None:
    make_user("anna", ["admin"])
    wrong = client_login(console_client, "anna", "not the password")
    assert wrong.status_code == 401
    assert "Неверное имя пользователя или пароль" in wrong.get_data(as_text=True)
    anonymous_cookie = console_client.get_cookie(COOKIE_NAME, path="/console")
    assert anonymous_cookie is not None
    answer = client_login(console_client, "anna")
    assert answer.status_code == 302
    assert answer.headers["Location"] == first_section(console_app)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # PUBLIC_BASE_URL is http here
    logged_in = console_client.get_cookie(COOKIE_NAME, path="/console")
    assert logged_in is not None
    assert logged_in.value != anonymous_cookie.value
    page = console_client.get("/console/users")
    assert page.status_code == 200
    headers = page.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.get_data(as_text=True)
    assert len(redis_client.keys(KEY_PREFIX + "*")) == 1  # the anonymous session was replaced
    token = csrf_of(console_client, "/console/users")
    out = console_client.post("/console/logout", data={"csrf_token": token})
    assert out.status_code == 302
    assert out.headers["Location"] == "/console/login?out=1"
    assert redis_client.keys(KEY_PREFIX + "*") == []
    assert console_client.get("/console/users").status_code == 302
    # a copy of the old cookie does not bring the session back
    console_client.set_cookie(COOKIE_NAME, logged_in.value, path="/console")
    assert console_client.get("/console/users").status_code == 302


def test_posts_without_the_csrf_token_are_refused(
    console_client: FlaskClient, make_user: Any
) -> None:
    make_user("anna", ["admin"])
    refused = console_client.post("/console/login", data={"username": "anna", "password": PASSWORD})
    assert refused.status_code == 400
    assert client_login(console_client, "anna").status_code == 302
    for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}), ({}, {"X-CSRF-Token": "x"})):
        answer = console_client.post("/console/logout", data=data, headers=headers)
        assert answer.status_code == 400
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert console_client.get("/console/users").status_code == 200  # still logged in
    token = csrf_of(console_client, "/console/users")
    by_header = console_client.post("/console/logout", headers={"X-CSRF-Token": token})
    assert by_header.status_code == 302


def test_sessions_end_when_idle_too_long_or_too_old(
    console_app: Flask, console_client: FlaskClient, make_user: Any, redis_client: Any
) -> None:
    make_user("anna", ["admin"])
    client_login(console_client, "anna")
    assert console_client.get("/console/users").status_code == 200
    (key,) = redis_client.keys(KEY_PREFIX + "*")
    ttl = redis_client.ttl(key)
    assert 29 * 60 < ttl <= 30 * 60  # CONSOLE_IDLE_MINUTES

    def age(**seconds: float) -> None:
        data = json.loads(redis_client.get(key))
        for name, delta in seconds.items():
            data[name] -= delta
        redis_client.set(key, json.dumps(data), ex=60)

    age(seen=31 * 60)
    assert console_client.get("/console/users").status_code == 302
    client_login(console_client, "anna")
    (key,) = redis_client.keys(KEY_PREFIX + "*")
    age(created=12 * 3600 + 1)  # CONSOLE_SESSION_HOURS
    assert console_client.get("/console/users").status_code == 302


def test_htmx_polling_does_not_extend_the_idle_timeout(
    console_client: FlaskClient, make_user: Any, redis_client: Any
) -> None:
    make_user("anna", ["admin"])
    client_login(console_client, "anna")
    (key,) = redis_client.keys(KEY_PREFIX + "*")
    redis_client.expire(key, 100)
    console_client.get("/console/users", headers={"HX-Request": "true"})
    assert redis_client.ttl(key) <= 100
    console_client.get("/console/users")
    assert redis_client.ttl(key) > 100


def test_permissions_and_the_session_follow_the_database(
    console_app: Flask, console_client: FlaskClient, make_user: Any
) -> None:
    make_user("olga", ["operator"])
    client_login(console_client, "olga")
    denied = console_client.get("/console/users")
    assert denied.status_code == 403
    assert "Доступ запрещён" in denied.get_data(as_text=True)
    assert console_client.get("/console/audit").status_code == 403
    db = services_of(console_app).db
    with acting_as("test"), db.transaction() as s:
        update_user(s, "olga", roles=["auditor"], regions=None, display_name="Ольга")
    assert console_client.get("/console/audit").status_code == 200  # no new login needed
    with db.transaction() as s:
        set_active(s, "olga", False)
    assert console_client.get("/console/audit").status_code == 302


def test_next_targets_stay_inside_the_console() -> None:
    assert safe_next("/console/audit?entity=user") == "/console/audit?entity=user"
    for bad in (
        None,
        "",
        "https://evil.example/console/x",
        "//evil.example/console/",
        "/\\evil.example",
        "/api/campaigns",
        "/console/login",
        "/console/logout",
        "javascript:alert(1)",
        "/console/\nx",
    ):
        assert safe_next(bad) is None, bad


def test_secure_cookies_behind_https(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path, make_user: Any
) -> None:
    app = create_app(console_settings(settings, tmp_path, public_base_url="https://cc.example.ru"))
    client = app.test_client()
    make_user("anna", ["admin"])
    answer = client_login(client, "anna")
    assert "Secure" in answer.headers["Set-Cookie"]
    assert "max-age=" in client.get("/console/login").headers["Strict-Transport-Security"]
    services_of(app).db.dispose()


# ------------------------------------------------------------------ the secret key


def test_secret_key_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONSOLE_SECRET_KEY"):
        load_settings({"CONSOLE_SECRET_KEY": "short"})
    key = "k" * 40
    assert load_settings({"CONSOLE_SECRET_KEY": key}).console_secret_key == key
    assert console_secret_key(Settings(console_secret_key=key)) == key
    with pytest.raises(ConfigError, match="required when TELEPHONY=twilio"):
        console_secret_key(Settings(telephony="twilio"))
    path = tmp_path / "var" / "console-secret-key"
    generated = console_secret_key(Settings(console_secret_key_file=str(path)))
    assert len(generated) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert console_secret_key(Settings(console_secret_key_file=str(path))) == generated
    assert [p.name for p in path.parent.iterdir()] == ["console-secret-key"]
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="holds no usable key"):
        console_secret_key(Settings(console_secret_key_file=str(path)))


def test_session_settings_are_validated() -> None:
    settings = load_settings(
        {
            "CONSOLE_SESSION_HOURS": "8",
            "CONSOLE_IDLE_MINUTES": "15",
            "CONSOLE_LOGIN_MAX_FAILURES": "3",
            "CONSOLE_LOCKOUT_MINUTES": "30",
        }
    )
    assert (settings.console_session_hours, settings.console_idle_minutes) == (8, 15)
    assert (settings.console_login_max_failures, settings.console_lockout_minutes) == (3, 30)
    for name in ("CONSOLE_SESSION_HOURS", "CONSOLE_IDLE_MINUTES", "CONSOLE_LOCKOUT_MINUTES"):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: "0"})
    with pytest.raises(ConfigError, match="CONSOLE_LOGIN_MAX_FAILURES"):
        load_settings({"CONSOLE_LOGIN_MAX_FAILURES": "many"})


def test_time_passes_for_the_lock(redis_client: Any) -> None:
    client = redis_client
    throttle = LoginThrottle(client, max_failures=1, lockout_minutes=1)
    assert throttle.failed("anna", "192.0.2.1")
    lock_key = next(k for k in client.keys("console:login:user:*") if k.endswith(b":lock"))
    client.pexpire(lock_key, 50)
    time.sleep(0.2)
    assert throttle.locked_seconds("anna", "192.0.2.9") == 0


def test_client_address_behind_proxies(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path, console_app: Flask
) -> None:
    headers = {"X-Forwarded-For": "198.51.100.9, 203.0.113.5"}
    environ = {"REMOTE_ADDR": "10.0.0.1"}
    with console_app.test_request_context(headers=headers, environ_base=environ):
        assert client_address() == "10.0.0.1"  # no proxy configured: the header is ignored
    behind = create_app(console_settings(settings, tmp_path, console_proxy_count=1))
    with behind.test_request_context(headers=headers, environ_base=environ):
        assert client_address() == "203.0.113.5"  # what our proxy saw, not what the client wrote
    with behind.test_request_context(environ_base=environ):
        assert client_address() == "10.0.0.1"
    services_of(behind).db.dispose()
    assert load_settings({"CONSOLE_PROXY_COUNT": "2"}).console_proxy_count == 2


def test_a_redis_outage_gives_the_503_page(
    console_app: Flask, console_client: FlaskClient, make_user: Any
) -> None:
    make_user("anna", ["admin"])
    client_login(console_client, "anna")
    services = services_of(console_app)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    services._redis = redis.Redis(port=dead_port, retry=Retry(NoBackoff(), 0))
    page = console_client.get("/console/users")
    assert page.status_code == 503
    assert "Сервис временно недоступен" in page.get_data(as_text=True)
    fresh = FlaskClient(console_app, use_cookies=True)
    answer = fresh.post("/console/login", data={"username": "anna", "password": PASSWORD})
    assert answer.status_code == 503
