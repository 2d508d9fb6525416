"""The CRM REST API: consumers, accounts, history, recordings, cases, users, and what a
region-scoped user sees of them (nothing of another region, by any route)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import AuditLog, CallRecording
from tests.app.api_world import CAMPAIGN, MOSCOW, NOW, TVER, World, build_world, make_token, wav
from webhooks import create_app, services_of

AUTH = {"Authorization": "Bearer secret-token"}
ON_MOSCOW = {"type": "callback", "subject": "x", "account": "МСК0001"}


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(
        settings.with_overrides(
            api_token="secret-token",
            recordings_dir=str(tmp_path / "recordings"),
            imports_dir=str(tmp_path / "imports"),
        )
    )
    services_of(application).clock = lambda: NOW
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path / "recordings")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(client: FlaskClient, url: str, headers: dict[str, str] = AUTH, status: int = 200) -> Any:
    answer = client.get(url, headers=headers)
    assert answer.status_code == status, (url, answer.get_json())
    return answer.get_json()


def ids(body: dict[str, Any], key: str = "id") -> list[Any]:
    return [item[key] for item in body["items"]]


def walk(client: FlaskClient, url: str, headers: dict[str, str] = AUTH) -> list[Any]:
    """Every item of a list, a page of one at a time."""
    items: list[Any] = []
    cursor = None
    for _ in range(50):
        sep = "&" if "?" in url else "?"
        page = get(client, f"{url}{sep}limit=1" + (f"&cursor={cursor}" if cursor else ""), headers)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the list never ended")


def test_consumer_search_by_number_phone_ivr_code_and_name(
    client: FlaskClient, world: World
) -> None:
    for q in ("МСК0001", "мск-0001", "8 916 111-00-01", "+79161110001", "1001"):
        assert ids(get(client, f"/api/consumers?q={q}")) == [world.moscow_consumer], q
    named = get(client, "/api/consumers?q=петров")
    assert ids(named) == [world.moscow_consumer, world.both_consumer]
    assert [a["number"] for a in named["items"][1]["accounts"]] == ["МСК0002", "ТВР0002"]
    assert get(client, "/api/consumers?q=99999999")["items"] == []
    short = client.get("/api/consumers?q=п", headers=AUTH)
    assert short.status_code == 422
    assert "2 characters" in short.get_json()["error"]["message"]
    everyone = walk(client, "/api/consumers")
    assert [c["id"] for c in everyone] == sorted(
        [world.moscow_consumer, world.tver_consumer, world.both_consumer]
    )
    one = get(client, f"/api/consumers/{world.moscow_consumer}")
    assert (one["full_name"], one["email"]) == ("Петров Пётр Петрович", "petrov@example.ru")
    assert one["accounts"][0]["region"] == MOSCOW
    assert get(client, "/api/consumers/999999", status=404)["error"]["code"] == "not_found"


def test_account_with_balance_readings_charges_and_payments(
    client: FlaskClient, world: World
) -> None:
    account = get(client, "/api/accounts/мск-0001")
    assert (account["number"], account["region"], account["ivr_code"]) == (
        "МСК0001",
        MOSCOW,
        "1001",
    )
    assert account["consumer"]["id"] == world.moscow_consumer
    assert account["phones"] == [{"phone": "+79161110001", "verified": True, "source": "import"}]
    assert account["meters"][0]["serial"] == "M-1"
    # Two charges of 1500 (both periods begun by 20 Nov), 1000 paid: 2000 owed.
    assert account["balance"]["debt"] == "2000.00"
    assert account["balance"] == get(client, "/api/accounts/МСК0001/balance")
    early = get(client, "/api/accounts/МСК0001/balance?as_of=2026-09-15")
    assert (early["as_of"], early["charged"], early["paid"]) == ("2026-09-15", "1500.00", "0.00")
    assert client.get("/api/accounts/МСК0001/balance?as_of=soon", headers=AUTH).status_code == 422
    readings = walk(client, "/api/accounts/МСК0001/readings")
    assert [r["value"] for r in readings] == [1150, 1000]
    assert get(client, "/api/accounts/МСК0001/readings?meter=X-9")["items"] == []
    charges = walk(client, "/api/accounts/МСК0001/charges")
    assert [c["due_date"] for c in charges] == ["2026-11-10", "2026-10-10"]
    assert charges[0]["amount"] == "1500.00"
    payments = get(client, "/api/accounts/МСК0001/payments")
    assert [(p["amount"], p["channel"]) for p in payments["items"]] == [("1000.00", "sbp")]
    for tail in ("", "/balance", "/readings", "/charges", "/payments"):
        assert client.get(f"/api/accounts/НЕТ0000{tail}", headers=AUTH).status_code == 404


def test_history_pages_filters_and_one_interaction(client: FlaskClient, world: World) -> None:
    url = f"/api/consumers/{world.moscow_consumer}/interactions"
    calls = walk(client, url)
    assert [c["id"] for c in calls] == list(reversed(world.moscow_calls))
    assert [c["has_recording"] for c in calls] == [True, False, False]
    assert calls[0]["account_number"] == "МСК0001"
    since = (NOW.replace(hour=7, minute=30)).isoformat().replace("+00:00", "Z")
    assert ids(get(client, f"{url}?since={since}")) == [world.moscow_calls[2]]
    assert get(client, f"{url}?channel=sms")["items"] == []
    assert len(get(client, f"{url}?text=ДВЕНАДЦАТЬ")["items"]) == 3
    naive = client.get(f"{url}?since=2026-11-20T07:30:00", headers=AUTH)
    assert naive.status_code == 422
    assert naive.get_json()["error"]["details"][0]["path"] == "since"
    bad_cursor = client.get(f"{url}?cursor=nonsense", headers=AUTH)
    assert bad_cursor.status_code == 422
    detail = get(client, f"/api/interactions/{world.moscow_calls[2]}")
    assert [s["step"] for s in detail["steps"]] == ["menu", "reading"]
    assert detail["transcripts"][0]["text"] == "двенадцать тысяч"
    assert detail["recordings"][0]["sid"] == world.moscow_recording
    assert detail["recordings"][0]["available"] is True
    assert client.get("/api/interactions/999999", headers=AUTH).status_code == 404


def test_recording_audio_whole_and_by_range(
    client: FlaskClient, world: World, db: Database
) -> None:
    url = f"/api/recordings/{world.moscow_recording}"
    whole = client.get(url, headers=AUTH)
    assert whole.status_code == 200
    assert whole.mimetype == "audio/wav"
    assert whole.data == wav()
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = client.get(url, headers={**AUTH, "Range": "bytes=0-3"})
    assert (part.status_code, part.data) == (206, b"RIFF")
    with db.transaction() as s:
        row = s.scalars(
            select(CallRecording).where(CallRecording.sid == world.moscow_recording)
        ).one()
        row.deleted_at, row.storage_path = NOW, None
    gone = client.get(url, headers=AUTH)
    assert gone.status_code == 404
    assert "retention" in gone.get_json()["error"]["message"]
    assert client.get("/api/recordings/RE404", headers=AUTH).status_code == 404


def test_a_region_scoped_operator_sees_nothing_of_another_region(
    client: FlaskClient, world: World, db: Database
) -> None:
    me = bearer(make_token(db, "ira", ["operator"], [MOSCOW]))
    who = get(client, "/api/me", me)
    assert (who["user"], who["regions"]) == ("ira", [MOSCOW])
    assert "consumers.read" in who["permissions"]
    everyone = walk(client, "/api/consumers", me)
    assert [c["id"] for c in everyone] == [world.moscow_consumer, world.both_consumer]
    # The consumer of both regions shows only the account of this one.
    assert [a["number"] for a in everyone[1]["accounts"]] == ["МСК0002"]
    for q in ("ТВР0001", "ТВР0002", "2001", "+79162220004", "Сидорова"):
        assert get(client, f"/api/consumers?q={q}", me)["items"] == [], q
    hidden = [
        f"/api/consumers/{world.tver_consumer}",
        f"/api/consumers/{world.tver_consumer}/interactions",
        "/api/accounts/ТВР0001",
        "/api/accounts/ТВР0002/balance",
        "/api/accounts/ТВР0001/readings",
        "/api/accounts/ТВР0001/charges",
        "/api/accounts/ТВР0001/payments",
        f"/api/interactions/{world.tver_interaction}",
        f"/api/recordings/{world.tver_recording}",
        f"/api/cases/{world.tver_case}",
    ]
    for url in hidden:
        answer = client.get(url, headers=me)
        assert answer.status_code == 404, url
        assert answer.get_json()["error"]["code"] == "not_found"
    # A row that does not exist answers the same way: nothing tells the row exists elsewhere.
    assert get(client, "/api/consumers/999999", me, 404)["error"]["code"] == "not_found"
    # The call on the consumer's account of the other region is not in their history.
    assert get(client, f"/api/consumers/{world.both_consumer}/interactions", me)["items"] == []
    assert ids(get(client, "/api/cases", me)) == [world.moscow_case]
    assert [e["phone"] for e in walk(client, "/api/dnc", me)] == [world.moscow_phone]
    assert [e["value"] for e in walk(client, "/api/consents", me)] == [world.moscow_phone]
    # The whole region sees it all.
    admin = bearer(make_token(db, "boss", ["admin"], None))
    assert len(walk(client, "/api/dnc", admin)) == 2
    assert get(client, f"/api/consumers/{world.tver_consumer}", admin)["id"] == world.tver_consumer


def test_scoped_supervisors_see_and_create_only_campaigns_of_their_regions(
    client: FlaskClient, world: World, db: Database
) -> None:
    me = bearer(make_token(db, "olga", ["supervisor"], [MOSCOW]))
    assert ids(get(client, "/api/campaigns", me)) == [world.moscow_campaign]
    for campaign in (world.tver_campaign, world.everywhere_campaign):
        assert client.get(f"/api/campaigns/{campaign}", headers=me).status_code == 404
        assert client.get(f"/api/campaigns/{campaign}/report", headers=me).status_code == 404
        assert client.post(f"/api/campaigns/{campaign}/cancel", headers=me).status_code == 404
    assert get(client, f"/api/campaigns/{world.moscow_campaign}", me)["status"] == "draft"
    for audience in ({"min_debt": 1}, {"min_debt": 1, "regions": [MOSCOW, TVER]}):
        refused = client.post("/api/campaigns", json={**CAMPAIGN, "audience": audience}, headers=me)
        assert refused.status_code == 422
        error = refused.get_json()["error"]
        assert error["details"][0]["path"] == "audience.regions"
        assert MOSCOW in error["details"][0]["message"]
    created = client.post("/api/campaigns", json=CAMPAIGN, headers=me)
    assert created.status_code == 201
    new = created.get_json()["id"]
    assert created.headers["Location"] == f"/api/campaigns/{new}"
    assert ids(get(client, "/api/campaigns", me)) == [new, world.moscow_campaign]
    assert ids(get(client, "/api/campaigns?status=cancelled", me)) == []
    cancelled = client.post(f"/api/campaigns/{new}/cancel", headers=me)
    assert cancelled.get_json() == {"id": new, "status": "cancelled"}
    admin_list = get(client, "/api/campaigns")
    assert set(ids(admin_list)) >= {world.tver_campaign, world.everywhere_campaign}
    assert next(c for c in admin_list["items"] if c["id"] == new)["regions"] == [MOSCOW]
    with db.session() as s:
        trail = s.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.before, AuditLog.after)
            .where(AuditLog.entity == "campaign", AuditLog.entity_id == str(new))
            .order_by(AuditLog.id)
        ).all()
    assert [(actor, action) for actor, action, _, _ in trail] == [
        ("api:olga", "insert"),
        ("api:olga", "update"),
    ]
    assert trail[0].after["regions"] == [MOSCOW]
    assert (trail[1].before, trail[1].after) == ({"status": "draft"}, {"status": "cancelled"})


def test_cases_open_list_work_and_audit(client: FlaskClient, world: World, db: Database) -> None:
    me = bearer(make_token(db, "ira", ["operator"], [MOSCOW]))
    opened = client.post(
        "/api/cases",
        json={"type": "callback", "subject": "перезвонить вечером", "account": "мск-0001"},
        headers=me,
    )
    assert opened.status_code == 201, opened.get_json()
    case = opened.get_json()
    assert (case["account_number"], case["consumer_id"]) == ("МСК0001", world.moscow_consumer)
    assert case["events"][0]["to_status"] == "open"
    assert opened.headers["Location"] == f"/api/cases/{case['id']}"
    assert case["sla_due_at"] is not None
    url = f"/api/cases/{case['id']}"
    moved = client.patch(url, json={"status": "in_progress", "note": "звоню"}, headers=me)
    assert moved.status_code == 200
    assert moved.get_json()["events"][-1] == {
        "at": NOW.isoformat(),
        "actor": "api:ira",
        "from_status": "open",
        "to_status": "in_progress",
        "note": "звоню",
    }
    noted = client.patch(url, json={"note": "не отвечает"}, headers=me).get_json()
    assert noted["status"] == "in_progress"
    assert noted["events"][-1]["note"] == "не отвечает"
    closed = client.patch(url, json={"status": "closed"}, headers=me)
    assert closed.get_json()["closed_at"] == NOW.isoformat()
    again = client.patch(url, json={"status": "open"}, headers=me)
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "conflict")
    assert client.patch(url, json={}, headers=me).status_code == 422
    assert client.patch(url, json={"status": "lost"}, headers=me).status_code == 422
    refused = {
        "no account": ({"type": "callback", "subject": "x"}, 422),
        "other region": ({"type": "callback", "subject": "x", "account": "ТВР0001"}, 404),
        "wrong owner": ({**ON_MOSCOW, "consumer_id": world.both_consumer}, 422),
        "other call": ({**ON_MOSCOW, "interaction_id": world.tver_interaction}, 404),
        "unknown field": ({**ON_MOSCOW, "x": 1}, 422),
    }  # fmt: skip
    for name, (body, status) in refused.items():
        assert client.post("/api/cases", json=body, headers=me).status_code == status, name
    assert ids(get(client, "/api/cases?status=closed", me)) == [case["id"]]
    assert ids(get(client, "/api/cases?account=МСК0001&type=callback", me)) == [
        case["id"],
        world.moscow_case,
    ]
    with db.transaction() as s:
        audit = s.scalars(
            select(AuditLog).where(AuditLog.entity == "case", AuditLog.entity_id == str(case["id"]))
        ).all()
        assert [a.action for a in audit] == ["insert", "update", "update", "update"]
        assert {a.actor for a in audit} == {"api:ira"}
    # An auditor reads cases but does not change them.
    auditor = bearer(make_token(db, "audrey", ["auditor"], None))
    assert get(client, url, auditor)["id"] == case["id"]
    assert client.patch(url, json={"note": "x"}, headers=auditor).status_code == 403


def test_users_are_created_changed_disabled_and_audited(
    client: FlaskClient, world: World, db: Database
) -> None:
    admin = bearer(make_token(db, "root", ["admin"], None))
    created = client.post(
        "/api/users",
        json={"username": "Nina", "roles": ["operator"], "regions": [TVER], "display_name": "Нина"},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    nina = created.get_json()
    assert (nina["username"], nina["regions"], nina["has_api_token"]) == ("nina", [TVER], False)
    for body, status in (
        ({"username": "nina", "roles": ["operator"]}, 409),
        ({"username": "x1", "roles": ["king"]}, 422),
        ({"username": "x1", "roles": []}, 422),
        ({"username": "x1", "roles": ["operator"], "regions": []}, 422),
    ):
        assert client.post("/api/users", json=body, headers=admin).status_code == status, body
    issued = client.post("/api/users/nina/token", headers=admin)
    assert issued.status_code == 201
    token = issued.get_json()["token"]
    assert get(client, "/api/me", bearer(token))["regions"] == [TVER]
    assert get(client, f"/api/consumers/{world.moscow_consumer}", bearer(token), 404)
    changed = client.patch(
        "/api/users/nina", json={"roles": ["supervisor"], "regions": None}, headers=admin
    )
    assert changed.status_code == 200
    assert (changed.get_json()["roles"], changed.get_json()["regions"]) == (["supervisor"], None)
    # The change applies to the next request of that token.
    assert get(client, f"/api/consumers/{world.moscow_consumer}", bearer(token))["id"]
    kept = client.patch("/api/users/nina", json={"display_name": "Нина П."}, headers=admin)
    assert kept.get_json()["roles"] == ["supervisor"]
    assert kept.get_json()["regions"] is None
    assert [u["username"] for u in walk(client, "/api/users?role=supervisor", admin)] == ["nina"]
    disabled = client.patch("/api/users/nina", json={"active": False}, headers=admin)
    assert disabled.get_json()["active"] is False
    assert disabled.get_json()["has_api_token"] is False
    revoked = client.get("/api/me", headers=bearer(token))
    assert revoked.status_code == 401
    assert revoked.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/api/users/nina/token", headers=admin).status_code == 422
    for own in ({"active": False}, {"roles": ["operator"]}):
        assert client.patch("/api/users/root", json=own, headers=admin).status_code == 422
    assert client.get("/api/users/nobody", headers=admin).status_code == 404
    scoped = bearer(make_token(db, "local", ["admin"], [MOSCOW]))
    assert client.get("/api/users", headers=scoped).status_code == 403
    with db.transaction() as s:
        actions = s.scalars(
            select(AuditLog.actor).where(AuditLog.entity == "user").order_by(AuditLog.id)
        ).all()
        assert actions.count("api:root") >= 5  # create, token, roles, name, disable


def test_every_error_is_one_body(client: FlaskClient, world: World) -> None:
    JSON = "application/json"
    answers = [
        (client.get("/api/consumers"), 401),
        (client.get("/api/consumers", headers=bearer("cc_unknown")), 401),
        (client.get("/api/consumers", headers={"Authorization": "Basic eDp5"}), 401),
        (client.get("/api/nowhere", headers=AUTH), 404),
        (client.delete("/api/consumers", headers=AUTH), 405),
        (client.get("/api/consumers?limit=0", headers=AUTH), 422),
        (client.get("/api/consumers?limit=201", headers=AUTH), 422),
        (client.post("/api/cases", data="{", headers={**AUTH, "Content-Type": JSON}), 400),
        (client.post("/api/cases", json=[1], headers=AUTH), 422),
        (client.get("/api/cases/abc", headers=AUTH), 404),
    ]  # fmt: skip
    for answer, status in answers:
        assert answer.status_code == status
        body = answer.get_json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["message"]
    assert answers[0][0].headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert answers[0][0].headers["Cache-Control"] == "no-store"
    listed = client.get("/api/consumers", headers=AUTH)
    assert listed.headers["Cache-Control"] == "no-store"
    assert listed.headers["X-Content-Type-Options"] == "nosniff"
