"""Consumers and their accounts as a person sees them, within a :class:`Scope`.

What the REST API (:mod:`web.api_consumers`) answers, and what a console page can use:
consumer search (account number, phone, IVR code, or part of the name), a consumer with
their accounts, an account with its phones, meters and balance, its readings, charges and
payments, a consumer's interactions (the contact history) and one interaction with its IVR
path, transcripts and recordings.

Every query carries the scope's clause (:mod:`crm_store.visibility`): an account of another
region, and a consumer with no account of the user's regions, are absent — asked for by
number or id they are :class:`~crm_store.errors.NotFound`, exactly like rows that do not
exist, so an answer never tells that they exist elsewhere.

Lists are keyset pages (:mod:`crm_store.paging`), newest first except the consumer search
(by consumer id). The ``*_as_dict`` functions give the JSON form (times in ISO 8601 UTC,
money as decimal strings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, join, outerjoin

from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.access import Scope
from crm_store.accounts import normalize_account_number, normalize_ivr_code
from crm_store.errors import InvalidAccountNumber, InvalidInput, NotFound
from crm_store.interactions import InteractionQuery, encode_cursor, search_statement
from crm_store.interactions import decode_cursor as decode_history_cursor
from crm_store.ledger import Balance, balance
from crm_store.models import (
    Account,
    AccountPhone,
    CallRecording,
    Charge,
    Consumer,
    Interaction,
    InteractionStep,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
    Transcript,
    UTCDateTime,
)
from crm_store.paging import KeysetPage, after, check_limit, decode_cursor, page_of
from crm_store.visibility import consumer_clause, interaction_clause

#: The shortest part of a name the search takes (shorter ones would match nearly everyone).
MIN_NAME_QUERY = 2
#: A history over up to this many accounts (or phones) is read as one index range per
#: account, merged (:func:`newest_first`); over more, with one ``IN`` list.
MERGE_LIMIT = 20


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


# ---------------------------------------------------------------------------- consumers


@dataclass(frozen=True)
class ConsumerCard:
    """A consumer and the accounts of theirs the scope sees (oldest first)."""

    consumer: Consumer
    accounts: list[Account] = field(default_factory=list)


def _exact_matches(scope: Scope, q: str) -> Select[int] | None:
    """Consumer ids of visible accounts whose number, IVR code or linked phone is ``q``.

    Text without a digit is never taken for an account number (the pattern would let a
    surname through: every real number has digits), so a name search skips that probe."""
    conds: list[ColumnElement[bool]] = []
    if any(ch.isdigit() for ch in q):
        with suppress(InvalidAccountNumber):
            conds.append(Account.number == normalize_account_number(q))
    with suppress(InvalidInput):
        conds.append(Account.ivr_code == normalize_ivr_code(q))
    try:
        e164 = normalize_phone(q, require_russian=False)
    except InvalidPhoneError:
        pass
    else:
        conds.append(
            Account.id.in_(
                select(AccountPhone.account_id)
                .join(PhoneNumber, PhoneNumber.id == AccountPhone.phone_id)
                .where(PhoneNumber.e164 == e164)
            )
        )
    if not conds:
        return None
    return select(Account.consumer_id).where(or_(*conds), scope.region_clause(Account.region))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_consumers(
    session: Session,
    scope: Scope,
    q: str | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[ConsumerCard]:
    """Consumers the scope sees matching ``q``, by consumer id.

    ``q`` is tried first as an account number, an IVR code and a phone (any notation) of a
    visible account — the unique indexes answer those; when nothing matches exactly and
    ``q`` has a letter, it is a case-insensitive part of the name (at least
    :data:`MIN_NAME_QUERY` characters). Without ``q``: every visible consumer.
    """
    check_limit(limit)
    text = (q or "").strip()
    visible = select(Consumer.id).where(consumer_clause(scope))
    if not text:
        matches = visible
    else:
        exact = _exact_matches(scope, text)
        named = any(ch.isalpha() for ch in text)
        if exact is None and not named:
            return KeysetPage([], None)
        if named and exact is None and len(text) < MIN_NAME_QUERY:
            raise InvalidInput(f"search by name needs at least {MIN_NAME_QUERY} characters")
        by_name = visible.where(Consumer.full_name.ilike(_like(text), escape="\\"))
        if exact is None:
            matches = by_name
        elif not named:
            matches = visible.where(Consumer.id.in_(exact))
        elif not cursor:
            # A first page: the exact matches themselves tell whether there are any (every
            # consumer of a visible account is visible), so no separate probe is needed.
            page = _consumer_page(
                session, scope, visible.where(Consumer.id.in_(exact)), None, limit
            )
            if page.items:
                return page
            matches = by_name
        elif session.scalars(exact.order_by(Account.consumer_id).limit(1)).first() is not None:
            matches = visible.where(Consumer.id.in_(exact))
        else:
            matches = by_name
    after = None
    if cursor:
        (after,) = decode_cursor(cursor, (int,))
    return _consumer_page(session, scope, matches, after, limit)


def _consumer_page(
    session: Session, scope: Scope, matches: Select[int], after: Any, limit: int
) -> KeysetPage[ConsumerCard]:
    """A page of the consumers whose ids ``matches`` gives, by id (past ``after``), with
    their visible accounts: one query, the page's ids joined to the consumers and their
    visible accounts."""
    if after is not None:
        matches = matches.where(Consumer.id > after)
    page_ids = matches.order_by(Consumer.id).limit(limit + 1).subquery()
    rows = session.execute(
        select(Consumer, Account)
        .select_from(
            join(Consumer, page_ids, page_ids.c.id == Consumer.id).outerjoin(
                Account, _visible_accounts_of_consumer(scope)
            )
        )
        .order_by(Consumer.id, Account.id)
    ).all()
    cards: dict[int, ConsumerCard] = {}
    for consumer, account in rows:
        card = cards.setdefault(consumer.id, ConsumerCard(consumer))
        if account is not None:
            card.accounts.append(account)
    page = page_of(list(cards.values()), limit, lambda c: (c.consumer.id,))
    return KeysetPage(page.items, page.next_cursor)


def _visible_accounts_of_consumer(scope: Scope) -> ColumnElement[bool]:
    """The ON clause joining a consumer to their accounts ``scope`` sees (the joins name
    their left side: with no region at all the clause is a plain false)."""
    return and_(Account.consumer_id == Consumer.id, scope.region_clause(Account.region))


def get_consumer(session: Session, scope: Scope, consumer_id: int) -> ConsumerCard:
    """Consumer ``consumer_id`` with their visible accounts, or :class:`NotFound`.

    One query: the consumer outer-joined to their visible accounts. For a region-scoped
    user the consumer is visible when one of them is (as :func:`consumer_clause` says); a
    user of all regions also sees a consumer without accounts.
    """
    rows = session.execute(
        select(Consumer, Account)
        .select_from(outerjoin(Consumer, Account, _visible_accounts_of_consumer(scope)))
        .where(Consumer.id == consumer_id)
        .order_by(Account.id)
    ).all()
    if not rows or (rows[0][1] is None and not scope.all_regions):
        raise NotFound(f"consumer {consumer_id} does not exist")
    return ConsumerCard(rows[0][0], [account for _, account in rows if account is not None])


def account_summary(account: Account) -> dict[str, Any]:
    """An account as a list shows it."""
    return {
        "number": account.number,
        "number_raw": account.number_raw,
        "status": account.status,
        "region": account.region,
        "timezone": account.timezone,
        "service_address": account.service_address,
        "ivr_code": account.ivr_code,
        "e_receipt": account.e_receipt,
    }


def consumer_as_dict(card: ConsumerCard) -> dict[str, Any]:
    """A consumer with their visible accounts, JSON-ready."""
    consumer = card.consumer
    return {
        "id": consumer.id,
        "kind": consumer.kind,
        "full_name": consumer.full_name,
        "inn": consumer.inn,
        "email": consumer.email,
        "created_at": _iso(consumer.created_at),
        "accounts": [account_summary(a) for a in card.accounts],
    }


# ---------------------------------------------------------------------------- accounts


def get_account(session: Session, scope: Scope, number: str) -> Account:
    """The visible account with ``number`` (any notation the rules normalise), else
    :class:`NotFound` (for a malformed number too)."""
    try:
        normalized = normalize_account_number(number)
    except InvalidAccountNumber:
        raise NotFound(f"account {number!r} does not exist") from None
    account = session.scalars(
        select(Account).where(Account.number == normalized, scope.region_clause(Account.region))
    ).one_or_none()
    if account is None:
        raise NotFound(f"account {number!r} does not exist")
    return account


def account_today(account: Account, now: datetime) -> date:
    """The account's calendar date at ``now`` (its zone, else the supplier's)."""
    return now.astimezone(account.zoneinfo).date()


def balance_as_dict(value: Balance) -> dict[str, Any]:
    """A :class:`~crm_store.ledger.Balance`, JSON-ready."""
    return {
        "as_of": _iso(value.as_of),
        "charged": _money(value.charged),
        "paid": _money(value.paid),
        "debt": _money(value.debt),
        "credit": _money(value.credit),
        "overdue": _money(value.overdue),
        "earliest_unpaid_due": _iso(value.earliest_unpaid_due),
        "days_overdue": value.days_overdue,
        "aging_bucket": value.aging_bucket,
        "last_payment_on": _iso(value.last_payment_on),
        "last_payment_amount": _money(value.last_payment_amount),
    }


def account_balance(session: Session, account: Account, as_of: date) -> dict[str, Any]:
    """The balance of ``account`` on ``as_of``, JSON-ready."""
    return balance_as_dict(balance(session, account.id, as_of))


def account_as_dict(session: Session, account: Account, as_of: date) -> dict[str, Any]:
    """An account with its consumer, phones, meters and balance on ``as_of``, JSON-ready."""
    phones = session.execute(
        select(PhoneNumber.e164, PhoneNumber.verified, PhoneNumber.source)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .where(AccountPhone.account_id == account.id)
        .order_by(PhoneNumber.verified.desc(), PhoneNumber.id)
    ).all()
    return {
        **account_summary(account),
        "consumer": {
            "id": account.consumer.id,
            "kind": account.consumer.kind,
            "full_name": account.consumer.full_name,
        },
        "phones": [{"phone": p.e164, "verified": p.verified, "source": p.source} for p in phones],
        "meters": [
            {
                "id": m.id,
                "serial": m.serial,
                "capacity": m.capacity,
                "zones": list(m.zones),
                "remote_read": m.remote_read,
                "verification_due": _iso(m.verification_due),
                "installed_at": _iso(m.installed_at),
            }
            for m in account.meters
        ],
        "balance": account_balance(session, account, as_of),
        "created_at": _iso(account.created_at),
    }


def readings_page(
    session: Session,
    account: Account,
    *,
    meter: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[dict[str, Any]]:
    """The account's meter readings, newest submitted first (``meter``: one serial)."""
    check_limit(limit)
    query = (
        select(MeterReading, Meter.serial)
        .join(Meter, Meter.id == MeterReading.meter_id)
        .where(Meter.account_id == account.id)
    )
    if meter is not None:
        query = query.where(Meter.serial == meter)
    columns = (MeterReading.submitted_at, MeterReading.id)
    if cursor:
        query = query.where(after(columns, decode_cursor(cursor, (datetime, int))))
    rows = session.execute(query.order_by(*(c.desc() for c in columns)).limit(limit + 1)).all()
    page = page_of(rows, limit, lambda r: (r[0].submitted_at, r[0].id))
    return KeysetPage([_reading(r[0], r[1]) for r in page.items], page.next_cursor)


