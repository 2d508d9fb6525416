"""The IVR's text messages: enqueued on RQ by the webhook, sent by a job, never inline.

:func:`run_effects` enqueues the engine's :class:`~ivr.events.SendSms` effects on the
:data:`IVR_QUEUE` (one unique job per call, session version and effect, so a retried
webhook does not send twice); :func:`send_sms_job` sends one through the provider and logs
it as an outbound ``Interaction``.
"""

from __future__ import annotations

import logging

from rq import Queue

from contactcenter.logs import bind_log_context
from contactcenter.phones import mask_phone
from contactcenter.services import Services, current_services
from crm_store.models import Interaction
from ivr.events import Outcome, SendSms
from ivr.session import CallSession

log = logging.getLogger(__name__)

#: RQ queue the IVR's slow work (SMS) goes to; the worker must listen to it.
IVR_QUEUE = "ivr"


def run_effects(services: Services, session: CallSession, outcome: Outcome) -> None:
    """Enqueue the slow work the engine asked for (SMS) on RQ."""
    sms = [e for e in outcome.effects if isinstance(e, SendSms)]
    if not sms:
        return
    queue = Queue(IVR_QUEUE, connection=services.redis)
    for index, effect in enumerate(sms):
        job_id = f"ivr-sms-{session.call_sid}-{session.version}-{index}"
        queue.enqueue(
            send_sms_job,
            effect.to,
            effect.body,
            session.interaction_id,
            job_id=job_id,
            unique=True,
            description=f"IVR SMS for call {session.call_sid}",
        )
        log.info("call %s: SMS to %s queued (%s)", session.call_sid, mask_phone(effect.to), job_id)


def send_sms_job(to: str, body: str, interaction_id: int | None) -> str:
    """RQ job: send one SMS through the configured provider; returns the MessageSid.

    The SMS is logged as an outbound ``Interaction`` (channel ``sms``) linked, via its
    ``data``, to the call that asked for it.
    """
    bind_log_context(fresh=True, job=f"ivr-sms-{interaction_id}")
    services = current_services()
    settings = services.settings
    provider = services.telephony
    status_callback = f"{settings.public_base_url}/sms/status"
    # The sandbox needs no purchased number: the company's own line stands in as the sender.
    sender = settings.twilio_from_number or settings.operator_phone
    message = provider.send_sms(to, sender, body, status_callback=status_callback)
    with services.db.transaction() as s:
        s.add(
            Interaction(
                provider_sid=message.sid,
                channel="sms",
                direction="outbound",
                phone=to,
                status=message.status,
                summary=body[:1000],
                data={"call_interaction_id": interaction_id, "segments": message.segments},
            )
        )
    sid: str = message.sid
    return sid
