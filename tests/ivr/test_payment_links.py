"""Payment links out: the hotline's payment menu and the reminder's SMS carry the account's own
links built from PAYMENT_URL_TEMPLATE / SBP_PAYMENT_URL_TEMPLATE, never a fixed site."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from rq import Queue

from contactcenter.config import Settings
from crm_store.db import Database
from ivr.sms import IVR_QUEUE
from telephony.sms import Encoding, preview
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, KNOWN_CALLER, Clock, add_customer
from .test_hotline_outbound import answered
from .test_webhooks_app import TwilioCall

PAY = "https://pay.example.ru/{account}?sum={amount}"
SBP = "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&sum={amount_kopecks}"


def build_app(settings: Settings, now: datetime = IN_WINDOW, **links: str | None) -> Flask:
    application = create_app(settings.with_overrides(**links))
    services_of(application).clock = Clock(now)
    return application


@pytest.fixture
def apps(db: Database, redis_client: Any) -> Iterator[list[Flask]]:
    """Apps built by a test, disposed after it."""
    built: list[Flask] = []
    yield built
    for application in built:
        services_of(application).db.dispose()


def sms_bodies(app: Flask) -> list[str]:
    jobs = Queue(IVR_QUEUE, connection=services_of(app).redis).get_jobs()
    return [job.args[1] for job in jobs if job.func_name == "ivr.sms.send_sms_job"]


def hotline_payment_menu(app: Flask, settings: Settings) -> tuple[TwilioCall, list[str]]:
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")  # «это мой лицевой счёт»
    return call, call.press("3").heard


def test_hotline_sends_the_accounts_own_links_with_its_debt(
    settings: Settings, db: Database, apps: list[Flask]
) -> None:
    app = build_app(settings, payment_url_template=PAY, sbp_payment_url_template=SBP)
    apps.append(app)
    add_customer(
        db,
        "5500123456",
        address="улица Мира, дом семь",
        phones=(KNOWN_CALLER,),
        debt=Decimal("2500.5"),
    )
    call, heard = hotline_payment_menu(app, settings)
    assert "Чтобы получить ссылку на оплату в СМС, нажмите 1." in heard
    answer = call.press("1")
    assert "Мы отправили вам СМС со ссылкой на оплату." in answer.heard
    [body] = sms_bodies(app)
    assert body == (
        "ЭнергоСбыт: оплата по л/с 5500123456 без комиссии: "
        "https://pay.example.ru/5500123456?sum=2500.50 "
        "СБП: https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&sum=250050"
    )
    shown = preview(body)
    # The Russian words make it UCS-2 (67 characters a part); both links fit in three parts.
    assert shown.encoding is Encoding.UCS2
    assert shown.segments == 3


def test_hotline_link_of_an_account_without_debt_has_no_amount(
    settings: Settings, db: Database, apps: list[Flask]
) -> None:
    app = build_app(settings, payment_url_template=PAY)
    apps.append(app)
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call, _ = hotline_payment_menu(app, settings)
    call.press("1")
    [body] = sms_bodies(app)
    assert body == (
        "ЭнергоСбыт: оплата по л/с 5500123456 без комиссии: https://pay.example.ru/5500123456"
    )
    assert preview(body).segments == 2


def test_hotline_sbp_link_alone(settings: Settings, db: Database, apps: list[Flask]) -> None:
    app = build_app(settings, sbp_payment_url_template=SBP)
    apps.append(app)
    add_customer(
        db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,), debt=Decimal(10)
    )
    call, _ = hotline_payment_menu(app, settings)
    call.press("1")
    [body] = sms_bodies(app)
    assert body.endswith(": https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&sum=1000")
    assert "СБП" not in body


def test_hotline_without_links_offers_no_sms(
    settings: Settings, db: Database, apps: list[Flask]
) -> None:
    app = build_app(settings)
    apps.append(app)
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call, heard = hotline_payment_menu(app, settings)
    text = " ".join(heard)
    assert "в мобильном приложении, а также в отделениях банков и почты" in text
    assert "СМС" not in text
    assert "сайт" not in text
    answer = call.press("1")  # not an option here
    assert answer.step == "hotline:payment_menu_no_link"
    assert sms_bodies(app) == []
    # E-receipts stay as they were.
    assert call.press("2").step == "hotline:ereceipt_consent"


def test_reminder_sms_of_an_overdue_debt_says_the_term_has_passed(
    settings: Settings, db: Database, apps: list[Flask]
) -> None:
    app = build_app(settings, payment_url_template=PAY)
    apps.append(app)
    call, _ = answered(app, settings, db)  # due 10 November, called on 20 November
    call.press("1")
    call.press("1")  # payment options by SMS
    [body] = sms_bodies(app)
    assert body == (
        "ЭнергоСбыт: долг 2500,00 руб. по л/с 7700112233 просрочен, срок оплаты истёк "
        "10.11.2026. Оплатите, пожалуйста: https://pay.example.ru/7700112233?sum=2500.00"
    )
    assert "оплатите до" not in body.lower()
    assert preview(body).segments == 3


def test_reminder_sms_before_the_due_date_names_the_deadline(
    settings: Settings, db: Database, apps: list[Flask]
) -> None:
    app = build_app(settings, datetime(2026, 11, 5, 9, 0, tzinfo=UTC), payment_url_template=PAY)
    apps.append(app)
    call, _ = answered(app, settings, db)
    call.press("1")
    call.press("1")
    [body] = sms_bodies(app)
    assert body == (
        "ЭнергоСбыт: долг 2500,00 руб. по л/с 7700112233, оплатите до 10.11.2026: "
        "https://pay.example.ru/7700112233?sum=2500.00"
    )
    assert "истёк" not in body
    assert preview(body).segments == 2
