"""Outbound campaign calls on the shipped ``debt_reminder`` flow, and status hooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import select

from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.models import Campaign, CampaignTarget, Case, Consent, ContactAttempt, DoNotContact
from ivr.sms import IVR_QUEUE
from telephony.signing import sign
from telephony.status import StatusCallback, StatusKind
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, Clock, add_customer
from .test_webhooks_app import TwilioCall, interaction_of

CONSUMER = "+79167770011"
OUR_NUMBER = "+78001234567"


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = Clock(IN_WINDOW)
    yield application
    services_of(application).db.dispose()


def add_attempt(db: Database, account_id: int, sid: str) -> int:
    with db.transaction() as s:
        # A valid definition: the app's campaign status hooks read it for this attempt.
        definition = {"name": "Долги ноябрь", "channel": "voice", "audience": {"min_debt": 1}}
        campaign = Campaign(
            name="Долги ноябрь", channel="voice", status="running", definition=definition
        )
        s.add(campaign)
        s.flush()
        target = CampaignTarget(
            campaign_id=campaign.id, account_id=account_id, phone=CONSUMER, timezone="Europe/Moscow"
        )
        s.add(target)
        s.flush()
        attempt = ContactAttempt(
            campaign_id=campaign.id,
            target_id=target.id,
            attempt_no=1,
            channel="voice",
            idempotency_key=f"c{campaign.id}-t{target.id}-1",
            status="dialing",
            provider_sid=sid,
        )
        s.add(attempt)
        s.flush()
        return int(attempt.id)


class OutboundCall(TwilioCall):
    def base_params(self) -> dict[str, str]:
        return {
            **super().base_params(),
            "From": OUR_NUMBER,
            "To": CONSUMER,
            "Direction": "outbound-api",
        }


def answered(app: Flask, settings: Settings, db: Database) -> tuple[OutboundCall, int]:
    account_id = add_customer(
        db, "7700112233", address="улица Ленина, дом пять", debt=Decimal("2500.00")
    )
    call = OutboundCall(app.test_client(), settings)
    attempt_id = add_attempt(db, account_id, call.call_sid)
    answer = call.post(f"/voice/outbound?attempt={attempt_id}", call.base_params())
    assert answer.status == 200
    assert "Здравствуйте! Это автоматический звонок компании ЭнергоСбыт." in answer.heard
    assert any("Иванов Иван Иванович. Это вы?" in t for t in answer.heard)
    return call, attempt_id


def test_reminder_right_party_opts_out_of_robot_calls(
    app: Flask, settings: Settings, db: Database
) -> None:
    call, attempt_id = answered(app, settings, db)
    answer = call.press("1")
    text = " ".join(answer.heard)
    # due 10 November, called on 20 November: the reminder speaks of an overdue debt
    assert "есть просроченная задолженность за электроэнергию: две тысячи пятьсот рублей" in text
    assert "Срок оплаты истёк десятого ноября." in text
    assert "оплатите её до" not in text
    answer = call.press("9")
    assert answer.first("Hangup") is not None
    with db.transaction() as s:
        dnc = s.scalars(select(DoNotContact)).one()
        assert (dnc.value, dnc.channel, dnc.reason) == (CONSUMER, "voice", "ivr_opt_out")
        consent = s.scalars(select(Consent).where(Consent.purpose == "robot_calls")).one()
        assert not consent.granted
        assert consent.withdrawn_at is not None
    interaction = interaction_of(db, call.call_sid)
    assert interaction.direction == "outbound"
    assert interaction.phone == CONSUMER
    assert interaction.attempt_id == attempt_id
    assert interaction.outcome == "opted_out"
    assert interaction.data["right_party"] is True


def test_reminder_before_the_due_date_names_the_deadline(
    settings: Settings, db: Database, redis_client: Any
) -> None:
    application = create_app(settings)
    services_of(application).clock = Clock(datetime(2026, 11, 5, 9, 0, tzinfo=UTC))
    try:
        call, _ = answered(application, settings, db)
        text = " ".join(call.press("1").heard)
    finally:
        services_of(application).db.dispose()
    assert "есть задолженность за электроэнергию: две тысячи пятьсот рублей" in text
    assert "Пожалуйста, оплатите её до десятого ноября." in text
    assert "просроч" not in text
    assert "истёк" not in text


def test_reminder_sms_of_an_overdue_debt_sets_no_past_deadline(
    app: Flask, settings: Settings, db: Database
) -> None:
    call, _ = answered(app, settings, db)
    call.press("1")
    call.press("1")  # payment options by SMS
    jobs = Queue(IVR_QUEUE, connection=services_of(app).redis).get_jobs()
    assert len(jobs) == 1
    body = jobs[0].args[1]
    # No payment link configured: the ways to pay, and no deadline at all.
    assert body == (
        "ЭнергоСбыт: долг 2500,00 руб. по л/с 7700112233. Оплатить без комиссии можно в "
        "мобильном приложении, в банке или на почте."
    )


def test_reminder_already_paid_opens_a_case(app: Flask, settings: Settings, db: Database) -> None:
    call, _ = answered(app, settings, db)
    call.press("1")
    answer = call.press("3")
    assert any(t.startswith("Спасибо! Мы проверим поступление платежа.") for t in answer.heard)
    with db.transaction() as s:
        case = s.scalars(select(Case)).one()
        assert case.type == "already_paid"
        assert "автоматического звонка" in case.description
    assert interaction_of(db, call.call_sid).outcome == "already_paid"


def test_reminder_wrong_person(app: Flask, settings: Settings, db: Database) -> None:
    call, _ = answered(app, settings, db)
    answer = call.press("2")
    assert answer.heard == ["Извините за беспокойство. До свидания."]
    interaction = interaction_of(db, call.call_sid)
    assert interaction.outcome == "wrong_party"
    assert interaction.data["right_party"] is False


def test_outbound_url_without_attempt_is_a_400(app: Flask, settings: Settings) -> None:
    call = OutboundCall(app.test_client(), settings)
    assert call.post("/voice/outbound", call.base_params()).status == 400
    assert call.post("/voice/outbound?attempt=424242", call.base_params()).status == 400
    assert call.post("/voice/outbound?attempt=1&flow=nope", call.base_params()).status == 400


def test_call_statuses_go_to_the_status_hooks_then_the_crm(
    app: Flask, settings: Settings, db: Database
) -> None:
    seen: list[tuple[str, str, bool]] = []
    campaign_calls: set[str] = set()

    def hook(services: Services, callback: StatusCallback) -> bool:
        ours = callback.sid in campaign_calls
        seen.append((callback.sid, callback.status, ours))
        return ours

    services_of(app).status_hooks.subscribe(StatusKind.CALL, hook)
    call, _ = answered(app, settings, db)
    campaign_calls.add(call.call_sid)
    assert call.status("completed", 4, duration=30) == 204
    assert seen == [(call.call_sid, "completed", True)]
    assert interaction_of(db, call.call_sid).status == "completed"
    # An inbound call's status is published too (the hook says it is not its own) and stored.
    inbound = TwilioCall(app.test_client(), settings)
    inbound.start()
    assert inbound.status("completed", 2) == 204
    assert seen[1:] == [(inbound.call_sid, "completed", False)]
    assert interaction_of(db, inbound.call_sid).status == "completed"


def test_status_url_with_attempt_and_amd_results_reach_the_status_hooks(
    app: Flask, settings: Settings, db: Database
) -> None:
    statuses: list[dict[str, str]] = []
    amd: list[dict[str, str]] = []

    def on_status(_services: Services, callback: StatusCallback) -> bool:
        statuses.append(dict(callback.params))
        return True

    def on_amd(_services: Services, callback: StatusCallback) -> bool:
        amd.append(dict(callback.params))
        return True

    hooks = services_of(app).status_hooks
    hooks.subscribe(StatusKind.CALL, on_status)
    hooks.subscribe(StatusKind.AMD, on_amd)
    client = app.test_client()
    token = settings.webhook_auth_token
    ringing = {"CallSid": "CA" + "9" * 32, "CallStatus": "ringing", "SequenceNumber": "1"}
    url = "/voice/status?attempt=77"
    headers = {"X-Twilio-Signature": sign(token, "http://localhost" + url, ringing)}
    assert client.post(url, data=ringing, headers=headers).status_code == 204
    assert statuses == [{**ringing, "attempt": "77"}]
    machine = {"CallSid": "CA" + "9" * 32, "AnsweredBy": "machine_end_beep"}
    url = "/voice/amd?attempt=77"
    headers = {"X-Twilio-Signature": sign(token, "http://localhost" + url, machine)}
    assert client.post(url, data=machine, headers=headers).status_code == 204
    assert amd == [{**machine, "attempt": "77"}]
    assert client.post(url, data=machine).status_code == 403


def test_machine_known_at_answer_hears_only_the_neutral_message(
    app: Flask, settings: Settings, db: Database
) -> None:
    """Synchronous AMD under ``leave_message`` (the default): no name, amount or account."""
    account_id = add_customer(
        db, "7700112233", address="улица Ленина, дом пять", debt=Decimal("2500.00")
    )
    call = OutboundCall(app.test_client(), settings)
    attempt_id = add_attempt(db, account_id, call.call_sid)
    params = {**call.base_params(), "AnsweredBy": "machine_end_beep"}
    answer = call.post(f"/voice/outbound?attempt={attempt_id}", params)
    assert answer.status == 200
    number = (settings.twilio_from_number or settings.operator_phone).removeprefix("+7")
    spoken = f"8 {number[:3]} {number[3:6]}-{number[6:8]}-{number[8:]}"
    assert answer.heard == [
        f"Это {settings.supplier_name}. Пожалуйста, перезвоните по номеру {spoken}."
    ]
    assert answer.first("Hangup") is not None
    for secret in ("Иванов", "7700112233", "2500", "две тысячи"):
        assert secret not in answer.xml
