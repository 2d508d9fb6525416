"""Outcomes of attempts: what a final provider status means, and what happens next.

A call or message ends in a terminal status of :mod:`telephony.status`; the campaign reads
it as an outcome (:data:`CALL_OUTCOMES`, :data:`SMS_OUTCOMES`: ``completed`` is
``answered``, ``no-answer`` is ``no_answer`` …; a call answered by a machine is ``machine``,
or ``machine_message`` when the policy leaves a message: retried by its own rule, the target
done once that rule is exhausted). :func:`after_outcome` then moves
the target on: done, a retry after the definition's delay, the SMS fallback of a
voice_then_sms campaign, or failed; :func:`finish_interaction` closes the contact log entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.attempts import VOICE_EXHAUSTED
from campaigns.definition import CampaignDefinition, RetryOutcome
from contactcenter.metrics import record_campaign_attempt
from crm_store.interactions import finish_interaction as finish_logged
from crm_store.interactions import start_interaction
from crm_store.models import CampaignTarget, ContactAttempt

CALL_OUTCOMES: dict[str, str] = {
    "completed": "answered",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
"""The outcome of a call by its terminal ``CallStatus`` (:mod:`telephony.status`; every
terminal status has one)."""
SMS_OUTCOMES: dict[str, str] = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "canceled",
}
"""The outcome of a campaign SMS by its terminal ``MessageStatus`` (``received`` is only
ever the status of an inbound message, so it has none)."""

UNCONFIRMED_SMS = "sent_unconfirmed"
"""The outcome of a campaign SMS the provider still reported ``sent`` a day later (no
delivery receipt ever came, :mod:`campaigns.settle`): its target is done, not texted again."""

SUCCESS_OUTCOMES = frozenset({"answered", "delivered"})
RETRY_KINDS: dict[str, RetryOutcome] = {
    "busy": RetryOutcome.BUSY,
    "no_answer": RetryOutcome.NO_ANSWER,
    "failed": RetryOutcome.FAILED,
    "canceled": RetryOutcome.FAILED,
    "machine": RetryOutcome.MACHINE,
    "machine_message": RetryOutcome.MACHINE_MESSAGE,
    "undelivered": RetryOutcome.FAILED,
}
"""Which retry rule of the definition an unsuccessful outcome follows."""


def after_outcome(
    session: Session,
    target: CampaignTarget,
    attempt: ContactAttempt,
    outcome: str,
    definition: CampaignDefinition,
    now: dt.datetime,
) -> None:
    """Move a target on after an attempt's final outcome (retry policy, SMS fallback)."""
    record_campaign_attempt(attempt.channel, outcome)
    target.last_outcome = outcome
    target.updated_at = now
    target.next_attempt_at = None
    if target.state in ("cancelled", "skipped", "done", "failed"):
        return
    if outcome in SUCCESS_OUTCOMES or outcome == UNCONFIRMED_SMS:
        target.state = "done"
        return
    retry_kind = RETRY_KINDS.get(outcome)
    if retry_kind is None:
        target.state = "failed"
        return
    if attempt.channel == "voice":
        rule = definition.retry.rule_for(retry_kind)
        placed = int(
            session.scalar(
                select(func.count())
                .select_from(ContactAttempt)
                .where(
                    ContactAttempt.target_id == target.id,
                    ContactAttempt.channel == "voice",
                    ContactAttempt.provider_sid.is_not(None),
                )
            )
            or 0
        )
        if placed < rule.max_attempts:
            target.state = "retry"
            target.next_attempt_at = now + rule.retry_after
            return
        if outcome == "machine_message":
            target.state = "done"  # retries exhausted, but the callback message was left
            return
        if definition.channel.value == "voice_then_sms":
            target.state = "pending"
            target.last_outcome = VOICE_EXHAUSTED
            target.next_attempt_at = now
            return
    target.state = "failed"


def finish_interaction(
    session: Session,
    attempt: ContactAttempt,
    status: str,
    outcome: str,
    now: dt.datetime,
    duration_s: int | None,
) -> None:
    """Close the attempt's ``Interaction`` (opened now if the SID came by a callback)."""
    if attempt.provider_sid is None:
        return
    target = session.get(CampaignTarget, attempt.target_id)
    interaction = start_interaction(
        session,
        channel=attempt.channel,
        direction="outbound",
        provider_sid=attempt.provider_sid,
        phone=target.phone if target is not None else None,
        account_id=target.account_id if target is not None else None,
        campaign_id=attempt.campaign_id,
        attempt_id=attempt.id,
        started_at=attempt.created_at,
        status="queued",
    )
    data: dict[str, Any] = {"campaign_outcome": outcome}
    if duration_s is not None:
        data["duration_s"] = duration_s
    if interaction.outcome is None:
        interaction.outcome = outcome
    finish_logged(session, interaction.id, status=status, ended_at=now, data=data)
