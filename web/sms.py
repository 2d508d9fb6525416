"""The ``sms`` blueprint: the number's Messaging URL and SMS status callbacks.

- ``POST /sms/incoming`` — an inbound SMS: STOP/СТОП/START/HELP keywords
  (:mod:`campaigns.keywords`), the message in the contact log, the keyword's reply as TwiML;
- ``POST /sms/status`` — delivery statuses of campaign and IVR messages: the same status path
  as calls (:func:`web.voice.status_callback`: 400 on an unknown status, then the subscribed
  hooks, then the CRM).

Both answer 503 during a database or Redis outage, so Twilio retries them.
"""

from __future__ import annotations

from flask import Blueprint, Response
from twilio.twiml.messaging_response import MessagingResponse

from campaigns.status import handle_inbound_sms, keyword_reply
from crm_store.messages import MAX_SMS_BODY, record_inbound_sms, sender_phone
from telephony.status import StatusKind
from web.common import (
    TWIML_MIMETYPE,
    current_services,
    form,
    on_outage,
    retry_later,
    too_large,
    twilio_signed,
)
from web.voice import status_callback

bp = Blueprint("sms", __name__, url_prefix="/sms")


@bp.post("/incoming")
@twilio_signed
@on_outage(retry_later)
def incoming() -> Response:
    """The number's Messaging URL: opt-out/opt-in keywords, and the SMS in the contact log.

    A sender that is not a phone number (an alphanumeric sender ID such as ``ЭнергоСбыт``) is
    logged as given, with no keyword action; a body over Twilio's 1,600 characters gets 413.
    """
    services = current_services()
    params = form()
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    sender = params.get("From", "").strip()
    body = params.get("Body", "")
    if not sid or not sender:
        return Response("bad request: MessageSid and From are required\n", status=400)
    if len(body) > MAX_SMS_BODY:
        return too_large()
    action = handle_inbound_sms(services, params) if sender_phone(sender) is not None else None
    with services.db.transaction() as session:
        record_inbound_sms(
            session,
            sid=sid,
            phone=sender,
            body=body,
            keyword_action=action.value if action is not None else None,
        )
    reply = MessagingResponse()
    text = keyword_reply(services.settings, action)
    if text is not None:
        reply.message(text)
    return Response(str(reply), status=200, mimetype=TWIML_MIMETYPE)


@bp.post("/status")
@twilio_signed
@on_outage(retry_later)
def status() -> Response:
    """SMS status callback of campaign and IVR messages (idempotent, order-safe)."""
    return status_callback(StatusKind.SMS)
