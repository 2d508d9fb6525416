"""Campaign definition schema: defaults, validation errors with paths and YAML lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from campaigns.compliance import DailyWindow
from campaigns.definition import (
    AmdPolicy,
    CampaignChannel,
    flow_names_in,
    load_definition,
    parse_definition,
    parse_definition_text,
)
from campaigns.errors import DefinitionError

GOOD = """\
name: Долг декабрь
channel: voice_then_sms
audience:
  min_debt: 1000.50
  min_days_overdue: 30
  not_contacted_days: 7
  timezones: [Asia/Kamchatka, Europe/Kaliningrad]
voice:
  flow: debt_reminder
  amd_policy: hangup_retry
sms:
  template: "{supplier}: долг {amount} по ЛС {account}. Оплатите до {due_date}."
schedule:
  start: 2026-12-01
  end: 2026-12-20
  daily_window: "10:00-19:00"
pacing: {calls_per_second: 2, max_concurrent: 20}
retry:
  busy: {retry_after: 30m, max_attempts: 3}
  no_answer: {retry_after: 2h}
control_group_percent: 10
"""


def test_good_definition_parses_with_defaults() -> None:
    d = parse_definition_text(GOOD, flow_names={"debt_reminder", "hotline"})
    assert d.channel is CampaignChannel.VOICE_THEN_SMS
    assert d.audience.min_debt == Decimal("1000.50")
    assert d.voice is not None
    assert d.voice.amd_policy is AmdPolicy.HANGUP_RETRY
    assert d.retry.busy.retry_after == dt.timedelta(minutes=30)
    assert d.retry.no_answer.max_attempts == 3
    assert d.schedule.daily_window == DailyWindow(dt.time(10), dt.time(19))
    policy = d.contact_policy()
    assert policy.working_day_window == DailyWindow(dt.time(10), dt.time(19))
    assert policy.non_working_day_window == DailyWindow(dt.time(10), dt.time(19))
    assert policy.call_caps.per_week == 2
    assert d.attribution_days == 14


def test_json_round_trip() -> None:
    d = parse_definition_text(GOOD)
    data = d.to_json()
    assert data["retry"]["busy"]["retry_after"] == 1800
    assert data["schedule"]["daily_window"] == "10:00-19:00"
    assert data["policy"]["working_day_window"] == "08:00-22:00"
    assert parse_definition(data) == d


def test_voice_section_defaults_for_voice_channels() -> None:
    d = parse_definition({"name": "x", "channel": "voice", "audience": {"min_debt": 1}})
    assert d.voice is not None
    assert d.voice.flow == "debt_reminder"


def _issues(text: str, **kw: object) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        parse_definition_text(text, **kw)  # type: ignore[arg-type]
    return [str(i) for i in info.value.issues]


def test_errors_name_the_field_and_the_yaml_line() -> None:
    text = GOOD.replace("min_debt: 1000.50", "min_debt: -5").replace(
        "retry_after: 30m", "retry_after: soon"
    )
    issues = _issues(text)
    assert any(i.startswith("line 4: audience.min_debt:") for i in issues), issues
    assert any(i.startswith("line 19: retry.busy.retry_after:") and "30m" in i for i in issues)


def test_unknown_fields_and_bad_values() -> None:
    issues = _issues(GOOD.replace("control_group_percent: 10", "control_group: 10"))
    assert issues == ["line 21: control_group: unknown field"]
    issues = _issues(GOOD.replace('daily_window: "10:00-19:00"', 'daily_window: "19:00-10:00"'))
    assert "schedule.daily_window" in issues[0]
    assert "after start" in issues[0]
    issues = _issues(GOOD.replace("Asia/Kamchatka", "Asia/Nowhere"))
    assert "unknown time zone 'Asia/Nowhere'" in issues[0]
    issues = _issues(GOOD.replace("end: 2026-12-20", "end: 2026-11-20"))
    assert "end must not be before start" in issues[0]


def test_channel_requirements() -> None:
    no_sms = {"name": "x", "channel": "sms", "audience": {"min_debt": 1}}
    with pytest.raises(DefinitionError, match="needs an sms section"):
        parse_definition(no_sms)
    marketing_call = {
        "name": "x",
        "channel": "voice",
        "purpose": "marketing",
        "audience": {"min_debt": 1},
    }
    with pytest.raises(DefinitionError, match="prohibited"):
        parse_definition(marketing_call)
    with pytest.raises(DefinitionError, match="debt filter"):
        parse_definition({"name": "x", "channel": "voice", "audience": {}})
    listed = parse_definition(
        {"name": "x", "channel": "voice", "audience": {"accounts": ["000-1", "000-2"]}}
    )
    assert listed.audience.accounts == ["000-1", "000-2"]


def test_sms_template_is_checked() -> None:
    bad = GOOD.replace("{due_date}", "{due}")
    issues = _issues(bad)
    assert "no value for {due}" in issues[0]
    assert issues[0].startswith("line 11: sms: template:")
    long = GOOD.replace("Оплатите до {due_date}.", "Оплатите до {due_date}. " + "я" * 200)
    assert "SMS parts" in _issues(long)[0]


def test_unknown_flow_is_rejected() -> None:
    issues = _issues(GOOD, flow_names={"hotline"})
    assert issues == ["line 9: voice.flow: no flow 'debt_reminder' in call_flows.yaml (hotline)"]


def test_broken_yaml_and_files(tmp_path: Path) -> None:
    issues = _issues("name: [unclosed\nchannel: voice\n")
    assert "not valid YAML" in issues[0]
    assert "not valid YAML" in _issues("name: x\nstart: 2026-02-30\n")[0]
    assert _issues("- a\n- b\n") == ["(top level): a campaign definition must be a mapping"]
    with pytest.raises(DefinitionError, match="cannot read"):
        load_definition(tmp_path / "missing.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_definition(path).name == "Долг декабрь"
    flows = tmp_path / "flows.yaml"
    assert flow_names_in(flows) is None
    flows.write_text("version: 1\nflows:\n  hotline: {}\n  debt_reminder: {}\n", encoding="utf-8")
    assert flow_names_in(flows) == {"hotline", "debt_reminder"}
