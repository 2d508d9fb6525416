"""Final status callbacks lost, or arriving hours late, during a campaign.

The sandbox places the calls and sends the SMS; a lossy transport drops every final status
callback (what a long outage of our app, beyond Twilio's retries, does). The campaign must
still finish: each silent attempt is checked with the provider once it has outlived its
longest possible life (:mod:`campaigns.settle`), its outcome and retry rule applied as the
callback would have, and the lost callbacks delivered hours later change nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from campaign_checks import check_invariants
from campaign_factories import phone_for
from campaign_harness import (
    CampaignTransport,
    Clock,
    launch_debtor_campaign,
    make_services,
    run_to_end,
    step,
)
from sqlalchemy import select

from campaigns.settle import SETTLE_GRACE, SMS_RECEIPT_WAIT, SMS_SETTLE_AFTER
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import Campaign, CampaignTarget, ContactAttempt, Interaction
from devtools.sandbox import WebhookResponse
from telephony.status import TERMINAL_CALL_STATUSES, TERMINAL_MESSAGE_STATUSES

pytestmark = pytest.mark.integration

START = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)  # Tuesday, 10:00 in Moscow


class LossyTransport(CampaignTransport):
    """Drops final status callbacks while ``losing`` (keeping them for a late delivery)."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.losing = True
        self.lost: list[tuple[str, str, dict[str, str], dict[str, str]]] = []

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> WebhookResponse:
        status = params.get("CallStatus") or params.get("MessageStatus") or ""
        final = status in TERMINAL_CALL_STATUSES or status in TERMINAL_MESSAGE_STATUSES
        if self.losing and final:
            self.lost.append((method, url, dict(params), dict(headers)))
            return WebhookResponse(502, "bad gateway")  # never reaches the app
        return super().request(method, url, params, headers)

    def deliver_lost(self) -> int:
        """Deliver every lost callback now, each twice (a late retry and a duplicate)."""
        self.losing = False
        for method, url, params, headers in self.lost * 2:
            assert super().request(method, url, params, headers).status == 204
        return len(self.lost)


class TickingClock(Clock):
    """The virtual clock, moving on by a millisecond at every reading as a real one does
    (two writes of one attempt never carry the same time, so none falls back to the
    database's wall-clock ``onupdate``)."""

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=1)
        return self.now


def _services(settings: Settings, clock: Clock, scenario: dict[str, Any]) -> Any:
    services, provider = make_services(settings, clock, scenario)
    transport = LossyTransport(services)
    provider.transport = transport
    return services, provider, transport


def _campaign(services: Services, count: int, **over: Any) -> int:
    definition: dict[str, Any] = {
        "voice": {"ring_timeout_s": 30, "time_limit_s": 120},
        "retry": {
            "busy": {"retry_after": "30m", "max_attempts": 2},
            "no_answer": {"retry_after": "2h", "max_attempts": 1},
        },
        **over,
    }
    return launch_debtor_campaign(
        services, count, today=START.date(), name="late-callbacks", **definition
    )


def _attempts(db: Database, cid: int) -> list[ContactAttempt]:
    with db.transaction() as s:
        return list(
            s.scalars(
                select(ContactAttempt)
                .where(ContactAttempt.campaign_id == cid)
                .order_by(ContactAttempt.id)
            )
        )


def _snapshot(db: Database, cid: int) -> Any:
    with db.transaction() as s:
        attempts = [
            (a.id, a.status, a.outcome, a.duration_s)
            for a in s.scalars(select(ContactAttempt).where(ContactAttempt.campaign_id == cid))
        ]
        targets = [
            (t.id, t.state, t.last_outcome)
            for t in s.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == cid))
        ]
        interactions = [
            (i.provider_sid, i.status, i.outcome)
            for i in s.scalars(select(Interaction).where(Interaction.campaign_id == cid))
        ]
    return sorted(attempts), sorted(targets), sorted(interactions)


