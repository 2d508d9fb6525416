"""The do-not-contact list and consents managed by people: list, add, remove, grant, withdraw.

What the CLI (``contactcenter dnc …``, ``contactcenter consent …``: :mod:`crm_store.cli_contacts`)
and the REST API (``/api/dnc``, ``/api/consents``: :mod:`web.api_contacts`) do, over the
repository of :mod:`crm_store.consent`. Every change names who made it (the *actor*, e.g.
``cli:anna``, ``api:boris``) and why (the *reason*, required, free text): both go to the audit
log with the row before and after (:mod:`crm_store.audit`), so "who took this number off the
list, when and why" is always answerable.

Entries are the facts campaigns read at dial time (:mod:`campaigns.facts`), so an entry added
here stops the next call or SMS to that number at once; a removed one allows it again.

Lists are pages, newest first, with keyset paging as :mod:`crm_store.interactions` pages: pass
a page's ``next_cursor`` (opaque) as ``cursor`` for the next one, so a page never skips or
repeats a row while rows are added.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from crm_store.access import Scope
from crm_store.audit import AUDITED, MAX_REASON_LENGTH
from crm_store.consent import (
    add_do_not_contact,
    consent_status,
    contact_kind,
    dnc_phone,
    grant_consent,
    normalize_contact,
    withdraw_consent,
)
from crm_store.errors import InvalidInput
from crm_store.models import (
    CONSENT_PURPOSES,
    DNC_CHANNELS,
    AuditLog,
    Consent,
    DoNotContact,
    utcnow,
)
from crm_store.visibility import contact_clause

__all__ = [
    "DEFAULT_PAGE",
    "MANUAL_DNC_SOURCE",
    "MAX_PAGE",
    "ConsentEntry",
    "ContactPage",
    "DncEntry",
    "add_dnc",
    "audited_change",
    "check_actor",
    "check_reason",
    "grant",
    "list_consents",
    "list_dnc",
    "remove_dnc",
    "withdraw",
]

DEFAULT_PAGE = 50
MAX_PAGE = 1000
#: The ``do_not_contact.reason`` code of entries people add (the free-text reason is audited).
MANUAL_DNC_SOURCE = "supervisor"
MAX_ACTOR_LENGTH = 128
_T = TypeVar("_T")


@dataclass(frozen=True)
class ContactPage(Generic[_T]):
    """One page of a list, newest first; ``next_cursor`` fetches the next (None: last page)."""

    items: list[_T]
    next_cursor: str | None


@dataclass(frozen=True)
class DncEntry:
    """A do-not-contact entry as people see it."""

    id: int
    phone: str
    channel: str
    source: str
    """How it came: ``supervisor`` (a person), ``sms_stop``, ``ivr_opt_out``,
    ``provider_opt_out``."""
    reason: str | None
    """Why, as the person who added it said (from the audit log); None for automatic ones."""
    created_by: str
    created_at: datetime
    campaign_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601)."""
        return {
            "id": self.id,
            "phone": self.phone,
            "channel": self.channel,
            "source": self.source,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "campaign_id": self.campaign_id,
        }


@dataclass(frozen=True)
class ConsentEntry:
    """One consent record (a grant, possibly withdrawn, or a refusal)."""

    id: int
    contact: str
    value: str
    purpose: str
    status: str
    """``granted`` (in force now) or ``withdrawn`` (withdrawn grant or explicit refusal)."""
    source: str
    given_at: datetime
    withdrawn_at: datetime | None
    reason: str | None
    """Why the record last changed, from the audit log (None when nobody said)."""
    changed_by: str | None
    """Who last changed it, from the audit log."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601)."""
        return {
            "id": self.id,
            "contact": self.contact,
            "value": self.value,
            "purpose": self.purpose,
            "status": self.status,
            "source": self.source,
            "given_at": self.given_at.isoformat(),
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
            "reason": self.reason,
            "changed_by": self.changed_by,
        }


# ---------------------------------------------------------------------------- checks


