"""What a call writes to the CRM as it goes: its ``Interaction`` and the IVR path.

:func:`start_interaction` creates the call's Interaction (or adopts the one an earlier status
callback made) inline in the first webhook. Each later step's writes — the steps entered,
the speech acted on, the account, the handoff or the end of the flow and the searchable
:func:`call_summary` — are not made in the webhook: :func:`step_record` turns them into a
record that :meth:`ivr.session.SessionStore.commit` queues in Redis in the same script that
commits the step, so a step and its record exist together or not at all, and an app killed
after answering loses nothing. :func:`flush_call_records` writes a call's queued records in
one transaction (idempotent: ``data["crm_version"]`` names the last one written) and drops
them; it runs before the call's status callback is stored (so an ended call's summary sees
its whole path), before a handoff's context is read, right after a handoff step, and every
half second for calls with records older than a second, in the worker's
:func:`sweep_records` thread. A database outage leaves the records queued (7 days at most).
:func:`attempt_variables` gives an answered campaign call the flow's parameters.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from contactcenter.redis_lock import RedisLock
from contactcenter.services import Services
from crm_store import interactions
from crm_store.errors import NotFound
from crm_store.models import Account, CampaignTarget, ContactAttempt, Interaction, InteractionStep
from ivr.errors import WebhookError
from ivr.events import Handoff, Outcome
from ivr.session import CallSession, SessionStore
from telephony.status import TERMINAL_CALL_STATUSES

log = logging.getLogger(__name__)


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


def step_record(
    session: CallSession, outcome: Outcome, *, version: int, at: datetime
) -> str | None:
    """What a step writes to the CRM (JSON for :meth:`SessionStore.commit`, None when
    nothing): the steps entered, the speech acted on (``Transcript`` rows), the account, the
    handoff or the end of the flow, and what the summary needs. Numbers the steps (advances
    ``session.step_seq``); ``version`` is the session version the step commits."""
    if session.interaction_id is None or not (outcome.steps or outcome.heard):
        return None
    steps = []
    for item in outcome.steps:
        session.step_seq += 1
        steps.append(
            [
                session.step_seq,
                item.step[:128],
                item.event[:64],
                item.input[:500] if item.input else None,
                item.outcome[:64] if item.outcome else None,
            ]
        )
    heard = [
        [
            h.step[:128],
            h.text,
            min(max(h.confidence, 0.0), 1.0) if h.confidence is not None else None,
            h.audio_ref[:500] if h.audio_ref else None,
            h.decision[:64] if h.decision else None,
        ]
        for h in outcome.heard
    ]
    handoffs = [e for e in outcome.effects if isinstance(e, Handoff)]
    account = session.variables.get("account_number")
    return json.dumps(
        {
            "v": version,
            "interaction": session.interaction_id,
            "at": at.isoformat(),
            "steps": steps,
            "heard": heard,
            "account": str(account) if account else None,
            "handoff": (
                {"kind": handoffs[-1].kind, "context": dict(handoffs[-1].context)}
                if handoffs
                else None
            ),
            "ended": session.ended,
            "direction": session.direction,
            "flow": session.flow,
            # One more than a summary names, so it still knows to elide the beginning.
            "visited": session.visited[-(SUMMARY_PATH_STEPS + 1) :],
        },
        ensure_ascii=False,
        default=str,
    )


def apply_call_records(
    s: Session,
    interaction_id: int,
    records: Sequence[dict[str, Any]],
    interaction: Interaction | None = None,
) -> int:
    """Write a call's queued step records (oldest first) to its Interaction in ``s``: the
    steps in one statement, the transcripts, the account link, the handoff or the end of the
    flow and the summary. Records at or below ``data["crm_version"]`` were written before
    (a flush that died before dropping them) and are skipped. ``interaction``: the row,
    already read (and locked) in ``s``. The Interaction's UPDATE is left to the session's
    next flush. Returns how many were new."""
    if interaction is None or interaction.id != interaction_id:
        stmt = select(Interaction).where(Interaction.id == interaction_id)
        if s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        interaction = s.scalars(stmt).one_or_none()
    if interaction is None:
        log.error("step records of interaction %s dropped: it does not exist", interaction_id)
        return 0
    data = dict(interaction.data or {})
    written = int(data.get("crm_version", 0))
    fresh = [r for r in records if int(r["v"]) > written]
    if not fresh:
        return 0
    interactions.append_steps(
        s,
        interaction_id,
        [
            interactions.NewStep(
                seq=seq, step=step, event=event, input=text, outcome=result, at=_at(r)
            )
            for r in fresh
            for seq, step, event, text, result in r["steps"]
        ],
    )
    for r in fresh:
        for step, text, confidence, audio_ref, decision in r["heard"]:
            interactions.add_transcript(
                s,
                interaction_id,
                step,
                text,
                confidence=confidence,
                audio_ref=audio_ref,
                decision=decision,
                at=_at(r),
            )
        account = r["account"]
        if account and interaction.account_id is None:
            found = _account(s, account)
            if found is not None:
                interaction.account_id = found.id
                interaction.consumer_id = interaction.consumer_id or found.consumer_id
        if r["handoff"]:
            interaction.outcome = f"transferred_{r['handoff']['kind']}"
            data["handoff"] = r["handoff"]["context"]
        elif r["ended"] and interaction.outcome is None:
            interaction.outcome = "completed_in_ivr"
    last = fresh[-1]
    data["crm_version"] = int(last["v"])
    interaction.data = data
    summary = call_summary(
        direction=last["direction"],
        flow=last["flow"],
        visited=last["visited"],
        outcome=interaction.outcome,
        account=_records_account(fresh),
    )
    if summary != interaction.summary:
        interactions.update_interaction(s, interaction_id, summary=summary, flush=False)
    return len(fresh)


def _records_account(records: Sequence[dict[str, Any]]) -> str | None:
    """The account number the newest of ``records`` that names one holds."""
    return next((r["account"] for r in reversed(records) if r["account"]), None)


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["at"])


#: How long a flush waits for another one of the same call to finish.
FLUSH_WAIT_S = 10.0
#: The lock of a call's flush expires after this (a flusher that died).
FLUSH_LOCK_MS = 30_000


@contextmanager
def queued_records(
    services: Services, call_sid: str, *, wait_s: float = FLUSH_WAIT_S
) -> Iterator[list[dict[str, Any]]]:
    """The call's queued step records (oldest first), to write with
    :func:`write_call_records` in a transaction opened inside this block; they are dropped
    from Redis when the block ends without an error (so after that transaction committed),
    kept when it raises. One holder per call at a time (a Redis lock); waits up to
    ``wait_s`` for another to finish, else yields nothing. With Redis unreachable it yields
    nothing (logged): the sweep writes them later."""
    store = SessionStore(services.redis)
    lock = RedisLock(services.redis, store.records_lock_key(call_sid), ttl_ms=FLUSH_LOCK_MS)
    try:
        raw = store.records(call_sid) if lock.acquire(wait_s=wait_s) else []
    except RedisError as exc:
        log.warning("queued steps of a call not read: %s", type(exc).__name__)
        raw = []
    try:
        yield [json.loads(item) for item in raw]
        if raw:
            store.drop_records(call_sid, len(raw))
    finally:
        with suppress(RedisError):
            lock.release()


def write_call_records(
    s: Session, records: Sequence[dict[str, Any]], interaction: Interaction | None = None
) -> int:
    """Write queued step records (of :func:`queued_records`) in ``s``; how many were new.
    ``interaction``: the call's row when the caller has it already."""
    by_interaction: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_interaction.setdefault(int(record["interaction"]), []).append(record)
    return sum(apply_call_records(s, i, rs, interaction) for i, rs in by_interaction.items())


