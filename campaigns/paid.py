"""Targets who paid: a debt notice re-reads the debt before every contact.

A payment (a registry import, the IVR, a bank callback) reaches the ledger at once; a
running debt campaign must not call or text the consumer about a debt they no longer owe.
So the debt is read from the ledger (:func:`crm_store.ledger.net_balances`, the same counting
as the hotline's balance) on the consumer's local date:

* by the dispatcher, for every due target of a tick in one batched query
  (:func:`paid_skips`), so paid targets are never even enqueued;
* by the dial and SMS jobs, for their one target, right before the compliance check
  (:func:`paid_skip`), since a payment can land between the tick and the job.

A target whose debt fell below the campaign's ``min_debt`` (or to zero without one) is
skipped for good with reason ``paid`` (:func:`~campaigns.compliance.debt_decision`), with a
``skipped`` attempt row like every final skip, so the report attributes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.attempts import idempotency_key
from campaigns.compliance import Channel, Skip, debt_decision
from campaigns.definition import CampaignDefinition
from crm_store.db import insert_or_existing
from crm_store.ledger import ZERO, net_balances
from crm_store.models import SUPPLIER_TIMEZONE, CampaignTarget, ContactAttempt


def checks_debt(definition: CampaignDefinition) -> bool:
    """True for campaigns whose contacts are about a debt (debt notices)."""
    return debt_decision(definition.purpose, Decimal(0), None) is not None


def local_date(target: CampaignTarget, now: dt.datetime) -> dt.date:
    """The target's calendar date now: its account's zone, else the supplier's clock."""
    return now.astimezone(ZoneInfo(target.timezone or SUPPLIER_TIMEZONE)).date()


def current_debts(
    session: Session, targets: Sequence[CampaignTarget], now: dt.datetime
) -> dict[int, Decimal]:
    """``{account id: debt now}`` (never negative) of the targets' accounts, batched."""
    nets = net_balances(session, {t.account_id: local_date(t, now) for t in targets})
    return {account_id: max(net, ZERO) for account_id, net in nets.items()}


def paid_skips(
    session: Session,
    targets: Sequence[CampaignTarget],
    definition: CampaignDefinition,
    now: dt.datetime,
) -> dict[int, Skip]:
    """``{target id: Skip(PAID)}`` for the targets that no longer owe enough."""
    if not targets or not checks_debt(definition):
        return {}
    debts = current_debts(session, targets, now)
    skips: dict[int, Skip] = {}
    for target in targets:
        decision = debt_decision(
            definition.purpose, debts[target.account_id], definition.audience.min_debt
        )
        if decision is not None:
            skips[target.id] = decision
    return skips


def paid_skip(
    session: Session, target: CampaignTarget, definition: CampaignDefinition, now: dt.datetime
) -> Skip | None:
    """``Skip(PAID)`` when this target no longer owes enough, else ``None``."""
    return paid_skips(session, [target], definition, now).get(target.id)


def skip_for_good(
    session: Session,
    target: CampaignTarget,
    channel: Channel,
    decision: Skip,
    now: dt.datetime,
) -> None:
    """Finish a target with ``decision``: a ``skipped`` attempt row and the target skipped.

    The attempt takes the target's next number; if a job wrote that attempt first, the
    target is left to it (exactly once: its job sees the target is no longer scheduled).
    """
    attempt_no = target.attempts + 1
    key = idempotency_key(target.campaign_id, target.id, attempt_no)
    _row, inserted = insert_or_existing(
        session,
        ContactAttempt(
            campaign_id=target.campaign_id,
            target_id=target.id,
            attempt_no=attempt_no,
            channel=channel.value,
            idempotency_key=key,
            status="skipped",
            outcome=decision.reason.value,
            created_at=now,
            updated_at=now,
        ),
        lambda: session.scalars(
            select(ContactAttempt).where(ContactAttempt.idempotency_key == key)
        ).one_or_none(),
    )
    if not inserted:
        return
    target.attempts = attempt_no
    target.state = "skipped"
    target.skip_reason = decision.reason.value
    target.next_attempt_at = None
    target.updated_at = now
