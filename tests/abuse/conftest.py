"""Fixtures of the abuse suite: the real app (sandbox telephony, the test database of
``TEST_DB``, the private Redis), an admin bearer token, a logged-in console client.

* ``abuse_app``: ``webhooks.create_app`` with recordings, imports and the TTS cache under the
  test's ``tmp_path`` and ``IMPORT_MAX_MB=1`` (so an upload over the limit stays small).
* ``admin_token``: a bearer token of an admin of all regions.
* ``console``: a Flask test client logged in to the console as that admin (``.csrf``: its
  CSRF token).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.users import create_user, issue_api_token
from tests.console.conftest import PASSWORD, client_login, console_settings, csrf_of
from webhooks import create_app, services_of

ADMIN = "abuse-admin"


@pytest.fixture
def abuse_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test settings with private folders and a 1 MiB upload limit."""
    return console_settings(
        settings,
        tmp_path,
        import_max_mb=1,
        tts_cache_dir=str(tmp_path / "tts-cache"),
    )


@pytest.fixture
def abuse_app(abuse_settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    """The real app (no server)."""
    app = create_app(abuse_settings)
    yield app
    services_of(app).db.dispose()


@pytest.fixture
def admin_token(db: Database) -> str:
    """The bearer token of an admin of every region (also a console user, see ``console``)."""
    with db.transaction() as session:
        create_user(session, ADMIN, roles=["admin"], regions=None, password=PASSWORD)
        return issue_api_token(session, ADMIN)


@pytest.fixture
def api(abuse_app: Flask, admin_token: str) -> FlaskClient:
    """A test client; send ``headers=auth(admin_token)`` for the API."""
    return abuse_app.test_client()


def auth(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


class ConsoleClient:
    """A test client logged in to the console, with its CSRF token."""

    def __init__(self, client: FlaskClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf


@pytest.fixture
def console(abuse_app: Flask, admin_token: str) -> ConsoleClient:
    """The admin logged in to the console."""
    client = abuse_app.test_client()
    response = client_login(client, ADMIN)
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:300]
    return ConsoleClient(client, csrf_of(client, "/console/users"))
