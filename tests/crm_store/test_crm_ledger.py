"""Ledger: Decimal math, FIFO allocation of payments, days overdue and aging buckets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crm_store.db import Database
from crm_store.errors import InvalidInput, NotFound
from crm_store.ledger import (
    add_charge,
    aging_bucket,
    balance,
    compute_balance,
    put_keyed_charge,
    record_payment,
    to_money,
)
from crm_store.models import Account

D = Decimal


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (-5, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-90"),
        (90, "31-90"),
        (91, "91+"),
        (400, "91+"),
    ],
)
def test_aging_bucket_edges(days: int, bucket: str) -> None:
    assert aging_bucket(days) == bucket


def test_fifo_allocation_finds_the_oldest_unpaid_charge() -> None:
    charges = [
        (date(2026, 1, 10), D("1000.10")),
        (date(2026, 2, 10), D("900.20")),
        (date(2026, 3, 10), D("800.30")),
    ]
    payments = [(date(2026, 1, 9), D("1000.10")), (date(2026, 2, 20), D("500.00"))]
    b = compute_balance(1, charges, payments, date(2026, 3, 20))
    assert b.charged == D("2700.60")
    assert b.paid == D("1500.10")
    assert b.debt == D("1200.50")
    assert b.credit == D("0.00")
    # January is paid, February only partly: the oldest unpaid due date is 10 February.
    assert b.earliest_unpaid_due == date(2026, 2, 10)
    assert b.days_overdue == 38
    assert b.aging_bucket == "31-90"
    assert b.overdue == D("1200.50")  # 400.20 of February + 800.30 of March (due 10 March)
    assert (b.last_payment_on, b.last_payment_amount) == (date(2026, 2, 20), D("500.00"))
    assert b.has_debt


def test_not_yet_due_debt_is_current() -> None:
    b = compute_balance(1, [(date(2026, 4, 10), D("100"))], [], date(2026, 3, 20))
    assert (b.debt, b.overdue, b.days_overdue, b.aging_bucket) == (D("100"), D("0"), 0, "current")
    assert b.earliest_unpaid_due == date(2026, 4, 10)


def test_overpayment_is_credit_never_negative_debt() -> None:
    b = compute_balance(
        1, [(date(2026, 1, 10), D("100.00"))], [(date(2026, 1, 5), D("250.55"))], date(2026, 3, 1)
    )
    assert (b.debt, b.credit) == (D("0.00"), D("150.55"))
    assert b.earliest_unpaid_due is None
    assert (b.days_overdue, b.aging_bucket) == (0, "current")


def test_money_parsing() -> None:
    assert to_money("1 234,567") == D("1234.57")
    assert to_money(5) == D("5.00")
    with pytest.raises(InvalidInput):
        to_money(0.1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        to_money("много")
    with pytest.raises(InvalidInput):
        to_money("NaN")


def test_balance_from_database(db: Database, account: Account) -> None:
    with db.transaction() as s:
        add_charge(
            s, account.id, period=date(2025, 11, 1), amount="1500.00", due_date=date(2025, 12, 10)
        )
        add_charge(
            s, account.id, period=date(2025, 12, 1), amount=D("1499.99"), due_date=date(2026, 1, 10)
        )
        add_charge(
            s, account.id, period=date(2026, 4, 1), amount="9999", due_date=date(2026, 5, 10)
        )
        record_payment(s, account.id, amount="0.01", paid_on=date(2025, 12, 1), channel="sbp")
        record_payment(s, account.id, amount="100", paid_on=date(2026, 4, 1), channel="card")
    with db.transaction() as s:
        b = balance(s, account.id, date(2026, 3, 15))
    # The April charge and the April payment are in the future and not counted.
    assert b.charged == D("2999.99")
    assert b.paid == D("0.01")
    assert b.debt == D("2999.98")
    assert isinstance(b.debt, Decimal)
    assert b.earliest_unpaid_due == date(2025, 12, 10)
    assert b.days_overdue == 95
    assert b.aging_bucket == "91+"
    assert b.last_payment_amount == D("0.01")


def test_payment_with_external_id_is_idempotent(db: Database, account: Account) -> None:
    with db.transaction() as s:
        p1 = record_payment(
            s,
            account.id,
            amount="100.00",
            paid_on=date(2026, 3, 1),
            channel="bank",
            external_id="BANK-1",
        )
        p2 = record_payment(
            s,
            account.id,
            amount="100",
            paid_on=date(2026, 3, 1),
            channel="bank",
            external_id="BANK-1",
        )
        assert p1.id == p2.id
        with pytest.raises(InvalidInput, match="другим счётом или суммой"):
            record_payment(
                s,
                account.id,
                amount="99",
                paid_on=date(2026, 3, 1),
                channel="bank",
                external_id="BANK-1",
            )
        assert balance(s, account.id, date(2026, 3, 2)).credit == D("100.00")


def test_ledger_input_errors(db: Database, account: Account) -> None:
    with db.transaction() as s:
        with pytest.raises(InvalidInput):
            record_payment(s, account.id, amount="-1", paid_on=date(2026, 3, 1), channel="bank")
        with pytest.raises(InvalidInput):
            record_payment(s, account.id, amount="1", paid_on=date(2026, 3, 1), channel="barter")
        with pytest.raises(InvalidInput):
            add_charge(
                s, account.id, period=date(2026, 3, 1), amount="0", due_date=date(2026, 4, 10)
            )
        with pytest.raises(NotFound):
            balance(s, 424242, date(2026, 3, 1))


def test_keyed_charges(db: Database, account: Account) -> None:
    march, due = date(2026, 3, 1), date(2026, 4, 10)
    with db.transaction() as s:
        first = add_charge(
            s, account.id, period=march, amount="500", due_date=due, external_key="BILL-1"
        )
        again = add_charge(
            s, account.id, period=march, amount="500.00", due_date=due, external_key="BILL-1"
        )
        assert again.id == first.id
        assert first.source == "billing"
        with pytest.raises(InvalidInput, match="BILL-1"):
            add_charge(
                s, account.id, period=march, amount="501", due_date=due, external_key="BILL-1"
            )
        with pytest.raises(InvalidInput, match="источник"):
            add_charge(s, account.id, period=march, amount="1", due_date=due, source="magic")

        zero, changed = put_keyed_charge(
            s,
            account.id,
            external_key="K",
            period=march,
            amount="0",
            due_date=due,
            source="adjustment",
        )
        assert changed
        assert zero.amount == D("0.00")
        assert zero.stated_balance is None
        same, changed = put_keyed_charge(
            s,
            account.id,
            external_key="K",
            period=march,
            amount=0,
            due_date=due,
            source="adjustment",
        )
        assert same.id == zero.id
        assert not changed
        moved, changed = put_keyed_charge(
            s,
            account.id,
            external_key="K",
            period=march,
            amount="-20",
            due_date=due,
            source="adjustment",
            stated_balance="480",
        )
        assert moved.id == zero.id
        assert changed
        assert (moved.amount, moved.stated_balance) == (D("-20.00"), D("480.00"))
        assert balance(s, account.id, due).debt == D("480.00")


def test_keyed_charge_of_another_account_is_refused(db: Database, account: Account) -> None:
    with db.transaction() as s:
        other = Account(
            consumer_id=account.consumer_id,
            number_raw="2",
            number="0000000002",
            service_address="",
            timezone="Europe/Moscow",
        )
        s.add(other)
        s.flush()
        add_charge(
            s,
            account.id,
            period=date(2026, 3, 1),
            amount="5",
            due_date=date(2026, 4, 10),
            external_key="X",
        )
        with pytest.raises(InvalidInput, match="другому"):
            put_keyed_charge(
                s,
                other.id,
                external_key="X",
                period=date(2026, 3, 1),
                amount="5",
                due_date=date(2026, 4, 10),
                source="billing",
            )
