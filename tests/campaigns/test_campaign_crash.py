"""Kill a real forked RQ worker with SIGKILL in the middle of a dial job: no target is lost,
no call is placed twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from campaign_harness import Clock, launch_debtor_campaign
from campaign_ledger import (
    DIE_AT,
    DIE_WHEN,
    HORSE_PID,
    READY,
    LedgerProvider,
    ledger_calls,
)
from rq import SimpleWorker
from sqlalchemy import select

from campaigns.attempts import INTENT_GRACE
from campaigns.dispatcher import dispatch_once
from campaigns.queueing import campaign_queue
from campaigns.status import subscribe
from contactcenter.config import Settings
from contactcenter.services import Services, install_services
from crm_store.db import Database
from crm_store.models import CampaignTarget, ContactAttempt, Interaction
from telephony.status import StatusKind, parse_status_callback

START = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
WORKER = Path(__file__).with_name("campaign_crash_worker.py")
TARGETS = 6


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), settings.database_url, settings.redis_url, START.isoformat()],
        start_new_session=True,  # its own process group: the horse dies with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(worker: subprocess.Popen[bytes] | None) -> None:
    """Kill a worker (and its horse) that is still running, e.g. after a failed assertion:
    left alive, it would go on taking jobs from the next tests' queues on the same Redis
    (or block forever at the crash point)."""
    if worker is not None and worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited by itself
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _kill_horse(services: Services) -> int | None:
    """SIGKILL the work-horse stuck at the crash point: RQ moved it into its own process
    group, so killing the worker's group does not reach it. Returns its pid."""
    raw = services.redis.get(HORSE_PID)
    if raw is None:
        return None
    pid = int(raw)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return pid


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _assert_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} was left running"
        time.sleep(0.05)


def _deliver_callbacks(services: Services, delivered: set[str]) -> None:
    """The network: Twilio-ordered status callbacks for every call in the ledger."""
    for call in ledger_calls(services):
        if call["sid"] in delivered:
            continue
        delivered.add(call["sid"])
        query = dict(parse_qsl(urlsplit(call["status_callback"]).query))
        for seq, status in enumerate(("initiated", "ringing", "in-progress", "completed")):
            form = {"CallSid": call["sid"], "CallStatus": status,
                    "SequenceNumber": str(seq), "CallDuration": "20"}  # fmt: skip
            callback = parse_status_callback(StatusKind.CALL, form, query)
            services.status_hooks.publish(services, callback)


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["after", "before"])
def test_sigkill_mid_dial_loses_and_duplicates_nothing(
    db: Database, settings: Settings, redis_client: object, moment: str
) -> None:
    clock = Clock(START)
    services = Services(settings, clock=clock)
    subscribe(services.status_hooks)
    services.telephony = LedgerProvider(services)
    install_services(services)
    worker: subprocess.Popen[bytes] | None = None
    survivor: subprocess.Popen[bytes] | None = None
    try:
        cid = launch_debtor_campaign(services, TARGETS, today=START.date(), name="crash")
        assert dispatch_once(services, cid).enqueued == TARGETS

        # The third call: the worker dies after the provider accepted it (or just before).
        services.redis.set(DIE_AT, 3)
        services.redis.set(DIE_WHEN, moment)
        worker = _worker(settings)
        deadline = time.monotonic() + 60
        while not services.redis.get(READY):
            assert worker.poll() is None, "the worker exited before the crash point"
            assert time.monotonic() < deadline, "the worker never reached the crash point"
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        horse = _kill_horse(services)
        assert horse is not None
        assert horse != worker.pid
        _assert_gone(horse)  # no forked work-horse outlives the test
        services.redis.delete(DIE_AT)

        # A new worker takes the rest of the queue; the killed job is not re-run by RQ.
        survivor = _worker(settings)
        assert survivor.wait(timeout=60) == 0
        delivered: set[str] = set()
        _deliver_callbacks(services, delivered)

        with db.transaction() as s:
            intents = s.scalars(
                select(ContactAttempt).where(ContactAttempt.status == "intent")
            ).all()
            assert len(intents) == (0 if moment == "after" else 1)

        # Time passes: the dispatcher reconciles the orphan intent and finishes the campaign.
        for _ in range(20):
            clock.advance(seconds=INTENT_GRACE.total_seconds() + 1)
            if dispatch_once(services, cid).status != "running":
                break
            SimpleWorker([campaign_queue(services)], connection=services.redis).work(
                burst=True, logging_level="WARNING"
            )
            _deliver_callbacks(services, delivered)
        calls = ledger_calls(services)
        with db.transaction() as s:
            targets = list(s.scalars(select(CampaignTarget)))
            attempts = list(s.scalars(select(ContactAttempt)))
            logged = set(s.scalars(select(Interaction.provider_sid)))
        # No target lost: every one was called and is done.
        assert {t.state for t in targets} == {"done"}
        # No call duplicated: exactly one call per consumer reached the network.
        per_phone = Counter(c["to"] for c in calls)
        assert sorted(per_phone) == sorted(str(t.phone) for t in targets)
        assert set(per_phone.values()) == {1}
        # Every placed call is an attempt with its SID and is in the Interaction log.
        placed = {a.provider_sid for a in attempts if a.provider_sid}
        assert placed == {c["sid"] for c in calls} <= logged
        if moment == "before":
            assert [a.outcome for a in attempts if a.status == "failed"] == ["not_placed"]
    finally:
        _stop(worker)
        _stop(survivor)
        _kill_horse(services)
        services.db.dispose()
        services.redis.close()
