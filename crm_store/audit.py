"""Automatic audit log of changes to customer data.

Every ORM insert, update and delete of :data:`AUDITED` entities (consumers, accounts,
phones, account-phone links, meters, readings, consents, do-not-contact entries) writes one
:class:`AuditLog` row in the same transaction: who (the *actor*), when, which row, the column
values before and after and, when the actor gave one, why (the *reason*). Nothing needs to be
called by repositories: the listeners are installed when ``crm_store`` is imported.

The actor is, in order of precedence: ``session.info["actor"]``, the innermost
``with acting_as("ivr"):`` block of the current context (thread / task), or ``"system"``.
The reason comes the same way: ``session.info["audit_reason"]``, or the ``reason`` of the
innermost ``acting_as`` block that gave one (``acting_as("cli:anna", reason="жалоба")``).

What is *not* audited, by design and documented for callers:

* Core / ORM-bulk statements (``session.execute(insert(Meter), rows)``,
  ``session.execute(update(Account)...)``): they bypass the unit of work. The demo seed
  uses them on purpose for speed; a real import goes through the ORM and is audited.
* Rows removed by the database's own ``ON DELETE CASCADE`` without the ORM loading them.
* Sessions inside ``with audit_suspended(session):`` (explicit opt-out for bulk jobs).

Changes the listeners cannot see (users and their roles, :mod:`crm_store.users`) are written
by hand with :func:`record`, attributed the same way.

Reading the log (the console's audit page): :func:`search_audit` pages through the rows
newest first (keyset on the id), filtered by actor, object (entity and id) and time, for a
:class:`~crm_store.access.Scope`. A user of all regions sees every row. A region-scoped user
sees only rows about objects placed, through the accounts they belong to, in their regions
(:func:`region_visibility`, the rules of :mod:`crm_store.visibility`): consumers, accounts,
phones and their links, meters, readings, consents and do-not-contact entries. Rows about
objects with no region (users, campaigns, flows …) and rows whose object no longer exists
cannot be placed in a region, so they are absent for a region-scoped user.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    and_,
    case,
    cast,
    event,
    exists,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstanceState, Mapper, Session, object_session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from crm_store.access import Scope
from crm_store.models import (
    Account,
    AccountPhone,
    AuditLog,
    Consent,
    Consumer,
    DoNotContact,
    Meter,
    MeterReading,
    PhoneNumber,
    utcnow,
)
from crm_store.visibility import contact_clause, visible_account_ids, visible_consumer_ids

DEFAULT_ACTOR = "system"

#: Audited model classes and the entity name written to ``audit_log.entity``.
AUDITED: dict[type[Any], str] = {
    Consumer: "consumer",
    Account: "account",
    PhoneNumber: "phone_number",
    AccountPhone: "account_phone",
    Meter: "meter",
    MeterReading: "meter_reading",
    Consent: "consent",
    DoNotContact: "do_not_contact",
}
#: The longest reason stored (``audit_log.reason``).
MAX_REASON_LENGTH = 500

_SUSPENDED_KEY = "audit_suspended"
_REASON_KEY = "audit_reason"
_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("crm_actor", default=None)
_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar("crm_reason", default=None)


@contextmanager
def acting_as(actor: str, *, reason: str | None = None) -> Iterator[None]:
    """Attribute every audited change made inside the block to ``actor`` (e.g. ``"ivr"``) and,
    when given, to ``reason`` (why the change is made; longer ones are cut to
    :data:`MAX_REASON_LENGTH`). Without a reason, an enclosing block's reason stays."""
    if not actor or not actor.strip():
        raise ValueError("actor must be a non-empty string")
    token = _actor.set(actor.strip())
    why = reason.strip()[:MAX_REASON_LENGTH] if reason and reason.strip() else None
    reason_token = _reason.set(why) if why else None
    try:
        yield
    finally:
        if reason_token is not None:
            _reason.reset(reason_token)
        _actor.reset(token)


def current_actor(session: Session | None = None) -> str:
    """The actor audited changes are attributed to right now."""
    if session is not None:
        explicit = session.info.get("actor")
        if explicit:
            return str(explicit)
    return _actor.get() or DEFAULT_ACTOR


