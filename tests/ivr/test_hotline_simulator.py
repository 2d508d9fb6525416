"""The Done-when of issue 3 through telephony's call simulator (the sandbox's TwiML interpreter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import Settings
from crm_store.db import Database
from devtools.simulator import Simulator
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, UNKNOWN_CALLER, Clock, add_customer, readings_of
from .test_webhooks_app import interaction_of, path_of


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = Clock(IN_WINDOW)
    yield application
    services_of(application).db.dispose()


def test_simulated_caller_submits_two_zone_readings(
    app: Flask, settings: Settings, db: Database
) -> None:
    account_id = add_customer(
        db, "7700112233", address="улица Ленина, дом пять", history={"день": 12000, "ночь": 5000}
    )
    with Simulator(
        app,
        settings.webhook_auth_token,
        settings.public_base_url,
        status_callback_path="/voice/status",  # the call's end writes its path to the CRM
    ) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
        assert call.heard("Введите номер лицевого счёта")
        call.press("7700112233#")
        assert call.heard("Вы ввели: семь семь ноль ноль")
        call.press("1")
        assert call.heard("Лицевой счёт по адресу: улица Ленина, дом пять. Верно?")
        call.press("1")
        call.press("1")
        assert call.heard("Введите показание по тарифу «день»")
        call.press("12345#")
        call.press("1")
        call.press("5100#")
        call.press("1")
        assert call.heard("Показания приняты")
        call.press("2")
        assert call.heard("До свидания")
        assert call.ended
        assert "readings:ask_reading" in call.steps
        sid = call.sid
    interaction = interaction_of(db, sid)
    assert readings_of(db, account_id) == [
        ("день", 12345, "ivr_dtmf", interaction.id),
        ("ночь", 5100, "ivr_dtmf", interaction.id),
    ]
    assert any(step == "readings:save" for step, _e, _i, _o in path_of(db, interaction.id))
