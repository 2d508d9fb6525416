"""Redis restarted during a call and during a campaign, on a redis-server of the test's own.

A restart that keeps the data (append-only file) is invisible: the call and the campaign go
on. A restart that loses it ends the call politely (an apology and a transfer, never silence
or a 500) and the campaign resumes from the database, without dialling anybody twice. While
Redis is down a call is apologised to and transferred; a status callback needs only the
database and is stored once however often it comes.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from campaign_checks import check_invariants
from campaign_harness import Clock, launch_debtor_campaign, make_services, run_to_end
from flask import Flask
from rq import SimpleWorker

from campaigns.dispatcher import dispatch_once
from campaigns.queueing import campaign_queue
from contactcenter.config import Settings
from crm_store.db import Database
from tests.faults.machinery import FULL_PATH
from tests.ivr.test_webhooks_app import (
    SMALL_FLOWS,
    TwilioCall,
    add_account,
    interaction_of,
    path_of,
    write_flows,
)
from tests.netutil import RedisServer
from webhooks import create_app, services_of

pytestmark = pytest.mark.integration

APOLOGY = "Извините, сервис временно недоступен. Соединяю с оператором."
START = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
TARGETS = 6


@pytest.fixture
def app(fault_settings: Settings, db: Database, tmp_path: Path) -> Iterator[Flask]:
    flask_app = create_app(
        fault_settings.with_overrides(flows_file=write_flows(tmp_path, SMALL_FLOWS))
    )
    yield flask_app
    services_of(flask_app).db.dispose()
    services_of(flask_app).redis.close()


def _path(db: Database, call_sid: str) -> list[tuple[str, str]]:
    return [(step, event) for step, event, *_ in path_of(db, interaction_of(db, call_sid).id)]


def test_a_restart_that_keeps_the_data_is_invisible_to_the_call(
    app: Flask, fault_settings: Settings, db: Database, own_redis: RedisServer
) -> None:
    add_account(db, "7700112233")
    call = TwilioCall(app.test_client(), fault_settings)
    call.start()
    call.press("1")
    own_redis.restart(keep_data=True)
    answer = call.press("7700112233")
    assert answer.status == 200
    assert answer.heard == ["Адрес: улица Ленина, дом пять.", "До свидания."]
    assert call.status("completed", 5, duration=20) == 204
    assert _path(db, call.call_sid) == FULL_PATH  # every step once
    assert interaction_of(db, call.call_sid).outcome == "completed_in_ivr"


def test_a_restart_that_loses_the_data_ends_the_call_politely(
    app: Flask, fault_settings: Settings, db: Database, own_redis: RedisServer
) -> None:
    call = TwilioCall(app.test_client(), fault_settings)
    call.start()
    before = _path(db, call.call_sid)
    own_redis.restart(keep_data=False)
    answer = call.press("1")
    assert answer.status == 200
    assert answer.heard == [APOLOGY]
    assert answer.first("Enqueue") is not None
    assert answer.step == "outage"
    # The call's CRM record survives (it is in the database) and hears the call's end.
    assert call.status("completed", 4, duration=20) == 204
    interaction = interaction_of(db, call.call_sid)
    assert interaction.status == "completed"
    assert _path(db, call.call_sid) == before


def test_redis_down_apologises_and_the_status_callback_is_stored_once(
    app: Flask, fault_settings: Settings, db: Database, own_redis: RedisServer
) -> None:
    call = TwilioCall(app.test_client(), fault_settings)
    call.start()
    own_redis.kill()
    answer = call.press("1")
    assert (answer.status, answer.heard, answer.step) == (200, [APOLOGY], "outage")
    assert answer.first("Enqueue") is not None
    # A status callback needs only the database (Redis only shortens the session's life).
    assert call.status("completed", 4, duration=20) == 204
    own_redis.start()
    assert call.status("completed", 4, duration=20) == 204  # Twilio's duplicate
    interaction = interaction_of(db, call.call_sid)
    assert interaction.status == "completed"
    assert [e["status"] for e in interaction.data["status_events"]] == ["completed"]


@pytest.mark.parametrize("keep_data", [True, False], ids=["kept", "lost"])
def test_the_campaign_resumes_after_a_redis_restart_without_double_dial(
    fault_settings: Settings, db: Database, own_redis: RedisServer, keep_data: bool
) -> None:
    clock = Clock(START)
    services, provider = make_services(fault_settings, clock)
    cid = launch_debtor_campaign(services, TARGETS, today=START.date(), name="redis-restart")
    assert dispatch_once(services, cid).enqueued == TARGETS
    # Half the dial jobs run, then Redis restarts with the other half queued.
    SimpleWorker([campaign_queue(services)], connection=services.redis).work(
        burst=True, max_jobs=TARGETS // 2, logging_level="WARNING"
    )
    provider.run_until_idle()
    assert len(provider.calls) == TARGETS // 2
    own_redis.restart(keep_data=keep_data)
    assert campaign_queue(services).count == (TARGETS - TARGETS // 2 if keep_data else 0)

    run_to_end(services, provider, clock, cid)
    counts = check_invariants(db, cid, provider_sids=list(provider.calls))
    assert counts["done"] == TARGETS
    per_phone = Counter(call.to for call in provider.calls.values())
    assert len(per_phone) == TARGETS
    assert set(per_phone.values()) == {1}
