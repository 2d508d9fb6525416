"""Campaigns for the console: visibility by region, live progress, audience by region, the
definition form and upload, the report files (campaigns.progress, .definition_form,
.report_export)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook
from werkzeug.datastructures import MultiDict

from campaigns.definition import parse_definition
from campaigns.definition_form import (
    MAX_UPLOAD_BYTES,
    definition_from_form,
    definition_from_upload,
    field_of,
    russian_message,
)
from campaigns.errors import CampaignNotFound
from campaigns.progress import (
    audience_by_region,
    bucket_seconds,
    campaign_progress,
    get_campaign,
    known_regions,
    list_campaigns,
)
from campaigns.report import build_report
from campaigns.report_export import report_csv, report_sections, report_xlsx
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.access import scope_for
from crm_store.db import Database
from crm_store.models import Campaign
from tests.console.pages_fixtures import (
    MOSCOW,
    NOW,
    TVER,
    add_account,
    add_attempt,
    add_campaign,
    add_ledger,
    add_target,
    everyone,
    moscow_only,
)


def _campaigns(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        made = {
            "msk": add_campaign(s, "Москва", [MOSCOW]),
            "tver": add_campaign(s, "Тверь", [TVER]),
            "both": add_campaign(s, "Москва и Тверь", [MOSCOW, TVER], status="draft"),
            "all": add_campaign(s, "Все регионы", None, status="completed"),
        }
        return {k: c.id for k, c in made.items()}


def test_a_region_user_lists_only_campaigns_within_their_regions(db: Database) -> None:
    ids = _campaigns(db)
    both = scope_for("b", ["supervisor"], [MOSCOW, TVER])
    with db.session() as s:
        assert [c.name for c in list_campaigns(s, everyone()).items] == [
            "Все регионы",
            "Москва и Тверь",
            "Тверь",
            "Москва",
        ]
        assert [c.id for c in list_campaigns(s, moscow_only()).items] == [ids["msk"]]
        assert {c.id for c in list_campaigns(s, both).items} == {
            ids["msk"],
            ids["tver"],
            ids["both"],
        }
        assert list_campaigns(s, scope_for("n", ["supervisor"], [])).items == []
        assert [c.status for c in list_campaigns(s, everyone(), status="draft").items] == ["draft"]
        assert get_campaign(s, moscow_only(), ids["msk"]).name == "Москва"
        for other in ("tver", "both", "all"):
            with pytest.raises(CampaignNotFound):
                get_campaign(s, moscow_only(), ids[other])
        with pytest.raises(CampaignNotFound):
            get_campaign(s, everyone(), max(ids.values()) + 1)


def test_the_list_pages_by_keyset(db: Database) -> None:
    _campaigns(db)
    with db.session() as s:
        first = list_campaigns(s, everyone(), limit=3)
        assert len(first.items) == 3
        assert first.next_cursor is not None
        rest = list_campaigns(s, everyone(), limit=3, cursor=first.next_cursor)
    assert [c.name for c in rest.items] == ["Москва"]
    assert rest.next_cursor is None


def test_progress_counts_targets_skips_attempts_and_the_control_group(db: Database) -> None:
    with db.transaction() as s:
        campaign = add_campaign(s, "Москва", [MOSCOW])
        accounts = [add_account(s, f"Абонент {n}", MOSCOW, f"10{n:02d}") for n in range(7)]
        done = add_target(s, campaign, accounts[0], state="done")
        retry = add_target(s, campaign, accounts[1], state="retry")
        add_target(s, campaign, accounts[2], state="skipped", skip_reason="paid")
        add_target(s, campaign, accounts[3], state="skipped", skip_reason="opted_out")
        add_target(s, campaign, accounts[4], state="skipped", skip_reason="paid")
        add_target(s, campaign, accounts[5], state="pending")
        add_target(s, campaign, accounts[6], state="pending", control_group=True)
        add_attempt(s, done, outcome="delivered", created_at=NOW)
        add_attempt(s, retry, outcome="undelivered", created_at=NOW + dt.timedelta(minutes=3))
        add_attempt(
            s,
            retry,
            attempt_no=2,
            status="dialing",
            outcome=None,
            created_at=NOW + dt.timedelta(minutes=3, seconds=20),
        )
        campaign_id = campaign.id
    with db.session() as s:
        shown = campaign_progress(s, s.get(Campaign, campaign_id))
    assert shown.targets["done"] == 1
    assert shown.targets["retry"] == 1
    assert shown.targets["skipped"] == 3
    assert shown.targets["pending"] == 1
    assert (shown.total, shown.finished, shown.control_group) == (6, 4, 1)
    assert shown.skipped == {"paid": 2, "opted_out": 1}
    assert shown.attempts == {"delivered": 1, "dialing": 1, "undelivered": 1}
    timeline = shown.timeline
    assert timeline.bucket_s == 60
    assert timeline.starts[0] == NOW
    assert len(timeline.starts) == 4
    assert timeline.series == {
        "delivered": [1, 0, 0, 0],
        "dialing": [0, 0, 0, 1],
        "undelivered": [0, 0, 0, 1],
    }
    data = shown.as_dict()
    assert data["live"] is True
    assert data["timeline"]["starts"][0] == NOW.isoformat()


def test_progress_of_a_campaign_without_attempts(db: Database) -> None:
    with db.transaction() as s:
        campaign_id = add_campaign(s, "Пустая", [MOSCOW], status="draft").id
    with db.session() as s:
        shown = campaign_progress(s, s.get(Campaign, campaign_id))
    assert shown.total == 0
    assert shown.timeline.starts == []
    assert shown.attempts == {}


def test_bucket_seconds_keep_a_chart_within_its_points() -> None:
    start = NOW
    assert bucket_seconds(start, start) == 60
    assert bucket_seconds(start, start + dt.timedelta(hours=1)) == 60
    day = bucket_seconds(start, start + dt.timedelta(days=1))
    assert day == 13 * 60
    assert 24 * 3600 / day + 2 <= 120
    week = bucket_seconds(start, start + dt.timedelta(days=7))
    assert 7 * 24 * 3600 / week + 2 <= 120


def test_the_audience_by_region(db: Database) -> None:
    with db.transaction() as s:
        for n in range(3):
            add_ledger(s, add_account(s, f"М {n}", MOSCOW, f"300{n}"))
        for n in range(2):
            add_ledger(s, add_account(s, f"Т {n}", TVER, f"400{n}"))
        add_ledger(s, add_account(s, "Без долга", TVER, "4009"), charged="10.00", paid="10.00")
    both = parse_definition(
        {
            "name": "x",
            "channel": "sms",
            "audience": {"min_debt": 100},
            "sms": {"template": "{supplier}: долг {amount}"},
        }
    )
    only_tver = parse_definition(
        {
            "name": "x",
            "channel": "sms",
            "audience": {"min_debt": 100, "regions": [TVER]},
            "sms": {"template": "{supplier}: долг {amount}"},
        }
    )
    listed = parse_definition(
        {
            "name": "x",
            "channel": "sms",
            "audience": {"accounts": ["3000", "4001", "нет такого"]},
            "sms": {"template": "{supplier}: долг {amount}"},
        }
    )
    with db.session() as s:
        assert audience_by_region(s, both.audience, now=NOW) == {MOSCOW: 3, TVER: 2}
        assert audience_by_region(s, only_tver.audience, now=NOW) == {TVER: 2}
        assert audience_by_region(s, listed.audience, now=NOW) == {MOSCOW: 1, TVER: 1}
        assert known_regions(s, everyone()) == [MOSCOW, TVER]
        assert known_regions(s, moscow_only()) == [MOSCOW]


FORM = {
    "name": "Долг ноябрь",
    "channel": "sms",
    "min_debt": "1000",
    "regions": [MOSCOW],
    "sms_template": "{supplier}: долг {amount} руб. по ЛС {account}.",
    "start": "2026-11-20",
    "end": "2026-11-30",
    "daily_window": "10:00-19:00",
    "control_group_percent": "10",
}


def _form(**changes: Any) -> MultiDict[str, Any]:
    data = {**FORM, **changes}
    return MultiDict(
        [(k, item) for k, v in data.items() for item in (v if isinstance(v, list) else [v])]
    )


def test_a_valid_form_makes_a_definition_within_the_users_regions() -> None:
    result = definition_from_form(_form(), moscow_only(), flow_names={"debt_reminder"})
    assert result.ok, result.errors
    assert result.definition is not None
    assert result.definition.audience.regions == [MOSCOW]
    assert result.definition.audience.min_debt == Decimal(1000)
    assert result.definition.control_group_percent == 10


def test_form_errors_are_put_next_to_their_fields() -> None:
    result = definition_from_form(
        _form(
            name="",
            min_debt="много",
            end="2026-11-01",
            sms_template="{supplier}: {nonsense}",
            control_group_percent="80",
        ),
        everyone(),
    )
    assert not result.ok
    assert result.errors["name"] == ["введите название кампании"]
    assert result.errors["min_debt"] == ["введите число"]
    assert result.errors["control_group_percent"] == ["введите число от 0 до 50"]
    assert "sms_template" in result.errors
    assert result.errors["end"] == ["окончание не может быть раньше начала"]
    # a voice campaign needs a flow that exists
    voice = definition_from_form(
        _form(channel="voice", voice_flow="nope"), everyone(), flow_names={"debt_reminder"}
    )
    assert "voice_flow" in voice.errors


def test_a_debt_filter_or_a_list_is_required() -> None:
    result = definition_from_form(_form(min_debt=""), everyone())
    assert result.errors["min_debt"] == [
        (
            "укажите фильтр по долгу (минимальный долг, дни просрочки или группы просрочки)"
            " или список лицевых счетов"
        )
    ]


def test_a_region_user_may_not_create_a_campaign_beyond_their_regions() -> None:
    outside = definition_from_form(_form(regions=[MOSCOW, TVER]), moscow_only())
    assert outside.errors["regions"] == [f"регионы вне вашей зоны: {TVER} (доступны: {MOSCOW})"]
    everywhere = definition_from_form(_form(regions=[]), moscow_only())
    assert everywhere.errors["regions"][0].startswith("укажите регионы аудитории")
    assert definition_from_form(_form(regions=[]), everyone()).ok


YAML = """\
name: Долг ноябрь
channel: sms
audience:
  min_debt: 1000
  regions: [Москва]
