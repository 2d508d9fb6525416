"""The IVR steps' CRM writes leave the webhook (ivr.crm): queued in Redis with the step's
session commit, written in one transaction per call by a flush — the status callback's, a
handoff's, the worker's sweep — once, however often a flush is repeated or dies midway."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event, func, select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import Interaction, InteractionStep
from ivr.crm import flush_call_records, flush_pending_records, sweep_records
from ivr.session import PENDING_RECORDS_KEY, SessionStore
from telephony.status import StatusCallback, StatusKind
from tests.faults.machinery import wait_until
from tests.ivr.test_webhooks_app import (
    TwilioCall,
    add_account,
    interaction_of,
    path_of,
    small_app,
)
from web.common import services_of

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["small_app"]  # the fixture


def _step_rows(db: Database) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(InteractionStep)) or 0)


def _found_call(app: Flask, settings: Settings, db: Database) -> TwilioCall:
    add_account(db, "7700112233")
    call = TwilioCall(app.test_client(), settings)
    call.start()
    call.press("1")
    call.press("7700112233")
    return call


def test_steps_wait_in_redis_until_a_flush_writes_them_in_one_go(
    small_app: Flask, settings: Settings, db: Database, redis_client: Any
) -> None:
    call = _found_call(small_app, settings, db)
    store = SessionStore(services_of(small_app).redis)
    assert len(store.records(call.call_sid)) == 3  # the start and two key presses
    assert redis_client.zscore(PENDING_RECORDS_KEY, call.call_sid) is not None
    assert _step_rows(db) == 0
    before = interaction_of(db, call.call_sid)
    assert before.account_id is None
    assert before.outcome is None

    assert flush_call_records(services_of(small_app), call.call_sid) == 3
    after = interaction_of(db, call.call_sid)
    assert after.account_id is not None
    assert after.outcome == "completed_in_ivr"
    assert "Путь: hotline:greet → hotline:menu → hotline:ask" in after.summary
    assert [p[0] for p in path_of(db, after.id) if p[1] == "enter"][-1] == "hotline:bye"
    assert store.records(call.call_sid) == []
    assert redis_client.zscore(PENDING_RECORDS_KEY, call.call_sid) is None
    assert flush_call_records(services_of(small_app), call.call_sid) == 0


def test_a_flush_that_died_before_dropping_its_records_writes_nothing_twice(
    small_app: Flask, settings: Settings, db: Database, redis_client: Any
) -> None:
    call = _found_call(small_app, settings, db)
    services = services_of(small_app)
    store = SessionStore(services.redis)
    queued = store.records(call.call_sid)
    flush_call_records(services, call.call_sid)
    written = path_of(db, interaction_of(db, call.call_sid).id)
    # As if the flush had committed and died before LTRIM: the same records again.
    redis_client.rpush(f"ivr:call:{call.call_sid}:crm", *queued)
    assert flush_call_records(services, call.call_sid) == 0
    assert path_of(db, interaction_of(db, call.call_sid).id) == written
    assert store.records(call.call_sid) == []


def test_records_queued_after_a_flush_are_written_by_the_next(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    services = services_of(small_app)
    flush_call_records(services, call.call_sid)
    call.press("1")
    flush_call_records(services, call.call_sid)
    path = path_of(db, interaction_of(db, call.call_sid).id)
    assert [p[0] for p in path if p[1] == "enter"] == [
        "hotline:greet",
        "hotline:menu",
        "hotline:ask",
    ]
    assert ("hotline:menu", "input", "1", "ask") in path


def test_the_sweep_writes_a_live_calls_steps_about_a_second_later(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(small_app.test_client(), settings)
    call.start()
    call.press("1")
    services = services_of(small_app)
    assert flush_pending_records(services, older_than_s=3600) == 0  # too young for a sweep
    stop = threading.Event()
    sweeper = threading.Thread(target=sweep_records, args=(services, stop))
    sweeper.start()
    try:
        wait_until(lambda: _step_rows(db) > 0, "the sweep to write the steps", timeout_s=10)
    finally:
        stop.set()
        sweeper.join(timeout=5)
    assert SessionStore(services.redis).records(call.call_sid) == []


def test_a_worker_process_writes_queued_steps(
    small_app: Flask, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """``contactcenter worker`` (serving the ivr queue) runs the sweep in a thread."""
    call = _found_call(small_app, settings, db)
    assert _step_rows(db) == 0
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "TELEPHONY": "sandbox",
        "PUBLIC_BASE_URL": settings.public_base_url,
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from contactcenter.cli import main; main()",
            "worker",
            "--queue",
            "ivr",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _step_rows(db) > 0, "the worker to write the steps", timeout_s=30)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
    assert interaction_of(db, call.call_sid).outcome == "completed_in_ivr"


def test_an_outbound_calls_subscribers_see_its_ivr_outcome(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    """A campaign's status subscriber gives the Interaction an outcome only when it has none:
    the IVR's queued end of the flow is written before the subscribers run."""
    seen: list[str | None] = []

    def subscriber(services: Any, callback: StatusCallback) -> bool:
        with services.db.transaction() as s:
            row = s.scalars(
                select(Interaction).where(Interaction.provider_sid == callback.sid)
            ).one()
            seen.append(row.outcome)
        return False

    services_of(small_app).status_hooks.subscribe(StatusKind.CALL, subscriber)
    call = _found_call(small_app, settings, db)
    call.direction = "outbound-api"
    assert call.status("completed", 5, duration=30) == 204
    assert seen == ["completed_in_ivr"]


def test_an_inbound_calls_status_callback_never_reads_campaign_attempts(
    small_app: Flask, settings: Settings, db: Database
) -> None:
    """Campaigns only place calls: the hotline's callbacks are not looked up among them."""
    call = _found_call(small_app, settings, db)
    sent: list[str] = []
    event.listen(
        services_of(small_app).db.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: sent.append(sql),
    )
    assert call.status("completed", 5, duration=30) == 204
    assert sent
    assert not [sql for sql in sent if "contact_attempts" in sql]
    call.direction = "outbound-api"
    assert call.status("completed", 6, duration=30) == 204
    assert [sql for sql in sent if "contact_attempts" in sql]  # an outbound one is
