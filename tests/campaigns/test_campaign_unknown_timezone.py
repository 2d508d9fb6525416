"""Accounts with an unknown time zone: contact windows follow every zone of the phone number.

An account whose service-address zone is unknown (``Account.timezone is None``) must never
be treated as Moscow: a +7 9xx mobile number can be anywhere in Russia, so it is called
only when the window holds from Kaliningrad to Kamchatka at once (06:00-10:00 UTC on a
working day); a Kamchatka landline follows Kamchatka time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from campaign_factories import add_debtor, phone_for
from campaign_harness import Clock, make_services, step
from click.testing import CliRunner
from sqlalchemy import select

from campaigns import service
from campaigns.audience import UNKNOWN_TIMEZONE_LABEL
from campaigns.definition import parse_definition
from contactcenter.cli import main
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import CampaignTarget

# Tuesday 1 December 2026, a working day everywhere.
DAY = dt.date(2026, 12, 1)
KAMCHATKA_LANDLINE = "+74152123456"


def _at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour, minute), tzinfo=dt.UTC)


def _definition() -> Any:
    return parse_definition(
        {
            "name": "Долг",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "voice": {"flow": "debt_reminder", "amd_policy": "hangup_retry"},
            "pacing": {
                "calls_per_second": 50,
                "max_concurrent": 50,
                "global_calls_per_second": 50,
                "global_max_concurrent": 100,
            },
        }
    )


def _debtors(db: Database) -> None:
    with db.transaction() as s:
        add_debtor(s, 1, today=DAY, timezone=None)  # +7 916 mobile, zone unknown
        add_debtor(s, 2, today=DAY, timezone=None, phone=KAMCHATKA_LANDLINE)
        add_debtor(s, 3, today=DAY, timezone="Europe/Moscow")


def _launch(settings: Settings, clock: Clock) -> tuple[Any, Any, int]:
    services, provider = make_services(settings, clock)
    cid = service.create_campaign(services, _definition())
    service.launch(services, cid, start=False)
    return services, provider, cid


def _targets(db: Database, cid: int) -> dict[str, CampaignTarget]:
    with db.session() as s:
        rows = s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid))
        return {str(t.phone): t for t in rows}


def test_planned_targets_keep_the_zone_unknown(db: Database, settings: Settings) -> None:
    _debtors(db)
    _, _, cid = _launch(settings, Clock(_at(7)))
    zones = {phone: t.timezone for phone, t in _targets(db, cid).items()}
    assert zones == {
        phone_for(1): None,
        KAMCHATKA_LANDLINE: None,
        phone_for(3): "Europe/Moscow",
    }


def test_mobile_without_zone_waits_until_kaliningrad_opens(
    db: Database, settings: Settings
) -> None:
    _debtors(db)
    # 05:30 UTC: 07:30 in Kaliningrad (closed), 08:30 in Moscow, 17:30 in Kamchatka.
    clock = Clock(_at(5, 30))
    services, provider, cid = _launch(settings, clock)
    step(services, provider, cid)
    assert {c.to for c in provider.calls.values()} == {KAMCHATKA_LANDLINE, phone_for(3)}
    mobile = _targets(db, cid)[phone_for(1)]
    assert mobile.state == "pending"
    assert mobile.next_attempt_at == _at(6)  # 08:00 in Kaliningrad, the last zone to open
    clock.now = _at(6)
    step(services, provider, cid)
    assert phone_for(1) in {c.to for c in provider.calls.values()}


def test_mobile_without_zone_is_not_called_after_kamchatka_closes(
    db: Database, settings: Settings
) -> None:
    _debtors(db)
    # 10:00 UTC: 13:00 in Moscow (open), 22:00 in Kamchatka (closed).
    clock = Clock(_at(10))
    services, provider, cid = _launch(settings, clock)
    step(services, provider, cid)
    assert {c.to for c in provider.calls.values()} == {phone_for(3)}
    targets = _targets(db, cid)
    # Next day 06:00 UTC: Kaliningrad opens while Kamchatka (18:00) is still open.
    assert targets[phone_for(1)].next_attempt_at == _at(6) + dt.timedelta(days=1)
    # The Kamchatka landline follows Kamchatka time: 08:00 there is 20:00 UTC.
    assert targets[KAMCHATKA_LANDLINE].next_attempt_at == _at(20)
    clock.now = _at(20)
    step(services, provider, cid)
    called = {c.to for c in provider.calls.values()}
    assert KAMCHATKA_LANDLINE in called
    assert phone_for(1) not in called  # 20:00 UTC is 22:00 in Kaliningrad


def test_preview_splits_unknown_zones_by_phone(db: Database, settings: Settings) -> None:
    _debtors(db)
    services, _, _ = _launch(settings, Clock(_at(7)))
    cid = service.create_campaign(services, _definition())
    shown = service.preview(services, cid)
    assert shown.by_timezone == {UNKNOWN_TIMEZONE_LABEL: 2, "Europe/Moscow": 1}
    assert {row.timezone for row in shown.sample} == {None, "Europe/Moscow"}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, redis_client: Any) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    return CliRunner()


def test_cli_preview_shows_unknown_zones(
    db: Database, settings: Settings, cli_env: CliRunner
) -> None:
    _debtors(db)
    services, _ = make_services(settings, Clock(_at(7)))
    cid = service.create_campaign(services, _definition())
    result = cli_env.invoke(main, ["campaign", "preview", str(cid)])
    assert result.exit_code == 0, result.output
    assert f"  {UNKNOWN_TIMEZONE_LABEL:<22} 2" in result.output
    sample = [line for line in result.output.splitlines() if line.startswith("  00000001")]
    assert len(sample) == 1
    assert UNKNOWN_TIMEZONE_LABEL in sample[0]
