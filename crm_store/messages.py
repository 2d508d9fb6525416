"""SMS in the contact log: inbound messages and delivery statuses of outbound ones.

Twilio's ``MessageStatus`` callbacks arrive unordered and sometimes twice; the status of
an outbound SMS only moves forward (``queued`` → ``sending`` → ``sent`` → a terminal
state) and a terminal state is never overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.accounts import accounts_for_phone
from crm_store.interactions import finish_interaction, start_interaction
from crm_store.models import Interaction
from telephony.status import TERMINAL_MESSAGE_STATUSES, message_status, message_status_supersedes

#: Twilio's maximum body of one (concatenated) SMS, in characters: stored whole.
MAX_SMS_BODY = 1600


def sender_phone(sender: str) -> str | None:
    """The E.164 number of an SMS sender, or None for an alphanumeric or otherwise non-phone one.

    Senders such as ``ЭнергоСбыт`` (alphanumeric sender IDs) or ``anonymous`` are not phones.
    """
    try:
        return normalize_phone(sender, require_russian=False)
    except InvalidPhoneError:
        return None


def apply_message_status(
    session: Session,
    sid: str,
    status: str,
    *,
    error_code: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Record a delivery status of the outbound SMS ``sid``; False when it is not ours.

    Idempotent and order-safe (the order of :mod:`telephony.status`): a lower-ranked status
    after a higher one, or anything after a terminal state, changes nothing. A status
    outside the vocabulary raises :class:`~telephony.errors.InvalidStatusCallback` (a
    ``ValueError``).
    """
    status = message_status(status)
    row = session.scalars(
        select(Interaction).where(Interaction.provider_sid == sid).with_for_update()
    ).one_or_none()
    if row is None or row.channel != "sms":
        return False
    if not message_status_supersedes(status, row.status):
        return True
    row.status = status
    data: dict[str, Any] = dict(row.data or {})
    history = list(data.get("status_history", []))
    stamp = (at or datetime.now(UTC)).isoformat()
    history.append({"status": status, "at": stamp, "error_code": error_code})
    data["status_history"] = history
    if error_code:
        data["error_code"] = error_code
    row.data = data
    if status in TERMINAL_MESSAGE_STATUSES:
        row.outcome = status
        row.ended_at = at or datetime.now(UTC)
    return True


def record_inbound_sms(
    session: Session,
    *,
    sid: str,
    phone: str,
    body: str,
    keyword_action: str | None,
    at: datetime | None = None,
) -> Interaction:
    """Log an inbound SMS (idempotent by MessageSid), linked to the sender's account.

    When the phone is linked to exactly one account the interaction carries it; the
    text goes to the summary (whole, up to :data:`MAX_SMS_BODY` characters) so the contact
    history search finds it. A sender that is not a phone number (an alphanumeric sender ID
    such as ``ЭнергоСбыт``) is kept as given in ``data["sender"]``, with no phone.
    """
    existing = session.scalars(
        select(Interaction).where(Interaction.provider_sid == sid)
    ).one_or_none()
    if existing is not None:
        return existing
    e164 = sender_phone(phone)
    accounts = accounts_for_phone(session, e164) if e164 is not None else []
    account = accounts[0] if len(accounts) == 1 else None
    data: dict[str, Any] = {}
    if keyword_action:
        data["keyword_action"] = keyword_action
    if e164 is None:
        data["sender"] = phone
    row = start_interaction(
        session,
        channel="sms",
        direction="inbound",
        provider_sid=sid,
        phone=e164,
        account_id=account.id if account is not None else None,
        consumer_id=account.consumer_id if account is not None else None,
        started_at=at,
        status="received",
        data=data or None,
    )
    return finish_interaction(
        session,
        row.id,
        status="received",
        outcome=keyword_action or "received",
        ended_at=row.started_at,
        summary=body[:MAX_SMS_BODY],
    )