def test_lost_call_callbacks_are_settled_by_asking_the_provider(
    db: Database, settings: Settings
) -> None:
    clock = TickingClock(START)
    scenario = {
        "calls": {
            "default": {"answer": "human", "ring_s": 3},
            "numbers": {phone_for(2): {"answer": "busy"}, phone_for(3): {"answer": "no-answer"}},
        }
    }
    services, provider, transport = _services(settings, clock, scenario)
    cid = _campaign(services, 3)

    step(services, provider, cid)
    assert len(provider.calls) == 3
    assert len(transport.lost) == 3  # every final callback lost
    assert {a.status for a in _attempts(db, cid)} <= {"dialing", "in_progress"}
    # Within the calls' longest possible life nobody asks the provider.
    clock.advance(seconds=60)
    step(services, provider, cid)
    assert {a.status for a in _attempts(db, cid)} <= {"dialing", "in_progress"}

    clock.advance(seconds=30 + 120 + SETTLE_GRACE.total_seconds() + 180)
    step(services, provider, cid)  # settle jobs run
    settled = {a.provider_sid: (a.status, a.outcome) for a in _attempts(db, cid)}
    by_phone = {call.to: settled[sid] for sid, call in provider.calls.items()}
    assert by_phone == {
        phone_for(1): ("completed", "answered"),
        phone_for(2): ("completed", "busy"),
        phone_for(3): ("completed", "no_answer"),
    }
    answered = next(a for a in _attempts(db, cid) if a.outcome == "answered")
    assert answered.duration_s is not None

    run_to_end(services, provider, clock, cid)  # the busy one is retried, once
    # The lost callbacks arrive hours late, twice each: nothing changes.
    clock.advance(hours=5)
    before = _snapshot(db, cid)
    assert transport.deliver_lost() >= 3
    assert _snapshot(db, cid) == before
    counts = check_invariants(db, cid, provider_sids=list(provider.calls))
    assert counts["done"] + counts.get("failed", 0) == 3
    per_phone = Counter(call.to for call in provider.calls.values())
    assert per_phone == {phone_for(1): 1, phone_for(2): 2, phone_for(3): 1}
    with db.transaction() as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        assert campaign.status == "completed"


def test_an_sms_without_a_receipt_is_checked_then_closed_unconfirmed(
    db: Database, settings: Settings
) -> None:
    clock = TickingClock(START)
    services, provider, transport = _services(settings, clock, {})
    sms = {"template": "{supplier}: долг {amount} по ЛС {account}. Оплатите до {due_date}."}
    cid = _campaign(services, 2, channel="sms", sms=sms, voice=None, retry={})
    step(services, provider, cid)
    assert len(provider.messages) == 2
    assert len(transport.lost) == 2  # both "delivered" receipts lost
    first, second = sorted(provider.messages)
    # One message the network never confirms: the provider still says "sent" a day later.
    provider.state.set_status(second, "sent")

    clock.advance(seconds=SMS_SETTLE_AFTER.total_seconds() + 60)
    step(services, provider, cid)
    outcomes = {a.provider_sid: (a.status, a.outcome) for a in _attempts(db, cid)}
    assert outcomes[first] == ("completed", "delivered")
    assert outcomes[second] == ("in_progress", None)  # still waiting for its receipt

    clock.advance(seconds=SMS_RECEIPT_WAIT.total_seconds())
    run_to_end(services, provider, clock, cid)
    outcomes = {a.provider_sid: (a.status, a.outcome) for a in _attempts(db, cid)}
    assert outcomes[second] == ("completed", "sent_unconfirmed")
    before = _snapshot(db, cid)
    transport.deliver_lost()  # the first message's receipt, a day late
    assert _snapshot(db, cid) == before
    with db.transaction() as s:
        states = Counter(t.state for t in s.scalars(select(CampaignTarget)))
    assert states == {"done": 2}
    assert len(provider.messages) == 2  # nobody texted twice
