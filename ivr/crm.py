"""What a call writes to the CRM as it goes: its ``Interaction`` and the IVR path.

Cheap single inserts, inline in the webhook, one short transaction each:
:func:`start_interaction` (the call's Interaction, created or adopted from an earlier status
callback), :func:`record_steps` (the steps entered and the speech acted on, the account, the
outcome, the handoff context and the searchable :func:`call_summary`) and, for an
answered campaign call, :func:`attempt_variables` (the flow's parameters from the attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.services import Services
from crm_store import interactions
from crm_store.errors import NotFound
from crm_store.models import Account, CampaignTarget, ContactAttempt, Interaction, InteractionStep
from ivr.errors import WebhookError
from ivr.events import Handoff, Outcome
from ivr.session import CallSession
from telephony.status import TERMINAL_CALL_STATUSES


def start_interaction(
    services: Services,
    *,
    call_sid: str,
    phone: str | None,
    direction: str,
    campaign_id: int | None = None,
    attempt_id: int | None = None,
) -> int:
    """The ``Interaction`` of a call (created, or the one a status callback made first)."""
    with services.db.transaction() as s:
        interaction = interactions.start_interaction(
            s,
            channel="voice",
            direction=direction,
            provider_sid=call_sid,
            phone=phone,
            campaign_id=campaign_id,
            attempt_id=attempt_id,
            status="in-progress",
        )
        if interaction.status not in TERMINAL_CALL_STATUSES:
            interaction.status = "in-progress"
        s.flush()
        return int(interaction.id)


def record_steps(services: Services, session: CallSession, outcome: Outcome) -> None:
    """Append the outcome's IVR path (and the speech it acted on, as ``Transcript`` rows) to
    the call's Interaction, in one short transaction."""
    if session.interaction_id is None or not (outcome.steps or outcome.heard):
        return
    account = session.variables.get("account_number")
    handoffs = [e for e in outcome.effects if isinstance(e, Handoff)]
    with services.db.transaction() as s:
        new_steps: list[interactions.NewStep] = []
        for record in outcome.steps:
            session.step_seq += 1
            new_steps.append(
                interactions.NewStep(
                    seq=session.step_seq,
                    step=record.step[:128],
                    event=record.event[:64],
                    input=record.input[:500] if record.input else None,
                    outcome=record.outcome[:64] if record.outcome else None,
                )
            )
        interactions.append_steps(s, session.interaction_id, new_steps)
        for heard in outcome.heard:
            confidence = heard.confidence
            interactions.add_transcript(
                s,
                session.interaction_id,
                heard.step[:128],
                heard.text,
                confidence=min(max(confidence, 0.0), 1.0) if confidence is not None else None,
                audio_ref=heard.audio_ref[:500] if heard.audio_ref else None,
                decision=heard.decision[:64] if heard.decision else None,
            )
        interaction = interactions.get_interaction(s, session.interaction_id)
        if account and interaction.account_id is None:
            found = _account(s, str(account))
            if found is not None:
                interaction.account_id = found.id
                interaction.consumer_id = interaction.consumer_id or found.consumer_id
        if handoffs:
            handoff = handoffs[-1]
            interaction.outcome = f"transferred_{handoff.kind}"
            interaction.data = {**(interaction.data or {}), "handoff": dict(handoff.context)}
        elif session.ended and interaction.outcome is None:
            interaction.outcome = "completed_in_ivr"
        summary = call_summary(
            direction=session.direction,
            flow=session.flow,
            visited=session.visited,
            outcome=interaction.outcome,
            account=account,
        )
        if summary != interaction.summary:
            interactions.update_interaction(s, session.interaction_id, summary=summary)


#: Steps of the path a summary names (the last ones; earlier ones are elided).
SUMMARY_PATH_STEPS = 40

#: The outcome of a call that ended (the caller hung up) before the flow ended or handed off.
HUNG_UP_IN_IVR = "hung_up_in_ivr"

