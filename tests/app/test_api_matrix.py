"""The permission matrix: every role × region × every operation of the OpenAPI document.

The operations come from the generated document, so an endpoint added without a line in
:data:`EXPECTED` (its permission, whether it needs all regions, how another region's user
fares) fails this test. Each user is an admin, supervisor, operator, auditor or developer of
all regions, of the probed row's region (Москва) or of another one (Тверь); the answer must
be what ``crm_store.access.ROLE_PERMISSIONS`` and the row's region say: 403 without the
permission, 403 for a region-scoped user on an all-regions operation, the "other region"
answer (404: the row is not revealed; 403/422 for a change aimed at another region), else
success. Without a token, with an unknown one or a disabled user's, every non-public
operation is 401.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from contactcenter.config import Settings
from crm_store.access import ROLE_PERMISSIONS
from crm_store.consent import add_do_not_contact
from crm_store.db import Database
from crm_store.models import Campaign, ImportRun
from crm_store.users import set_active
from tests.app.api_world import (
    CAMPAIGN,
    NOW,
    REGION_KINDS,
    ROLES,
    World,
    build_world,
    make_token,
)
from webhooks import create_app, services_of

SUCCESS = {200, 201, 202}
#: (method, OpenAPI path) → (permission, needs all regions, the answer to another region's
#: user when they hold the permission: "ok", or a status).
EXPECTED: dict[tuple[str, str], tuple[str | None, bool, int | str]] = {
    ("get", "/api/openapi.json"): (None, False, "ok"),
    ("get", "/api/docs"): (None, False, "ok"),
    ("get", "/api/me"): (None, False, "ok"),
    ("get", "/api/consumers"): ("consumers.read", False, "ok"),
    ("get", "/api/consumers/{consumer_id}"): ("consumers.read", False, 404),
    ("get", "/api/consumers/{consumer_id}/interactions"): ("consumers.read", False, 404),
    ("get", "/api/interactions/{interaction_id}"): ("consumers.read", False, 404),
    ("get", "/api/recordings/{sid}"): ("consumers.read", False, 404),
    ("get", "/api/accounts/{number}"): ("consumers.read", False, 404),
    ("get", "/api/accounts/{number}/balance"): ("consumers.read", False, 404),
    ("get", "/api/accounts/{number}/readings"): ("consumers.read", False, 404),
    ("get", "/api/accounts/{number}/charges"): ("consumers.read", False, 404),
    ("get", "/api/accounts/{number}/payments"): ("consumers.read", False, 404),
    ("get", "/api/cases"): ("consumers.read", False, "ok"),
    ("post", "/api/cases"): ("consumers.write", False, 404),
    ("get", "/api/cases/{case_id}"): ("consumers.read", False, 404),
    ("patch", "/api/cases/{case_id}"): ("consumers.write", False, 404),
    ("get", "/api/dnc"): ("contacts.read", False, "ok"),
    ("post", "/api/dnc"): ("contacts.write", False, 403),
    ("delete", "/api/dnc/{phone}"): ("contacts.write", False, 404),
    ("post", "/api/dnc/import"): ("contacts.write", True, 403),
    ("get", "/api/consents"): ("contacts.read", False, "ok"),
    ("post", "/api/consents"): ("contacts.write", False, 403),
    ("post", "/api/consents/withdraw"): ("contacts.write", False, 403),
    ("get", "/api/campaigns"): ("campaigns.read", False, "ok"),
    ("post", "/api/campaigns"): ("campaigns.write", False, 422),
    ("get", "/api/campaigns/{campaign_id}"): ("campaigns.read", False, 404),
    ("get", "/api/campaigns/{campaign_id}/preview"): ("campaigns.read", False, 404),
    ("get", "/api/campaigns/{campaign_id}/report"): ("campaigns.read", False, 404),
    ("post", "/api/campaigns/{campaign_id}/{action}"): ("campaigns.write", False, 404),
    ("get", "/api/outages"): ("consumers.read", False, "ok"),
    ("post", "/api/outages"): ("imports.write", True, 403),
    ("get", "/api/imports"): ("imports.write", True, 403),
    ("post", "/api/imports/{kind}"): ("imports.write", True, 403),
    ("get", "/api/imports/{run_id}"): ("imports.write", True, 403),
    ("get", "/api/users"): ("users.admin", True, 403),
    ("post", "/api/users"): ("users.admin", True, 403),
    ("get", "/api/users/{username}"): ("users.admin", True, 403),
    ("patch", "/api/users/{username}"): ("users.admin", True, 403),
    ("post", "/api/users/{username}/token"): ("users.admin", True, 403),
}
PUBLIC = {("get", "/api/openapi.json"), ("get", "/api/docs")}


@dataclass
class Probe:
    """How to call one operation on rows of Москва: the URL and the request's extras."""

    url: str
    extra: dict[str, Any]


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


