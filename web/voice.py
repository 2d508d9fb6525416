"""The ``voice`` blueprint: the hotline's webhooks and the call status callbacks.

- ``POST /voice/incoming`` — the number's Voice URL: the ``hotline`` flow for the caller;
- ``POST /voice/outbound?attempt=ID[&flow=NAME]`` — an answered campaign call;
- ``POST /voice/step`` — the action URL of every Gather/Record/Dial/Enqueue;
- ``POST /voice/fallback`` — Twilio's fallback URL: an apology and the operator queue;
- ``POST /voice/whisper?call=SID`` — the ``<Number url>`` of an operator ``<Dial>``: what
  the operator hears before being bridged (the caller's account and the reason);
- ``POST /voice/recording`` — the status of a whole-call recording: stored on the call's
  interaction once per ``RecordingSid`` and queued for download (:mod:`ivr.recordings`);
- ``POST /voice/status`` — call status callbacks, ``POST /voice/amd`` — asynchronous
  answering-machine detection results of campaign calls: checked by
  :func:`telephony.status.parse_status_callback` (400 on an unknown status, nothing stored),
  then :func:`ivr.status.handle_status` (the subscribed status hooks, then the CRM).

A call meets an outage with an apology and a transfer, a status callback with 503.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from flask import Blueprint, Response

from campaigns.voicemail import machine_answer_twiml
from ivr.operator_routing import whisper_twiml, whisper_unavailable_twiml
from ivr.recordings import (
    parse_recording_callback,
    store_recording_callback,
)
from ivr.status import handle_status
from ivr.voice import VoiceReply, VoiceRuntime, fallback_twiml
from telephony.status import StatusKind, parse_status_callback
from web.common import (
    apology,
    current_ivr,
    current_services,
    form,
    on_outage,
    query,
    retry_later,
    twilio_signed,
    twiml_response,
)

log = logging.getLogger(__name__)
#: What a call SID is made of (Twilio: CA + 32 hex digits; the sandbox's are alike).
_SID = re.compile(r"[A-Za-z0-9_-]+")

bp = Blueprint("voice", __name__, url_prefix="/voice")


def _voice(
    answer: Callable[[VoiceRuntime, dict[str, str], dict[str, str]], VoiceReply],
) -> Response:
    """Run one voice webhook through the IVR (query args, form params)."""
    runtime = VoiceRuntime(current_services(), current_ivr())
    reply = answer(runtime, query(), form())
    return twiml_response(reply.twiml, reply=reply)


@bp.post("/incoming")
@twilio_signed
@on_outage(apology)
def incoming() -> Response:
    """The number's Voice URL: start the ``hotline`` flow for the caller."""
    return _voice(lambda runtime, _query, params: runtime.incoming(params))


@bp.post("/outbound")
@twilio_signed
@on_outage(apology)
def outbound() -> Response:
    """URL of an answered campaign call: ``/voice/outbound?attempt=ID[&flow=NAME]``.

    A machine already known here (synchronous AMD, ``AnsweredBy``) under ``leave_message``
    gets only the campaign's neutral message (:mod:`campaigns.voicemail`)."""
    attempt = query().get("attempt", "")
    if attempt.isdigit():
        machine = machine_answer_twiml(
            current_services(), int(attempt), form().get("AnsweredBy", "")
        )
        if machine is not None:
            return twiml_response(machine, step="machine_message")
    return _voice(lambda runtime, args, params: runtime.outbound(args, params))


@bp.post("/step")
@twilio_signed
@on_outage(apology)
def step() -> Response:
    """Action URL of every Gather/Record/Enqueue/Dial the engine renders."""
    return _voice(lambda runtime, args, params: runtime.step(args, params))


def _whisper_unavailable() -> Response:
    return twiml_response(whisper_unavailable_twiml())


@bp.post("/whisper")
@twilio_signed
@on_outage(_whisper_unavailable)
def whisper() -> Response:
    """``<Number url>`` of an operator ``<Dial>`` (``?call=<the caller's CallSid>``): the
    account and the reason, said to the operator before the caller is bridged."""
    call_sid = (query().get("call") or "").strip()[:64]
    if not _SID.fullmatch(call_sid):
        call_sid = ""  # not a SID we issued (PostgreSQL refuses NUL in a lookup): no context
    return twiml_response(whisper_twiml(current_services(), call_sid))


@bp.post("/fallback")
@twilio_signed
def fallback() -> Response:
    """Twilio's fallback URL: apologise in Russian and transfer to an operator."""
    params = form()
    log.error(
        "fallback for call %s: ErrorCode=%s ErrorUrl=%s",
        params.get("CallSid", "-"),
        params.get("ErrorCode", "-"),
        params.get("ErrorUrl", "-"),
    )
    return twiml_response(fallback_twiml(current_ivr(), params), step="fallback")


def status_callback(kind: StatusKind) -> Response:
    """Check a status callback (400 on a bad one, nothing stored), handle it, answer 204."""
    handle_status(current_services(), parse_status_callback(kind, form(), query()))
    return Response(status=204)


@bp.post("/status")
@twilio_signed
@on_outage(retry_later)
def status() -> Response:
    """Call status callback: stored idempotently and in order, then acknowledged."""
    return status_callback(StatusKind.CALL)


@bp.post("/amd")
@twilio_signed
@on_outage(retry_later)
def amd() -> Response:
    """Asynchronous answering-machine detection result of a campaign call."""
    return status_callback(StatusKind.AMD)


@bp.post("/recording")
@twilio_signed
@on_outage(retry_later)
def recording() -> Response:
    """Recording status callback of a hotline call: stored idempotently, then acknowledged."""
    store_recording_callback(current_services(), parse_recording_callback(form()))
    return Response(status=204)
