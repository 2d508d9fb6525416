"""The ``media`` blueprint: the ``/media-stream`` websocket of Twilio Media Streams.

Media Streams of ``capture: stream`` steps, recognised by
:class:`ivr.media_stream.MediaStreamCall` (one-way ``<Start><Stream>``, or the bidirectional
``<Connect><Stream>`` of a barge-in step, whose prompt it plays). flask-sock hands each
socket a waiting thread, so serve with threads; :mod:`telephony.websocket`'s hub reads the
sockets. The handshake's ``X-Twilio-Signature`` is checked against the ``ws(s)://`` URL of
``PUBLIC_BASE_URL`` (policy violation 1008 otherwise); no websocket extension is negotiated.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, request
from flask_sock import Sock

from contactcenter.metrics import media_stream_open
from ivr.capture import MEDIA_STREAM_PATH, stream_url
from ivr.media_stream import MediaStreamCall
from ivr.prompt_stream import barge_in_readiness
from telephony.signing import is_valid
from telephony.websocket import SERVER_OPTIONS, InlineWebSocket, refuse_extensions
from web.common import current_ivr, current_services

log = logging.getLogger(__name__)

bp = Blueprint("media", __name__)
sock = Sock()


def init_app(app: Flask) -> None:
    """Register the blueprint and the websocket route on ``app``; warn at start-up when the
    flows' barge-in steps cannot be served (no text-to-speech: see ``docs/speech.md``)."""
    app.register_blueprint(bp)
    # /media-stream sockets are read by the process's websocket hub, not a thread each.
    app.config["SOCK_SERVER_OPTIONS"] = dict(SERVER_OPTIONS)
    sock.init_app(app)
    setup = app.extensions.get("ivr")
    services = app.extensions.get("services")
    if setup is not None and services is not None and setup.speech.available:
        problem = barge_in_readiness(setup.flows, services.settings)
        if problem:
            log.warning("%s", problem)


def stream_request_url() -> str:
    """The ``ws(s)://`` URL Twilio signed for a Media Streams handshake."""
    url = stream_url(current_services().settings.public_base_url)
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    return url


@bp.before_request
def _no_websocket_extensions() -> None:
    """Media Streams are not compressed: no extension is negotiated in the handshake."""
    refuse_extensions(request.environ)


@sock.route(MEDIA_STREAM_PATH, bp=bp)
def media_stream(ws: Any) -> None:
    """Twilio Media Streams of a ``capture: stream`` step (read on the websocket hub)."""
    services = current_services()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not is_valid(
        services.settings.webhook_auth_token, stream_request_url(), {}, signature
    ):
        log.warning(
            "rejected media stream from %s: %s signature",
            request.remote_addr or "-",
            "missing" if not signature else "invalid",
        )
        ws.close(reason=1008, message="forbidden")
        return
    with media_stream_open():
        MediaStreamCall(services, current_ivr(), InlineWebSocket(ws)).run()