def check_reason(reason: str | None) -> str:
    """The reason stripped; :class:`InvalidInput` when it is empty or too long."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("укажите причину (reason): она записывается в журнал изменений")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(f"причина длиннее {MAX_REASON_LENGTH} символов")
    return text


def check_actor(actor: str | None) -> str:
    """The actor stripped; :class:`InvalidInput` when it is empty or too long."""
    text = (actor or "").strip()
    if not text:
        raise InvalidInput("не указано, кто вносит изменение")
    if len(text) > MAX_ACTOR_LENGTH:
        raise InvalidInput(f"имя того, кто вносит изменение, длиннее {MAX_ACTOR_LENGTH} символов")
    return text


def _check_channel(channel: str) -> str:
    if channel not in DNC_CHANNELS:
        raise InvalidInput(f"неизвестный канал {channel!r}; допустимы: {', '.join(DNC_CHANNELS)}")
    return channel


def _check_purpose(purpose: str) -> str:
    if purpose not in CONSENT_PURPOSES:
        raise InvalidInput(
            f"неизвестная цель согласия {purpose!r}; допустимы: {', '.join(CONSENT_PURPOSES)}"
        )
    return purpose


def _check_page(limit: int, cursor: str | None) -> int | None:
    """The id the page starts below (None: the first page)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit должен быть от 1 до {MAX_PAGE}")
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) < 1:
        raise InvalidInput("invalid page cursor")
    return int(cursor)


@contextmanager
def audited_change(session: Session, actor: str, reason: str) -> Iterator[None]:
    """Changes flushed by ``session`` inside the block are audited as ``actor`` with ``reason``
    (the block flushes before it ends, so nothing leaves it unattributed)."""
    saved = {key: session.info.get(key) for key in ("actor", "audit_reason")}
    session.info["actor"] = check_actor(actor)
    session.info["audit_reason"] = check_reason(reason)
    try:
        yield
        session.flush()
    finally:
        for key, value in saved.items():
            if value is None:
                session.info.pop(key, None)
            else:
                session.info[key] = value


def _page(
    session: Session, query: Select[Any], id_column: Any, limit: int
) -> tuple[list[Any], str | None]:
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


def _last_audit(
    session: Session, entity_class: type[Any], ids: Sequence[int], *, inserts_only: bool = False
) -> dict[int, AuditLog]:
    """The latest audit row of each of ``ids`` (of one audited entity)."""
    if not ids:
        return {}
    query = select(AuditLog).where(
        AuditLog.entity == AUDITED[entity_class],
        AuditLog.entity_id.in_([str(i) for i in ids]),
    )
    if inserts_only:
        query = query.where(AuditLog.action == "insert")
    latest: dict[int, AuditLog] = {}
    for row in session.scalars(query.order_by(AuditLog.id)):
        latest[int(row.entity_id)] = row  # ordered, so the last one wins
    return latest


# ---------------------------------------------------------------------------- do-not-contact


def _dnc_entries(session: Session, rows: Sequence[DoNotContact]) -> list[DncEntry]:
    audits = _last_audit(session, DoNotContact, [r.id for r in rows], inserts_only=True)
    return [
        DncEntry(
            id=r.id,
            phone=r.value,
            channel=r.channel,
            source=r.reason,
            reason=audits[r.id].reason if r.id in audits else None,
            created_by=r.created_by,
            created_at=r.created_at,
            campaign_id=r.campaign_id,
        )
        for r in rows
    ]


def list_dnc(
    session: Session,
    *,
    phone: str | None = None,
    channel: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    scope: Scope | None = None,
) -> ContactPage[DncEntry]:
    """Do-not-contact entries, newest first; ``phone`` in any notation; with ``scope``, only
    those it sees (:func:`crm_store.visibility.contact_clause`)."""
    before = _check_page(limit, cursor)
    query = select(DoNotContact)
    if scope is not None:
        query = query.where(contact_clause(scope, DoNotContact.value))
    if phone:
        query = query.where(DoNotContact.value == dnc_phone(phone))
    if channel:
        query = query.where(DoNotContact.channel == _check_channel(channel))
    if before is not None:
        query = query.where(DoNotContact.id < before)
    rows, next_cursor = _page(session, query, DoNotContact.id, limit)
    return ContactPage(_dnc_entries(session, rows), next_cursor)


def add_dnc(
    session: Session, phone: str, *, channel: str = "any", reason: str, actor: str
) -> tuple[DncEntry, bool]:
    """Put ``phone`` (any notation) on the list for ``channel``; ``(entry, True)`` when it was
    added, ``(existing entry, False)`` when it was there already (nothing changes then)."""
    _check_channel(channel)
    stored = dnc_phone(phone)
    with audited_change(session, actor, reason):
        existing = session.scalars(
            select(DoNotContact).where(
                DoNotContact.value == stored, DoNotContact.channel == channel
            )
        ).one_or_none()
        if existing is None:
            row = add_do_not_contact(
                session,
                stored,
                channel=channel,
                reason=MANUAL_DNC_SOURCE,
                created_by=check_actor(actor),
            )
            added = True
        else:
            row, added = existing, False
    return _dnc_entries(session, [row])[0], added


