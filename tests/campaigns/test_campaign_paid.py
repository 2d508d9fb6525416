"""A debt campaign stops for debtors who paid: the payments registry imported between two
dispatcher ticks (or between the tick and the dial job) skips the next contact with reason
``paid``, for calls and SMS, against the campaign's ``min_debt``; the report attributes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from campaign_factories import add_debtor, phone_for
from campaign_harness import Clock, make_services, step, work
from sqlalchemy import select

from campaigns import service
from campaigns.compliance import Skip, SkipReason, debt_decision
from campaigns.definition import parse_definition
from campaigns.dialing import dial_target, sms_target
from campaigns.dispatcher import dispatch_once
from campaigns.report import build_report
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.import_payments import import_payments
from crm_store.models import CampaignTarget, ContactAttempt

START = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)  # 09:00 in Moscow, a Tuesday
HEADER = "Лицевой счёт;Сумма;Дата платежа;Номер платежа;Агент"


def _definition(channel: str = "voice", **audience: Any) -> Any:
    data: dict[str, Any] = {
        "name": "Долг",
        "channel": channel,
        "audience": audience or {"min_debt": 1},
        "pacing": {
            "calls_per_second": 50,
            "max_concurrent": 50,
            "global_calls_per_second": 50,
            "global_max_concurrent": 100,
            "sms_per_second": 50,
        },
        "retry": {"busy": {"retry_after": "30m", "max_attempts": 3}},
    }
    if channel == "voice":
        data["voice"] = {"flow": "debt_reminder", "amd_policy": "hangup_retry"}
    else:
        data["sms"] = {"template": "Долг {amount} по ЛС {account}"}
    return parse_definition(data)


def _launch(services: Any, definition: Any) -> int:
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    return int(cid)


def _debtors(db: Database, count: int) -> None:
    with db.transaction() as s:
        for n in range(1, count + 1):
            add_debtor(s, n, today=START.date(), timezone="Europe/Moscow")


def _pay(db: Database, tmp_path: Path, now: dt.datetime, *rows: tuple[int, str]) -> Any:
    """Import a registry paying ``(debtor n, amount)`` at ``now`` (Moscow time in the file)."""
    local = now.astimezone(dt.timezone(dt.timedelta(hours=3)))
    lines = [HEADER] + [
        f"{n:08d};{amount};{local:%d.%m.%Y %H:%M:%S};R-{n}-{amount};ПАО Сбербанк"
        for n, amount in rows
    ]
    path = tmp_path / f"registry-{len(list(tmp_path.iterdir()))}.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))
    report = import_payments(db, path, now=now)
    assert report.rows_rejected == 0, report.lines()
    return report


def _targets(db: Database, cid: int) -> dict[str, CampaignTarget]:
    with db.transaction() as s:
        return {
            str(t.phone): t
            for t in s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid))
        }


def _calls_to(provider: Any, phone: str) -> int:
    return sum(1 for c in provider.calls.values() if c.to == phone)


def test_debt_decision() -> None:
    decision = debt_decision("debt_notice", Decimal("0.00"), None)
    assert isinstance(decision, Skip)
    assert (decision.reason, decision.retry_at) == (SkipReason.PAID, None)
    assert debt_decision("debt_notice", Decimal("0.01"), None) is None
    assert debt_decision("debt_notice", Decimal("999.99"), Decimal(1000)) is not None
    assert debt_decision("debt_notice", Decimal("1000.00"), Decimal(1000)) is None
    assert debt_decision("debt_notice", Decimal("0.00"), Decimal(0)) is not None
    assert debt_decision("service_notice", Decimal("0.00"), Decimal(1000)) is None


def test_payment_imported_between_two_ticks_stops_the_next_call(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """The Done-when of issue 15 (campaign part)."""
    clock = Clock(START)
    busy = {"answer": "busy"}
    scenario = {"calls": {"default": {"answer": "human", "ring_s": 3},
                          "numbers": {phone_for(1): busy, phone_for(2): busy}}}  # fmt: skip
    services, provider = make_services(settings, clock, scenario)
    _debtors(db, 3)
    cid = _launch(services, _definition())
    step(services, provider, cid)  # tick 1: three calls, two busy (one call a day: tomorrow)
    assert {n: _calls_to(provider, phone_for(n)) for n in (1, 2, 3)} == {1: 1, 2: 1, 3: 1}
    step(services, provider, cid)
    assert len(provider.calls) == 3

    clock.advance(minutes=10)
    _pay(db, tmp_path, clock.now, (1, "3 000,00"), (2, "1 000,00"))
    clock.now = START + dt.timedelta(days=1)
    result = step(services, provider, cid)  # tick 2: debtor 1 paid in full, 2 still owes
    assert result.paid == 1
    assert {n: _calls_to(provider, phone_for(n)) for n in (1, 2, 3)} == {1: 1, 2: 2, 3: 1}
    targets = _targets(db, cid)
    paid, partly = targets[phone_for(1)], targets[phone_for(2)]
    assert (paid.state, paid.skip_reason, paid.attempts) == ("skipped", "paid", 2)
    assert partly.state == "retry"
    with db.transaction() as s:
        skipped = s.scalars(
            select(ContactAttempt).where(
                ContactAttempt.target_id == paid.id, ContactAttempt.status == "skipped"
            )
        ).one()
        assert (skipped.attempt_no, skipped.outcome, skipped.provider_sid) == (2, "paid", None)

    report = build_report(services, cid)
    assert report.skipped_by_reason == {"paid": 1}
    assert (report.contacted.payers, report.contacted.paid) == (2, Decimal("4000.00"))
    since = report.since_launch
    assert (since.payments, since.payers, since.paid, since.skipped_as_paid) == (
        2,
        2,
        Decimal("4000.00"),
        1,
    )
    lines = {(line.account, line.amount, line.skipped_as_paid) for line in since.latest}
    assert lines == {
        ("00000001", Decimal("3000.00"), True),
        ("00000002", Decimal("1000.00"), False),
    }
    assert {line.paid_on for line in since.latest} == {dt.date(2026, 12, 1)}
    data = report.as_dict()
    assert data["since_launch"]["paid"] == "4000.00"
    assert data["since_launch"]["latest"][0]["agent"] == "ПАО Сбербанк"


@pytest.mark.parametrize("channel", ["voice", "sms"])
def test_payment_after_the_tick_is_seen_by_the_dial_job(
    db: Database, settings: Settings, tmp_path: Path, channel: str
) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 2)
    cid = _launch(services, _definition(channel))
    assert dispatch_once(services, cid).enqueued == 2  # the jobs are queued now
    _pay(db, tmp_path, clock.now, (1, "3000"))
    first = _targets(db, cid)[phone_for(1)]
    job = dial_target if channel == "voice" else sms_target
    assert job(first.id, 1) == "skip:paid"
    work(services)  # its queued duplicate finds the attempt settled; debtor 2 is contacted
    provider.run_until_idle()
    contacted = provider.calls if channel == "voice" else provider.messages
    assert {record.to for record in contacted.values()} == {phone_for(2)}
    target = _targets(db, cid)[phone_for(1)]
    assert (target.state, target.skip_reason) == ("skipped", "paid")


def test_threshold_is_the_campaigns_min_debt(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 3)
    cid = _launch(services, _definition(min_debt=1000))
    _pay(db, tmp_path, clock.now, (1, "2 500,01"), (2, "2 000,00"))  # 499.99 and 1000.00 left
    result = step(services, provider, cid)
    assert (result.paid, result.enqueued) == (1, 2)
    assert {c.to for c in provider.calls.values()} == {phone_for(2), phone_for(3)}
    assert _targets(db, cid)[phone_for(1)].skip_reason == "paid"


def test_notices_that_are_not_about_a_debt_are_not_stopped(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 1)
    data = {
        "name": "Плановое отключение",
        "channel": "voice",
        "purpose": "service_notice",
        "audience": {"accounts": ["00000001"]},
        "voice": {"flow": "debt_reminder", "amd_policy": "hangup_retry"},
    }
    cid = _launch(services, parse_definition(data))
    _pay(db, tmp_path, clock.now, (1, "3000"))
    result = step(services, provider, cid)
    assert (result.paid, len(provider.calls)) == (0, 1)
