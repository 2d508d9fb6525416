"""The audience of a campaign: one SQL query over the CRM, streamed in keyset batches.

Debt is computed in SQL from the ledger: charges already due minus all payments; the
oldest unpaid due date comes from a running total of due charges (window function, FIFO
allocation of payments), so *days overdue* and the aging bucket (≤30 / 31–90 / >90) are
plain date comparisons on both SQLite and PostgreSQL. Rows are read ``batch_size`` at a
time ordered by account id (``WHERE id > last``), so memory stays flat whatever the size.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    case,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from campaigns.definition import Audience
from crm_store.accounts import normalize_account_number
from crm_store.errors import InvalidAccountNumber
from crm_store.models import (
    Account,
    AccountPhone,
    Charge,
    Consent,
    Consumer,
    Interaction,
    Meter,
    Payment,
    PhoneNumber,
)

DEFAULT_BATCH = 1000
#: The preview's name for accounts whose service-address zone is unknown: their contact
#: window must hold in every zone of the phone number (campaigns.compliance.zones_for_contact).
UNKNOWN_TIMEZONE_LABEL = "unknown (by phone)"


@dataclass(frozen=True)
class AudienceRow:
    """One account of the audience with what the planner and the SMS template need."""

    account_id: int
    account_number: str
    consumer_name: str
    phone: str | None
    #: The account's IANA zone; ``None`` when unknown (every zone of the phone applies).
    timezone: str | None
    debt: Decimal
    oldest_unpaid_due: dt.date | None

    def days_overdue(self, today: dt.date) -> int:
        """Days since the oldest unpaid charge fell due (0 when nothing is overdue)."""
        if self.oldest_unpaid_due is None:
            return 0
        return max(0, (today - self.oldest_unpaid_due).days)


@dataclass(frozen=True)
class AudiencePreview:
    """What a supervisor sees before launch."""

    count: int
    sample: list[AudienceRow]
    by_timezone: dict[str, int]
    without_phone: int


def _ledger(today: dt.date, id_range: tuple[int, int] | None) -> Any:
    """Per account: due charges, payments, debt and the oldest unpaid due date.

    ``id_range`` limits the computation to the accounts of one batch, so a batch costs
    the same whatever the size of the ledger.
    """
    paid_q = select(
        Payment.account_id.label("account_id"), func.sum(Payment.amount).label("paid")
    ).group_by(Payment.account_id)
    charges_q = select(
        Charge.account_id.label("account_id"),
        Charge.due_date.label("due_date"),
        Charge.amount.label("amount"),
        func.sum(Charge.amount)
        .over(partition_by=Charge.account_id, order_by=(Charge.due_date, Charge.id))
        .label("cum"),
    ).where(Charge.due_date < today)
    if id_range is not None:
        paid_q = paid_q.where(Payment.account_id.between(*id_range))
        charges_q = charges_q.where(Charge.account_id.between(*id_range))
    paid = paid_q.subquery("paid")
    running = charges_q.subquery("running")
    paid_amount = func.coalesce(paid.c.paid, 0)
    return (
        select(
            running.c.account_id.label("account_id"),
            (func.sum(running.c.amount) - func.max(paid_amount)).label("debt"),
            func.min(case((running.c.cum > paid_amount, running.c.due_date))).label("oldest"),
        )
        .select_from(running.outerjoin(paid, paid.c.account_id == running.c.account_id))
        .group_by(running.c.account_id)
        .subquery("ledger")
    )


def _phone_of_account() -> Any:
    """Correlated subquery: the account's best phone (verified first, then oldest link)."""
    return (
        select(PhoneNumber.e164)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .where(AccountPhone.account_id == Account.id)
        .order_by(PhoneNumber.verified.desc(), PhoneNumber.id)
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )


