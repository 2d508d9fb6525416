"""The hotline's balance reflects an imported payments registry at once (issue 15).

The caller hears the debt, a bank's registry is imported, and the next call (the very next
minute) hears the smaller debt and the registry's payment as the last one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.import_payments import import_payments
from webhooks import create_app, services_of

from .test_hotline_calls import KNOWN_CALLER, add_customer
from .test_webhooks_app import TwilioCall

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = lambda: NOW
    yield application
    services_of(application).db.dispose()


def _balance_heard(app: Flask, settings: Settings) -> str:
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")  # the address is right
    return " ".join(call.press("2").heard)  # menu 2: the balance


def test_an_imported_payment_is_heard_on_the_next_call(
    app: Flask, settings: Settings, db: Database, tmp_path: Path
) -> None:
    add_customer(
        db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,), debt=Decimal(1500)
    )
    before = _balance_heard(app, settings)
    assert "Ваша задолженность составляет одну тысячу пятьсот рублей" in before

    registry = tmp_path / "sberbank.csv"
    registry.write_bytes(
        (
            "Лицевой счёт;Сумма;Дата платежа;Номер платежа;Агент\r\n"
            "5500123456;1\u00a0000,00;20.11.2026 11:45;SB-77;ПАО Сбербанк\r\n"
        ).encode("cp1251")
    )
    report = import_payments(db, registry, now=NOW)
    assert report.recorded == 1

    after = _balance_heard(app, settings)
    assert "Ваша задолженность составляет пятьсот рублей" in after
    assert "Последний платёж одна тысяча рублей поступил двадцатого ноября." in after
