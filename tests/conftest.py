"""Shared fixtures: a private real Redis, a real database (SQLite or PostgreSQL), the app.

``TEST_DB=sqlite`` (default) or ``TEST_DB=postgresql`` picks the database; ``make test``
runs the suite on both. Each pytest worker gets its own Redis server and its own database,
so parallel runs never share keys or rows.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from contactcenter.config import Settings
from contactcenter.services import install_services
from crm_store.db import Database

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = os.environ.get("TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for this test process (real Redis, no shared keys)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test` (it installs it)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("private redis-server did not start")
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A Redis client on the private server, flushed before each test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database migrated to head, private to this test process."""
    from crm_store.migrate import upgrade

    if TEST_DB == "postgresql":
        name = f"cc_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    elif TEST_DB == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "test.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
    else:
        pytest.fail(f"TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")


@pytest.fixture
def db(database_url: str, redis_url: str) -> Iterator[Database]:
    """The test database, emptied after each test. Wired like a process's own (user changes
    replace the users epoch in the test Redis), so apps see changes tests make through it."""
    import redis

    from crm_store.models import Base
    from crm_store.user_cache import watch_user_changes

    database = Database(database_url)
    epoch_redis = redis.Redis.from_url(redis_url)
    watch_user_changes(database, lambda: epoch_redis)
    yield database
    # DELETE in reverse dependency order: on near-empty tables it is ~20x faster than
    # TRUNCATE on PostgreSQL (which rewrites every table's files). Ids are not reset:
    # tests must not depend on them.
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    database.dispose()
    epoch_redis.close()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test database and the private Redis."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        telephony="sandbox",
        public_base_url="http://localhost",
    )


def _config_variable_names() -> frozenset[str]:
    """Every environment variable the settings read: the upper-case string literals of
    contactcenter/config.py (so a new setting is isolated without a list to keep here)."""
    source = (ROOT / "contactcenter" / "config.py").read_text(encoding="utf-8")
    return frozenset(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})"', source))


_CONFIG_VARIABLES = _config_variable_names() | {"SANDBOX_SCENARIO", "API_TOKEN"}


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees a developer's configuration or another test's service container."""
    for name in _CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    install_services(None)
    yield
    install_services(None)
