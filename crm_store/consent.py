"""Consent per contact point and purpose, and the do-not-contact (opt-out) list.

Consent history is append-only: granting adds a record, withdrawing stamps
``withdrawn_at`` on the record in force (or, when there is none, adds an explicit refusal
with ``granted = False``), so "was consent in force at time t" can always be answered.

The status of ``(value, purpose)`` at ``t`` comes from the latest record given at or
before ``t``: ``granted`` while it is a grant not yet withdrawn at ``t``; ``withdrawn`` for
a withdrawn grant or a refusal; ``none`` when there is no record. Service and debt notices
rest on the contract and need no grant (domain.md §1.5) — that policy lives in
``campaigns``; this module only reports the facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.db import insert_or_existing
from crm_store.errors import InvalidInput
from crm_store.models import (
    CONSENT_PURPOSES,
    CONTACT_KINDS,
    DNC_CHANNELS,
    DNC_REASONS,
    Consent,
    DoNotContact,
    utcnow,
)

ConsentStatus = Literal["granted", "withdrawn", "none"]
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_contact(contact: str, value: str) -> str:
    """``value`` in stored form: E.164 for phones, lower case for e-mail addresses."""
    if contact not in CONTACT_KINDS:
        raise InvalidInput(f"unknown contact kind {contact!r}")
    if contact == "phone":
        try:
            return normalize_phone(value, require_russian=False)
        except InvalidPhoneError as exc:
            raise InvalidInput(f"некорректный номер телефона: {exc}") from None
    email = (value or "").strip().lower()
    if not _EMAIL.fullmatch(email):
        raise InvalidInput(f"некорректный адрес электронной почты: {value!r}")
    return email


def contact_kind(value: str) -> str:
    """``email`` for a value with an ``@``, else ``phone``."""
    return "email" if "@" in value else "phone"


def _check_purpose(purpose: str) -> None:
    if purpose not in CONSENT_PURPOSES:
        raise InvalidInput(f"unknown consent purpose {purpose!r}")


def _aware(at: datetime | None) -> datetime:
    moment = at or utcnow()
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("time must be tz-aware")
    return moment


def _latest(session: Session, value: str, purpose: str, at: datetime) -> Consent | None:
    return session.scalars(
        select(Consent)
        .where(Consent.value == value, Consent.purpose == purpose, Consent.given_at <= at)
        .order_by(Consent.given_at.desc(), Consent.id.desc())
        .limit(1)
    ).first()


def _status(record: Consent | None, at: datetime) -> ConsentStatus:
    if record is None:
        return "none"
    if not record.granted:
        return "withdrawn"
    if record.withdrawn_at is not None and record.withdrawn_at <= at:
        return "withdrawn"
    return "granted"


def consent_status(
    session: Session, value: str, purpose: str, at: datetime | None = None
) -> ConsentStatus:
    """``granted``, ``withdrawn`` or ``none`` for a phone (any notation) or e-mail at ``at``."""
    _check_purpose(purpose)
    moment = _aware(at)
    stored = normalize_contact(contact_kind(value), value)
    return _status(_latest(session, stored, purpose, moment), moment)


def consent_in_force(
    session: Session, value: str, purpose: str, at: datetime | None = None
) -> bool:
    """True when a granted, not withdrawn consent for ``purpose`` covers ``at``."""
    return consent_status(session, value, purpose, at) == "granted"


def consent_statuses(
    session: Session, values: Iterable[str], at: datetime | None = None
) -> dict[str, dict[str, ConsentStatus]]:
    """Bulk form for audiences: ``{stored value: {purpose: status}}`` for known records.

    ``values`` must already be in stored form (E.164 / lower-case e-mail); purposes with no
    record are absent from the inner dict (status ``none``).
    """
    moment = _aware(at)
    wanted = sorted(set(values))
    result: dict[str, dict[str, ConsentStatus]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.scalars(
            select(Consent)
            .where(Consent.value.in_(chunk), Consent.given_at <= moment)
            .order_by(Consent.value, Consent.purpose, Consent.given_at, Consent.id)
        )
        latest: dict[tuple[str, str], Consent] = {}
        for row in rows:
            latest[(row.value, row.purpose)] = row  # ordered, so the last one wins
        for (value, purpose), row in latest.items():
            result.setdefault(value, {})[purpose] = _status(row, moment)
    return result


def grant_consent(
    session: Session,
    *,
    contact: str,
    value: str,
    purpose: str,
    source: str,
    at: datetime | None = None,
) -> Consent:
    """Record a consent given at ``at`` (default now); a consent already in force is kept."""
    _check_purpose(purpose)
    moment = _aware(at)
    stored = normalize_contact(contact, value)
    current = _latest(session, stored, purpose, moment)
    if _status(current, moment) == "granted" and current is not None:
        return current
    record = Consent(
        contact=contact, value=stored, purpose=purpose, granted=True, source=source, given_at=moment
    )
    session.add(record)
    session.flush()
    return record


def withdraw_consent(
    session: Session,
    *,
    contact: str,
    value: str,
    purpose: str,
    source: str,
    at: datetime | None = None,
) -> Consent:
    """Withdraw consent for ``purpose`` from ``at`` (default now).

    Stamps the grant in force, or records an explicit refusal when nothing was in force
    (so an opt-out such as "no robot calls" is remembered). Idempotent.
    """
    _check_purpose(purpose)
    moment = _aware(at)
    stored = normalize_contact(contact, value)
    current = _latest(session, stored, purpose, moment)
    if current is not None and _status(current, moment) == "granted":
        current.withdrawn_at = moment
        session.flush()
        return current
    if current is not None and not current.granted:
        return current
    record = Consent(
        contact=contact,
        value=stored,
        purpose=purpose,
        granted=False,
        source=source,
        given_at=moment,
        withdrawn_at=moment,
    )
    session.add(record)
    session.flush()
    return record


# ---------------------------------------------------------------------------- opt-outs
def dnc_phone(value: str) -> str:
    """``value`` as the do-not-contact list stores it (E.164); :class:`InvalidInput` if bad."""
    try:
        return normalize_phone(value, require_russian=False)
    except InvalidPhoneError as exc:
        raise InvalidInput(f"некорректный номер телефона: {exc}") from None


def add_do_not_contact(
    session: Session,
    value: str,
    *,
    channel: str = "any",
    reason: str,
    created_by: str = "system",
    campaign_id: int | None = None,
) -> DoNotContact:
    """Put a phone on the do-not-contact list for ``channel`` (idempotent)."""
    if channel not in DNC_CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}")
    if reason not in DNC_REASONS:
        raise InvalidInput(f"unknown opt-out reason {reason!r}")
    phone = dnc_phone(value)
    stmt = select(DoNotContact).where(DoNotContact.value == phone, DoNotContact.channel == channel)
    existing = session.scalars(stmt).one_or_none()
    if existing is not None:
        return existing
    row = DoNotContact(
        value=phone,
        channel=channel,
        reason=reason,
        created_by=created_by,
        campaign_id=campaign_id,
    )
    stored, _inserted = insert_or_existing(session, row, lambda: session.scalars(stmt).one())
    return stored


def is_do_not_contact(session: Session, value: str, channel: str) -> bool:
    """True when the phone opted out of ``channel`` (``voice`` / ``sms``) or of any contact."""
    if channel not in DNC_CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}")
    phone = dnc_phone(value)
    found = session.scalar(
        select(DoNotContact.id)
        .where(DoNotContact.value == phone, DoNotContact.channel.in_({channel, "any"}))
        .limit(1)
    )
    return found is not None


def do_not_contact_values(session: Session, values: Iterable[str], channel: str) -> set[str]:
    """Bulk form: which of the E.164 ``values`` opted out of ``channel`` (or of any)."""
    if channel not in DNC_CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}")
    wanted = sorted(set(values))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(
            session.scalars(
                select(DoNotContact.value).where(
                    DoNotContact.value.in_(wanted[start : start + 500]),
                    DoNotContact.channel.in_({channel, "any"}),
                )
            )
        )
    return found


def remove_do_not_contact(session: Session, value: str, channel: str = "any") -> bool:
    """Take a phone off the list for ``channel``; True when an entry was removed."""
    phone = dnc_phone(value)
    row = session.scalars(
        select(DoNotContact).where(DoNotContact.value == phone, DoNotContact.channel == channel)
    ).one_or_none()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
