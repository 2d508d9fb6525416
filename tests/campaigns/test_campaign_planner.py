"""Audience query (ledger filters in SQL), preview, idempotent planner, control group."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from campaign_factories import RUSSIAN_ZONES, add_debtor
from sqlalchemy import func, select

from campaigns.audience import preview_audience, stream_audience
from campaigns.definition import Audience, parse_definition
from campaigns.planner import in_control_group, plan_targets
from crm_store.db import Database
from crm_store.models import Campaign, CampaignTarget, Charge, Interaction, Payment

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def _ids(db: Database, audience: Audience) -> list[int]:
    with db.transaction() as s:
        return [r.account_id for b in stream_audience(s, audience, now=NOW) for r in b]


def test_debt_and_overdue_filters(db: Database) -> None:
    with db.transaction() as s:
        big = add_debtor(s, 1, debt=Decimal(5000), overdue_days=100, today=TODAY).id
        small = add_debtor(s, 2, debt=Decimal(100), overdue_days=100, today=TODAY).id
        recent = add_debtor(s, 3, debt=Decimal(5000), overdue_days=10, today=TODAY).id
        paid = add_debtor(s, 4, debt=Decimal(0), paid=Decimal(700), overdue_days=60, today=TODAY).id
        mid = add_debtor(s, 5, debt=Decimal(2000), overdue_days=60, today=TODAY).id
    assert _ids(db, Audience(min_debt=Decimal(1000))) == [big, recent, mid]
    assert _ids(db, Audience(min_debt=Decimal(1), min_days_overdue=30)) == [big, small, mid]
    assert _ids(db, Audience(aging_buckets=["31-90"])) == [mid]
    assert _ids(db, Audience(aging_buckets=["0-30", "91+"])) == [big, small, recent]
    assert paid not in _ids(db, Audience(min_debt=Decimal("0.01")))
    with db.transaction() as s:
        rows = [r for b in stream_audience(s, Audience(min_debt=Decimal(1000)), now=NOW) for r in b]
    assert rows[0].debt == Decimal("5000.00")
    assert rows[0].days_overdue(TODAY) == 100
    assert rows[0].phone == "+79160000001"


def test_partial_payment_moves_the_oldest_unpaid_date(db: Database) -> None:
    with db.transaction() as s:
        acc = add_debtor(s, 1, debt=Decimal(1000), overdue_days=100, today=TODAY)
        s.add(Charge(account_id=acc.id, period=TODAY.replace(day=1) - dt.timedelta(days=40),
                     amount=Decimal(1000), due_date=TODAY - dt.timedelta(days=20)))  # fmt: skip
        # Paying the first bill leaves only the one that fell due 20 days ago.
        s.add(Payment(account_id=acc.id, amount=Decimal(1000), paid_on=TODAY, channel="sbp"))
    with db.transaction() as s:
        (row,) = [r for b in stream_audience(s, Audience(min_debt=Decimal(1)), now=NOW) for r in b]
    assert row.debt == Decimal("1000.00")
    assert row.days_overdue(TODAY) == 20


def test_zone_region_list_and_recent_contact_filters(db: Database) -> None:
    with db.transaction() as s:
        ids = [
            add_debtor(s, i + 1, today=TODAY, timezone=z, region="Камчатка" if i == 10 else "X").id
            for i, z in enumerate(RUSSIAN_ZONES)
        ]
        s.add(Interaction(account_id=ids[0], channel="voice", direction="outbound",
                          started_at=NOW - dt.timedelta(days=2)))  # fmt: skip
    assert _ids(db, Audience(min_debt=Decimal(1), timezones=["Asia/Kamchatka"])) == [ids[10]]
    assert _ids(db, Audience(min_debt=Decimal(1), regions=["Камчатка"])) == [ids[10]]
    recent = _ids(db, Audience(min_debt=Decimal(1), not_contacted_days=7))
    assert ids[0] not in recent
    assert len(recent) == 10
    assert _ids(db, Audience(accounts=["00000003", "0000-0005", "bad!", "99999999"])) == [
        ids[2],
        ids[4],
    ]


def test_preview_counts_and_splits_by_zone(db: Database) -> None:
    with db.transaction() as s:
        for i in range(30):
            add_debtor(s, i + 1, today=TODAY, timezone=RUSSIAN_ZONES[i % 3],
                       phone=None if i == 0 else "auto")  # fmt: skip
    with db.session() as session:
        shown = preview_audience(session, Audience(min_debt=Decimal(1)), now=NOW, sample_size=5)
    assert shown.count == 30
    assert len(shown.sample) == 5
    assert shown.by_timezone == {z: 10 for z in RUSSIAN_ZONES[:3]}
    assert shown.without_phone == 1


def _campaign(db: Database, percent: float = 0) -> int:
    definition = parse_definition(
        {
            "name": "t",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "control_group_percent": percent,
        }
    )
    with db.transaction() as s:
        c = Campaign(name="t", channel="voice", definition=definition.to_json())
        s.add(c)
        s.flush()
        return c.id


def test_planner_is_idempotent_and_batches(db: Database) -> None:
    with db.transaction() as s:
        for i in range(25):
            add_debtor(s, i + 1, today=TODAY, phone=None if i == 3 else "auto")
    cid = _campaign(db)
    first = plan_targets(db, cid, now=NOW, batch_size=7)
    assert (first.scanned, first.inserted, first.invalid_number) == (25, 25, 1)
    again = plan_targets(db, cid, now=NOW, batch_size=4)
    assert (again.scanned, again.inserted, again.already_planned) == (25, 0, 25)
    with db.transaction() as s:
        add_debtor(s, 100, today=TODAY)
    third = plan_targets(db, cid, now=NOW)
    assert third.inserted == 1
    with db.transaction() as s:
        states = dict(
            s.execute(
                select(CampaignTarget.state, func.count())
                .where(CampaignTarget.campaign_id == cid)
                .group_by(CampaignTarget.state)
            ).all()
        )
        skipped = s.scalars(
            select(CampaignTarget.skip_reason).where(CampaignTarget.state == "skipped")
        ).all()
    assert states == {"pending": 25, "skipped": 1}
    assert skipped == ["invalid_number"]


def test_control_group_is_deterministic(db: Database) -> None:
    picked = [a for a in range(10_000) if in_control_group(5, a, 10)]
    assert 900 < len(picked) < 1100
    assert picked == [a for a in range(10_000) if in_control_group(5, a, 10)]
    assert not any(in_control_group(5, a, 0) for a in range(1000))
    with db.transaction() as s:
        ids = [add_debtor(s, i + 1, today=TODAY).id for i in range(200)]
    cid = _campaign(db, percent=20)
    result = plan_targets(db, cid, now=NOW)
    expected = {a for a in ids if in_control_group(cid, a, 20)}
    assert result.control_group == len(expected)
    with db.transaction() as s:
        control = set(
            s.scalars(
                select(CampaignTarget.account_id).where(CampaignTarget.control_group.is_(True))
            ).all()
        )
    assert control == expected