sms:
  template: "{supplier}: долг {amount}"
pacing:
  sms_per_second: -1
"""


def test_an_upload_reports_its_issues_at_their_lines() -> None:
    result = definition_from_upload("c.yaml", YAML.encode(), everyone())
    assert not result.ok
    assert result.text == YAML
    [issue] = result.issues
    assert (issue.path, issue.line, issue.message) == (
        "pacing.sms_per_second",
        9,
        "должно быть больше 0",
    )
    broken = definition_from_upload("c.yml", b"name: [unclosed\nchannel: sms\n", everyone())
    assert broken.issues[0].line == 2
    assert broken.issues[0].message.startswith("это не YAML")
    good = definition_from_upload("c.yaml", YAML.replace("-1", "5").encode(), moscow_only())
    assert good.ok
    assert good.definition is not None


def test_an_upload_beyond_the_users_regions_points_at_the_regions_line() -> None:
    text = YAML.replace("-1", "5").replace("[Москва]", "[Москва, Тверь]")
    result = definition_from_upload("c.yaml", text.encode(), moscow_only())
    [issue] = result.issues
    assert issue.line == 5
    assert "Тверь" in issue.message


def test_uploads_are_checked_for_name_size_and_encoding() -> None:
    assert definition_from_upload("", b"x", everyone()).errors["file"]
    assert definition_from_upload("c.exe", b"x", everyone()).errors["file"] == [
        "нужен файл .yaml, .yml или .json"
    ]
    big = b"#" * (MAX_UPLOAD_BYTES + 1)
    assert definition_from_upload("c.yaml", big, everyone()).errors["file"] == ["файл больше 64 КБ"]
    assert definition_from_upload("c.yaml", "имя".encode("cp1251"), everyone()).errors["file"]
    assert definition_from_upload("c.yaml", b"\x00\x01", everyone()).errors["file"]


def test_issue_paths_and_messages() -> None:
    assert field_of("audience.regions.0") == "regions"
    assert field_of("pacing.global_max_concurrent") == "__all__"
    assert field_of("") == "__all__"
    assert (
        russian_message("Input should be greater than or equal to 0") == "должно быть не меньше 0"
    )
    assert russian_message("something else") == "something else"


def test_the_report_files(db: Database, settings: Settings) -> None:
    with db.transaction() as s:
        campaign = add_campaign(s, '=HYPERLINK("x")', [MOSCOW])
        account = add_account(s, "Абонент", MOSCOW, "5001")
        target = add_target(s, campaign, account, state="done")
        add_attempt(s, target, outcome="delivered")
        add_target(
            s, campaign, add_account(s, "Б", MOSCOW, "5002"), state="skipped", skip_reason="paid"
        )
        campaign_id = campaign.id
    services = Services(settings)
    try:
        report = build_report(services, campaign_id)
    finally:
        services.db.dispose()
    sections = {s.title: dict(s.rows) for s in report_sections(report)}
    assert sections["Кампания"]["Целей"] == 2
    assert sections["Пропущено по причинам"] == {"оплатил": 1}
    assert sections["Попытки по итогам"] == {"доставлено": 1}
    text = report_csv(report).decode("utf-8")
    assert text.startswith("\ufeffРаздел,Показатель,Значение\r\n")
    assert "Кампания,Название,'=HYPERLINK" in text.replace('"', "")
    book = load_workbook(io.BytesIO(report_xlsx(report)))
    sheet = book.active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert ["Целей", 2] in values
    assert ["Название", '=HYPERLINK("x")'] in values
    name_cell = next(row[1] for row in sheet.iter_rows() if row[0].value == "Название")
    assert name_cell.data_type == "s"  # stored text, never a formula
