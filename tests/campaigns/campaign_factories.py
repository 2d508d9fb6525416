"""Test data for campaign tests: consumers with accounts, phones, charges and payments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from crm_store.models import (
    Account,
    AccountPhone,
    Charge,
    Consumer,
    Payment,
    PhoneNumber,
)

# One zone per MSK offset, Kaliningrad (UTC+2) to Kamchatka (UTC+12).
RUSSIAN_ZONES = [
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Srednekolymsk",
    "Asia/Kamchatka",
]


def phone_for(n: int) -> str:
    """A valid Russian mobile number, distinct for each ``n`` < 10 000 000."""
    return f"+7916{n:07d}"


def add_debtor(
    session: Session,
    n: int,
    *,
    debt: Decimal = Decimal("3000.00"),
    overdue_days: int = 45,
    today: dt.date,
    timezone: str | None = "Europe/Moscow",
    phone: str | None = "auto",
    region: str = "Москва",
    paid: Decimal = Decimal(0),
) -> Account:
    """A consumer with one account owing ``debt`` due ``overdue_days`` ago."""
    consumer = Consumer(full_name=f"Иванов Иван {n}")
    account = Account(
        consumer=consumer,
        number_raw=f"{n:08d}",
        number=f"{n:08d}",
        timezone=timezone,
        region=region,
        service_address=f"ул. Ленина, {n}",
    )
    session.add(account)
    session.flush()
    due = today - dt.timedelta(days=overdue_days)
    session.add(
        Charge(
            account_id=account.id,
            period=due.replace(day=1),
            amount=debt + paid,
            due_date=due,
        )
    )
    if paid:
        session.add(Payment(account_id=account.id, amount=paid, paid_on=due, channel="bank"))
    if phone is not None:
        number = PhoneNumber(e164=phone_for(n) if phone == "auto" else phone)
        session.add(number)
        session.flush()
        session.add(AccountPhone(account_id=account.id, phone_id=number.id))
    session.flush()
    return account


def bulk_debtors(session: Session, count: int, *, today: dt.date, **kw: Any) -> list[int]:
    """``count`` debtors spread round-robin over the Russian zones; returns account ids."""
    ids = []
    for n in range(count):
        zone = RUSSIAN_ZONES[n % len(RUSSIAN_ZONES)]
        ids.append(add_debtor(session, n + 1, today=today, timezone=zone, **kw).id)
    return ids
