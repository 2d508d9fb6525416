"""``/api/openapi.json`` and ``/api/docs``: generated from the code, valid, complete."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from flask import Flask
from openapi_spec_validator import validate
from pydantic import BaseModel
from spectree import Response as Responses
from sqlalchemy.exc import OperationalError

from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import (
    CAMPAIGN_CHANNELS,
    CAMPAIGN_STATUSES,
    CASE_STATUSES,
    CASE_TYPES,
    CONSENT_PURPOSES,
    DNC_CHANNELS,
    IMPORT_KINDS,
    ROLE_NAMES,
)
from web import api, api_cases, api_contacts, api_imports, api_users
from web.api_common import api_blueprint, api_rules, operation
from webhooks import create_app, services_of


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(api_token="secret-token"))
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    answer = app.test_client().get("/api/openapi.json")  # public: no token
    assert answer.status_code == 200
    body: dict[str, Any] = answer.get_json()
    return body


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): entry
        for path, item in document["paths"].items()
        for method, entry in item.items()
    }


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ids = [entry["operationId"] for entry in operations(document).values()]
    assert len(ids) == len(set(ids))


def test_every_api_route_is_in_the_document_and_nothing_else(
    app: Flask, document: dict[str, Any]
) -> None:
    routes = {(method, path) for path, method, _ in api_rules(app)}
    assert len(routes) > 30
    assert routes == set(operations(document))


def test_every_operation_documents_its_errors_and_permission(document: dict[str, Any]) -> None:
    for (method, path), entry in operations(document).items():
        answers = entry["responses"]
        error = {"$ref": "#/components/schemas/ErrorBody"}
        if entry.get("security") == []:
            assert path in ("/api/openapi.json", "/api/docs")
            continue
        assert "x-permission" in entry, (method, path)
        for code in ("401", "403", "422"):
            assert answers[code]["content"]["application/json"]["schema"] == error, (path, code)
        if "requestBody" in entry and "application/json" in entry["requestBody"]["content"]:
            assert "400" in answers, (method, path)
        success = [c for c in answers if c.startswith("2")]
        assert success, (method, path)
    lists = [
        entry
        for (method, _), entry in operations(document).items()
        if method == "get" and "Page" in str(entry["responses"]["200"].get("content", {}))
    ]
    assert len(lists) >= 12
    for entry in lists:
        names = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
        assert {"limit", "cursor"} <= names, entry["operationId"]


def test_the_docs_page_lists_every_operation_without_scripts(
    app: Flask, document: dict[str, Any]
) -> None:
    page = app.test_client().get("/api/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script" not in html
    assert "Bearer &lt;token&gt;" in html  # every text is escaped
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    for (method, path), entry in operations(document).items():
        assert f'id="{entry["operationId"]}"' in html
        block = html.split(f'id="{entry["operationId"]}"', 1)[1]
        assert re.search(rf">{method.upper()}</span>\s*<span class=\"p\">{re.escape(path)}<", block)
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html


def test_the_models_enumerate_what_the_database_allows() -> None:
    pairs = [
        (api.CampaignStatusName, CAMPAIGN_STATUSES),
        (api.ChannelName, CAMPAIGN_CHANNELS),
        (api_contacts.Channel, DNC_CHANNELS),
        (api_contacts.Purpose, CONSENT_PURPOSES),
        (api_imports.Kind, IMPORT_KINDS),
        (api_cases.CaseType, CASE_TYPES),
        (api_cases.CaseStatus, CASE_STATUSES),
        (api_users.RoleName, ROLE_NAMES),
    ]
    for literal, values in pairs:
        assert set(get_args(literal)) == set(values), literal


class _Answer(BaseModel):
    """What the probe view promises."""

    count: int


def _probe_app(settings: Settings) -> Flask:
    """A bare app with one API blueprint whose views break their promises."""
    bp = api_blueprint("probe_api", __name__, "/api/probe")

    @bp.get("/wrong")
    @operation(permission=None, resp=Responses(HTTP_200=_Answer), tags=["probe"])
    def wrong_answer() -> dict[str, Any]:
        """Answers what its model refuses."""
        return {"count": "many"}

    @bp.get("/outage")
    @operation(permission=None, resp=Responses(HTTP_200=_Answer), tags=["probe"])
    def outage() -> dict[str, Any]:
        """Meets a database outage."""
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    @bp.get("/bug")
    @operation(permission=None, resp=Responses(HTTP_200=_Answer), tags=["probe"])
    def bug() -> dict[str, Any]:
        """Has a bug."""
        raise KeyError("oops")

    app = Flask(__name__)
    app.extensions["services"] = Services(settings.with_overrides(api_token="secret-token"))
    app.register_blueprint(bp)
    return app


def test_broken_promises_outages_and_bugs_are_the_one_body(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app = _probe_app(settings)
    client = app.test_client()
    auth = {"Authorization": "Bearer secret-token"}
    for url, status, code in (
        ("/api/probe/wrong", 500, "internal_error"),
        ("/api/probe/outage", 503, "unavailable"),
        ("/api/probe/bug", 500, "internal_error"),
    ):
        answer = client.get(url, headers=auth)
        assert answer.status_code == status, url
        assert answer.get_json()["error"]["code"] == code
        assert "many" not in answer.get_data(as_text=True)
    assert client.get("/api/probe/outage", headers=auth).headers["Retry-After"] == "5"
    assert "answered what its response model refuses" in caplog.text
    assert "KeyError" in caplog.text
    app.extensions["services"].db.dispose()
