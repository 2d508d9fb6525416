"""``amd_policy: leave_message``: a neutral message on the machine, outcome ``machine_message``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from campaign_factories import add_debtor
from campaign_harness import Clock, make_services, run_to_end, step
from sqlalchemy import select

from campaigns import service
from campaigns.definition import parse_definition
from campaigns.errors import DefinitionError
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import Account, CampaignTarget, Consumer, ContactAttempt

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def _definition(**voice: Any) -> Any:
    return parse_definition(
        {
            "name": "Долг",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "voice": {"flow": "debt_reminder", "amd_policy": "leave_message", **voice},
            "retry": {"machine_message": {"retry_after": "3h", "max_attempts": 2}},
        }
    )


def test_machine_gets_only_the_neutral_message(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    scenario = {"calls": {"default": {"answer": "machine", "machine_end": "beep"}}}
    services, provider = make_services(settings, clock, scenario)
    with db.transaction() as s:
        add_debtor(s, 1, today=START.date(), timezone="Europe/Moscow")
    definition = _definition(callback_number="+78002200220")
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    step(services, provider, cid)
    (call,) = provider.calls.values()
    assert call.answered_by == "machine_end_beep"
    # synchronous AMD: the flow is never fetched for a machine, only the message is said
    assert call.async_amd is False
    said = [e.text for e in call.live.transcript if e.kind == "say"]
    message = f"Это {settings.supplier_name}. Пожалуйста, перезвоните по номеру 8 800 220-02-20."
    assert said == [message]
    with db.transaction() as s:
        account = s.scalars(select(Account)).one()
        consumer = s.scalars(select(Consumer)).one()
        for secret in (account.number, consumer.full_name, consumer.full_name.split()[0]):
            assert secret
            assert secret not in message
        attempt = s.scalars(select(ContactAttempt)).one()
        assert attempt.outcome == "machine_message"
        target = s.scalars(select(CampaignTarget)).one()
        assert target.state == "retry"
        assert target.next_attempt_at is not None
        assert target.next_attempt_at - clock.now == dt.timedelta(hours=3)


def test_machine_message_may_not_name_the_holder() -> None:
    with pytest.raises(DefinitionError):
        _definition(machine_message="{holder_name}, перезвоните по номеру {callback_number}")


def test_machine_message_retries_then_is_done(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    scenario = {"calls": {"default": {"answer": "machine", "machine_end": "silence"}}}
    services, provider = make_services(settings, clock, scenario)
    with db.transaction() as s:
        add_debtor(s, 1, today=START.date(), timezone="Europe/Moscow")
    cid = service.create_campaign(services, _definition())
    service.launch(services, cid, start=False)
    run_to_end(services, provider, clock, cid, step_s=600)
    assert len(provider.calls) == 2  # max_attempts: 2, then the target is done
    with db.transaction() as s:
        outcomes = s.scalars(select(ContactAttempt.outcome).order_by(ContactAttempt.id)).all()
        assert list(outcomes) == ["machine_message", "machine_message"]
        target = s.scalars(select(CampaignTarget)).one()
        assert (target.state, target.next_attempt_at) == ("done", None)