def remove_dnc(
    session: Session, phone: str, *, channel: str | None = None, reason: str, actor: str
) -> list[DncEntry]:
    """Take ``phone`` off the list for ``channel`` (None: every channel); the removed entries
    (empty when there was none)."""
    stored = dnc_phone(phone)
    query = select(DoNotContact).where(DoNotContact.value == stored)
    if channel is not None:
        query = query.where(DoNotContact.channel == _check_channel(channel))
    with audited_change(session, actor, reason):
        rows = list(session.scalars(query.order_by(DoNotContact.id)))
        removed = _dnc_entries(session, rows)
        for row in rows:
            session.delete(row)
    return removed


# ---------------------------------------------------------------------------- consents


def consent_entry(row: Consent, audit: AuditLog | None, now: datetime) -> ConsentEntry:
    """A consent record as shown and listed: in force or withdrawn at ``now``, with the
    reason and actor of its latest ``audit`` row."""
    in_force = row.granted and (row.withdrawn_at is None or row.withdrawn_at > now)
    return ConsentEntry(
        id=row.id,
        contact=row.contact,
        value=row.value,
        purpose=row.purpose,
        status="granted" if in_force else "withdrawn",
        source=row.source,
        given_at=row.given_at,
        withdrawn_at=row.withdrawn_at,
        reason=audit.reason if audit else None,
        changed_by=audit.actor if audit else None,
    )


def _consent_entries(
    session: Session, rows: Sequence[Consent], now: datetime
) -> list[ConsentEntry]:
    audits = _last_audit(session, Consent, [r.id for r in rows])
    return [consent_entry(r, audits.get(r.id), now) for r in rows]


def list_consents(
    session: Session,
    *,
    value: str | None = None,
    purpose: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    at: datetime | None = None,
    scope: Scope | None = None,
) -> ContactPage[ConsentEntry]:
    """Consent records (the history: grants, withdrawals, refusals), newest first; ``value`` is
    a phone in any notation or an e-mail address; ``status`` is as of ``at`` (default now);
    with ``scope``, only those it sees (:func:`crm_store.visibility.contact_clause`)."""
    before = _check_page(limit, cursor)
    query = select(Consent)
    if scope is not None:
        query = query.where(contact_clause(scope, Consent.value))
    if value:
        query = query.where(Consent.value == normalize_contact(contact_kind(value), value))
    if purpose:
        query = query.where(Consent.purpose == _check_purpose(purpose))
    if before is not None:
        query = query.where(Consent.id < before)
    rows, next_cursor = _page(session, query, Consent.id, limit)
    return ContactPage(_consent_entries(session, rows, at or utcnow()), next_cursor)


def _source(actor: str) -> str:
    return check_actor(actor)[:64]


def grant(
    session: Session,
    value: str,
    *,
    purpose: str,
    reason: str,
    actor: str,
    at: datetime | None = None,
) -> tuple[ConsentEntry, bool]:
    """Record a consent of ``value`` (phone or e-mail) for ``purpose`` from ``at`` (default
    now); ``(record, True)`` when it was recorded, ``(record in force, False)`` when one was in
    force already."""
    _check_purpose(purpose)
    contact = contact_kind(value)
    stored = normalize_contact(contact, value)
    now = at or utcnow()
    was = consent_status(session, stored, purpose, now)
    with audited_change(session, actor, reason):
        record = grant_consent(
            session, contact=contact, value=stored, purpose=purpose, source=_source(actor), at=now
        )
    return _consent_entries(session, [record], now)[0], was != "granted"


def withdraw(
    session: Session,
    value: str,
    *,
    purpose: str,
    reason: str,
    actor: str,
    at: datetime | None = None,
) -> tuple[ConsentEntry, bool]:
    """Withdraw the consent of ``value`` for ``purpose`` from ``at`` (default now; a refusal is
    recorded when none was in force); ``(record, False)`` when it was withdrawn already."""
    _check_purpose(purpose)
    contact = contact_kind(value)
    stored = normalize_contact(contact, value)
    now = at or utcnow()
    was = consent_status(session, stored, purpose, now)
    with audited_change(session, actor, reason):
        record = withdraw_consent(
            session, contact=contact, value=stored, purpose=purpose, source=_source(actor), at=now
        )
    return _consent_entries(session, [record], now)[0], was != "withdrawn"
