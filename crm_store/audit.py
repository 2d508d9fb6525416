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
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, event, insert, inspect
from sqlalchemy.orm import InstanceState, Mapper, Session, object_session

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
