"""Campaign jobs on RQ with the sandbox provider: outcomes, retries, compliance at dial time,
pause/resume/cancel, duplicate jobs, out-of-order callbacks, reconciliation of intents."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from campaign_checks import check_invariants
from campaign_factories import RUSSIAN_ZONES, add_debtor, phone_for
from campaign_harness import Clock, make_services, run_to_end, step, work
from rq.exceptions import DuplicateJobError
from sqlalchemy import select

from campaigns import service
from campaigns.attempts import INTENT_GRACE
from campaigns.compliance import Channel
from campaigns.definition import parse_definition
from campaigns.dialing import dial_target, prepare
from campaigns.dispatcher import dispatch_once
from campaigns.keywords import KeywordAction
from campaigns.outcomes import CALL_OUTCOMES, SMS_OUTCOMES
from campaigns.queueing import campaign_queue, dial_job_id, enqueue_unique
from campaigns.status import (
    handle_amd_status,
    handle_call_status,
    handle_inbound_sms,
    handle_sms_status,
)
from contactcenter.config import Settings
from contactcenter.wiring import build_services
from crm_store.consent import add_do_not_contact, is_do_not_contact, withdraw_consent
from crm_store.db import Database
from crm_store.models import Campaign, CampaignTarget, ContactAttempt, Interaction
from telephony.status import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
    StatusCallback,
    StatusKind,
    parse_status_callback,
)

START = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)  # Tuesday: 08:00 Kaliningrad


def _definition(**over: Any) -> Any:
    data: dict[str, Any] = {
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
        "retry": {
            "busy": {"retry_after": "30m", "max_attempts": 3},
            "no_answer": {"retry_after": "2h", "max_attempts": 2},
            "machine": {"retry_after": "4h", "max_attempts": 2},
        },
    }
    data.update(over)
    return parse_definition(data)


def _debtors(db: Database, count: int) -> None:
    with db.transaction() as s:
        for n in range(1, count + 1):
            add_debtor(s, n, today=START.date(), timezone=RUSSIAN_ZONES[n % len(RUSSIAN_ZONES)])


def _call(**form: str) -> StatusCallback:
    """A checked call status callback, as the web layer hands it to the status hooks."""
    return parse_status_callback(StatusKind.CALL, form)


def _launch(services: Any, definition: Any) -> int:
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    return cid


def _targets(db: Database, cid: int) -> dict[str, CampaignTarget]:
    with db.transaction() as s:
        return {
            str(t.phone): t
            for t in s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid))
        }


SCENARIO = {
    "calls": {
        "default": {"answer": "human", "ring_s": 3},
        "numbers": {
            phone_for(1): {"answer": "busy"},
            phone_for(2): {"answer": "no-answer"},
            phone_for(3): {"answer": "machine"},
            phone_for(4): {"answer": "failed"},
        },
    }
}


def test_voice_campaign_runs_to_the_end_with_retries(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock, SCENARIO)
    _debtors(db, 22)
    cid = _launch(services, _definition())
    run_to_end(services, provider, clock, cid, step_s=600)
    counts = check_invariants(db, cid, provider_sids=list(provider.calls))
    targets = _targets(db, cid)
    busy, no_answer, machine, failed = (targets[phone_for(n)] for n in (1, 2, 3, 4))
    # busy: three attempts, at most one a day -> three days, then failed
    assert (busy.state, busy.attempts, busy.last_outcome) == ("failed", 3, "busy")
    assert (no_answer.state, no_answer.attempts) == ("failed", 2)
    assert (machine.state, machine.last_outcome) == ("failed", "machine")
    assert (failed.state, failed.attempts) == ("failed", 2)
    assert targets[phone_for(5)].state == "done"
    assert counts["done"] == 18
    with db.transaction() as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        assert campaign.status == "completed"
        machine_attempt = s.scalars(
            select(ContactAttempt).where(ContactAttempt.target_id == machine.id)
        ).first()
        assert machine_attempt is not None
        assert machine_attempt.answered_by == "machine_start"
        answered = s.scalars(
            select(ContactAttempt).where(ContactAttempt.outcome == "answered")
        ).first()
        assert answered is not None
        assert answered.duration_s is not None
        logged = s.scalar(
            select(Interaction).where(Interaction.provider_sid == answered.provider_sid)
        )
        assert logged is not None
        assert logged.ended_at is not None
        assert logged.outcome == "answered"


def test_opt_out_after_the_job_was_queued_is_respected(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 3)
    cid = _launch(services, _definition())
    dispatch_once(services, cid)  # the dial jobs are queued now
    with db.transaction() as s:
        add_do_not_contact(s, phone_for(1), channel="voice", reason="supervisor")
        withdraw_consent(
            s, contact="phone", value=phone_for(2), purpose="robot_calls", source="ivr", at=START
        )
    work(services)
    provider.run_until_idle()
    called = {c.to for c in provider.calls.values()}
    assert called == {phone_for(3)}
    targets = _targets(db, cid)
    assert (targets[phone_for(1)].state, targets[phone_for(1)].skip_reason) == (
        "skipped",
        "opted_out",
    )
    assert targets[phone_for(2)].skip_reason == "opted_out"
    with db.transaction() as s:
        skipped = s.scalars(
            select(ContactAttempt.outcome).where(ContactAttempt.status == "skipped")
        )
        assert sorted(str(x) for x in skipped) == ["opted_out", "opted_out"]


def test_outside_the_window_waits_for_the_local_morning(db: Database, settings: Settings) -> None:
    # 05:30 UTC: 07:30 in Kaliningrad (closed), 17:30 in Kamchatka (open).
    clock = Clock(START - dt.timedelta(minutes=30))
    services, provider = make_services(settings, clock)
    with db.transaction() as s:
        add_debtor(s, 1, today=START.date(), timezone="Europe/Kaliningrad")
        add_debtor(s, 2, today=START.date(), timezone="Asia/Kamchatka")
    cid = _launch(services, _definition())
    step(services, provider, cid)
    assert {c.to for c in provider.calls.values()} == {phone_for(2)}
    kaliningrad = _targets(db, cid)[phone_for(1)]
    assert kaliningrad.state == "pending"
    assert kaliningrad.next_attempt_at == START  # 08:00 local
    clock.now = START
    step(services, provider, cid)
    assert len(provider.calls) == 2


def test_pause_resume_and_cancel_reach_queued_jobs(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 4)
    cid = _launch(services, _definition())
    dispatch_once(services, cid)
    service.pause(services, cid)
    work(services)  # the queued jobs see "paused" and put their targets back
    assert provider.calls == {}
    assert {t.state for t in _targets(db, cid).values()} == {"pending"}
    assert dispatch_once(services, cid).status == "paused"
    service.resume(services, cid, start=False)
    dispatch_once(services, cid)
    service.cancel(services, cid)
    work(services)
    assert provider.calls == {}
    assert {t.state for t in _targets(db, cid).values()} == {"cancelled"}
    with pytest.raises(service.CampaignError, match="cancelled"):
        service.resume(services, cid)


def test_duplicate_jobs_and_workers_never_dial_twice(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 1)
    cid = _launch(services, _definition())
    dispatch_once(services, cid)
    target = next(iter(_targets(db, cid).values()))
    queue = campaign_queue(services)
    with pytest.raises(DuplicateJobError):
        queue.enqueue(dial_target, target.id, 1, job_id=dial_job_id(target.id, 1),
                      unique=True)  # fmt: skip
    # The same attempt run again (a second worker, an RQ retry) reconciles, never dials.
    assert dial_target(target.id, 1) == "placed"
    assert dial_target(target.id, 1) in ("reconciled", "not_scheduled")
    work(services)
    assert len(provider.calls) == 1


FAILURES: list[str] = []


def failing_job(label: str) -> None:
    """A campaign job that fails (its worker met an outage), for the revival test."""
    FAILURES.append(label)
    raise RuntimeError("database unreachable")


def test_a_failed_job_does_not_block_its_id(settings: Settings) -> None:
    clock = Clock(START)
    services, _provider = make_services(settings, clock)
    queue = campaign_queue(services)
    job_id = "cc-test-revive-1"
    FAILURES.clear()
    assert enqueue_unique(services, failing_job, "first", job_id=job_id)
    assert not enqueue_unique(services, failing_job, "first", job_id=job_id)  # queued: once
    work(services)
    assert FAILURES == ["first"]
    assert job_id in queue.failed_job_registry.get_job_ids()
    # Two dispatchers see the failed job at once: exactly one enqueues it again.
    assert [enqueue_unique(services, failing_job, "first", job_id=job_id) for _ in range(2)] == [
        True,
        False,
    ]
    assert job_id not in queue.failed_job_registry.get_job_ids()
    assert queue.count == 1
    work(services)
    assert FAILURES == ["first", "first"]
    # A scheduled enqueue of a failed id schedules it again, once.
    later = START + dt.timedelta(minutes=5)
    assert enqueue_unique(services, failing_job, "first", job_id=job_id, at=later)
    assert not enqueue_unique(services, failing_job, "first", job_id=job_id, at=later)
    assert job_id in queue.scheduled_job_registry.get_job_ids()
    assert queue.count == 0


def test_callbacks_out_of_order_and_duplicated(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, _provider = make_services(settings, clock)
    _debtors(db, 1)
    cid = _launch(services, _definition())
    dispatch_once(services, cid)
    target = next(iter(_targets(db, cid).values()))
    assert dial_target(target.id, 1) == "placed"
    with db.transaction() as s:
        attempt = s.scalars(select(ContactAttempt)).one()
        sid, attempt_id = attempt.provider_sid, attempt.id
    assert sid is not None
    done = _call(CallSid=sid, CallStatus="completed", SequenceNumber="3", CallDuration="42")
    assert handle_call_status(services, done)
    assert handle_call_status(services, done)  # duplicate
    ringing = _call(CallSid=sid, CallStatus="ringing", SequenceNumber="1")
    assert handle_call_status(services, ringing)  # late: ignored
    busy = _call(CallSid=sid, CallStatus="busy", SequenceNumber="4")
    assert handle_call_status(services, busy)  # terminal is never overwritten
    with db.transaction() as s:
        settled = s.get(ContactAttempt, attempt_id)
        assert settled is not None
        assert (settled.status, settled.outcome, settled.duration_s) == (
            "completed",
            "answered",
            42,
        )
    assert not handle_call_status(services, _call(CallSid="CAunknown", CallStatus="ringing"))
    # Through the hooks the web layer publishes to: not a campaign call, nobody handles it.
    assert not services.status_hooks.publish(services, _call(CallSid="CAx", CallStatus="busy"))


def test_intent_left_by_a_dead_worker_is_reconciled(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    services, provider = make_services(settings, clock)
    _debtors(db, 2)
    cid = _launch(services, _definition())
    dispatch_once(services, cid)
    first, second = sorted(_targets(db, cid).values(), key=lambda t: t.id)
    # A worker dies after the intent was committed, before the provider call.
    prepared = prepare(services, first.id, 1, Channel.VOICE)
    assert not isinstance(prepared, str)
    # A worker dies after the provider accepted, before the SID was stored.
    prepared2 = prepare(services, second.id, 1, Channel.VOICE)
    assert not isinstance(prepared2, str)
    info = provider.place_call(
        prepared2.phone, "+74950000000", "http://localhost/voice/outbound",
        status_callback=f"http://localhost/voice/status?attempt={prepared2.attempt_id}",
    )  # fmt: skip
    # Re-running the jobs must not dial either target again.
    assert dial_target(first.id, 1) == "reconciled"
    assert dial_target(second.id, 1) == "reconciled"
    provider.run_until_idle()  # callbacks carry ?attempt=<id>: the SID is adopted
    assert len(provider.calls) == 1
    with db.transaction() as s:
        adopted = s.get(ContactAttempt, prepared2.attempt_id)
        assert adopted is not None
        assert (adopted.provider_sid, adopted.status) == (info.sid, "completed")
        orphan = s.get(ContactAttempt, prepared.attempt_id)
        assert orphan is not None
        assert orphan.status == "intent"
    # After the grace period the orphan intent is declared not placed and retried.
    clock.advance(seconds=INTENT_GRACE.total_seconds() + 1)
    run_to_end(services, provider, clock, cid)
    with db.transaction() as s:
        orphan = s.get(ContactAttempt, prepared.attempt_id)
        assert orphan is not None
        assert (orphan.status, orphan.outcome) == ("failed", "not_placed")
    assert sorted(c.to for c in provider.calls.values()) == sorted(
        [str(first.phone), str(second.phone)]
    )
    check_invariants(db, cid, provider_sids=list(provider.calls))


def test_sms_campaign_and_voice_then_sms_fallback(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    scenario = {
        "calls": {"default": {"answer": "no-answer"}},
        "sms": {"default": {"status": "delivered"}},
    }
    services, provider = make_services(settings, clock, scenario)
    _debtors(db, 3)
    template = "{supplier}: долг {amount} по ЛС {account}. Оплатите до {due_date}."
    definition = _definition(
        channel="voice_then_sms",
        sms={"template": template},
        retry={"no_answer": {"retry_after": "1h", "max_attempts": 1}},
    )
    cid = _launch(services, definition)
    run_to_end(services, provider, clock, cid, step_s=600)
    assert len(provider.calls) == 3
    assert len(provider.messages) == 3
    message = next(iter(provider.messages.values()))
    assert "руб." in message.body
    assert {t.state for t in _targets(db, cid).values()} == {"done"}
    with db.transaction() as s:
        sms_attempts = s.scalars(
            select(ContactAttempt).where(ContactAttempt.channel == "sms")
        ).all()
        assert {a.outcome for a in sms_attempts} == {"delivered"}
        assert all(a.sms_segments and a.sms_segments >= 1 for a in sms_attempts)
        logged = s.scalars(select(Interaction).where(Interaction.channel == "sms")).all()
        assert len(logged) == 3
    check_invariants(db, cid, provider_sids=list(provider.messages), channel="sms")


def test_inbound_sms_keywords_update_the_do_not_contact_list(
    db: Database, settings: Settings
) -> None:
    services, _ = make_services(settings, Clock(START))
    stop = {"From": phone_for(7), "Body": "СТОП"}
    assert handle_inbound_sms(services, stop) is KeywordAction.OPT_OUT
    with db.transaction() as s:
        assert is_do_not_contact(s, phone_for(7), "sms")
    start = {"From": phone_for(7), "Body": "whatever", "OptOutType": "START"}
    assert handle_inbound_sms(services, start) is KeywordAction.OPT_IN
    with db.transaction() as s:
        assert not is_do_not_contact(s, phone_for(7), "sms")
    assert handle_inbound_sms(services, {"From": phone_for(7), "Body": "спасибо"}) is None


def test_outcomes_are_keyed_by_the_shared_status_vocabulary() -> None:
    assert set(CALL_OUTCOMES) == TERMINAL_CALL_STATUSES
    # ``received`` is the status of an inbound message, never of a campaign SMS.
    assert set(SMS_OUTCOMES) == TERMINAL_MESSAGE_STATUSES - {"received"}


def test_the_application_subscribes_the_campaign_status_handlers(settings: Settings) -> None:
    hooks = build_services(settings).status_hooks
    assert hooks.subscribers(StatusKind.CALL) == (handle_call_status,)
    assert hooks.subscribers(StatusKind.AMD) == (handle_amd_status,)
    assert hooks.subscribers(StatusKind.SMS) == (handle_sms_status,)
