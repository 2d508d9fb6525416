"""The provider's REST API refusing (429 with Retry-After, 503) and hanging, against a local
fake of Twilio's REST API through the real ``twilio`` SDK: retries with backoff, no call
created twice on a timeout, and the campaign records each outcome.

The sandbox's REST emulation covers 429/5xx without Retry-After and network failures
(``tests/telephony/test_telephony_twilio_adapter.py``); this adds what only a misbehaving
server can do: ask for a wait, and take a request without answering it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from campaign_harness import Clock, launch_debtor_campaign, make_services, work
from sqlalchemy import select

from campaigns.attempts import INTENT_GRACE
from campaigns.dispatcher import dispatch_once
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import CampaignTarget, ContactAttempt
from telephony import ProviderUnavailable, RateLimited
from telephony.status import StatusKind, parse_status_callback
from telephony.twilio_provider import TwilioProvider
from tests.faults.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration

ACCOUNT = "AC" + "34" * 16
FROM = "+78001234567"
TO = "+79161234501"
START = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(fake: FakeTwilio, sleeps: Sleeps) -> TwilioProvider:
    return TwilioProvider(ACCOUNT, "token", base_url=fake.base_url, sleep=sleeps, timeout_s=0.5)


def _call(provider: TwilioProvider) -> Any:
    return provider.place_call(TO, FROM, "http://localhost/voice/outbound", status_callback=None)


def test_retry_after_is_honoured(
    provider: TwilioProvider, fake: FakeTwilio, sleeps: Sleeps
) -> None:
    fake.script = [("status", 429, 3), ("status", 429, 2)]
    info = _call(provider)
    assert info.sid.startswith("CA")
    assert sleeps == [3.0, 2.0]  # never sooner than asked (the jittered backoff is below)
    assert len(fake.requests) == 3
    assert len(fake.created) == 1


def test_a_retry_after_too_long_to_wait_is_raised_at_once(
    provider: TwilioProvider, fake: FakeTwilio, sleeps: Sleeps
) -> None:
    fake.script = [("status", 429, 600)]
    with pytest.raises(RateLimited):
        _call(provider)
    assert sleeps == []
    assert (len(fake.requests), fake.created) == (1, [])


def test_503_is_retried_with_growing_backoff(
    provider: TwilioProvider, fake: FakeTwilio, sleeps: Sleeps
) -> None:
    fake.script = [("status", 503, None)] * 3
    info = provider.send_sms(TO, FROM, "Текст", status_callback=None)
    assert info.sid.startswith("SM")
    assert len(sleeps) == 3
    ceilings = [provider.backoff_base_s * 2**n for n in range(3)]
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(fake.created) == 1


def test_503_until_the_retries_run_out_is_provider_unavailable(
    provider: TwilioProvider, fake: FakeTwilio, sleeps: Sleeps
) -> None:
    fake.script = [("status", 503, None)] * (provider.max_retries + 1)
    with pytest.raises(ProviderUnavailable) as error:
        _call(provider)
    assert error.value.status == 503
    assert len(sleeps) == provider.max_retries
    assert fake.created == []


@pytest.mark.parametrize("behaviour", ["hang", "hang-before"])
def test_a_timed_out_create_is_never_repeated(
    provider: TwilioProvider, fake: FakeTwilio, sleeps: Sleeps, behaviour: str
) -> None:
    """The request may have been carried out: repeating it could place a second call."""
    fake.script = [(behaviour,)]
    with pytest.raises(ProviderUnavailable, match="no answer"):
        _call(provider)
    assert len(fake.requests) == 1
    assert len(fake.created) == (1 if behaviour == "hang" else 0)
    assert sleeps == []


# --------------------------------------------------------------------------- the campaign


def _deliver(services: Services, fake: FakeTwilio, delivered: set[str]) -> None:
    """Twilio's status callbacks of every call it created (with ``?attempt=`` in the URL)."""
    for call in list(fake.created):
        if call["sid"] in delivered:
            continue
        delivered.add(call["sid"])
        query = dict(parse_qsl(urlsplit(call["status_callback"]).query))
        for seq, status in enumerate(("initiated", "ringing", "in-progress", "completed")):
            form = {"CallSid": call["sid"], "CallStatus": status, "SequenceNumber": str(seq),
                    "CallDuration": "20"}  # fmt: skip
            services.status_hooks.publish(
                services, parse_status_callback(StatusKind.CALL, form, query)
            )


def test_the_campaign_records_each_provider_fault_and_dials_each_target_once(
    fault_settings: Settings, db: Database, fake: FakeTwilio, sleeps: Sleeps
) -> None:
    clock = Clock(START)
    services, _sandbox = make_services(fault_settings, clock)
    services.telephony = TwilioProvider(
        ACCOUNT, "token", base_url=fake.base_url, sleep=sleeps, timeout_s=0.5, max_retries=2
    )
    cid = launch_debtor_campaign(services, 4, today=START.date(), name="provider-faults")
    # In the order the jobs run: a call Twilio created but never answered for, one it never
    # got, a rate limit asking for ten minutes, three 503s (retried here, the third gives up).
    fake.script = [("hang",), ("hang-before",), ("status", 429, 600)] + [("status", 503, None)] * 3
    assert dispatch_once(services, cid).enqueued == 4
    work(services)
    with db.transaction() as s:
        attempts = {a.id: (a.status, a.outcome) for a in s.scalars(select(ContactAttempt))}
    assert sorted(attempts.values(), key=str) == sorted(
        [("intent", None), ("intent", None), ("failed", "not_placed"), ("intent", None)], key=str
    )  # the two timeouts and the 503s wait for reconciling; the rate limit is retried later
    assert len(fake.created) == 1

    delivered: set[str] = set()
    _deliver(services, fake, delivered)  # the hung call's callbacks adopt it
    for _ in range(20):
        clock.advance(seconds=INTENT_GRACE.total_seconds() + 60)
        if dispatch_once(services, cid).status != "running":
            break
        work(services)
        _deliver(services, fake, delivered)
    with db.transaction() as s:
        targets = list(s.scalars(select(CampaignTarget)))
        attempts_by_target = Counter(a.target_id for a in s.scalars(select(ContactAttempt)))
        not_placed = s.scalars(
            select(ContactAttempt).where(ContactAttempt.outcome == "not_placed")
        ).all()
    assert {t.state for t in targets} == {"done"}
    per_phone = Counter(call["to"] for call in fake.created)
    assert sorted(per_phone) == sorted(str(t.phone) for t in targets)
    assert set(per_phone.values()) == {1}  # nobody was called twice
    # The hung-but-created call was adopted by its first attempt; the other three needed two.
    assert sorted(attempts_by_target.values()) == [1, 2, 2, 2]
    assert len(not_placed) == 3
