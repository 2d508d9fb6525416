"""The console's work pages through the Flask test client: status, permission (403), region
(404, absent from lists and search), CSRF on every POST, escaping — dashboard, campaigns,
consumer 360, recordings, contacts, operator desk, flows."""

from __future__ import annotations

import io
import shutil
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select

from contactcenter.config import PROJECT_ROOT, Settings
from crm_store.db import Database
from crm_store.models import AuditLog, Campaign, DoNotContact, Interaction
from tests.console.conftest import client_login, console_settings, csrf_of
from tests.console.pages_fixtures import (
    MOSCOW,
    NOW,
    TVER,
    add_account,
    add_attempt,
    add_call,
    add_campaign,
    add_ledger,
    add_meter,
    add_reading,
    add_recording,
    add_sms,
    add_target,
)
from webhooks import create_app, services_of

MSK_PHONE, TVER_PHONE = "+79161110000", "+79162220000"
SID_MSK, SID_TVER = "RE" + "a" * 32, "RE" + "b" * 32


class Clock:
    """The app's clock, fixed at :data:`NOW`."""

    def __call__(self) -> Any:
        return NOW


@pytest.fixture
def app(console_app: Flask) -> Flask:
    services_of(console_app).clock = Clock()
    return console_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def world(db: Database, app: Flask) -> dict[str, int]:
    """Moscow and Tver: a consumer each with calls (a recorded one), SMS, readings, a
    transferred call, a campaign each."""
    recordings = Path(services_of(app).settings.recordings_dir)
    recordings.mkdir(parents=True, exist_ok=True)
    for sid in (SID_MSK, SID_TVER):
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x01" * 8000)
        (recordings / f"{sid}.wav").write_bytes(out.getvalue())
    with db.transaction() as s:
        msk = add_account(s, "Иванов <script>alert(1)</script>", MOSCOW, "1001", phone=MSK_PHONE)
        tver = add_account(s, "Петров Пётр", TVER, "2001", phone=TVER_PHONE)
        ids: dict[str, int] = {"ivanov": msk.consumer_id, "petrov": tver.consumer_id}
        call = add_call(
            s,
            msk,
            phone=MSK_PHONE,
            summary="входящий <b>звонок</b>",
            heard=(("двенадцать тысяч", 0.9),),
            outcome="transferred_queue",
            handoff={
                "account_number": "1001",
                "reason": "caller_request",
                "last_step": "main_menu",
            },
        )
        add_recording(s, call, SID_MSK, str(recordings / f"{SID_MSK}.wav"))
        ids["msk_call"] = call.id
        add_sms(s, msk, phone=MSK_PHONE, body="Показания <i>приняты</i>")
        tver_call = add_call(
            s,
            tver,
            phone=TVER_PHONE,
            outcome="transferred_queue",
            handoff={"account_number": "2001", "reason": "debt"},
        )
        add_recording(s, tver_call, SID_TVER, str(recordings / f"{SID_TVER}.wav"))
        ids["tver_call"] = tver_call.id
        add_reading(s, add_meter(s, msk), 12345, source="ivr_voice")
        add_ledger(s, msk)
        add_ledger(s, tver)
        msk_campaign = add_campaign(s, "Москва: долги", [MOSCOW])
        tver_campaign = add_campaign(s, "Тверь: долги", [TVER])
        add_attempt(s, add_target(s, msk_campaign, msk, state="done"))
        add_target(s, tver_campaign, tver, state="done")
        ids["msk_campaign"], ids["tver_campaign"] = msk_campaign.id, tver_campaign.id
        return ids


@pytest.fixture
def login(client: FlaskClient, make_user: Callable[..., str]) -> Callable[..., FlaskClient]:
    """``login(role, regions=None)``: a user of ``role`` logged in on the client."""

    def log_in(role: str, regions: list[str] | None = None, name: str | None = None) -> FlaskClient:
        short = {MOSCOW: "msk", TVER: "tver"}
        username = name or f"{role}-{'-'.join(short[r] for r in regions or ()) or 'all'}"
        make_user(username, [role], regions)
        response = client_login(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return log_in


def _post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    token = csrf_of(client, "/console/password")
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kw)


def _text(response: Any) -> str:
    return str(response.get_data(as_text=True))


# --------------------------------------------------------------------------- access