def _probes(world: World, db: Database) -> dict[tuple[str, str], Callable[[], Probe]]:
    """A fresh request for every operation (writes get fresh rows where they use them up)."""
    fresh = itertools.count(1)

    def draft() -> int:
        with db.transaction() as s:
            row = Campaign(name="черновик", channel="sms", status="draft", definition=CAMPAIGN)
            s.add(row)
            s.flush()
            return int(row.id)

    def listed() -> str:
        with db.transaction() as s:
            add_do_not_contact(s, world.moscow_phone, channel="voice", reason="supervisor")
        return world.moscow_phone

    with db.transaction() as s:
        run = ImportRun(kind="payments", source="x.csv", status="completed", actor="t")
        s.add(run)
        s.flush()
        run_id = run.id
    make_token(db, "target", ["operator"], None)
    consent = {"value": world.moscow_phone, "purpose": "marketing", "reason": "анкета"}
    outage = {
        "kind": "planned",
        "settlement": "г. Москва",
        "street": "ул. Ленина",
        "starts_at": "2026-11-21T10:00:00+03:00",
        "expected_end_at": "2026-11-21T16:00:00+03:00",
    }

    def upload(name: str, data: bytes) -> dict[str, Any]:
        return {
            "data": {"file": (io.BytesIO(data), name)},
            "content_type": "multipart/form-data",
        }

    c, acc, case = world.moscow_consumer, world.moscow_account, world.moscow_case
    camp = world.moscow_campaign
    return {
        ("get", "/api/openapi.json"): lambda: Probe("/api/openapi.json", {}),
        ("get", "/api/docs"): lambda: Probe("/api/docs", {}),
        ("get", "/api/me"): lambda: Probe("/api/me", {}),
        ("get", "/api/consumers"): lambda: Probe("/api/consumers?q=Петров", {}),
        ("get", "/api/consumers/{consumer_id}"): lambda: Probe(f"/api/consumers/{c}", {}),
        ("get", "/api/consumers/{consumer_id}/interactions"): lambda: Probe(
            f"/api/consumers/{c}/interactions", {}
        ),
        ("get", "/api/interactions/{interaction_id}"): lambda: Probe(
            f"/api/interactions/{world.moscow_calls[0]}", {}
        ),
        ("get", "/api/recordings/{sid}"): lambda: Probe(
            f"/api/recordings/{world.moscow_recording}", {}
        ),
        ("get", "/api/accounts/{number}"): lambda: Probe(f"/api/accounts/{acc}", {}),
        ("get", "/api/accounts/{number}/balance"): lambda: Probe(
            f"/api/accounts/{acc}/balance", {}
        ),
        ("get", "/api/accounts/{number}/readings"): lambda: Probe(
            f"/api/accounts/{acc}/readings", {}
        ),
        ("get", "/api/accounts/{number}/charges"): lambda: Probe(
            f"/api/accounts/{acc}/charges", {}
        ),
        ("get", "/api/accounts/{number}/payments"): lambda: Probe(
            f"/api/accounts/{acc}/payments", {}
        ),
        ("get", "/api/cases"): lambda: Probe("/api/cases", {}),
        ("post", "/api/cases"): lambda: Probe(
            "/api/cases", {"json": {"type": "callback", "subject": "x", "account": acc}}
        ),
        ("get", "/api/cases/{case_id}"): lambda: Probe(f"/api/cases/{case}", {}),
        ("patch", "/api/cases/{case_id}"): lambda: Probe(
            f"/api/cases/{case}", {"json": {"note": "заметка"}}
        ),
        ("get", "/api/dnc"): lambda: Probe("/api/dnc", {}),
        ("post", "/api/dnc"): lambda: Probe(
            "/api/dnc", {"json": {"phone": world.moscow_phone, "reason": "просьба"}}
        ),
        ("delete", "/api/dnc/{phone}"): lambda: Probe(
            f"/api/dnc/{listed()}?channel=voice&reason=ошибка", {}
        ),
        ("post", "/api/dnc/import"): lambda: Probe(
            "/api/dnc/import", upload("list.csv", b"+79161110001\n")
        ),
        ("get", "/api/consents"): lambda: Probe("/api/consents", {}),
        ("post", "/api/consents"): lambda: Probe("/api/consents", {"json": consent}),
        ("post", "/api/consents/withdraw"): lambda: Probe(
            "/api/consents/withdraw", {"json": consent}
        ),
        ("get", "/api/campaigns"): lambda: Probe("/api/campaigns", {}),
        ("post", "/api/campaigns"): lambda: Probe("/api/campaigns", {"json": CAMPAIGN}),
        ("get", "/api/campaigns/{campaign_id}"): lambda: Probe(f"/api/campaigns/{camp}", {}),
        ("get", "/api/campaigns/{campaign_id}/preview"): lambda: Probe(
            f"/api/campaigns/{camp}/preview", {}
        ),
        ("get", "/api/campaigns/{campaign_id}/report"): lambda: Probe(
            f"/api/campaigns/{camp}/report", {}
        ),
        ("post", "/api/campaigns/{campaign_id}/{action}"): lambda: Probe(
            f"/api/campaigns/{draft()}/cancel", {}
        ),
        ("get", "/api/outages"): lambda: Probe("/api/outages", {}),
        ("post", "/api/outages"): lambda: Probe("/api/outages", {"json": outage}),
        ("get", "/api/imports"): lambda: Probe("/api/imports", {}),
        ("post", "/api/imports/{kind}"): lambda: Probe(
            "/api/imports/payments", upload("p.csv", b"5500112233;1,00;01.12.2026;X;\n")
        ),
        ("get", "/api/imports/{run_id}"): lambda: Probe(f"/api/imports/{run_id}", {}),
        ("get", "/api/users"): lambda: Probe("/api/users", {}),
        ("post", "/api/users"): lambda: Probe(
            "/api/users", {"json": {"username": f"new{next(fresh)}", "roles": ["operator"]}}
        ),
        ("get", "/api/users/{username}"): lambda: Probe("/api/users/target", {}),
        ("patch", "/api/users/{username}"): lambda: Probe(
            "/api/users/target", {"json": {"display_name": f"Цель {next(fresh)}"}}
        ),
        ("post", "/api/users/{username}/token"): lambda: Probe("/api/users/target/token", {}),
    }


