"""Fixtures of the console tests: the real app, served live, driven by a real browser.

* ``live_server``: the app of ``webhooks.create_app`` (sandbox telephony, the test database of
  ``TEST_DB`` and the private Redis) served on a free port by a thread; ``.url`` is its base
  URL (also its ``PUBLIC_BASE_URL``), ``.app``, ``.services``, ``.settings``, ``.db``.
* ``browser_page``: a Playwright page (sync API) in headless Debian ``chromium``
  (``/usr/bin/chromium``, or ``CHROMIUM`` in the environment; ``make test`` installs it),
  in a fresh browser context per test. Playwright downloads no browser of its own.
* ``login_as(page, username, password)``: logs in through the login form.
* ``make_user(username, roles, regions=None, password=PASSWORD)``: a user in the database.
* ``screenshot(page, name)``: saves ``var/screenshots/<name>.png`` (test artefacts, ignored
  by git) and returns its path.
* ``console_app`` / ``console_client``: the same app without a server, for Flask test-client
  tests; ``client_login(client, username, password)`` logs a test client in.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from contactcenter.config import PROJECT_ROOT, Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.users import create_user
from webhooks import create_app, services_of

#: The password ``make_user`` gives unless told otherwise.
PASSWORD = "correct horse battery"
SECRET_KEY = "test-console-secret-key-0123456789abcdef"
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@dataclass
class LiveServer:
    """The app served on ``url`` (see the module docstring)."""

    url: str
    app: Flask
    services: Services
    settings: Settings
    db: Database


def console_settings(settings: Settings, tmp_path: Path, **changes: Any) -> Settings:
    """The test settings with a fixed console key (no key file is generated)."""
    return settings.with_overrides(
        console_secret_key=SECRET_KEY,
        console_secret_key_file=str(tmp_path / "console-secret-key"),
        recordings_dir=str(tmp_path / "recordings"),
        imports_dir=str(tmp_path / "imports"),
        **changes,
    )


@pytest.fixture
def live_server(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> Iterator[LiveServer]:
    """The real app on a free port, served by a thread for the test's duration."""
    holder: dict[str, Flask] = {}
    busy = [0]
    lock = threading.Lock()

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            busy[0] += 1
        try:
            # the body is produced (and the response closed) here, so the request's
            # database work is over when the counter goes down
            result = holder["app"](environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            with lock:
                busy[0] -= 1

    server: BaseWSGIServer = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(console_settings(settings, tmp_path, public_base_url=url))
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    services = services_of(app)
    try:
        yield LiveServer(url=url, app=app, services=services, settings=services.settings, db=db)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        # A page's periodic refresh may still be in a request thread: let it give its
        # database connection back before the pool is closed.
        deadline = time.monotonic() + 10
        while busy[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        services.db.dispose()


@pytest.fixture(scope="session")
def _browser() -> Iterator[Any]:
    """One headless chromium per test process (Debian's, through Playwright)."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} is not installed: run `make test` (it installs chromium)")
    args = ["--lang=ru-RU", *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A page in a fresh browser context (own cookies), with Russian locale."""
    context = _browser.new_context(locale="ru-RU", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def login_as(live_server: LiveServer) -> Callable[[Any, str, str], None]:
    """``login_as(page, username, password)``: log in through the form, wait for the answer."""

    def login(page: Any, username: str, password: str = PASSWORD) -> None:
        page.goto(f"{live_server.url}/console/login")
        page.fill("#username", username)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("button[type=submit]")

    return login


@pytest.fixture
def make_user(db: Database) -> Callable[..., str]:
    """``make_user(username, roles, regions=None, password=PASSWORD)`` → the username."""

    def make(
        username: str,
        roles: Iterable[str],
        regions: Iterable[str] | None = None,
        password: str | None = PASSWORD,
        display_name: str = "",
    ) -> str:
        with db.transaction() as session:
            user = create_user(
                session,
                username,
                roles=list(roles),
                regions=list(regions) if regions is not None else None,
                password=password,
                display_name=display_name,
            )
            return user.username

    return make


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: the whole page as ``var/screenshots/<name>.png``."""

    def take(page: Any, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ValueError(f"screenshot name {name!r}: letters, digits, '.', '_', '-' only")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def console_app(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> Iterator[Flask]:
    """The app (no server) for test-client tests."""
    app = create_app(console_settings(settings, tmp_path))
    yield app
    services_of(app).db.dispose()


@pytest.fixture
def console_client(console_app: Flask) -> FlaskClient:
    """A Flask test client of ``console_app`` (keeps cookies)."""
    return console_app.test_client()


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/console/login") -> str:
    """The CSRF token of the client's session, read from a console page."""
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    found = CSRF_META.search(page) or CSRF_INPUT.search(page)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def client_login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    """Log a test client in through the login form; the POST's response."""
    token = csrf_of(client)
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token},
    )