PAGES = [
    "/console/dashboard",
    "/console/dashboard/figures",
    "/console/dashboard/data.json",
    "/console/campaigns",
    "/console/campaigns/new",
    "/console/consumers",
    "/console/desk",
    "/console/desk/handoffs",
    "/console/flows",
]


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_pages_redirect_to_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")
    htmx = client.get(path, headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/console/login")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("admin", set(PAGES)),
        (
            "supervisor",
            set(PAGES),
        ),
        ("operator", {"/console/consumers", "/console/desk", "/console/desk/handoffs"}),
        (
            "auditor",
            {p for p in PAGES if not p.startswith(("/console/desk", "/console/campaigns/new"))},
        ),
        (
            "developer",
            {
                "/console/dashboard",
                "/console/dashboard/figures",
                "/console/dashboard/data.json",
                "/console/flows",
            },
        ),
    ],
)
def test_each_role_reaches_its_pages_and_gets_403_elsewhere(
    login: Callable[..., FlaskClient], world: dict[str, int], role: str, allowed: set[str]
) -> None:
    client = login(role)
    for path in PAGES:
        status = client.get(path).status_code
        assert status == (200 if path in allowed else 403), (role, path, status)


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_counts_only_the_users_regions(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    everyone = login("supervisor", name="boss")
    page = _text(everyone.get("/console/dashboard"))
    assert 'id="fig-calls-today">2<' in page
    assert "vendor/chart.umd.min.js" in page
    assert "charts.js" in page
    assert "<script>" not in page.split("</head>")[1].replace("<script src=", "")
    data = everyone.get("/console/dashboard/data.json").get_json()
    assert data["outcomes"] == {"labels": ["передан оператору"], "values": [2]}
    assert data["readings"]["values"] == [1, 0, 0]
    everyone.post("/console/logout", data={"csrf_token": csrf_of(everyone, "/console/password")})
    mine = login("supervisor", [TVER])
    fragment = _text(mine.get("/console/dashboard/figures"))
    assert 'id="fig-calls-today">1<' in fragment
    assert 'hx-trigger="every 10s"' in fragment
    assert mine.get("/console/dashboard/data.json").get_json()["readings"]["values"] == [0, 0, 0]


# --------------------------------------------------------------------------- campaigns


def test_a_region_supervisor_sees_only_their_campaigns(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("supervisor", [MOSCOW])
    listing = _text(client.get("/console/campaigns"))
    assert "Москва: долги" in listing
    assert "Тверь: долги" not in listing
    mine, other = world["msk_campaign"], world["tver_campaign"]
    assert client.get(f"/console/campaigns/{mine}").status_code == 200
    for suffix in (
        "",
        "/progress",
        "/progress.json",
        "/conversion",
        "/preview",
        "/report",
        "/report.csv",
        "/report.xlsx",
    ):
        assert client.get(f"/console/campaigns/{other}{suffix}").status_code == 404, suffix
    assert _post(client, f"/console/campaigns/{other}/pause").status_code == 404
    with services_of(client.application).db.session() as s:
        assert s.get(Campaign, other).status == "running"  # type: ignore[union-attr]


def test_the_campaign_page_and_its_live_parts(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("supervisor", [MOSCOW])
    cid = world["msk_campaign"]
    page = _text(client.get(f"/console/campaigns/{cid}"))
    assert 'id="campaign-status">идёт<' in page
    assert f'hx-get="/console/campaigns/{cid}/progress"' in page
    assert f'data-source="/console/campaigns/{cid}/progress.json"' in page
    assert 'id="action-pause"' in page
    assert 'id="action-cancel"' in page
    data = client.get(f"/console/campaigns/{cid}/progress.json").get_json()
    assert data["live"] is True
    assert data["targets"] == {"labels": ["завершён"], "values": [1]}
    assert data["timeline"]["datasets"] == [{"label": "доставлено", "values": [1]}]
    assert "Прирост" in _text(
        client.get(f"/console/campaigns/{cid}/conversion")
    ) or "Контрольной группы нет" in _text(client.get(f"/console/campaigns/{cid}/conversion"))
    preview = _text(client.get(f"/console/campaigns/{cid}/preview"))
    assert 'id="audience-count">1<' in preview
    assert "+7916***0000" in preview
    report = _text(client.get(f"/console/campaigns/{cid}/report"))
    assert "Отчёт по кампании" in report
    csv_file = client.get(f"/console/campaigns/{cid}/report.csv")
    assert csv_file.mimetype == "text/csv"
    assert "attachment" in csv_file.headers["Content-Disposition"]
    assert "Москва: долги" in csv_file.get_data().decode("utf-8-sig")
    xlsx = client.get(f"/console/campaigns/{cid}/report.xlsx")
    book = load_workbook(io.BytesIO(xlsx.get_data()))
    assert any(row[0].value == "Целей" for row in book.active.iter_rows())


def test_campaign_actions_need_csrf_and_write_permission_and_are_audited(
    login: Callable[..., FlaskClient], world: dict[str, int], make_user: Callable[..., str]
) -> None:
    client = login("supervisor", [MOSCOW])
    cid = world["msk_campaign"]
    assert client.post(f"/console/campaigns/{cid}/pause").status_code == 400
    response = _post(client, f"/console/campaigns/{cid}/pause")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/console/campaigns/{cid}"
    page = _text(client.get(f"/console/campaigns/{cid}"))
    assert "Кампания: приостановлена." in page
    assert 'id="action-resume"' in page
    again = _post(client, f"/console/campaigns/{cid}/pause", follow_redirects=True)
    assert "Нельзя приостановить кампанию: она приостановлена." in _text(again)
    with services_of(client.application).db.session() as s:
        [row] = s.scalars(select(AuditLog).where(AuditLog.entity == "campaign")).all()
        assert (row.actor, row.before, row.after) == (
            "console:supervisor-msk",
            {"status": "running"},
            {"status": "paused"},
        )
    client.post("/console/logout", data={"csrf_token": csrf_of(client, "/console/password")})
    auditor = login("auditor")
    assert _post(auditor, f"/console/campaigns/{cid}/resume").status_code == 403


def test_launch_is_queued_for_a_worker(
    login: Callable[..., FlaskClient], world: dict[str, int], db: Database
) -> None:
    with db.transaction() as s:
        draft = add_campaign(s, "Москва: черновик", [MOSCOW], status="draft", launched_at=None).id
    client = login("supervisor", [MOSCOW])
    assert _post(client, f"/console/campaigns/{draft}/launch").status_code == 302
    page = _text(client.get(f"/console/campaigns/{draft}"))
    assert 'id="campaign-status">запускается<' in page
    assert 'id="campaign-actions"' not in page  # no second launch while the first is queued
    assert client.get(f"/console/campaigns/{draft}/progress.json").get_json()["live"] is True


FORM = {
    "name": "Ноябрь <долги>",
    "channel": "sms",
    "min_debt": "500",
    "regions": MOSCOW,
    "sms_template": "{supplier}: долг {amount} руб. по ЛС {account}.",
}


def test_creating_a_campaign_from_the_form(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("supervisor", [MOSCOW])
    form_page = _text(client.get("/console/campaigns/new"))
    assert f'<option value="{MOSCOW}"' in form_page
    assert f'<option value="{TVER}"' not in form_page
    assert client.post("/console/campaigns/new", data=FORM).status_code == 400  # no CSRF token
    bad = _post(client, "/console/campaigns/new", {**FORM, "min_debt": "много", "regions": TVER})
    assert bad.status_code == 422
    text = _text(bad)
    assert 'id="error-min_debt">введите число<' in text
    assert 'id="error-regions">регионы вне вашей зоны: Тверь' in text
    assert 'value="Ноябрь &lt;долги&gt;"' in text  # the values are kept, escaped
    done = _post(client, "/console/campaigns/new", FORM)
    assert done.status_code == 302
    with services_of(client.application).db.session() as s:
        campaign = s.scalars(select(Campaign).where(Campaign.name == "Ноябрь <долги>")).one()
        assert campaign.status == "draft"
        assert campaign.created_by == "supervisor-msk"
        assert campaign.definition["audience"]["regions"] == [MOSCOW]
        audit = s.scalars(select(AuditLog).where(AuditLog.entity == "campaign")).one()
        assert audit.action == "insert"
        assert audit.entity_id == str(campaign.id)
    assert done.headers["Location"] == f"/console/campaigns/{campaign.id}"
    assert "Ноябрь &lt;долги&gt;" in _text(client.get(done.headers["Location"]))


YAML_BAD = """name: Ноябрь
channel: sms
audience:
  min_debt: 1000
  regions: [Москва]
sms:
  template: "{supplier}: долг {amount}"
pacing:
  sms_per_second: -1
""".encode()


def test_a_yaml_upload_shows_its_errors_at_their_lines(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("supervisor", [MOSCOW])
    bad = _post(
        client,
        "/console/campaigns/upload",
        {"file": (io.BytesIO(YAML_BAD), "november.yaml")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422
    text = _text(bad)
    assert 'class="line bad" id="line-9"' in text
    assert "строка 9: pacing.sms_per_second: должно быть больше 0" in text
    wrong_type = _post(
        client,
        "/console/campaigns/upload",
        {"file": (io.BytesIO(b"MZ\x00"), "virus.exe")},
        content_type="multipart/form-data",
    )
    assert wrong_type.status_code == 422
    assert "нужен файл .yaml" in _text(wrong_type)
    good = _post(
        client,
        "/console/campaigns/upload",
        {"file": (io.BytesIO(YAML_BAD.replace(b"-1", b"5")), "november.yaml")},
        content_type="multipart/form-data",
    )
    assert good.status_code == 302


# --------------------------------------------------------------------------- consumers


def test_search_finds_consumers_of_the_users_regions_only(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW])
    by_phone = _text(client.get("/console/consumers", query_string={"q": "8 916 111-00-00"}))
    assert f'data-consumer="{world["ivanov"]}"' in by_phone
    assert "Иванов &lt;script&gt;alert(1)&lt;/script&gt;" in by_phone
    for q in (TVER_PHONE, "2001", "Петров"):
        found = _text(client.get("/console/consumers", query_string={"q": q}))
        assert 'id="no-results"' in found
        assert "Петров" not in found.split('id="consumer-results"', 1)[1]
    short = _text(client.get("/console/consumers", query_string={"q": "П"}))
    assert 'id="search-error"' in short


def test_the_360_page_and_its_timeline(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW])
    page = _text(client.get(f"/console/consumers/{world['ivanov']}"))
    assert "<script>alert(1)</script>" not in page
    assert "Иванов &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'src="/console/recordings/{SID_MSK}"' in page
    assert "входящий &lt;b&gt;звонок&lt;/b&gt;" in page
    assert "Показания &lt;i&gt;приняты&lt;/i&gt;" in page
    assert "двенадцать тысяч" in page
    assert "main_menu" in page
    assert 'id="debt-1001">1000.00 руб.' in page
    assert "12345" in page
    assert 'id="dnc-form"' not in page  # an operator reads contacts, does not change them
    sms_only = _text(client.get(f"/console/consumers/{world['ivanov']}/timeline?channel=sms"))
    assert 'data-kind="sms"' in sms_only
    assert 'data-kind="call"' not in sms_only
    assert (
        client.get(f"/console/consumers/{world['ivanov']}/timeline?channel=fax").status_code == 400
    )
    export = client.get(f"/console/consumers/{world['ivanov']}/timeline.csv")
    assert export.status_code == 200
    assert "передан оператору" in export.get_data().decode("utf-8-sig")


def test_another_regions_consumer_is_404_by_page_timeline_export_and_recording(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW])
    petrov = world["petrov"]
    for path in (
        f"/console/consumers/{petrov}",
        f"/console/consumers/{petrov}/timeline",
        f"/console/consumers/{petrov}/timeline.csv",
        f"/console/recordings/{SID_TVER}",
        f"/console/desk/consumers/{petrov}",
        f"/console/desk/consumers/{world['ivanov']}?call={world['tver_call']}",
        "/console/consumers/999999",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Петров" not in _text(response)


def test_a_recording_streams_as_wav_with_ranges(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW])
    whole = client.get(f"/console/recordings/{SID_MSK}")
    assert whole.status_code == 200
    assert whole.mimetype == "audio/wav"
    assert whole.get_data()[:4] == b"RIFF"
    part = client.get(f"/console/recordings/{SID_MSK}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert len(part.get_data()) == 100
    assert client.get(f"/console/recordings/RE{'c' * 32}").status_code == 404


def test_contacts_are_changed_by_those_allowed_with_a_reason_audited(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    ivanov = world["ivanov"]
    client = login("supervisor", [MOSCOW])
    page = _text(client.get(f"/console/consumers/{ivanov}"))
    assert 'id="dnc-form"' in page
    assert 'id="consent-form"' in page
    path = f"/console/consumers/{ivanov}/dnc"
    form = {"value": MSK_PHONE, "channel": "voice", "op": "add", "reason": "просьба абонента"}
    assert client.post(path, data=form).status_code == 400  # no CSRF token
    assert _post(client, path, {**form, "value": TVER_PHONE}).status_code == 400  # not theirs
    assert _post(client, f"/console/consumers/{world['petrov']}/dnc", form).status_code == 404
    no_reason = _post(client, path, {**form, "reason": " "}, follow_redirects=True)
    assert "Укажите причину" in _text(no_reason)
    done = _post(client, path, form, follow_redirects=True)
    assert "Номер внесён в список запрета." in _text(done)
    consent = _post(
        client,
        f"/console/consumers/{ivanov}/consent",
        {"value": MSK_PHONE, "purpose": "robot_calls", "op": "grant", "reason": "в офисе"},
        follow_redirects=True,
    )
    assert "Согласие записано." in _text(consent)
    with services_of(client.application).db.session() as s:
        entry = s.scalars(select(DoNotContact)).one()
        assert (entry.value, entry.channel, entry.created_by) == (
            MSK_PHONE,
            "voice",
            "console:supervisor-msk",
        )
        audit = s.scalars(select(AuditLog).where(AuditLog.entity == "do_not_contact")).one()
        assert (audit.actor, audit.reason) == ("console:supervisor-msk", "просьба абонента")
    client.post("/console/logout", data={"csrf_token": csrf_of(client, "/console/password")})
    operator = login("operator", [MOSCOW])
    assert _post(operator, path, form).status_code == 403


# --------------------------------------------------------------------------- desk


def test_the_desk_shows_transferred_calls_of_the_users_regions(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW])
    desk = _text(client.get("/console/desk"))
    assert f'data-call="{world["msk_call"]}"' in desk
    assert f'data-call="{world["tver_call"]}"' not in desk
    assert "по просьбе абонента" in desk
    assert "main_menu" in desk
    assert 'hx-trigger="every 5s"' in desk
    link = f"/console/desk/consumers/{world['ivanov']}?call={world['msk_call']}"
    assert link.replace("?", "?") in desk.replace("&amp;", "&")
    found = _text(client.get("/console/desk", query_string={"q": "1001"}))
    assert f'href="/console/desk/consumers/{world["ivanov"]}"' in found


def test_an_operator_records_a_note_and_an_outcome(
    login: Callable[..., FlaskClient], world: dict[str, int]
) -> None:
    client = login("operator", [MOSCOW], name="olga")
    ivanov, call = world["ivanov"], world["msk_call"]
    page = _text(client.get(f"/console/desk/consumers/{ivanov}?call={call}"))
    assert 'id="handoff-context"' in page
    assert 'name="call" value="' in page
    path = f"/console/desk/consumers/{ivanov}/note"
    form = {"outcome": "operator_reading_taken", "note": "<b>принял</b>", "call": str(call)}
    assert client.post(path, data=form).status_code == 400
    bad = _post(client, path, {**form, "outcome": "hack"})
    assert bad.status_code == 422
    assert "Выберите итог из списка." in _text(bad)
    done = _post(client, path, form)
    assert done.status_code == 302
    after = _text(client.get(done.headers["Location"]))
    assert "Заметка и итог записаны" in after
    assert "Заметка оператора olga: показания приняты" in after
    assert "&lt;b&gt;принял&lt;/b&gt;" in after
    with services_of(client.application).db.session() as s:
        note = s.scalars(select(Interaction).where(Interaction.operator == "olga")).one()
        assert note.outcome == "operator_reading_taken"
        assert note.data["call_interaction_id"] == call
        assert s.scalars(select(AuditLog).where(AuditLog.entity == "interaction")).one().actor == (
            "console:olga"
        )
    handoffs = _text(client.get("/console/desk/handoffs"))
    assert "заметка есть" in handoffs


# --------------------------------------------------------------------------- flows


@pytest.fixture
def flows_app(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> Iterator[Flask]:
    """An app whose flow file is a copy the test may break."""
    copy = tmp_path / "flows.yaml"
    shutil.copy(PROJECT_ROOT / "call_flows.yaml", copy)
    application = create_app(console_settings(settings, tmp_path, flows_file=str(copy)))
    yield application
    services_of(application).db.dispose()


def test_flows_show_graphs_and_validation(
    flows_app: Flask, make_user: Callable[..., str], tmp_path: Path
) -> None:
    client = flows_app.test_client()
    make_user("dev", ["developer"])
    client_login(client, "dev")
    page = _text(client.get("/console/flows"))
    assert 'id="flows-valid"' in page
    assert 'id="flow-hotline"' in page
    if shutil.which("dot"):
        assert 'src="/console/flows/hotline.svg"' in page
        svg = client.get("/console/flows/hotline.svg")
        assert svg.mimetype == "image/svg+xml"
        assert b"<svg" in svg.get_data()
    else:
        assert "flowchart TD" in page
    assert client.get("/console/flows/nope.svg").status_code == 404
    flows_file = tmp_path / "flows.yaml"
    text = flows_file.read_text(encoding="utf-8")
    flows_file.write_text(text.replace("start:", "start: no_such_step\n    old_start:", 1), "utf-8")
    broken = _text(client.get("/console/flows"))
    assert 'id="flows-invalid"' in broken
    assert f"{flows_file}:" in broken
    assert 'id="flow-hotline"' in broken