def flush_call_records(services: Services, call_sid: str, *, wait_s: float = FLUSH_WAIT_S) -> int:
    """Write the call's queued step records to the CRM in one transaction, then drop them
    from Redis (see :mod:`ivr.crm` and :func:`queued_records`). A database error propagates
    and the records stay queued. Returns how many records were written."""
    with queued_records(services, call_sid, wait_s=wait_s) as records:
        if not records:
            return 0
        with services.db.transaction() as s:
            return write_call_records(s, records)


def flush_pending_records(services: Services, *, older_than_s: float = 1.0) -> int:
    """Flush every call whose oldest queued step record is older than ``older_than_s`` (the
    worker's sweep: calls still going, calls whose final status callback never came). A
    call another flush holds is skipped; a database error stops the sweep (the records stay
    queued for the next). Returns how many records were written."""
    store = SessionStore(services.redis)
    written = 0
    for call_sid in store.calls_with_records(older_than_s=older_than_s):
        written += flush_call_records(services, call_sid, wait_s=0)
    return written


#: How often the worker's sweep looks for queued step records, and how old they must be.
SWEEP_INTERVAL_S = 0.5
SWEEP_AGE_S = 1.0


def sweep_records(services: Services, stop: threading.Event) -> None:
    """Flush queued step records until ``stop`` is set (a worker's background thread): a
    live call's path reaches the CRM about a second after its step. Errors are logged and
    the sweep goes on; the records wait in Redis meanwhile."""
    while not stop.wait(SWEEP_INTERVAL_S):
        try:
            flush_pending_records(services, older_than_s=SWEEP_AGE_S)
        except (SQLAlchemyError, RedisError) as exc:
            log.warning("step records not written yet: %s", type(exc).__name__)
        except Exception:
            log.exception("the step records sweep failed")


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


def close_call_summary(
    s: Session, interaction: Interaction, records: Sequence[dict[str, Any]] = ()
) -> None:
    """Finish the CRM record of a call whose terminal status just arrived: a call that
    ended without an outcome gets one (``hung_up_in_ivr`` when it was answered, else the
    terminal status: ``busy``, ``no-answer`` …) and the summary is recomputed from the
    path, so a search by outcome finds abandoned calls too. ``records``: the call's step
    records written in this transaction; the path's end and the account come from the
    newest of them, else they are read."""
    if interaction.channel != "voice":
        return
    visited = records[-1]["visited"] if records else _stored_path(s, interaction.id)
    account = _records_account(records)
    if interaction.outcome is None:
        answered = bool(visited) or interaction.status == "completed"
        interaction.outcome = HUNG_UP_IN_IVR if answered else interaction.status
    if account is None and interaction.account_id:
        row = s.get(Account, interaction.account_id)
        account = row.number if row is not None else None
    summary = call_summary(
        direction=interaction.direction,
        flow="",
        visited=visited,
        outcome=interaction.outcome,
        account=account,
    )
    if summary != interaction.summary:
        interactions.update_interaction(s, interaction.id, summary=summary, flush=False)


def _stored_path(s: Session, interaction_id: int) -> list[str]:
    """The steps a call entered, in order, as stored by :func:`apply_call_records`."""
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
    flush_call_records(services, call_sid)
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
