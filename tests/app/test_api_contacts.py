"""``/api/dnc`` and ``/api/consents``: bearer tokens, permissions, paging, one JSON error body.

Migrated with issue 16: errors are ``{"error": {"code", "message", "details"}}``; operators
read the lists (``contacts.read``) but do not change them; request validation is 422.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.consent import consent_status, is_do_not_contact
from crm_store.db import Database
from crm_store.models import AuditLog
from crm_store.users import create_user, issue_api_token
from webhooks import create_app, services_of

PHONE = "+79161234567"


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(api_token="secret-token"))
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    with db.transaction() as s:
        create_user(s, "olga", roles=["supervisor"])
        create_user(s, "op", roles=["operator"])
        return {"olga": issue_api_token(s, "olga"), "op": issue_api_token(s, "op")}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_supervisors_read_and_write_operators_only_read(
    client: FlaskClient, tokens: dict[str, str], db: Database
) -> None:
    assert client.get("/api/dnc").status_code == 401
    assert client.get("/api/dnc").get_json() == {
        "error": {"code": "unauthorized", "message": "missing bearer token", "details": None}
    }
    assert client.get("/api/consents", headers=auth(tokens["op"])).status_code == 200
    denied = client.post(
        "/api/dnc", json={"phone": PHONE, "reason": "x"}, headers=auth(tokens["op"])
    )
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "forbidden"
    assert "contacts.write" in denied.get_json()["error"]["message"]
    added = client.post(
        "/api/dnc",
        json={"phone": "8 916 123-45-67", "reason": "жалоба", "channel": "voice"},
        headers=auth(tokens["olga"]),
    )
    assert added.status_code == 201, added.get_json()
    body = added.get_json()
    assert body["added"] is True
    entry = body["entry"]
    assert (entry["phone"], entry["channel"], entry["reason"]) == (PHONE, "voice", "жалоба")
    assert entry["created_by"] == "api:olga"
    again = client.post(
        "/api/dnc",
        json={"phone": PHONE, "reason": "x", "channel": "voice"},
        headers=auth(tokens["olga"]),
    )
    assert (again.status_code, again.get_json()["added"]) == (200, False)
    with db.transaction() as s:
        assert is_do_not_contact(s, PHONE, "voice")
        audit = s.scalars(select(AuditLog).where(AuditLog.entity == "do_not_contact")).one()
        assert (audit.actor, audit.reason, audit.action) == ("api:olga", "жалоба", "insert")


def test_delete_paging_and_errors(client: FlaskClient, db: Database) -> None:
    token = auth("secret-token")
    for n in range(3):
        response = client.post(
            "/api/dnc", json={"phone": f"+7916000000{n}", "reason": "r"}, headers=token
        )
        assert response.status_code == 201
    first = client.get("/api/dnc?limit=2", headers=token).get_json()
    assert [i["phone"] for i in first["items"]] == ["+79160000002", "+79160000001"]
    second = client.get(f"/api/dnc?limit=2&cursor={first['next_cursor']}", headers=token)
    assert [i["phone"] for i in second.get_json()["items"]] == ["+79160000000"]
    assert second.get_json()["next_cursor"] is None
    # The API token acts as "api-token" in the audit log.
    assert first["items"][0]["created_by"] == "api:api-token"

    missing_reason = client.delete("/api/dnc/+79160000000", headers=token)
    assert missing_reason.status_code == 400
    assert "reason" in missing_reason.get_json()["error"]["message"]
    removed = client.delete("/api/dnc/+79160000000", json={"reason": "просьба"}, headers=token)
    assert removed.status_code == 200
    assert [e["phone"] for e in removed.get_json()["removed"]] == ["+79160000000"]
    gone = client.delete("/api/dnc/89160000000?reason=again", headers=token)
    assert gone.status_code == 404
    assert gone.get_json()["error"]["code"] == "not_found"

    for bad, status, words in (
        (
            client.post("/api/dnc", json={"phone": "123", "reason": "r"}, headers=token),
            422,
            "номер",
        ),
        (client.post("/api/dnc", json={"phone": PHONE}, headers=token), 422, "reason"),
        (client.post("/api/dnc", data="not json", headers=token), 400, "JSON"),
        (client.get("/api/dnc?limit=abc", headers=token), 422, "limit"),
        (client.get("/api/dnc?cursor=x1", headers=token), 422, "cursor"),
        (client.get("/api/dnc?limit=5000", headers=token), 422, "limit"),
        (client.get("/api/dnc?channel=fax", headers=token), 422, "channel"),
    ):
        assert bad.status_code == status
        body = bad.get_json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}
        assert words.lower() in body["error"]["message"].lower()


def test_bulk_import_by_upload(client: FlaskClient, db: Database) -> None:
    token = auth("secret-token")
    data = {
        "file": (io.BytesIO("телефон;причина\n+79161234567;жалоба\nмусор;\n".encode()), "s.csv"),
        "channel": "sms",
    }
    response = client.post(
        "/api/dnc/import", data=data, headers=token, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["source"], report["added"], report["channel"]) == ("s.csv", 1, "sms")
    assert [e["row"] for e in report["errors"]] == [3]
    refused = client.post(
        "/api/dnc/import",
        data={"file": (io.BytesIO(b"\x00\x01"), "x.csv")},
        headers=token,
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "двоичные" in refused.get_json()["error"]["message"]
    nofile = client.post("/api/dnc/import", headers=token)
    assert nofile.status_code == 400


def test_consents_grant_withdraw_list(client: FlaskClient, db: Database) -> None:
    token = auth("secret-token")
    grant = {"value": "8 916 123 45 67", "purpose": "marketing", "reason": "анкета"}
    created = client.post("/api/consents", json=grant, headers=token)
    assert created.status_code == 201
    assert created.get_json()["consent"]["status"] == "granted"
    assert client.post("/api/consents", json=grant, headers=token).status_code == 200
    withdrawn = client.post(
        "/api/consents/withdraw", json={**grant, "reason": "звонок"}, headers=token
    )
    assert withdrawn.status_code == 200
    assert withdrawn.get_json()["consent"]["status"] == "withdrawn"
    listed = client.get(f"/api/consents?value={PHONE}&purpose=marketing", headers=token)
    [item] = listed.get_json()["items"]
    assert (item["reason"], item["changed_by"]) == ("звонок", "api:api-token")
    with db.transaction() as s:
        assert consent_status(s, PHONE, "marketing") == "withdrawn"
    bad = client.post("/api/consents", json={**grant, "purpose": "spam"}, headers=token)
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"][0]["path"] == "purpose"
