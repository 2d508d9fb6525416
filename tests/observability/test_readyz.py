"""``/readyz`` against dependencies that really go away and come back: a redis-server killed
and restarted, PostgreSQL behind a connection that is cut, a database dropped, a server that
accepts and never answers. Every wait is a poll with a deadline (5 s: the promise)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from contactcenter.config import Settings
from crm_store.db import Database
from tests.conftest import PG_ADMIN_URL, TEST_DB
from tests.ivr.test_webhooks_app import SMALL_FLOWS, write_flows
from tests.netutil import Blackhole, Forwarder, RedisServer, free_port, poll
from web.health import CHECK_TIMEOUT_S
from webhooks import create_app, services_of

#: /readyz must turn within this many seconds of a dependency going away or coming back.
PROMISE_S = 5.0
postgres_only = pytest.mark.skipif(TEST_DB != "postgresql", reason="PostgreSQL only")


def _app(settings: Settings, tmp_path: Path, **overrides: Any) -> Flask:
    flows = write_flows(tmp_path, SMALL_FLOWS)
    return create_app(settings.with_overrides(flows_file=flows, **overrides))


def _ready(app: Flask) -> tuple[int, dict[str, Any]]:
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert isinstance(body, dict)
    return response.status_code, body


def _until(app: Flask, status: int) -> tuple[int, dict[str, Any]]:
    return poll(lambda: _ready(app), lambda r: r[0] == status, PROMISE_S)


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    app = _app(settings, tmp_path)
    yield app
    services_of(app).db.dispose()


def test_ready_lists_every_check(app: Flask) -> None:
    status, body = _ready(app)
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "redis", "flows", "speech", "telephony"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["telephony"]["provider"] == "sandbox"
    assert body["checks"]["speech"]["state"] in ("available", "degraded")
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}


def test_redis_going_away_and_coming_back(settings: Settings, db: Database, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    app = _app(settings, tmp_path, redis_url=redis.url)
    try:
        assert _until(app, 200)[0] == 200
        redis.kill()
        status, body = _until(app, 503)
        assert status == 503, body
        assert body["failing"] == ["redis"]
        assert body["checks"]["redis"]["ok"] is False
        assert "Connection" in body["checks"]["redis"]["error"]
        assert body["checks"]["database"]["ok"] is True
        redis.start()
        status, body = _until(app, 200)
        assert status == 200, body
    finally:
        redis.kill()
        services_of(app).db.dispose()


def test_an_unreachable_database_fails_readiness(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/contactcenter"
    app = _app(settings, tmp_path, database_url=url)
    try:
        status, body = _until(app, 503)
    finally:
        services_of(app).db.dispose()
    assert status == 503, body
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["error"].startswith("OperationalError")
    assert body["checks"]["redis"]["ok"] is True


def test_a_hung_database_times_out_and_is_not_probed_twice(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    port = free_port()
    app = _app(settings, tmp_path, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    hole = Blackhole(port)  # opened after start-up: the app's first query hangs
    try:
        status, body = _ready(app)
        assert status == 503, body
        assert body["failing"] == ["database"]
        assert body["checks"]["database"]["error"] == f"timed out after {CHECK_TIMEOUT_S:g} s"
        status, body = _ready(app)  # the first check still hangs: not a second thread
        assert status == 503
        assert body["checks"]["database"]["error"].startswith("still running since")
    finally:
        hole.close()
        services_of(app).db.dispose()


@postgres_only
def test_postgresql_going_away_and_coming_back(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    parts = urlsplit(settings.database_url)
    forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    forwarder.start()
    proxied = settings.database_url.replace(
        f"{parts.hostname}:{parts.port}", f"127.0.0.1:{forwarder.port}"
    )
    app = _app(settings, tmp_path, database_url=proxied)
    try:
        assert _until(app, 200)[0] == 200
        forwarder.stop()
        status, body = _until(app, 503)
        assert status == 503, body
        assert body["failing"] == ["database"]
        forwarder.start()
        status, body = _until(app, 200)
        assert status == 200, body
    finally:
        forwarder.stop()
        services_of(app).db.dispose()


@postgres_only
def test_a_dropped_database_fails_readiness_until_it_is_back(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    name = f"cc_ready_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        app = _app(settings, tmp_path, database_url=url)
        try:
            assert _until(app, 200)[0] == 200
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            status, body = _until(app, 503)
            assert status == 503, body
            assert body["failing"] == ["database"]
            assert name in body["checks"]["database"]["error"]
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            status, body = _until(app, 200)
            assert status == 200, body
        finally:
            services_of(app).db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@postgres_only
def test_a_pooled_connection_the_server_killed_does_not_fail_readiness(app: Flask) -> None:
    """The pool pings only idle connections: a recently used one that the server dropped
    fails as a disconnect, and the check tries once more on a fresh one."""
    assert _ready(app)[0] == 200
    engine = services_of(app).db.engine
    with engine.connect() as conn:
        victim = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = create_engine(PG_ADMIN_URL)
    with killer.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    killer.dispose()
    status, body = _ready(app)
    assert status == 200, body