_OUTCOME_LABELS = {
    "transferred_queue": "передан оператору",
    "transferred_number": "переадресован на внешний номер",
    "completed_in_ivr": "завершён в голосовом меню",
    HUNG_UP_IN_IVR: "абонент положил трубку в голосовом меню",
    "busy": "занято",
    "no-answer": "нет ответа",
    "failed": "вызов не состоялся",
    "canceled": "вызов отменён",
}
_DIRECTION_LABELS = {"inbound": "входящий", "outbound": "исходящий"}


def call_summary(
    *,
    direction: str,
    flow: str,
    visited: Sequence[str],
    outcome: str | None,
    account: object,
) -> str:
    """The searchable summary of a call (Russian, for the CRM): direction and flow, the
    account, the outcome and the IVR path so far (``visited``: ``flow:step`` names)."""
    label = _DIRECTION_LABELS.get(direction, direction)
    flow = visited[0].split(":", 1)[0] if visited else flow
    parts = [f"Звонок {label}, сценарий {flow}." if flow else f"Звонок {label}."]
    parts.append(f"Лицевой счёт {account}." if account else "Лицевой счёт не определён.")
    if outcome:
        parts.append(f"Итог: {_OUTCOME_LABELS.get(outcome, outcome)} ({outcome}).")
    else:
        parts.append("Итог: звонок в голосовом меню.")
    path = list(visited[-SUMMARY_PATH_STEPS:])
    elided = "… → " if len(visited) > len(path) else ""
    if path:
        parts.append(f"Путь: {elided}{' → '.join(path)}.")
    return " ".join(parts)


def close_call_summary(s: Session, interaction: Interaction) -> None:
    """Finish the CRM record of a call whose terminal status just arrived: a call that
    ended without an outcome gets one (``hung_up_in_ivr`` when it was answered, else the
    terminal status: ``busy``, ``no-answer`` …) and the summary is recomputed from the
    stored path, so a search by outcome finds abandoned calls too."""
    if interaction.channel != "voice":
        return
    if interaction.outcome is None:
        visited = _stored_path(s, interaction.id)
        answered = bool(visited) or interaction.status == "completed"
        interaction.outcome = HUNG_UP_IN_IVR if answered else interaction.status
    else:
        visited = _stored_path(s, interaction.id)
    account = s.get(Account, interaction.account_id) if interaction.account_id else None
    summary = call_summary(
        direction=interaction.direction,
        flow="",
        visited=visited,
        outcome=interaction.outcome,
        account=account.number if account is not None else None,
    )
    if summary != interaction.summary:
        interactions.update_interaction(s, interaction.id, summary=summary)


def _stored_path(s: Session, interaction_id: int) -> list[str]:
    """The steps a call entered, in order, as stored by :func:`record_steps`."""
    return list(
        s.scalars(
            select(InteractionStep.step)
            .where(InteractionStep.interaction_id == interaction_id)
            .where(InteractionStep.event == "enter")
            .order_by(InteractionStep.seq)
        )
    )


def handoff_context(services: Services, call_sid: str) -> dict[str, Any] | None:
    """The context the call ``call_sid`` was handed to people with (``data.handoff`` of its
    Interaction), None when the call is unknown or was not transferred."""
    with services.db.transaction() as s:
        try:
            interaction = interactions.get_interaction(s, call_sid)
        except NotFound:
            return None
        context = (interaction.data or {}).get("handoff")
        return dict(context) if isinstance(context, dict) else None


def _account(s: Session, number: str) -> Account | None:
    return s.scalars(select(Account).where(Account.number == number)).one_or_none()


def attempt_variables(services: Services, attempt_id: int) -> tuple[dict[str, Any], int]:
    """Flow parameters of a campaign attempt (account number, holder) and its campaign id."""
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        if attempt is None:
            raise WebhookError(f"no contact attempt {attempt_id}")
        target = s.get(CampaignTarget, attempt.target_id)
        account = s.get(Account, target.account_id) if target is not None else None
        if account is None:
            raise WebhookError(f"contact attempt {attempt_id} has no account")
        variables = {
            "account_number": account.number,
            "holder_name": account.consumer.full_name,
        }
        return variables, int(attempt.campaign_id)
