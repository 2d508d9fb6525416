"""Charges, payments and the derived balance of an account.

Payments are allocated to charges first-in first-out (oldest due date first), which gives
the earliest unpaid due date, the days overdue and the aging bucket of domain.md §4
(≤30 / 31–90 / >90 days, matching the steps of the late-payment penalty).
Money is :class:`~decimal.Decimal` roubles with two decimals throughout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.accounts import get_account
from crm_store.db import insert_or_existing
from crm_store.errors import InvalidInput
from crm_store.models import CHARGE_SOURCES, PAYMENT_CHANNELS, Charge, Payment

AgingBucket = Literal["current", "1-30", "31-90", "91+"]
AGING_BUCKETS: tuple[AgingBucket, ...] = ("current", "1-30", "31-90", "91+")

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_money(value: Decimal | int | str) -> Decimal:
    """``value`` as Decimal roubles rounded to kopecks; floats are refused (binary rounding)."""
    if isinstance(value, float | bool):
        raise InvalidInput("сумма должна быть Decimal, int или строкой, а не float")
    try:
        amount = Decimal(str(value).strip().replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        raise InvalidInput(f"некорректная сумма: {value!r}") from None
    if not amount.is_finite():
        raise InvalidInput(f"некорректная сумма: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def aging_bucket(days_overdue: int) -> AgingBucket:
    """The aging bucket of a debt overdue by ``days_overdue`` days (0 → ``current``)."""
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "1-30"
    if days_overdue <= 90:
        return "31-90"
    return "91+"


@dataclass(frozen=True)
class Balance:
    """The state of an account's ledger on ``as_of``.

    ``debt`` is what the consumer owes (never negative) and ``credit`` what they overpaid;
    at most one of them is non-zero. ``overdue`` is the part of ``debt`` already past its due
    date; ``earliest_unpaid_due`` the due date of the oldest charge not fully covered by
    payments (FIFO), and ``days_overdue`` counts from it (0 when not yet due).
    """

    account_id: int
    as_of: date
    charged: Decimal
    paid: Decimal
    debt: Decimal
    credit: Decimal
    overdue: Decimal
    earliest_unpaid_due: date | None
    days_overdue: int
    aging_bucket: AgingBucket
    last_payment_on: date | None
    last_payment_amount: Decimal | None

    @property
    def has_debt(self) -> bool:
        """True when anything is owed."""
        return self.debt > ZERO


def compute_balance(
    account_id: int,
    charges: list[tuple[date, Decimal]],
    payments: list[tuple[date, Decimal]],
    today: date,
) -> Balance:
    """Balance from ``(due_date, amount)`` charges and ``(paid_on, amount)`` payments.

    Pure function (the database query is in :func:`balance`); charges are covered in order
    of due date by the total paid.
    """
    charged = sum((a for _, a in charges), ZERO)
    paid = sum((a for _, a in payments), ZERO)
    remaining = paid
    earliest: date | None = None
    overdue = ZERO
    for due, amount in sorted(charges, key=lambda c: c[0]):
        covered = min(remaining, amount) if remaining > ZERO else ZERO
        remaining -= covered
        unpaid = amount - covered
        if unpaid > ZERO:
            if earliest is None:
                earliest = due
            if due < today:
                overdue += unpaid
    days = (today - earliest).days if earliest is not None and earliest < today else 0
    last = max(payments, key=lambda p: p[0]) if payments else None
    last_amount = None
    if last is not None:
        last_amount = sum((a for d, a in payments if d == last[0]), ZERO)
    return Balance(
        account_id=account_id,
        as_of=today,
        charged=charged,
        paid=paid,
        debt=max(charged - paid, ZERO),
        credit=max(paid - charged, ZERO),
        overdue=overdue,
        earliest_unpaid_due=earliest,
        days_overdue=days,
        aging_bucket=aging_bucket(days),
        last_payment_on=last[0] if last else None,
        last_payment_amount=last_amount,
    )


def balance(session: Session, account_id: int, today: date) -> Balance:
    """The balance of an account on ``today``.

    Charges of billing periods starting after ``today`` and payments dated after ``today``
    are not counted. Raises :class:`~crm_store.errors.NotFound` for an unknown account.
    """
    get_account(session, account_id)
    charges = [
        (due, to_money(amount))
        for due, amount in session.execute(
            select(Charge.due_date, Charge.amount)
            .where(Charge.account_id == account_id, Charge.period <= today)
            .order_by(Charge.due_date, Charge.id)
        )
    ]
    payments = [
        (paid_on, to_money(amount))
        for paid_on, amount in session.execute(
            select(Payment.paid_on, Payment.amount)
            .where(Payment.account_id == account_id, Payment.paid_on <= today)
            .order_by(Payment.paid_on, Payment.id)
        )
    ]
    return compute_balance(account_id, charges, payments, today)


#: Account ids per ``IN (…)`` list of the batched queries (well under every driver's limit).
IN_CHUNK = 900


def net_balances(session: Session, as_of: Mapping[int, date]) -> dict[int, Decimal]:
    """Charged minus paid per account, each on its own date: ``{account_id: net}``.

    The same counting as :func:`balance` (charges of periods starting on or before the
    date, payments dated on or before it), for many accounts in a few grouped queries (one
    pair per distinct date and :data:`IN_CHUNK` accounts). Positive is debt, negative
    credit; accounts without charges or payments get zero. Unknown ids are not checked.
    """
    by_day: dict[date, list[int]] = defaultdict(list)
    for account_id, day in as_of.items():
        by_day[day].append(account_id)
    net = dict.fromkeys(as_of, ZERO)
    for day, ids in by_day.items():
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            for account_id, total in session.execute(
                select(Charge.account_id, func.sum(Charge.amount))
                .where(Charge.account_id.in_(chunk), Charge.period <= day)
                .group_by(Charge.account_id)
            ):
                net[account_id] += to_money(total)
            for account_id, total in session.execute(
                select(Payment.account_id, func.sum(Payment.amount))
                .where(Payment.account_id.in_(chunk), Payment.paid_on <= day)
                .group_by(Payment.account_id)
            ):
                net[account_id] -= to_money(total)
    return net


def _check_source(source: str) -> None:
    if source not in CHARGE_SOURCES:
        raise InvalidInput(f"неизвестный источник начисления {source!r}")


def add_charge(
    session: Session,
    account_id: int,
    *,
    period: date,
    amount: Decimal | int | str,
    due_date: date,
    source: str = "billing",
    external_key: str | None = None,
) -> Charge:
    """Bill the account ``amount`` for the month of ``period`` (stored as its first day).

    With ``external_key`` (the producer's id of the bill) the call is idempotent: the same
    key again returns the stored charge; if that charge belongs to another account or has
    another amount, :class:`InvalidInput` is raised (use :func:`put_keyed_charge` to
    change a keyed charge).
    """
    get_account(session, account_id)
    _check_source(source)
    money = to_money(amount)
    if money == ZERO:
        raise InvalidInput("сумма начисления не может быть нулевой")
    if due_date < period.replace(day=1):
        raise InvalidInput("срок оплаты раньше начала расчётного периода")
    if external_key is not None:
        existing = charge_by_key(session, external_key)
        if existing is not None:
            return _same_charge(existing, account_id, money)
    charge = Charge(
        account_id=account_id,
        period=period.replace(day=1),
        amount=money,
        due_date=due_date,
        source=source,
        external_key=external_key,
    )
    stored, inserted = insert_or_existing(
        session,
        charge,
        lambda: charge_by_key(session, external_key) if external_key is not None else None,
    )
    return stored if inserted else _same_charge(stored, account_id, money)


def charge_by_key(session: Session, external_key: str) -> Charge | None:
    """The charge stored under ``external_key``, or ``None``."""
    return session.scalars(select(Charge).where(Charge.external_key == external_key)).one_or_none()


def _same_charge(existing: Charge, account_id: int, amount: Decimal) -> Charge:
    if existing.account_id != account_id or to_money(existing.amount) != amount:
        raise InvalidInput(
            f"начисление {existing.external_key!r} уже учтено с другим счётом или суммой"
        )
    return existing


def put_keyed_charge(
    session: Session,
    account_id: int,
    *,
    external_key: str,
    period: date,
    amount: Decimal | int | str,
    due_date: date,
    source: str,
    stated_balance: Decimal | int | str | None = None,
) -> tuple[Charge, bool]:
    """Create the charge stored under ``external_key`` or set its values; ``(charge, changed)``.

    Unlike :func:`add_charge` the amount may be zero: a keyed charge can record that a
    statement was seen even when it bills nothing (see :mod:`crm_store.importer`). A key
    that already belongs to another account raises :class:`InvalidInput`.
    """
    get_account(session, account_id)
    _check_source(source)
    money = to_money(amount)
    stated = None if stated_balance is None else to_money(stated_balance)
    if due_date < period.replace(day=1):
        raise InvalidInput("срок оплаты раньше начала расчётного периода")
    values = {
        "period": period.replace(day=1),
        "amount": money,
        "due_date": due_date,
        "source": source,
        "stated_balance": stated,
    }
    charge = charge_by_key(session, external_key)
    if charge is None:
        stored, inserted = insert_or_existing(
            session,
            Charge(account_id=account_id, external_key=external_key, **values),
            lambda: charge_by_key(session, external_key),
        )
        if inserted:
            return stored, True
        charge = stored
    if charge.account_id != account_id:
        raise InvalidInput(f"начисление {external_key!r} относится к другому лицевому счёту")
    changed = False
    for name, value in values.items():
        current = getattr(charge, name)
        if isinstance(current, Decimal):
            current = to_money(current)
        if current != value:
            setattr(charge, name, value)
            changed = True
    session.flush()
    return charge, changed


def record_payment(
    session: Session,
    account_id: int,
    *,
    amount: Decimal | int | str,
    paid_on: date,
    channel: str,
    external_id: str | None = None,
    paid_at: datetime | None = None,
    agent: str | None = None,
) -> Payment:
    """Record a payment; with ``external_id`` (bank or provider id) it is idempotent.

    Recording the same ``external_id`` again returns the existing payment; if that payment
    belongs to another account or has another amount, :class:`InvalidInput` is raised.
    ``paid_at`` (tz-aware) and ``agent`` are what a registry tells about the payment.
    The balance (:func:`balance`) counts it from ``paid_on`` on, at once.
    """
    get_account(session, account_id)
    money = to_money(amount)
    if money <= ZERO:
        raise InvalidInput("сумма платежа должна быть положительной")
    if channel not in PAYMENT_CHANNELS:
        raise InvalidInput(f"неизвестный канал оплаты {channel!r}")
    if external_id is not None:
        existing = _payment_by_external_id(session, external_id)
        if existing is not None:
            return _same_payment(existing, account_id, money)
    payment = Payment(
        account_id=account_id,
        amount=money,
        paid_on=paid_on,
        channel=channel,
        external_id=external_id,
        paid_at=paid_at,
        agent=agent,
    )
    stored, inserted = insert_or_existing(
        session,
        payment,
        lambda: _payment_by_external_id(session, external_id) if external_id is not None else None,
    )
    return stored if inserted else _same_payment(stored, account_id, money)


def _payment_by_external_id(session: Session, external_id: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.external_id == external_id)).one_or_none()


def _same_payment(existing: Payment, account_id: int, amount: Decimal) -> Payment:
    if existing.account_id != account_id or to_money(existing.amount) != amount:
        raise InvalidInput(f"платёж {existing.external_id!r} уже учтён с другим счётом или суммой")
    return existing
