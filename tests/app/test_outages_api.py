"""``/api/outages``: bearer-token auth, validation with field errors, create, update, list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import Outage
from crm_store.users import create_user, issue_api_token
from webhooks import create_app, services_of

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer secret-token"}


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(api_token="secret-token"))
    services_of(application).clock = lambda: NOW
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def outage(**overrides: Any) -> dict[str, Any]:
    body = {
        "external_id": "GRID-7",
        "kind": "emergency",
        "settlement": "г. Москва",
        "street": "ул. Ленина",
        "houses": "1-15",
        "starts_at": "2026-11-20T10:00:00+03:00",
        "expected_end_at": "2026-11-20T16:00:00+03:00",
        "reason": "повреждение кабеля",
    }
    body.update(overrides)
    return body


def count(db: Database) -> int:
    with db.transaction() as s:
        return len(s.scalars(select(Outage)).all())


def test_authentication(client: FlaskClient, db: Database) -> None:
    assert client.post("/api/outages", json=outage()).status_code == 401
    assert client.get("/api/outages", headers={"Authorization": "Bearer nope"}).status_code == 401
    with db.transaction() as s:
        create_user(s, "olga", roles=["supervisor"])
        create_user(s, "op", roles=["operator"])
        olga, op = issue_api_token(s, "olga"), issue_api_token(s, "op")
    forbidden = client.post(
        "/api/outages", json=outage(), headers={"Authorization": f"Bearer {op}"}
    )
    assert forbidden.status_code == 403
    created = client.post(
        "/api/outages", json=outage(), headers={"Authorization": f"Bearer {olga}"}
    )
    assert created.status_code == 201
    assert count(db) == 1


def test_create_then_update_then_unchanged(client: FlaskClient, db: Database) -> None:
    first = client.post("/api/outages", json=outage(), headers=AUTH)
    assert first.status_code == 201
    (item,) = first.get_json()["outages"]
    assert (item["external_id"], item["result"], item["index"]) == ("GRID-7", "created", 0)
    later = client.post(
        "/api/outages",
        json=[outage(expected_end_at="2026-11-20T18:00:00+03:00")],
        headers=AUTH,
    )
    assert later.status_code == 200
    assert later.get_json()["outages"][0]["result"] == "updated"
    again = client.post(
        "/api/outages",
        json={"outages": [outage(expected_end_at="2026-11-20T18:00:00+03:00")]},
        headers=AUTH,
    )
    assert (again.status_code, again.get_json()["outages"][0]["result"]) == (200, "unchanged")
    with db.transaction() as s:
        stored = s.scalars(select(Outage)).one()
        assert stored.source == "api"
        assert stored.expected_end_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_invalid_items_store_nothing(client: FlaskClient, db: Database) -> None:
    answer = client.post(
        "/api/outages",
        json=[
            outage(external_id="OK-1"),
            outage(external_id="BAD", kind="storm", starts_at="tomorrow"),
            "not an object",
            outage(external_id="OK-1", houses="2-8"),
        ],
        headers=AUTH,
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["code"], error["message"]) == ("bad_request", "invalid outages")
    fields = {(e["index"], e["field"]) for e in error["details"]}
    assert fields == {(1, "kind"), (1, "starts_at"), (2, "*"), (3, "external_id")}
    assert count(db) == 0


@pytest.mark.parametrize(
    ("payload", "status"),
    [("not json", 400), ([], 400), (42, 400), ([{"kind": "planned"}] * 501, 400)],
)
def test_malformed_requests(client: FlaskClient, db: Database, payload: Any, status: int) -> None:
    if isinstance(payload, str):
        answer = client.post(
            "/api/outages", data=payload, headers={**AUTH, "Content-Type": "application/json"}
        )
    else:
        answer = client.post("/api/outages", json=payload, headers=AUTH)
    assert answer.status_code == status
    assert "error" in answer.get_json()
    assert count(db) == 0


def test_list_active(client: FlaskClient) -> None:
    client.post(
        "/api/outages",
        json=[
            outage(external_id="NOW"),
            outage(
                external_id="LATER",
                kind="planned",
                starts_at="2026-11-21T10:00:00+03:00",
                expected_end_at="2026-11-21T16:00:00+03:00",
            ),
            outage(
                external_id="OVER",
                starts_at="2026-11-19T10:00:00+03:00",
                expected_end_at="2026-11-19T16:00:00+03:00",
            ),
        ],
        headers=AUTH,
    )
    active = client.get("/api/outages?active=1", headers=AUTH).get_json()["items"]
    assert [o["external_id"] for o in active] == ["NOW"]
    assert active[0]["starts_at"] == "2026-11-20T07:00:00+00:00"
    assert active[0]["houses"] == "1-15"
    everything = client.get("/api/outages", headers=AUTH).get_json()["items"]
    assert [o["external_id"] for o in everything] == ["LATER", "NOW", "OVER"]
    two = client.get("/api/outages?limit=2", headers=AUTH).get_json()
    assert [o["external_id"] for o in two["items"]] == ["LATER", "NOW"]
    rest = client.get(f"/api/outages?limit=2&cursor={two['next_cursor']}", headers=AUTH)
    assert [o["external_id"] for o in rest.get_json()["items"]] == ["OVER"]
    assert rest.get_json()["next_cursor"] is None
    assert client.get("/api/outages?active=maybe", headers=AUTH).status_code == 422
    assert client.delete("/api/outages", headers=AUTH).status_code == 405


def test_an_outage_given_by_feeder_alone(client: FlaskClient, db: Database) -> None:
    answer = client.post(
        "/api/outages",
        json=outage(external_id="F-12", settlement=None, street=None, houses=None, feeder="Ф-12"),
        headers=AUTH,
    )
    assert answer.status_code == 201, answer.get_json()
    with db.transaction() as s:
        stored = s.scalars(select(Outage)).one()
        assert (stored.feeder, stored.feeder_key, stored.street_key) == ("Ф-12", "12", "")
    nowhere = client.post(
        "/api/outages",
        json=outage(external_id="X", settlement=None, street=None, houses=None),
        headers=AUTH,
    )
    assert nowhere.status_code == 400
    assert nowhere.get_json()["error"]["details"] == [
        {
            "index": 0,
            "field": "settlement",
            "reason": "не указано место: населённый пункт, улица, фидер или подстанция",
        }
    ]
    assert count(db) == 1
