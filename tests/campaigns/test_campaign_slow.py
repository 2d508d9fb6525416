"""The Done-when run: a debt campaign over demo debtors across Russia's time zones runs on
the sandbox to the end with every invariant holding (windows, caps, opt-outs, exactly one
call per attempt, every call in the Interaction log).

CI size: ``CAMPAIGN_SLOW_CONSUMERS`` demo consumers (default 1 500, about 450 debtors; the
whole stack runs in-process at about 10 targets/s). The full 10 000-debtor run is
``CAMPAIGN_SLOW_CONSUMERS=32000 pytest -m slow tests/campaigns/test_campaign_slow.py``
(10 425 targets; passed in 28 min on a shared machine, see docs/benchmarks.md).
The SIGKILL part of the Done-when is test_campaign_crash.py.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter

import pytest
from campaign_checks import check_invariants
from campaign_harness import Clock, make_services, step
from sqlalchemy import select

from campaigns import service
from campaigns.definition import parse_definition
from contactcenter.config import Settings
from crm_store.consent import add_do_not_contact
from crm_store.db import Database
from crm_store.models import CampaignTarget, ContactAttempt, DoNotContact, Interaction
from devtools.demo import seed_demo

START = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)  # Tuesday; Moscow 06:00: mostly closed
CONSUMERS = int(os.environ.get("CAMPAIGN_SLOW_CONSUMERS", "1500"))
SCENARIO = {
    "seed": 11,
    "calls": {
        "random": [
            {"weight": 60, "answer": "human", "ring_s": 6},
            {"weight": 12, "answer": "busy"},
            {"weight": 13, "answer": "no-answer"},
            {"weight": 10, "answer": "machine"},
            {"weight": 5, "answer": "failed"},
        ]
    },
}


@pytest.mark.slow
@pytest.mark.integration
def test_campaign_across_russia_runs_to_the_end(db: Database, settings: Settings) -> None:
    seed_demo(db, consumers=CONSUMERS, seed=5, as_of=START.date())
    clock = Clock(START)
    services, provider = make_services(settings, clock, SCENARIO)
    definition = parse_definition(
        {
            "name": "Напоминание о долге",
            "channel": "voice",
            "audience": {"min_debt": 100, "min_days_overdue": 1},
            "voice": {"flow": "debt_reminder", "amd_policy": "hangup_retry"},
            "pacing": {
                "calls_per_second": 100,
                "max_concurrent": 400,
                "global_calls_per_second": 100,
                "global_max_concurrent": 400,
            },
            "retry": {
                "busy": {"retry_after": "30m", "max_attempts": 3},
                "no_answer": {"retry_after": "3h", "max_attempts": 3},
                "machine": {"retry_after": "4h", "max_attempts": 2},
                "failed": {"retry_after": "1h", "max_attempts": 2},
            },
            "control_group_percent": 5,
        }
    )
    cid = service.create_campaign(services, definition)
    planned = service.launch(services, cid, start=False)
    assert planned.inserted > CONSUMERS // 5

    with db.transaction() as s:
        phones = list(
            s.scalars(
                select(CampaignTarget.phone)
                .where(CampaignTarget.state == "pending")
                .order_by(CampaignTarget.id)
            )
        )
    late_opt_outs = {str(p) for p in phones[5::50]}  # opt out after launch, before a call
    opted = False
    for _n in range(5000):
        result = step(services, provider, cid)
        if result.status != "running":
            break
        if not opted:
            with db.transaction() as s:
                for phone in late_opt_outs:
                    row = add_do_not_contact(s, phone, channel="any", reason="supervisor")
                    row.created_at = clock.now + dt.timedelta(seconds=1)  # after step 1
            opted = True
        clock.advance(minutes=5)
        if result.enqueued == 0 and result.next_due is not None and result.next_due > clock.now:
            clock.now = result.next_due
    else:
        pytest.fail("campaign still running after 5000 steps")

    counts = check_invariants(db, cid, provider_sids=list(provider.calls))
    with db.transaction() as s:
        targets = list(s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid)))
        attempts = list(s.scalars(select(ContactAttempt)))
        logged = {
            i.provider_sid: i
            for i in s.scalars(select(Interaction).where(Interaction.campaign_id == cid))
        }
        dnc = {
            d.value: d.created_at
            for d in s.scalars(
                select(DoNotContact).where(DoNotContact.channel.in_(("voice", "any")))
            )
        }
    zones = Counter(t.timezone for t in targets)
    assert len(zones) >= 10, zones  # Kaliningrad to Kamchatka
    placed = [a for a in attempts if a.provider_sid]
    # Nobody on the do-not-contact list (seeded or added mid-run) was called after opting out.
    by_id = {t.id: t for t in targets}
    for a in placed:
        called = str(by_id[a.target_id].phone)
        assert called not in dnc or a.created_at < dnc[called]
    for phone in late_opt_outs:
        target = next(t for t in targets if t.phone == phone)
        assert target.skip_reason == "opted_out" or target.attempts > 0
    # Every attempt with a call is logged, linked to the campaign and the attempt.
    assert all(logged[a.provider_sid].attempt_id == a.id for a in placed)
    # Every skip carries its reason; control-group targets were never contacted.
    assert all(t.skip_reason for t in targets if t.state == "skipped")
    assert not any(a.target_id in {t.id for t in targets if t.control_group} for a in attempts)
    assert counts["placed"] == len(provider.calls)
    report = service.status(services, cid)
    assert report.status == "completed"
