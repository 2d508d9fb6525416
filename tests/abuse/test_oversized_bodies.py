"""Every route of a real ``create_app()`` refuses a body over its limit with 413 — before
authentication, a signature check or a view runs, and whatever it does with a body (most
GET routes never read one). ``/api`` answers with the one error body; nothing is a 500."""

from __future__ import annotations

import io
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.routing import AnyConverter, IntegerConverter, Rule

from tests.abuse.conftest import ConsoleClient, auth
from web.common import MAX_REQUEST_BYTES

CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/json",
    "multipart/form-data; boundary=abuse",
    "text/csv",
)
#: Routes with a larger limit of their own (the ``IMPORT_MAX_MB`` of the abuse settings).
UPLOAD_LIMIT = 1024 * 1024


def _path(app: Flask, rule: Rule) -> str:
    values: dict[str, object] = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        if isinstance(converter, IntegerConverter):
            values[name] = 1
        elif isinstance(converter, AnyConverter):
            values[name] = min(converter.items)
        else:
            values[name] = "x"
    built = app.url_map.bind("localhost").build(rule.endpoint, values, append_unknown=False)
    return urlsplit(built).path  # a websocket rule builds a ws:// URL


def _routes(app: Flask) -> Iterator[tuple[str, str, str]]:
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, _path(app, rule)


def test_the_route_list_covers_every_area(abuse_app: Flask) -> None:
    paths = {path for _, _, path in _routes(abuse_app)}
    for prefix in ("/voice/", "/sms/", "/api/", "/console/", "/media-stream", "/healthz"):
        assert any(p.startswith(prefix) for p in paths), prefix
    assert len(paths) > 60


def test_every_route_refuses_an_oversized_body_with_413(
    abuse_app: Flask, admin_token: str, console: ConsoleClient
) -> None:
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    failures = []
    checked = 0
    for endpoint, method, path in _routes(abuse_app):
        limit = UPLOAD_LIMIT if endpoint == "imports_api.submit_file" else MAX_REQUEST_BYTES
        body = big if limit == MAX_REQUEST_BYTES else b"x" * (limit + 1)
        headers = {**auth(admin_token), "X-CSRF-Token": console.csrf}
        for content_type in CONTENT_TYPES:
            response = console.client.open(
                path, method=method, data=body, headers=headers, content_type=content_type
            )
            checked += 1
            if response.status_code != 413:
                failures.append((method, path, content_type, response.status_code))
            elif path.startswith("/api/"):
                error = response.get_json()["error"]
                assert error == {
                    "code": "too_large",
                    "message": "request entity too large",
                    "details": None,
                }
    assert not failures, failures
    assert checked > 200


def test_a_body_within_the_limit_is_still_served(
    abuse_app: Flask, admin_token: str, console: ConsoleClient
) -> None:
    client = console.client
    assert client.get("/healthz", data=b"x" * MAX_REQUEST_BYTES).status_code == 200
    near = '{"name": "' + "x" * (MAX_REQUEST_BYTES - 100) + '"}'
    response = client.post(
        "/api/campaigns", data=near, content_type="application/json", headers=auth(admin_token)
    )
    assert response.status_code == 422  # validated, not refused for its size
    upload = client.post(
        "/api/imports/payments",
        data={"file": (io.BytesIO(b"a;b\n" * (MAX_REQUEST_BYTES // 4 + 10)), "big.csv")},
        headers=auth(admin_token),
        content_type="multipart/form-data",
    )
    assert upload.status_code == 202, upload.get_json()


@pytest.mark.parametrize("path", ["/api/campaigns", "/voice/incoming", "/console/login"])
def test_an_oversized_body_is_refused_before_authentication(abuse_app: Flask, path: str) -> None:
    response = abuse_app.test_client().post(path, data=b"x" * (MAX_REQUEST_BYTES + 1))
    assert response.status_code == 413