def _expected(op: tuple[str, str], role: str, region: str) -> int | str:
    permission, all_regions, other = EXPECTED[op]
    if op in PUBLIC or permission is None:
        return "ok"
    if permission not in ROLE_PERMISSIONS[role]:
        return 403
    if all_regions and region != "all":
        return 403
    return other if region == "other" else "ok"


def _call(client: FlaskClient, method: str, probe: Probe, headers: dict[str, str]) -> Any:
    return client.open(probe.url, method=method.upper(), headers=headers, **probe.extra)


def test_every_role_and_region_gets_what_the_permission_table_says(
    app: Flask, db: Database, tmp_path: Path
) -> None:
    world = build_world(db, tmp_path / "recordings")
    client = app.test_client()
    document = client.get("/api/openapi.json").get_json()
    operations = {
        (method, path): entry
        for path, item in document["paths"].items()
        for method, entry in item.items()
    }
    # Every operation is in the table, and the document says what the table says.
    assert set(operations) == set(EXPECTED)
    for op, (permission, all_regions, _) in EXPECTED.items():
        assert operations[op]["x-permission"] == permission, op
        assert operations[op]["x-all-regions"] is all_regions, op
        assert (operations[op].get("security") == []) is (op in PUBLIC), op
    probes = _probes(world, db)
    assert set(probes) == set(EXPECTED)
    tokens = {
        (role, region): make_token(db, f"{role[:3]}-{region}", [role], regions)
        for role in ROLES
        for region, regions in REGION_KINDS.items()
    }
    disabled = make_token(db, "gone", ["admin"], None)
    with db.transaction() as s:
        set_active(s, "gone", False)
    wrong: list[str] = []
    for op in sorted(EXPECTED):
        method = op[0]
        for headers, name in (
            ({}, "no token"),
            ({"Authorization": "Bearer cc_nobody"}, "unknown token"),
            ({"Authorization": f"Bearer {disabled}"}, "disabled user"),
        ):
            answer = _call(client, method, probes[op](), headers)
            want = 200 if op in PUBLIC else 401
            if answer.status_code != want:
                wrong.append(f"{op} {name}: {answer.status_code}, expected {want}")
        for (role, region), token in tokens.items():
            answer = _call(client, method, probes[op](), {"Authorization": f"Bearer {token}"})
            want = _expected(op, role, region)
            good = answer.status_code in SUCCESS if want == "ok" else answer.status_code == want
            if not good:
                body = answer.get_json(silent=True)
                wrong.append(f"{op} {role}/{region}: {answer.status_code} {body}, expected {want}")
    assert wrong == []