def current_reason(session: Session | None = None) -> str | None:
    """The reason audited changes are recorded with right now (None when none was given)."""
    if session is not None:
        explicit = session.info.get(_REASON_KEY)
        if explicit:
            return str(explicit)[:MAX_REASON_LENGTH]
    return _reason.get()


@contextmanager
def audit_suspended(session: Session) -> Iterator[None]:
    """Do not audit changes flushed by ``session`` inside the block (bulk jobs only)."""
    previous = session.info.get(_SUSPENDED_KEY, False)
    session.info[_SUSPENDED_KEY] = True
    try:
        yield
    finally:
        session.info[_SUSPENDED_KEY] = previous


def jsonable(value: Any) -> Any:
    """Convert a column value to something JSON can store (Decimal and dates as strings)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def _column_keys(mapper: Mapper[Any]) -> list[str]:
    return [attr.key for attr in mapper.column_attrs]


def _loaded_snapshot(state: InstanceState[Any], mapper: Mapper[Any]) -> dict[str, Any]:
    return {k: jsonable(state.dict[k]) for k in _column_keys(mapper) if k in state.dict}


def _entity_id(mapper: Mapper[Any], target: Any) -> str:
    return ":".join(str(v) for v in mapper.primary_key_from_instance(target))


def _write(
    connection: Connection,
    target: Any,
    mapper: Mapper[Any],
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session = object_session(target)
    if session is not None and session.info.get(_SUSPENDED_KEY):
        return
    connection.execute(
        insert(AuditLog).values(
            at=utcnow(),
            actor=current_actor(session),
            entity=AUDITED[mapper.class_],
            entity_id=_entity_id(mapper, target),
            action=action,
            before=before,
            after=after,
            reason=current_reason(session),
        )
    )


def record(
    session: Session,
    entity: str,
    entity_id: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditLog:
    """Write one audit row by hand, for changes the listeners do not see (users and their
    roles: ``crm_store.users``), attributed like the automatic ones (actor, reason)."""
    row = AuditLog(
        at=utcnow(),
        actor=current_actor(session),
        entity=entity,
        entity_id=entity_id,
        action=action,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        reason=current_reason(session),
    )
    session.add(row)
    session.flush()
    return row


def _after_insert(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    state = inspect(target)
    _write(connection, target, mapper, "insert", None, _loaded_snapshot(state, mapper))


def _after_update(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    state = inspect(target)
    before: dict[str, Any] = {}
    changed = False
    for key in _column_keys(mapper):
        history = state.attrs[key].history
        if history.deleted:
            before[key] = jsonable(history.deleted[0])
            changed = changed or bool(history.added)
        elif history.added:
            changed = True  # previous value was never loaded, so it is unknown here
        elif key in state.dict:
            before[key] = jsonable(state.dict[key])
    if not changed:
        return
    _write(connection, target, mapper, "update", before, _loaded_snapshot(state, mapper))


def _after_delete(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    state = inspect(target)
    _write(connection, target, mapper, "delete", _loaded_snapshot(state, mapper), None)


def _load_deleted(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Load expired columns of audited rows about to be deleted, so ``before`` is complete."""
    if session.info.get(_SUSPENDED_KEY):
        return
    for obj in list(session.deleted):
        if type(obj) in AUDITED:
            state = inspect(obj)
            if state.expired_attributes or state.unloaded:
                for key in _column_keys(state.mapper):
                    getattr(obj, key)


def install() -> None:
    """Install the audit listeners (idempotent; ``crm_store/__init__.py`` calls it)."""
    if event.contains(Session, "before_flush", _load_deleted):
        return
    event.listen(Session, "before_flush", _load_deleted)
    for cls in AUDITED:
        event.listen(cls, "after_insert", _after_insert)
        event.listen(cls, "after_update", _after_update)
        event.listen(cls, "after_delete", _after_delete)


# ---------------------------------------------------------------------------- reading


#: The most rows one page of :func:`search_audit` holds.
MAX_PAGE = 200


