"""Injection strings in stored text: SQL (``'; DROP TABLE consumers; --``) and HTML/JS or
template text (``<script>``, ``"><img onerror>``, ``{{7*7}}``) sent through an inbound SMS,
a consumer import file, an operator's note, a case and a campaign name are stored as given,
leave every table and row in place, are shown escaped by the console (consumer 360, search,
desk, campaign list and page, report, audit log), and formula text (``=``, ``+``, ``-``,
``@``) is neutralised in the CSV and XLSX downloads."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from openpyxl import load_workbook
from sqlalchemy import func, inspect, select

from contactcenter.config import Settings
from crm_store.console_consumers import OPERATOR_OUTCOMES
from crm_store.db import Database
from crm_store.importer import COLUMNS, import_consumers
from crm_store.models import Account, Campaign, Case, Consumer, Interaction
from telephony.signing import sign
from tests.abuse.conftest import ConsoleClient, auth
from tests.console.pages_fixtures import MOSCOW, add_account, add_call
from webhooks import services_of

SQL = ("'; DROP TABLE consumers; --", '" OR 1=1 --')
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{7*7}}"
HTML = (SCRIPT, IMG, TEMPLATE)
PAYLOADS = SQL + HTML
#: Text a spreadsheet would run as a formula.
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+1+1", "-1+1", "@SUM(1)")
PHONE = "+79161234567"
#: Tables the payloads name or reach; each must still be there, with its rows.
TABLES = {"consumers", "accounts", "interactions", "cases", "campaigns", "audit_log", "users"}


def assert_escaped(html: str, values: tuple[str, ...] = PAYLOADS) -> None:
    """No payload is live markup in ``html``; each is there in its escaped form."""
    assert SCRIPT not in html
    assert "<img src=x" not in html
    for value in values:
        assert str(escape(value)) in html, value
    if TEMPLATE in values:
        assert TEMPLATE in html  # shown as text, never evaluated by a template


def assert_tables_intact(db: Database, counts: dict[type[Any], int]) -> None:
    """Every table is still there and holds at least ``counts`` rows."""
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.session() as s:
        for model, expected in counts.items():
            assert s.scalar(select(func.count()).select_from(model)) >= expected, model


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.get_data(as_text=True))


@pytest.fixture
def consumer_id(db: Database) -> int:
    """A Moscow consumer with an account and the phone ``PHONE``."""
    with db.transaction() as s:
        return int(add_account(s, "Петров Пётр", MOSCOW, "5500112233", phone=PHONE).consumer_id)


# --------------------------------------------------------------------------- inbound SMS


def _signed_post(client: FlaskClient, settings: Settings, path: str, form: dict[str, str]) -> Any:
    signature = sign(settings.webhook_auth_token, settings.public_base_url + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_an_inbound_sms_body_is_stored_as_given_and_shown_escaped(
    abuse_app: Flask, console: ConsoleClient, db: Database, consumer_id: int
) -> None:
    client = abuse_app.test_client()
    settings = services_of(abuse_app).settings
    bodies = PAYLOADS + FORMULAS
    for n, body in enumerate(bodies):
        form = {"MessageSid": f"SM{n:032x}", "From": PHONE, "To": "+78001234567", "Body": body}
        response = _signed_post(client, settings, "/sms/incoming", form)
        assert response.status_code == 200, (body, response.get_data(as_text=True)[:300])
    assert_tables_intact(db, {Consumer: 1, Account: 1, Interaction: len(bodies)})
    with db.session() as s:
        stored = set(s.scalars(select(Interaction.summary).where(Interaction.channel == "sms")))
    assert stored == set(bodies)
    assert_escaped(_page(console.client, f"/console/consumers/{consumer_id}"))
    export = console.client.get(f"/console/consumers/{consumer_id}/timeline.csv")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    contents = {row[-1] for row in rows[1:]}
    assert {"'" + formula for formula in FORMULAS} <= contents
    phone_column = rows[0].index("Телефон")  # +7…: a number to a spreadsheet, not a formula
    for row in rows[1:]:
        del row[phone_column]
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


# --------------------------------------------------------------------------- import file


def test_a_consumer_import_with_hostile_names_and_addresses(
    console: ConsoleClient, db: Database, consumer_id: int, tmp_path: Path
) -> None:
    rows = []
    for n, value in enumerate(PAYLOADS):
        number = f"55001122{40 + n}"
        cells = dict.fromkeys(COLUMNS, "")
        cells.update(
            account_number=number,
            full_name=f"Иванов {value}",
            address=f"г. Москва, {value}, д. 1",
            timezone="Europe/Moscow",
            meter_serial=f"SN-{n:04}",
            meter_capacity="5",
            meter_zones="общая",
            last_readings="00123",
            last_reading_date="15.10.2026",
        )
        rows.append(cells)
    path = tmp_path / "consumers.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    report = import_consumers(db, path, today=date(2026, 11, 20))
    assert report.errors == [], report.lines()
    assert_tables_intact(db, {Consumer: 1 + len(PAYLOADS), Account: 1 + len(PAYLOADS)})
    with db.session() as s:
        imported = {
            value: s.scalars(select(Account).where(Account.number == f"55001122{40 + n}")).one()
            for n, value in enumerate(PAYLOADS)
        }
        for value, account in imported.items():
            assert account.consumer.full_name == f"Иванов {value}"
            assert value in (account.service_address or "")
        ids = {value: account.consumer_id for value, account in imported.items()}
    for value, cid in ids.items():
        page = _page(console.client, f"/console/consumers/{cid}")
        assert_escaped(page, (value,))
        desk = _page(console.client, f"/console/desk/consumers/{cid}")
        assert_escaped(desk, (value,))
    found = _page(console.client, "/console/consumers?q=Иванов")
    assert_escaped(found, tuple(ids))


# --------------------------------------------------------------------------- notes and cases


def test_an_operator_note_and_a_case_are_shown_escaped(
    api: FlaskClient, admin_token: str, console: ConsoleClient, db: Database, consumer_id: int
) -> None:
    note = " ".join(PAYLOADS)
    done = console.client.post(
        f"/console/desk/consumers/{consumer_id}/note",
        data={"outcome": OPERATOR_OUTCOMES[0], "note": note, "csrf_token": console.csrf},
    )
    assert done.status_code == 302, done.get_data(as_text=True)[:300]
    for value in PAYLOADS:
        created = api.post(
            "/api/cases",
            json={
                "type": "callback",
                "subject": value,
                "description": f"описание {value}",
                "consumer_id": consumer_id,
            },
            headers=auth(admin_token),
        )
        assert created.status_code == 201, created.get_json()
        case = api.get(created.headers["Location"], headers=auth(admin_token)).get_json()
        assert case["subject"] == value
    assert_tables_intact(db, {Consumer: 1, Case: len(PAYLOADS), Interaction: 1})
    with db.session() as s:
        assert note in set(s.scalars(select(Interaction.summary)))
    assert_escaped(_page(console.client, f"/console/consumers/{consumer_id}"))
    assert_escaped(_page(console.client, f"/console/desk/consumers/{consumer_id}"))
    assert_escaped(_page(console.client, "/console/audit"))


# --------------------------------------------------------------------------- campaigns


def _campaign(api: FlaskClient, token: str, name: str) -> int:
    created = api.post(
        "/api/campaigns",
        json={
            "name": name,
            "channel": "sms",
            "audience": {"min_debt": 1, "regions": [MOSCOW]},
            "sms": {"template": "Долг {amount} по ЛС {account}"},
        },
        headers=auth(token),
    )
    assert created.status_code == 201, created.get_json()
    return int(created.get_json()["id"])


def test_a_campaign_name_is_shown_escaped_and_exported_as_inert_text(
    api: FlaskClient, admin_token: str, console: ConsoleClient, db: Database, consumer_id: int
) -> None:
    names = PAYLOADS + FORMULAS
    ids = {name: _campaign(api, admin_token, name) for name in names}
    assert_tables_intact(db, {Consumer: 1, Campaign: len(names)})
    with db.session() as s:
        assert set(s.scalars(select(Campaign.name))) == set(names)
    assert_escaped(_page(console.client, "/console/campaigns"))
    assert_escaped(_page(console.client, "/console/audit"))
    for name, cid in ids.items():
        assert_escaped(_page(console.client, f"/console/campaigns/{cid}"), (name,))
        assert_escaped(_page(console.client, f"/console/campaigns/{cid}/report"), (name,))
        if name in PAYLOADS:
            continue
        report_csv = console.client.get(f"/console/campaigns/{cid}/report.csv")
        assert report_csv.status_code == 200
        text = report_csv.get_data(as_text=True).lstrip("\ufeff")
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert "'" + name in cells
        assert name not in cells
        report_xlsx = console.client.get(f"/console/campaigns/{cid}/report.xlsx")
        assert report_xlsx.status_code == 200
        data = report_xlsx.get_data()
        sheet = load_workbook(io.BytesIO(data)).active
        assert sheet is not None
        written = [c for row in sheet.iter_rows() for c in row if c.value == name]
        assert written, name
        assert all(c.data_type == "s" for c in written)  # text, never a formula
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            xml = "".join(
                book.read(n).decode() for n in book.namelist() if n.startswith("xl/worksheets/")
            )
        assert "<f>" not in xml
        assert "<f " not in xml


def test_a_campaign_name_in_a_consumer_timeline_export_is_inert(
    api: FlaskClient, admin_token: str, console: ConsoleClient, db: Database, consumer_id: int
) -> None:
    """The consumer's interactions CSV names each contact's campaign: formula text there is
    neutralised like the contact's content."""
    ids = [_campaign(api, admin_token, name) for name in FORMULAS]
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.consumer_id == consumer_id)).one()
        for cid in ids:
            add_call(s, account, direction="outbound", campaign_id=cid, outcome=None)
    export = console.client.get(f"/console/consumers/{consumer_id}/timeline.csv")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    column = rows[0].index("Кампания")
    assert sorted(row[column] for row in rows[1:]) == sorted("'" + name for name in FORMULAS)
