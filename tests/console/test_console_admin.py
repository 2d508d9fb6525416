"""Users admin and the audit log, through the Flask test client and the query functions,
on SQLite and PostgreSQL (``TEST_DB``)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.access import scope_for
from crm_store.accounts import link_phone
from crm_store.audit import AuditFilter, acting_as, changed_fields, search_audit
from crm_store.contact_lists import add_dnc, grant
from crm_store.db import Database
from crm_store.models import Account, AuditLog, Consumer, Meter, MeterReading, User
from crm_store.users import create_user, hash_token, set_active
from tests.console.conftest import PASSWORD, client_login, csrf_of
from web.common import services_of
from web.console.forms import parse_audit_filters, parse_user_form

TVER, KURSK = "Тверская область", "Курская область"
MSK = ZoneInfo("Europe/Moscow")


def add_region_data(session: Session, region: str, n: int) -> dict[str, int]:
    """A consumer with an account in ``region``, a phone, a meter, a reading, a DNC entry and
    a consent (all audited); their ids."""
    consumer = Consumer(full_name=f"Потребитель {n}")
    account = Account(consumer=consumer, number_raw=f"10{n}", number=f"10{n}", region=region)
    session.add_all([consumer, account])
    session.flush()
    phone = f"+7916000000{n}"
    phone_row = link_phone(session, account.id, phone)
    meter = Meter(account_id=account.id, serial=f"M{n}", capacity=6, zones=["T1"])
    session.add(meter)
    session.flush()
    reading = MeterReading(
        meter_id=meter.id, zone="T1", value=100 + n, period=dt.date(2026, 11, 1), source="web"
    )
    session.add(reading)
    session.flush()
    add_dnc(session, phone, reason="просьба абонента", actor="console:boss")
    grant(session, phone, purpose="marketing", reason="анкета", actor="console:boss")
    return {
        "consumer": consumer.id,
        "account": account.id,
        "phone": phone_row.id,
        "meter": meter.id,
        "reading": reading.id,
    }


@pytest.fixture
def two_regions(db: Database) -> dict[str, dict[str, int]]:
    with acting_as("import"), db.transaction() as s:
        return {TVER: add_region_data(s, TVER, 1), KURSK: add_region_data(s, KURSK, 2)}


def objects(entries: list[Any]) -> set[tuple[str, str]]:
    return {(e.entity, e.entity_id) for e in entries}


def test_scoped_auditors_see_only_their_regions_rows(
    db: Database, two_regions: dict[str, dict[str, int]]
) -> None:
    with acting_as("console:boss"), db.transaction() as s:
        create_user(s, "audrey", roles=["auditor"], regions=[TVER])
    everyone = scope_for("root", ["auditor"], None)
    tver = scope_for("audrey", ["auditor"], [TVER])
    nowhere = scope_for("x", ["auditor"], [])
    with db.transaction() as s:
        all_rows = search_audit(s, everyone, limit=200).entries
        tver_rows = search_audit(s, tver, limit=200).entries
        assert search_audit(s, nowhere).entries == []
    entities = {e.entity for e in all_rows}
    assert entities >= {
        "consumer",
        "account",
        "phone_number",
        "account_phone",
        "meter",
        "meter_reading",
        "do_not_contact",
        "consent",
        "user",
    }
    ids = two_regions[TVER]
    mine = objects(tver_rows)
    assert ("consumer", str(ids["consumer"])) in mine
    assert ("account", str(ids["account"])) in mine
    assert ("account_phone", f"{ids['account']}:{ids['phone']}") in mine
    assert ("phone_number", str(ids["phone"])) in mine
    assert ("meter", str(ids["meter"])) in mine
    assert ("meter_reading", str(ids["reading"])) in mine
    assert {e.entity for e in tver_rows} == entities - {"user"}
    kursk = two_regions[KURSK]
    theirs = {
        ("consumer", str(kursk["consumer"])),
        ("account", str(kursk["account"])),
        ("account_phone", f"{kursk['account']}:{kursk['phone']}"),
        ("meter", str(kursk["meter"])),
        ("meter_reading", str(kursk["reading"])),
    }
    assert not mine & theirs
    assert theirs <= objects(all_rows)
    # every consent / DNC row the scoped auditor sees is about a Tver phone
    with db.transaction() as s:
        for entry in tver_rows:
            if entry.entity in ("consent", "do_not_contact"):
                row = s.get(AuditLog, entry.id)
                assert row is not None
                assert row.after is not None
                assert row.after["value"] == "+79160000001"


def test_audit_filters_and_paging(db: Database, two_regions: dict[str, dict[str, int]]) -> None:
    everyone = scope_for("root", ["auditor"], None)
    with db.transaction() as s:
        total = len(search_audit(s, everyone, limit=200).entries)
        by_actor = search_audit(s, everyone, AuditFilter(actor="CONSOLE:BO")).entries
        assert by_actor
        assert {e.actor for e in by_actor} == {"console:boss"}
        account = str(two_regions[KURSK]["account"])
        one = search_audit(s, everyone, AuditFilter(entity="account", entity_id=account))
        assert [(e.entity, e.entity_id, e.action) for e in one.entries] == [
            ("account", account, "insert")
        ]
        assert one.entries[0].changes  # an insert lists every column
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert search_audit(s, everyone, AuditFilter(since=future)).entries == []
        assert len(search_audit(s, everyone, AuditFilter(until=future), limit=200).entries) == total
        pages, before = [], None
        while True:
            page = search_audit(s, everyone, before_id=before, limit=4)
            pages.append([e.id for e in page.entries])
            if page.next_before is None:
                break
            before = page.next_before
    flat = [i for p in pages for i in p]
    assert len(flat) == total
    assert flat == sorted(flat, reverse=True)
    assert all(len(p) == 4 for p in pages[:-1])


def test_changed_fields() -> None:
    assert [c.key for c in changed_fields("update", {"a": 1, "b": 2}, {"a": 1, "b": 3})] == ["b"]
    insert = changed_fields("insert", None, {"x": 1})
    assert [(c.key, c.before, c.after) for c in insert] == [("x", None, 1)]
    assert [c.key for c in changed_fields("delete", {"y": 2}, None)] == ["y"]


def test_audit_filter_form() -> None:
    query = parse_audit_filters(
        {"actor": " console:anna ", "date_from": "2026-12-01", "date_to": "2026-12-01"}, MSK
    )
    assert query.errors == {}
    assert query.filters.actor == "console:anna"
    assert query.filters.since == dt.datetime(2026, 11, 30, 21, 0, tzinfo=dt.UTC)
    assert query.filters.until == dt.datetime(2026, 12, 1, 21, 0, tzinfo=dt.UTC)
    bad = parse_audit_filters(
        {"date_from": "2026-13-01", "entity": "<x>", "date_to": "2026-12-01"}, MSK
    )
    assert set(bad.errors) == {"date_from", "entity"}
    backwards = parse_audit_filters({"date_from": "2026-12-02", "date_to": "2026-12-01"}, MSK)
    assert backwards.errors == {"date_to": "Конец периода раньше его начала."}
    assert parse_audit_filters({"before": "12"}, MSK).before_id == 12
    assert parse_audit_filters({"before": "-1"}, MSK).before_id is None


def test_user_form_messages() -> None:
    form = parse_user_form(
        {
            "username": ["Не латиница"],
            "password": ["short"],
            "confirm_password": ["other"],
            "regions_mode": ["list"],
            "regions": ["Марс"],
        },
        [TVER],
        creating=True,
    )
    assert set(form.errors) == {"username", "password", "confirm_password", "roles", "regions"}
    assert "не менее 10" in form.errors["password"]
    ok = parse_user_form(
        {
            "username": ["Anna.K"],
            "roles": ["operator", "auditor"],
            "regions_mode": ["list"],
            "regions": [TVER],
        },
        [TVER, KURSK],
        creating=True,
    )
    assert ok.errors == {}
    assert (ok.username, ok.roles, ok.regions) == ("anna.k", ["auditor", "operator"], [TVER])
    everywhere = parse_user_form({"roles": ["admin"], "regions_mode": ["all"]}, [], creating=False)
    assert everywhere.errors == {}
    assert everywhere.regions is None


# ------------------------------------------------------------------ users admin over HTTP


@pytest.fixture
def admin_client(console_client: FlaskClient, make_user: Any) -> FlaskClient:
    make_user("root", ["admin"], display_name="Главный")
    assert client_login(console_client, "root").status_code == 302
    return console_client


def post(client: FlaskClient, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf_of(client, "/console/users")})


def test_admin_creates_edits_disables_and_resets_users(
    console_app: Flask,
    admin_client: FlaskClient,
    two_regions: dict[str, dict[str, int]],
    db: Database,
) -> None:
    page = admin_client.get("/console/users/new").get_data(as_text=True)
    assert TVER in page
    assert KURSK in page  # regions offered are those of the accounts
    refused = post(
        admin_client,
        "/console/users/new",
        {"username": "1bad", "regions_mode": "list", "password": "x", "confirm_password": "y"},
    )
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    for message in ("Имя пользователя: от 2", "Выберите хотя бы одну роль", "Пароли не совпадают"):
        assert message in body
    created = post(
        admin_client,
        "/console/users/new",
        {
            "username": "olga",
            "display_name": "<script>alert(1)</script>",
            "roles": ["supervisor", "auditor"],
            "regions_mode": "list",
            "regions": [TVER],
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )
    assert created.status_code == 302
    assert created.headers["Location"] == "/console/users/olga"
    card = admin_client.get("/console/users/olga").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    again = post(
        admin_client,
        "/console/users/new",
        {"username": "olga", "roles": ["operator"], "regions_mode": "all"},
    )
    assert again.status_code == 422
    assert "уже есть" in again.get_data(as_text=True)

    saved = post(
        admin_client,
        "/console/users/olga",
        {"display_name": "Ольга", "roles": ["operator"], "regions_mode": "all"},
    )
    assert saved.status_code == 302
    with db.transaction() as s:
        olga = s.scalars(select(User).where(User.username == "olga")).one()
        assert (olga.role_names, olga.regions, olga.display_name) == (["operator"], None, "Ольга")

    issued = post(admin_client, "/console/users/olga/token", {})
    assert issued.status_code == 200
    token = re.search(r'id="token-value">([^<]+)<', issued.get_data(as_text=True))
    assert token is not None
    with db.transaction() as s:
        olga = s.scalars(select(User).where(User.username == "olga")).one()
        assert olga.api_token_hash == hash_token(token.group(1))
    assert token.group(1) not in admin_client.get("/console/users/olga").get_data(as_text=True)

    short = post(
        admin_client,
        "/console/users/olga/password",
        {"password": "short", "confirm_password": "short"},
    )
    assert short.status_code == 422
    assert "не менее 10" in short.get_data(as_text=True)
    assert (
        post(
            admin_client,
            "/console/users/olga/password",
            {"password": "brand new secret", "confirm_password": "brand new secret"},
        ).status_code
        == 302
    )

    assert post(admin_client, "/console/users/olga/active", {"active": "0"}).status_code == 302
    with db.transaction() as s:
        olga = s.scalars(select(User).where(User.username == "olga")).one()
        assert not olga.active
        assert olga.api_token_hash is None
    listing = admin_client.get("/console/users").get_data(as_text=True)
    assert "отключён" in listing
    post(admin_client, "/console/users/olga/active", {"active": "1"})

    with db.transaction() as s:
        rows = list(
            s.scalars(
                select(AuditLog)
                .where(AuditLog.entity == "user", AuditLog.actor == "console:root")
                .order_by(AuditLog.id)
            )
        )
    assert [r.action for r in rows] == ["insert", "update", "update", "update", "update", "update"]
    assert rows[1].before["roles"] == ["auditor", "supervisor"]
    assert rows[1].after["roles"] == ["operator"]
    assert rows[1].before["regions"] == [TVER]
    assert rows[1].after["regions"] is None

    other = FlaskClient(console_app, use_cookies=True)
    assert client_login(other, "olga", "brand new secret").status_code == 302


def test_admins_cannot_lock_themselves_out(admin_client: FlaskClient, db: Database) -> None:
    demoted = post(
        admin_client,
        "/console/users/root",
        {"display_name": "x", "roles": ["auditor"], "regions_mode": "all"},
    )
    assert demoted.status_code == 422
    assert "с самого себя" in demoted.get_data(as_text=True)
    post(admin_client, "/console/users/root/active", {"active": "0"})
    with db.transaction() as s:
        root = s.scalars(select(User).where(User.username == "root")).one()
        assert root.active
        assert root.role_names == ["admin"]
    assert admin_client.get("/console/users/nobody").status_code == 404


def test_the_audit_page(
    console_app: Flask,
    admin_client: FlaskClient,
    two_regions: dict[str, dict[str, int]],
    db: Database,
    make_user: Any,
) -> None:
    account = two_regions[KURSK]["account"]
    page = admin_client.get(f"/console/audit?entity=account&entity_id={account}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count("<tr data-entity=") == 1
    assert KURSK in text
    bad = admin_client.get("/console/audit?date_from=вчера")
    assert bad.status_code == 422
    assert "ГГГГ-ММ-ДД" in bad.get_data(as_text=True)

    make_user("tver", ["auditor"], regions=[TVER])
    scoped = FlaskClient(console_app, use_cookies=True)
    client_login(scoped, "tver")
    seen = scoped.get("/console/audit?entity=account").get_data(as_text=True)
    assert TVER in seen
    assert KURSK not in seen
    assert (
        scoped.get(f"/console/audit?entity=account&entity_id={account}")
        .get_data(as_text=True)
        .count("<tr data-entity=")
        == 0
    )
    with db.transaction() as s:
        set_active(s, "tver", False)
    assert scoped.get("/console/audit").status_code == 302
    services_of(console_app).db.dispose()