def _reading(row: MeterReading, serial: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "meter": serial,
        "zone": row.zone,
        "value": row.value,
        "period": _iso(row.period),
        "source": row.source,
        "confidence": row.confidence,
        "consumption": row.consumption,
        "anomaly": row.anomaly,
        "override": row.override,
        "rollover": row.rollover,
        "submitted_at": _iso(row.submitted_at),
        "interaction_id": row.interaction_id,
    }


def charges_page(
    session: Session, account: Account, *, limit: int = 50, cursor: str | None = None
) -> KeysetPage[dict[str, Any]]:
    """The account's charges, latest due date first."""
    check_limit(limit)
    query = select(Charge).where(Charge.account_id == account.id)
    columns = (Charge.due_date, Charge.id)
    if cursor:
        query = query.where(after(columns, decode_cursor(cursor, (date, int))))
    rows = list(session.scalars(query.order_by(*(c.desc() for c in columns)).limit(limit + 1)))
    page = page_of(rows, limit, lambda c: (c.due_date, c.id))
    return KeysetPage(
        [
            {
                "id": c.id,
                "period": _iso(c.period),
                "amount": _money(c.amount),
                "due_date": _iso(c.due_date),
                "source": c.source,
                "created_at": _iso(c.created_at),
            }
            for c in page.items
        ],
        page.next_cursor,
    )


