"""The one path of every status callback: call status, asynchronous AMD and SMS status.

The web layer checks a callback with :func:`telephony.status.parse_status_callback` (an
unknown status is refused there, nothing stored) and hands the
:class:`~telephony.status.StatusCallback` to :func:`handle_status`, which first publishes it
to ``services.status_hooks`` (the campaigns package subscribes there: its hook returns True
only for a callback of one of its attempts), then:

- a call status is stored on the call's ``Interaction``, idempotent and ordered (the status
  vocabulary and its order are :mod:`telephony.status`'s), and an ended call's session
  expires soon; a call that ended without an outcome (the caller hung up in the menu)
  gets one, and its searchable summary is recomputed (:func:`ivr.crm.close_call_summary`);
- an AMD result is only expected for campaign calls: without a subscriber it is refused;
- an SMS status nobody's hook handled is applied to the IVR's own outbound ``Interaction``.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from sqlalchemy import select

from contactcenter.metrics import record_call_ended
from contactcenter.services import Services
from crm_store.messages import apply_message_status
from crm_store.models import Interaction
from ivr.crm import (
    close_call_summary,
    flush_call_records,
    queued_records,
    write_call_records,
)
from ivr.errors import WebhookError
from ivr.session import SessionStore
from ivr.voice import caller_e164
from telephony.status import (
    TERMINAL_CALL_STATUSES,
    StatusCallback,
    StatusKind,
    call_status_supersedes,
)

log = logging.getLogger(__name__)


def handle_status(services: Services, callback: StatusCallback) -> None:
    """Handle one checked status callback (see the module docstring)."""
    if callback.kind is StatusKind.SMS:
        if not services.status_hooks.publish(services, callback):
            with services.db.transaction() as s:
                apply_message_status(
                    s,
                    callback.sid,
                    callback.status,
                    error_code=callback.params.get("ErrorCode") or None,
                )
        return
    if callback.kind is StatusKind.AMD:
        if not services.status_hooks.subscribers(StatusKind.AMD):
            raise WebhookError("AMD results are only expected for campaign calls")
        services.status_hooks.publish(services, callback)
        return
    if callback.params.get("Direction", "").startswith("outbound"):
        # A campaign call's subscribers close its Interaction (an outcome when it has none):
        # the IVR's queued steps (a handoff, the end of the flow) are written before them.
        flush_call_records(services, callback.sid)
    services.status_hooks.publish(services, callback)
    store_call_status(services, callback)


def store_call_status(services: Services, callback: StatusCallback) -> None:
    """Store a call status callback: idempotent, ordered, a terminal status never overwritten.

    The event is appended to ``Interaction.data["status_events"]`` (deduplicated by status
    and sequence number). The Interaction's ``status`` only moves forward
    (:func:`telephony.status.call_status_supersedes`: queued → initiated → ringing →
    in-progress → a terminal status) and a callback older than the last applied one
    (``SequenceNumber``) does not move it back; ``ended_at`` and ``data["duration_s"]`` come
    with the terminal status, and the ended call's session expires soon.
    """
    call_sid, status, params = callback.sid, callback.status, callback.params
    seq = callback.sequence
    at = callback.timestamp or services.clock()
    # The steps queued in Redis are written first, in the same transaction: the summary of an
    # ended call is made from them (with Redis down there are none; the sweep writes them).
    with queued_records(services, call_sid) as records, services.db.transaction() as s:
        stmt = select(Interaction).where(Interaction.provider_sid == call_sid)
        if s.bind is not None and s.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        interaction = s.scalars(stmt).one_or_none()
        if interaction is None:
            direction = params.get("Direction", "inbound")
            interaction = Interaction(
                provider_sid=call_sid,
                channel="voice",
                direction="outbound" if direction.startswith("outbound") else "inbound",
                phone=caller_e164(
                    params.get("From") if direction == "inbound" else params.get("To")
                ),
                status="started",
                data={},
            )
            s.add(interaction)
            s.flush()
        write_call_records(s, records, interaction)
        data = dict(interaction.data or {})
        events = list(data.get("status_events", []))
        key = {"status": status, "seq": seq}
        if any(e.get("status") == status and e.get("seq") == seq for e in events):
            return
        events.append({**key, "at": at.isoformat()})
        data["status_events"] = events
        last_seq = data.get("status_seq")
        current = interaction.status
        if current in TERMINAL_CALL_STATUSES:
            pass  # a terminal status is final
        elif status in TERMINAL_CALL_STATUSES:
            interaction.status = status
            interaction.ended_at = at
            duration = callback.int_param("CallDuration")
            if duration is not None:
                data["duration_s"] = duration
            close_call_summary(s, interaction, records)
            record_call_ended(interaction.direction, interaction.outcome)
        elif (seq is None or last_seq is None or seq >= last_seq) and call_status_supersedes(
            status, current
        ):
            interaction.status = status
        if seq is not None:
            data["status_seq"] = max(seq, last_seq if isinstance(last_seq, int) else seq)
        interaction.data = data
    if status in TERMINAL_CALL_STATUSES:
        _forget_session(services, call_sid)


def _forget_session(services: Services, call_sid: str) -> None:
    """Shorten the TTL of an ended call's session; Redis trouble here is only logged."""
    try:
        SessionStore(services.redis).expire_soon(call_sid)
    except RedisError as exc:
        log.warning("call %s ended; could not expire its session: %s", call_sid, exc)
