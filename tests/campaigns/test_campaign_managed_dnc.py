"""Do-not-contact entries and consents changed through the API act on the very next dial."""

from __future__ import annotations

import datetime as dt

from campaign_factories import add_debtor, phone_for
from campaign_harness import Clock, make_services, work
from flask import Flask
from sqlalchemy import select

from campaigns import service
from campaigns.definition import parse_definition
from campaigns.dispatcher import dispatch_once
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import CampaignTarget
from web import api_contacts

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # Tuesday, 12:00 in Moscow


def test_entries_added_after_the_jobs_were_queued_stop_those_calls(
    db: Database, settings: Settings
) -> None:
    clock = Clock(START)
    services, provider = make_services(settings.with_overrides(api_token="t"), clock)
    with db.transaction() as s:
        for n in (1, 2, 3):
            add_debtor(s, n, today=START.date())
    definition = parse_definition(
        {
            "name": "Долг",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "voice": {"flow": "debt_reminder"},
            "pacing": {"calls_per_second": 50, "max_concurrent": 50},
        }
    )
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    dispatch_once(services, cid)  # the dial jobs are queued now
    app = Flask(__name__)
    app.extensions["services"] = services
    app.register_blueprint(api_contacts.bp)
    client = app.test_client()
    headers = {"Authorization": "Bearer t"}
    added = client.post(
        "/api/dnc", json={"phone": phone_for(1), "reason": "жалоба"}, headers=headers
    )
    assert added.status_code == 201
    withdrawn = client.post(
        "/api/consents/withdraw",
        json={"value": phone_for(2), "purpose": "robot_calls", "reason": "просьба"},
        headers=headers,
    )
    assert withdrawn.status_code == 200
    work(services)
    provider.run_until_idle()
    assert {c.to for c in provider.calls.values()} == {phone_for(3)}
    with db.transaction() as s:
        skipped = {
            t.phone: t.skip_reason
            for t in s.scalars(select(CampaignTarget).where(CampaignTarget.state == "skipped"))
        }
    assert skipped == {phone_for(1): "opted_out", phone_for(2): "opted_out"}