def payments_page(
    session: Session, account: Account, *, limit: int = 50, cursor: str | None = None
) -> KeysetPage[dict[str, Any]]:
    """The account's payments, latest first."""
    check_limit(limit)
    query = select(Payment).where(Payment.account_id == account.id)
    columns = (Payment.paid_on, Payment.id)
    if cursor:
        query = query.where(after(columns, decode_cursor(cursor, (date, int))))
    rows = list(session.scalars(query.order_by(*(c.desc() for c in columns)).limit(limit + 1)))
    page = page_of(rows, limit, lambda p: (p.paid_on, p.id))
    return KeysetPage(
        [
            {
                "id": p.id,
                "amount": _money(p.amount),
                "paid_on": _iso(p.paid_on),
                "paid_at": _iso(p.paid_at),
                "channel": p.channel,
                "agent": p.agent,
                "external_id": p.external_id,
            }
            for p in page.items
        ],
        page.next_cursor,
    )


# ---------------------------------------------------------------------------- interactions


def consumer_interactions(
    session: Session,
    scope: Scope,
    consumer_id: int,
    filters: InteractionQuery | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[dict[str, Any]]:
    """The contact history of a visible consumer (:class:`NotFound` otherwise), newest
    first: the interactions on their accounts the scope sees. ``filters`` narrow it
    (channel, direction, outcome, time range, text; their ``account_id`` and ``phone`` are
    not used). Pages by the keyset of :mod:`crm_store.interactions`, on the
    ``(account_id, started_at)`` index: a consumer's 10,000th call costs what the first does."""
    check_limit(limit)
    card = get_consumer(session, scope, consumer_id)
    ids = [a.id for a in card.accounts]
    if not ids:
        return KeysetPage([], None)
    base = filters or InteractionQuery()
    query = InteractionQuery(
        since=base.since,
        until=base.until,
        channel=base.channel,
        direction=base.direction,
        outcome=base.outcome,
        campaign_id=base.campaign_id,
        text=base.text,
    )
    if query == InteractionQuery():
        # The plain history (the usual case) from a statement built once per shape.
        params: dict[str, Any] = {"limit": limit + 1, **account_params(ids)}
        if cursor:
            params["after_at"], params["after_id"] = decode_history_cursor(cursor)
        statement = _history_statement(len(ids) if len(ids) <= MERGE_LIMIT else -1, bool(cursor))
        rows = list(session.scalars(statement, params))
    else:
        filtered = search_statement(query, limit=limit, cursor=cursor)
        if len(ids) <= MERGE_LIMIT:
            parts = [filtered.where(Interaction.account_id == i) for i in ids]
        else:
            parts = [filtered.where(Interaction.account_id.in_(ids))]
        rows = list(session.scalars(newest_first(parts, limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].started_at, rows[-1].id)
    numbers = {a.id: a.number for a in card.accounts}
    return KeysetPage(_interaction_items(session, rows, numbers), next_cursor)


def account_parts(accounts: int) -> list[ColumnElement[bool]]:
    """The conditions of a history's parts, one per account (bind parameters ``a0``…), or
    one ``IN`` list (``accounts`` < 0: the expanding parameter ``accounts``)."""
    if accounts < 0:
        return [Interaction.account_id.in_(bindparam("accounts", expanding=True))]
    return [Interaction.account_id == bindparam(f"a{n}") for n in range(accounts)]


def account_params(ids: Sequence[int]) -> dict[str, Any]:
    """The parameters of :func:`account_parts` for the accounts ``ids``."""
    if len(ids) > MERGE_LIMIT:
        return {"accounts": list(ids)}
    return {f"a{n}": account for n, account in enumerate(ids)}


def after_key() -> ColumnElement[bool]:
    """``(started_at, id) < (:after_at, :after_id)``: the keyset condition of
    :func:`~crm_store.interactions.search_statement` with bind parameters (its redundant
    ``started_at <= :after_at`` enters the index at the cursor)."""
    at = bindparam("after_at", type_=UTCDateTime())
    ident = bindparam("after_id", type_=BigInteger())
    return and_(
        Interaction.started_at <= at,
        or_(
            Interaction.started_at < at, and_(Interaction.started_at == at, Interaction.id < ident)
        ),
    )


def newest_parts(
    wheres: Sequence[ColumnElement[bool]], conditions: Sequence[ColumnElement[bool]]
) -> Select[Interaction]:
    """The newest interactions (at most the bind parameter ``limit``) of the parts: one per
    condition of ``wheres``, each with ``conditions`` too (see :func:`newest_first`)."""
    limit = bindparam("limit", type_=Integer())
    order = (Interaction.started_at.desc(), Interaction.id.desc())
    return newest_first(
        [select(Interaction).where(w, *conditions).order_by(*order).limit(limit) for w in wheres],
        limit,
    )


@lru_cache(maxsize=64)
def _history_statement(accounts: int, after: bool) -> Select[Interaction]:
    """The plain history of ``accounts`` accounts (:func:`account_parts`), built once per
    shape; parameters: the accounts', ``limit`` and, with ``after``, the cursor's key."""
    return newest_parts(account_parts(accounts), [after_key()] if after else [])


def newest_first(parts: Sequence[Select[Interaction]], limit: Any) -> Select[Interaction]:
    """The ``limit`` newest interactions (by ``(started_at, id)``) of the union of ``parts``.

    Each part is a SELECT of interactions ordered newest first and limited itself, so that
    it is one backward range of an index (e.g. ``(account_id, started_at)`` for one
    account); the union of the parts' keys is ordered, and only the rows it keeps are read
    in full. With one ``IN`` list over several accounts instead, the database reads every
    row of every account to sort them. ``limit``: a number or a bind parameter.
    """
    if len(parts) == 1:
        return parts[0]
    keys = union_all(
        *(
            select(part.with_only_columns(Interaction.id, Interaction.started_at).subquery())
            for part in parts
        )
    ).subquery()
    return (
        select(Interaction)
        .join(keys, keys.c.id == Interaction.id)
        .order_by(keys.c.started_at.desc(), keys.c.id.desc())
        .limit(limit)
    )


def _interaction_items(
    session: Session, rows: Sequence[Interaction], numbers: Mapping[int, str]
) -> list[dict[str, Any]]:
    """The rows as JSON, with account numbers (``numbers``: those known already) and
    whether each has a recording."""
    missing = {r.account_id for r in rows if r.account_id is not None} - set(numbers)
    if missing:
        numbers = {
            **numbers,
            **dict(
                session.execute(
                    select(Account.id, Account.number).where(Account.id.in_(missing))
                ).all()
            ),
        }
    ids = [r.id for r in rows]
    recorded = (
        set(
            session.scalars(
                select(CallRecording.interaction_id)
                .where(CallRecording.interaction_id.in_(ids))
                .group_by(CallRecording.interaction_id)
            )
        )
        if ids
        else set()
    )
    return [_interaction(r, numbers.get(r.account_id or 0), r.id in recorded) for r in rows]


def _interaction(row: Interaction, account_number: str | None, recorded: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "direction": row.direction,
        "status": row.status,
        "outcome": row.outcome,
        "started_at": _iso(row.started_at),
        "ended_at": _iso(row.ended_at),
        "phone": row.phone,
        "account_number": account_number,
        "consumer_id": row.consumer_id,
        "campaign_id": row.campaign_id,
        "operator": row.operator,
        "summary": row.summary,
        "has_recording": recorded,
    }


def get_interaction(session: Session, scope: Scope, interaction_id: int) -> Interaction:
    """The visible interaction ``interaction_id``, else :class:`NotFound`."""
    row = session.scalars(
        select(Interaction).where(Interaction.id == interaction_id, interaction_clause(scope))
    ).one_or_none()
    if row is None:
        raise NotFound(f"interaction {interaction_id} does not exist")
    return row


def interaction_as_dict(session: Session, row: Interaction) -> dict[str, Any]:
    """An interaction with its IVR path, transcripts and recordings, JSON-ready."""
    recordings = list(
        session.scalars(
            select(CallRecording)
            .where(CallRecording.interaction_id == row.id)
            .order_by(CallRecording.id)
        )
    )
    steps = session.scalars(
        select(InteractionStep)
        .where(InteractionStep.interaction_id == row.id)
        .order_by(InteractionStep.seq)
    )
    transcripts = session.scalars(
        select(Transcript).where(Transcript.interaction_id == row.id).order_by(Transcript.id)
    )
    number = (
        session.scalar(select(Account.number).where(Account.id == row.account_id))
        if row.account_id is not None
        else None
    )
    return {
        **_interaction(row, number, bool(recordings)),
        "data": dict(row.data or {}),
        "steps": [
            {
                "seq": s.seq,
                "step": s.step,
                "event": s.event,
                "input": s.input,
                "outcome": s.outcome,
                "at": _iso(s.at),
            }
            for s in steps
        ],
        "transcripts": [
            {
                "step": t.step,
                "text": t.text,
                "confidence": t.confidence,
                "decision": t.decision,
                "at": _iso(t.at),
            }
            for t in transcripts
        ],
        "recordings": [
            {
                "sid": r.sid,
                "status": r.status,
                "duration_s": r.duration_s,
                "channels": r.channels,
                "created_at": _iso(r.created_at),
                "available": r.storage_path is not None and r.deleted_at is None,
                "deleted_at": _iso(r.deleted_at),
            }
            for r in recordings
        ],
    }


def get_recording(session: Session, scope: Scope, sid: str) -> CallRecording:
    """The recording ``sid`` of an interaction the scope sees, else :class:`NotFound`.

    A SID with a NUL (PostgreSQL cannot compare it) is not looked up: :class:`NotFound`.
    """
    if "\x00" in sid:
        raise NotFound(f"recording {sid!r} does not exist")
    row = session.scalars(
        select(CallRecording)
        .join(Interaction, Interaction.id == CallRecording.interaction_id)
        .where(CallRecording.sid == sid, interaction_clause(scope))
    ).one_or_none()
    if row is None:
        raise NotFound(f"recording {sid!r} does not exist")
    return row
