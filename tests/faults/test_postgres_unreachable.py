"""PostgreSQL unreachable during a call and during a campaign (PostgreSQL only).

The app and the campaign jobs reach the real PostgreSQL through a TCP proxy of the test's own
(:class:`~tests.netutil.Forwarder`); stopping it drops every connection and refuses
new ones, as a network partition or a database fail-over does, without touching the server.

A call then hears an apology and is transferred (Twilio never sees a 500), a status callback
gets 503 and is stored once when Twilio retries it; campaign jobs fail and their targets wait
in the database until it is back, then every target is called exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from campaign_checks import check_invariants
from campaign_harness import Clock, launch_debtor_campaign, make_services, run_to_end, work
from flask import Flask
from sqlalchemy import select

from campaigns.dispatcher import dispatch_once
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import CampaignTarget, ContactAttempt
from tests.ivr.test_webhooks_app import (
    SMALL_FLOWS,
    TwilioCall,
    add_account,
    interaction_of,
    path_of,
    write_flows,
)
from tests.netutil import Forwarder
from webhooks import create_app, services_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("TEST_DB", "sqlite") != "postgresql",
        reason="an unreachable database server needs PostgreSQL (SQLite is a local file)",
    ),
]

APOLOGY = "Извините, сервис временно недоступен. Соединяю с оператором."
START = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
TARGETS = 4


@pytest.fixture
def proxy(database_url: str) -> Iterator[Forwarder]:
    parts = urlsplit(database_url)
    forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    forwarder.start()
    yield forwarder
    forwarder.stop()


@pytest.fixture
def proxied(settings: Settings, proxy: Forwarder) -> Settings:
    """The test settings with the database reached through the proxy."""
    parts = urlsplit(settings.database_url)
    netloc = parts.netloc.replace(f":{parts.port}", f":{proxy.port}")
    return settings.with_overrides(database_url=parts._replace(netloc=netloc).geturl())


@pytest.fixture
def app(proxied: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(proxied.with_overrides(flows_file=write_flows(tmp_path, SMALL_FLOWS)))
    yield flask_app
    services_of(flask_app).db.dispose()


def test_a_call_hears_an_apology_and_callbacks_wait_for_the_database(
    app: Flask, proxied: Settings, db: Database, proxy: Forwarder
) -> None:
    add_account(db, "7700112233")
    call = TwilioCall(app.test_client(), proxied)
    call.start()
    call.press("1")
    call.flush_crm()
    path_before = path_of(db, interaction_of(db, call.call_sid).id)
    assert path_before

    proxy.stop()
    answer = call.press("7700112233")
    assert answer.status == 200
    assert answer.heard[-1] == APOLOGY
    assert answer.first("Enqueue") is not None
    # A new call meanwhile: the same apology and transfer, never a 500.
    other = TwilioCall(app.test_client(), proxied, caller="+79161234599")
    started = other.start()
    assert (started.status, started.heard, started.step) == (200, [APOLOGY], "outage")
    # The call's end cannot be stored: 503, and Twilio retries it.
    assert call.status("completed", 5, duration=40) == 503

    proxy.start()
    assert call.status("completed", 5, duration=40) == 204
    assert call.status("completed", 5, duration=40) == 204  # a duplicate of the retry
    interaction = interaction_of(db, call.call_sid)
    assert interaction.status == "completed"
    assert interaction.data["duration_s"] == 40
    assert [e["status"] for e in interaction.data["status_events"]] == ["completed"]
    # Nothing the outage interrupted was half-written: the path is what it was.
    assert path_of(db, interaction.id) == path_before


def test_campaign_attempts_wait_for_the_database_and_none_is_lost(
    proxied: Settings, db: Database, proxy: Forwarder
) -> None:
    clock = Clock(START)
    services, provider = make_services(proxied, clock)
    cid = launch_debtor_campaign(services, TARGETS, today=START.date(), name="db-outage")
    assert dispatch_once(services, cid).enqueued == TARGETS

    proxy.stop()
    work(services)  # every dial job meets the outage
    assert provider.calls == {}
    proxy.start()
    with db.transaction() as s:
        states = Counter(t.state for t in s.scalars(select(CampaignTarget)))
        assert s.scalars(select(ContactAttempt)).all() == []
    assert states == {"scheduled": TARGETS}  # waiting, not lost

    run_to_end(services, provider, clock, cid)
    counts = check_invariants(db, cid, provider_sids=list(provider.calls))
    assert counts["done"] == TARGETS
    per_phone = Counter(call.to for call in provider.calls.values())
    assert len(per_phone) == TARGETS
    assert set(per_phone.values()) == {1}
