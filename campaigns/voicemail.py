"""The neutral message a campaign leaves on an answering machine (``amd_policy: leave_message``).

A third party may hear a voicemail, so the message names no person, amount or account: only
the supplier and a number to call back (``VoiceSettings.machine_message``). With
``DetectMessageEnd`` the asynchronous AMD result arrives after the machine's greeting; the
live call is then redirected (``update_call``) to TwiML that says the message and hangs up.
"""

from __future__ import annotations

import logging

from twilio.twiml.voice_response import VoiceResponse

from campaigns.attempts import definition_of
from campaigns.definition import AmdPolicy, CampaignDefinition
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.models import Campaign, ContactAttempt
from ivr.twiml import DEFAULT_LANGUAGE, DEFAULT_VOICE
from telephony.errors import CallNotFound

log = logging.getLogger(__name__)


def spoken_phone(phone: str) -> str:
    """A Russian E.164 number as it is written for reading aloud: ``8 800 220-02-20``."""
    digits = phone.removeprefix("+")
    if len(digits) == 11 and digits.startswith("7"):
        rest = digits[1:]
        return f"8 {rest[:3]} {rest[3:6]}-{rest[6:8]}-{rest[8:]}"
    return phone


def machine_message_text(definition: CampaignDefinition, settings: Settings) -> str:
    """The campaign's answering-machine message with supplier and callback number filled in."""
    voice = definition.voice
    if voice is None:
        raise ValueError("the campaign has no voice settings")
    number = (
        voice.callback_number
        or voice.from_number
        or settings.twilio_from_number
        or settings.operator_phone
    )
    return voice.machine_message.format(
        supplier=settings.supplier_name, callback_number=spoken_phone(number)
    )


def machine_message_twiml(text: str) -> str:
    """TwiML that says only ``text`` and hangs up."""
    response = VoiceResponse()
    response.say(text, voice=DEFAULT_VOICE, language=DEFAULT_LANGUAGE)
    response.hangup()
    return str(response)


def leaves_message(definition: CampaignDefinition, answered_by: str) -> bool:
    """Whether a call answered as ``answered_by`` gets the neutral machine message."""
    return (
        answered_by.startswith("machine")
        and definition.voice is not None
        and definition.voice.amd_policy is AmdPolicy.LEAVE_MESSAGE
    )


def leave_message(services: Services, call_sid: str, definition: CampaignDefinition) -> bool:
    """Redirect the live call ``call_sid`` to the neutral message; False if it already ended."""
    twiml = machine_message_twiml(machine_message_text(definition, services.settings))
    try:
        services.telephony.update_call(call_sid, twiml=twiml)
    except CallNotFound:
        log.info("call %s ended before the machine message", call_sid)
        return False
    log.info("call %s: redirected to the machine message", call_sid)
    return True


def machine_answer_twiml(services: Services, attempt_id: int, answered_by: str) -> str | None:
    """The neutral-message TwiML for an outbound URL fetched with a machine ``AnsweredBy``
    (synchronous AMD), or None when the call should run its flow."""
    if not answered_by.startswith("machine"):
        return None
    with services.db.transaction() as s:
        attempt = s.get(ContactAttempt, attempt_id)
        campaign = s.get(Campaign, attempt.campaign_id) if attempt is not None else None
        if campaign is None:
            return None
        definition = definition_of(campaign)
    if not leaves_message(definition, answered_by):
        return None
    return machine_message_twiml(machine_message_text(definition, services.settings))