@dataclass(frozen=True)
class AuditFilter:
    """What :func:`search_audit` keeps: ``actor`` (a part of it, any case), ``entity`` and
    ``entity_id`` (exact), ``since`` (inclusive) and ``until`` (exclusive), tz-aware."""

    actor: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class FieldChange:
    """One column of an audit row: its value before and after (``None`` when absent)."""

    key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as the page shows it, with the columns that changed."""

    id: int
    at: datetime
    actor: str
    entity: str
    entity_id: str
    action: str
    reason: str | None
    changes: list[FieldChange]


@dataclass(frozen=True)
class AuditPage:
    """Rows newest first; ``next_before``: the id to pass for the next (older) page."""

    entries: list[AuditEntry]
    next_before: int | None


def changed_fields(
    action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[FieldChange]:
    """What an audit row changed: every column of an insert or a delete, and the columns
    whose values differ for an update (sorted by name)."""
    old, new = before or {}, after or {}
    keys = sorted(set(old) | set(new))
    if action == "update":
        keys = [k for k in keys if old.get(k) != new.get(k)]
    return [FieldChange(k, old.get(k), new.get(k)) for k in keys]


class _BeforeColon(FunctionElement[str]):
    """The part of a string before its first ``:`` (an ``account_phone`` id's account)."""

    type = String()
    inherit_cache = True
    name = "before_colon"


@compiles(_BeforeColon)
def _before_colon_sqlite(element: _BeforeColon, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"substr({text}, 1, instr({text}, ':') - 1)"


@compiles(_BeforeColon, "postgresql")
def _before_colon_postgresql(element: _BeforeColon, compiler: SQLCompiler, **kw: Any) -> str:
    return f"split_part({compiler.process(element.clauses, **kw)}, ':', 1)"


def _object_id(entity: str, text: ColumnElement[str] | None = None) -> ColumnElement[int]:
    """The integer id an audit row of ``entity`` names (NULL for rows of other entities, so
    no other entity's id is ever cast)."""
    source = AuditLog.entity_id if text is None else text
    return cast(case((AuditLog.entity == entity, source), else_=None), Integer)


def region_visibility(scope: Scope) -> ColumnElement[bool]:
    """Audit rows ``scope`` sees (see the module docstring): all of them for a user of all
    regions; otherwise rows about objects that belong to an account of the scope's regions."""
    if scope.all_regions:
        return true()
    if not scope.regions:
        return false()
    accounts = visible_account_ids(scope)
    placed = {
        "account": _object_id("account").in_(accounts),
        "consumer": _object_id("consumer").in_(visible_consumer_ids(scope)),
        "account_phone": _object_id("account_phone", _BeforeColon(AuditLog.entity_id)).in_(
            accounts
        ),
        "phone_number": exists().where(
            AccountPhone.phone_id == _object_id("phone_number"),
            AccountPhone.account_id.in_(accounts),
        ),
        "meter": exists().where(Meter.id == _object_id("meter"), Meter.account_id.in_(accounts)),
        "meter_reading": exists().where(
            MeterReading.id == _object_id("meter_reading"),
            Meter.id == MeterReading.meter_id,
            Meter.account_id.in_(accounts),
        ),
        "consent": exists().where(
            Consent.id == _object_id("consent"), contact_clause(scope, Consent.value)
        ),
        "do_not_contact": exists().where(
            DoNotContact.id == _object_id("do_not_contact"),
            contact_clause(scope, DoNotContact.value),
        ),
    }
    return or_(*(and_(AuditLog.entity == entity, clause) for entity, clause in placed.items()))


def search_audit(
    session: Session,
    scope: Scope,
    filters: AuditFilter = AuditFilter(),
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """A page of audit rows ``scope`` sees, newest first, keyed on the id (``before_id``:
    the previous page's ``next_before``)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(AuditLog).where(region_visibility(scope))
    if filters.actor:
        query = query.where(
            func.lower(AuditLog.actor).contains(filters.actor.strip().lower(), autoescape=True)
        )
    if filters.entity:
        query = query.where(AuditLog.entity == filters.entity)
    if filters.entity_id:
        query = query.where(AuditLog.entity_id == filters.entity_id.strip())
    if filters.since is not None:
        query = query.where(AuditLog.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditLog.at < filters.until)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    rows = list(session.scalars(query.order_by(AuditLog.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor=row.actor,
            entity=row.entity,
            entity_id=row.entity_id,
            action=row.action,
            reason=row.reason,
            changes=changed_fields(row.action, row.before, row.after),
        )
        for row in rows
    ]
    return AuditPage(entries, rows[-1].id if more and rows else None)