def audience_query(
    audience: Audience,
    *,
    today: dt.date,
    now: dt.datetime,
    dialect: str,
    id_range: tuple[int, int] | None = None,
) -> Select[Any]:
    """The SELECT of the audience (columns of :class:`AudienceRow`), ordered by account id.

    ``id_range`` (inclusive account ids) restricts it to one batch; ``accounts`` lists are
    applied by :func:`stream_audience` in chunks.
    """
    ledger = _ledger(today, id_range)
    phone = _phone_of_account().label("phone")
    debt = func.coalesce(ledger.c.debt, 0)
    query = (
        select(
            Account.id,
            Account.number,
            Consumer.full_name,
            phone,
            Account.timezone,
            debt.label("debt"),
            ledger.c.oldest,
        )
        .join(Consumer, Consumer.id == Account.consumer_id)
        .outerjoin(ledger, ledger.c.account_id == Account.id)
        .where(Account.status != "closed")
        .order_by(Account.id)
    )
    if id_range is not None:
        query = query.where(Account.id.between(*id_range))
    if audience.min_debt is not None:
        query = query.where(debt >= audience.min_debt)
    if audience.min_days_overdue is not None:
        cutoff = today - dt.timedelta(days=audience.min_days_overdue)
        query = query.where(ledger.c.oldest <= cutoff)
    if audience.aging_buckets:
        bounds = {
            "0-30": and_(ledger.c.oldest >= today - dt.timedelta(days=30)),
            "31-90": and_(
                ledger.c.oldest < today - dt.timedelta(days=30),
                ledger.c.oldest >= today - dt.timedelta(days=90),
            ),
            "91+": and_(ledger.c.oldest < today - dt.timedelta(days=90)),
        }
        query = query.where(ledger.c.oldest.is_not(None)).where(
            or_(*(bounds[b] for b in audience.aging_buckets))
        )
    if audience.regions:
        query = query.where(Account.region.in_(audience.regions))
    if audience.timezones:
        # Accounts with an unknown zone (NULL) never match a zone filter: their phone may
        # span several zones, so they are not "in" any one of them.
        query = query.where(Account.timezone.in_(audience.timezones))
    if audience.meter is not None:
        if audience.meter.remote_read is not None:
            query = query.where(
                exists().where(
                    Meter.account_id == Account.id,
                    Meter.remote_read.is_(audience.meter.remote_read),
                )
            )
        if audience.meter.zones:
            length = (
                func.jsonb_array_length(Meter.zones)
                if dialect == "postgresql"
                else func.json_array_length(Meter.zones)
            )
            query = query.where(
                exists().where(Meter.account_id == Account.id, length.in_(audience.meter.zones))
            )
    if audience.consent_purpose is not None:
        query = query.where(
            exists().where(
                Consent.contact == "phone",
                Consent.value == _phone_of_account(),
                Consent.purpose == audience.consent_purpose,
                Consent.granted.is_(True),
                Consent.withdrawn_at.is_(None),
            )
        )
    if audience.not_contacted_days is not None:
        since = now - dt.timedelta(days=audience.not_contacted_days)
        query = query.where(
            ~exists().where(
                Interaction.account_id == Account.id,
                Interaction.direction == "outbound",
                Interaction.started_at >= since,
            )
        )
    return query


def _row(values: Sequence[Any]) -> AudienceRow:
    account_id, number, name, phone, timezone, debt, oldest = values
    if isinstance(oldest, str):  # SQLite returns MIN() over a CASE as text
        oldest = dt.date.fromisoformat(oldest)
    return AudienceRow(
        account_id=int(account_id),
        account_number=str(number),
        consumer_name=str(name),
        phone=phone,
        timezone=None if timezone is None else str(timezone),
        debt=Decimal(str(debt)).quantize(Decimal("0.01")),
        oldest_unpaid_due=oldest,
    )


def _account_chunks(audience: Audience, size: int) -> Iterator[list[str] | None]:
    if audience.accounts is None:
        yield None
        return
    chunk: list[str] = []
    for raw in audience.accounts:
        try:
            chunk.append(normalize_account_number(raw))
        except InvalidAccountNumber:
            continue
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def stream_audience(
    session: Session,
    audience: Audience,
    *,
    now: dt.datetime,
    batch_size: int = DEFAULT_BATCH,
) -> Iterator[list[AudienceRow]]:
    """Yield the audience in batches of at most ``batch_size`` rows (keyset pagination).

    Each round reads the next ``batch_size`` account ids (an index range scan), then runs
    the filtered query — ledger included — for that id range only; empty rounds yield
    nothing. Memory and per-batch cost are independent of the audience size.
    """
    today = now.date()
    dialect = session.get_bind().dialect.name
    for numbers in _account_chunks(audience, batch_size):
        last_id = 0
        while True:
            ids_query = select(Account.id).where(Account.id > last_id)
            if numbers is not None:
                ids_query = ids_query.where(Account.number.in_(numbers))
            ids = session.scalars(ids_query.order_by(Account.id).limit(batch_size)).all()
            if not ids:
                break
            id_range = (int(ids[0]), int(ids[-1]))
            query = audience_query(
                audience, today=today, now=now, dialect=dialect, id_range=id_range
            )
            if numbers is not None:
                query = query.where(Account.number.in_(numbers))
            rows = session.execute(query).all()
            last_id = id_range[1]
            if rows:
                yield [_row(r) for r in rows]
            if len(ids) < batch_size:
                break


def preview_audience(
    session: Session, audience: Audience, *, now: dt.datetime, sample_size: int = 10
) -> AudiencePreview:
    """Count, a sample and the split by time zone — streamed, so any size is fine."""
    count = 0
    without_phone = 0
    zones: Counter[str] = Counter()
    sample: list[AudienceRow] = []
    for batch in stream_audience(session, audience, now=now, batch_size=5000):
        for row in batch:
            count += 1
            zones[row.timezone or UNKNOWN_TIMEZONE_LABEL] += 1
            if row.phone is None:
                without_phone += 1
            if len(sample) < sample_size:
                sample.append(row)
    return AudiencePreview(
        count=count,
        sample=sample,
        by_timezone=dict(zones.most_common()),
        without_phone=without_phone,
    )


__all__ = [
    "AudiencePreview",
    "AudienceRow",
    "audience_query",
    "preview_audience",
    "stream_audience",
]
