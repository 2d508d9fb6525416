"""Contact facts: what :func:`~campaigns.compliance.check_contact` needs, read from the CRM.

The compliance check itself is pure (:mod:`campaigns.compliance`); this module gathers its
inputs for one target at dial time: the do-not-contact list, the consents by purpose and
the earlier contacts that count toward the caps — logged interactions plus the open intents
of any campaign, so two campaigns cannot both take the last slot of a day.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from campaigns.compliance import Channel, ConsentState, ContactFacts
from crm_store.consent import consent_statuses, is_do_not_contact
from crm_store.errors import InvalidInput
from crm_store.models import CampaignTarget, ContactAttempt, Interaction

HISTORY_DAYS = 40
"""How far back contacts are read for the caps (a month and a week, with margin)."""


def contact_history(
    session: Session,
    *,
    phone: str,
    account_id: int,
    channel: Channel,
    now: dt.datetime,
) -> list[dt.datetime]:
    """UTC times of earlier contacts on ``channel``: logged interactions plus open intents."""
    since = now - dt.timedelta(days=HISTORY_DAYS)
    times = list(
        session.scalars(
            select(Interaction.started_at).where(
                Interaction.channel == channel.value,
                Interaction.direction == "outbound",
                Interaction.started_at >= since,
                or_(Interaction.phone == phone, Interaction.account_id == account_id),
            )
        )
    )
    open_intents = session.scalars(
        select(ContactAttempt.created_at)
        .join(CampaignTarget, CampaignTarget.id == ContactAttempt.target_id)
        .where(
            ContactAttempt.status == "intent",
            ContactAttempt.channel == channel.value,
            ContactAttempt.created_at >= since,
            CampaignTarget.phone == phone,
        )
    )
    times.extend(open_intents)
    return times


def contact_facts(
    session: Session, target: CampaignTarget, channel: Channel, now: dt.datetime
) -> ContactFacts:
    """Everything :func:`~campaigns.compliance.check_contact` needs, read from the CRM."""
    phone = target.phone
    if not phone:
        return ContactFacts(phone=None)
    try:
        dnc = is_do_not_contact(session, phone, channel.value)
    except InvalidInput:
        return ContactFacts(phone=phone)
    statuses = consent_statuses(session, [phone], now).get(phone, {})
    consents = ConsentState(
        granted=frozenset(p for p, st in statuses.items() if st == "granted"),
        withdrawn=frozenset(p for p, st in statuses.items() if st == "withdrawn"),
    )
    history = contact_history(
        session, phone=phone, account_id=target.account_id, channel=channel, now=now
    )
    return ContactFacts(
        phone=phone,
        account_timezone=target.timezone,
        do_not_contact=dnc,
        consents=consents,
        history=history,
    )
