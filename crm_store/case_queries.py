"""Cases (обращения) as people list, open and work them, within a :class:`Scope`.

Over :mod:`crm_store.cases` (SLA, workflow, history): a case is visible when its account is
(or, without an account, its consumer is: :func:`crm_store.visibility.case_clause`); an
invisible one is :class:`~crm_store.errors.NotFound`. A region-scoped user opens cases only
on an account or consumer they see, so every case they open stays visible to them.

Every change is a :class:`~crm_store.models.CaseEvent` (who, when, from → to, note) and an
audit row (entity ``case``, :func:`crm_store.audit.record`) attributed to the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store import audit
from crm_store.access import Scope
from crm_store.cases import add_note, change_status, open_case
from crm_store.consumer_queries import get_account, get_consumer, get_interaction
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import CASE_STATUSES, CASE_TYPES, Account, Case, CaseEvent
from crm_store.paging import KeysetPage, after, check_limit, decode_cursor, page_of
from crm_store.visibility import case_clause

AUDIT_ENTITY = "case"
MAX_NOTE = 4000


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_cases(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    case_type: str | None = None,
    account: str | None = None,
    consumer_id: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[Case]:
    """Visible cases, newest first, filtered by status, type, account number, consumer."""
    check_limit(limit)
    query = select(Case).where(case_clause(scope))
    if status is not None:
        if status not in CASE_STATUSES:
            raise InvalidInput(f"unknown status {status!r}; one of {', '.join(CASE_STATUSES)}")
        query = query.where(Case.status == status)
    if case_type is not None:
        if case_type not in CASE_TYPES:
            raise InvalidInput(f"unknown case type {case_type!r}; one of {', '.join(CASE_TYPES)}")
        query = query.where(Case.type == case_type)
    if account is not None:
        query = query.where(Case.account_id == get_account(session, scope, account).id)
    if consumer_id is not None:
        query = query.where(Case.consumer_id == consumer_id)
    if cursor:
        query = query.where(after((Case.id,), decode_cursor(cursor, (int,))))
    rows = list(session.scalars(query.order_by(Case.id.desc()).limit(limit + 1)))
    return page_of(rows, limit, lambda c: (c.id,))


def get_case(session: Session, scope: Scope, case_id: int) -> Case:
    """The visible case ``case_id``, else :class:`NotFound`."""
    case = session.scalars(select(Case).where(Case.id == case_id, case_clause(scope))).one_or_none()
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def _snapshot(case: Case) -> dict[str, Any]:
    return {
        "type": case.type,
        "status": case.status,
        "subject": case.subject,
        "account_id": case.account_id,
        "consumer_id": case.consumer_id,
        "sla_due_at": _iso(case.sla_due_at),
        "closed_at": _iso(case.closed_at),
    }


def create_case(
    session: Session,
    scope: Scope,
    *,
    case_type: str,
    subject: str,
    description: str = "",
    account: str | None = None,
    consumer_id: int | None = None,
    interaction_id: int | None = None,
    actor: str,
    now: datetime,
) -> Case:
    """Open a case on a visible account (by number) and/or consumer; a region-scoped user
    must name one of them. The account's consumer is the case's consumer when none is given;
    a consumer that does not hold the account is refused."""
    row: Account | None = get_account(session, scope, account) if account is not None else None
    if consumer_id is not None:
        get_consumer(session, scope, consumer_id)
        if row is not None and row.consumer_id != consumer_id:
            raise InvalidInput(f"account {row.number} is not consumer {consumer_id}'s")
    elif row is not None:
        consumer_id = row.consumer_id
    if row is None and consumer_id is None and not scope.all_regions:
        raise InvalidInput("name the account or the consumer of the case")
    if interaction_id is not None:
        get_interaction(session, scope, interaction_id)
    case = open_case(
        session,
        case_type=case_type,
        subject=subject,
        description=description,
        account_id=row.id if row is not None else None,
        consumer_id=consumer_id,
        interaction_id=interaction_id,
        actor=actor,
        now=now,
    )
    with audit.acting_as(actor):
        audit.record(session, AUDIT_ENTITY, str(case.id), "insert", None, _snapshot(case))
    return case


def update_case(
    session: Session,
    scope: Scope,
    case_id: int,
    *,
    status: str | None = None,
    note: str | None = None,
    actor: str,
    now: datetime,
) -> Case:
    """Move a visible case to ``status`` (with ``note``), or add ``note`` alone."""
    case = get_case(session, scope, case_id)
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"a note has at most {MAX_NOTE} characters")
    if status is None and not text:
        raise InvalidInput("give a new status or a note")
    before = _snapshot(case)
    if status is not None:
        change_status(session, case.id, status, actor=actor, note=text, now=now)
    else:
        add_note(session, case.id, actor=actor, note=text, now=now)
    after_change = _snapshot(case)
    with audit.acting_as(actor):
        audit.record(
            session,
            AUDIT_ENTITY,
            str(case.id),
            "update",
            before,
            {**after_change, "note": text} if text else after_change,
        )
    return case


def _numbers(session: Session, cases: list[Case]) -> dict[int, str]:
    ids = {c.account_id for c in cases if c.account_id is not None}
    if not ids:
        return {}
    return dict(
        session.execute(select(Account.id, Account.number).where(Account.id.in_(ids))).all()
    )


def _case(case: Case, number: str | None) -> dict[str, Any]:
    return {
        "id": case.id,
        "type": case.type,
        "status": case.status,
        "subject": case.subject,
        "description": case.description,
        "account_number": number,
        "consumer_id": case.consumer_id,
        "interaction_id": case.interaction_id,
        "sla_due_at": _iso(case.sla_due_at),
        "created_at": _iso(case.created_at),
        "closed_at": _iso(case.closed_at),
    }


def cases_as_dicts(session: Session, cases: list[Case]) -> list[dict[str, Any]]:
    """Cases of a list, JSON-ready (without their history)."""
    numbers = _numbers(session, cases)
    return [_case(c, numbers.get(c.account_id or 0)) for c in cases]


def case_as_dict(session: Session, case: Case) -> dict[str, Any]:
    """A case with its history (status changes and notes, oldest first), JSON-ready."""
    rows = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
    )
    return {
        **_case(case, _numbers(session, [case]).get(case.account_id or 0)),
        "events": [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "note": e.note,
            }
            for e in rows
        ],
    }
