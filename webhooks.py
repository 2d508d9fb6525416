"""The Flask application: ``create_app()`` and the Twilio-facing views.

Views stay thin: they check the signature, hand the request to a plain module
(``ivr``, ``campaigns``, ``telephony``) and return what it produced.

Blueprints (one per feature; add new ones in :func:`create_app`):

- ``voice`` — ``POST /voice/incoming`` (inbound: the hotline), ``/voice/outbound?attempt=ID``
  (an answered campaign call), ``/voice/step`` (action URL of every Gather/Record/Dial/
  Enqueue), ``/voice/fallback`` (Twilio's fallback URL) — the IVR, :mod:`ivr.runtime`;
- ``status`` — ``POST /voice/status`` (call status callbacks; campaign calls are also
  handed to the campaigns package) and ``POST /voice/amd`` (asynchronous AMD results of
  campaign calls);
- ``sms`` — ``POST /sms/incoming`` (the number's Messaging URL: STOP/СТОП/START keywords,
  the SMS in the contact log) and ``POST /sms/status`` (delivery statuses of campaign and
  IVR messages);
- ``campaigns`` — the supervisors' REST API under ``/api/campaigns`` (:mod:`campaigns.api`);
- ``media`` — the ``/media-stream`` websocket (flask-sock; each socket holds one waiting
  thread, so serve with threads; :mod:`telephony.websocket`'s hub reads the sockets):
  Twilio Media Streams of ``capture: stream`` steps, recognised by
  :class:`ivr.runtime.MediaStreamCall`. The handshake's ``X-Twilio-Signature`` is checked
  against the ``ws(s)://`` URL of ``PUBLIC_BASE_URL``.

Speech: :func:`create_app` resolves the speech model for the flows' language
(:func:`ivr.runtime.setup_speech`); ``app.config["SPEECH_CAPTURE"]`` (``record`` or
``stream``) forces one capture mode for every voice step (the call simulator sets it).

Every Twilio route is wrapped in :func:`twilio_signed` (``X-Twilio-Signature`` against
``Settings.public_base_url`` + path + query) and, for voice routes, :func:`outage_safe`
(a database or Redis outage becomes an apology and a transfer, never a 500).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_sock import Sock

from contactcenter.config import ConfigError, Settings, configure_logging, load_settings
from contactcenter.phones import mask_phone
from contactcenter.services import Services, install_services
from contactcenter.wiring import build_services
from ivr.runtime import (
    MEDIA_STREAM_PATH,
    SPEECH_CAPTURE,
    SPEECH_MODEL,
    VoiceReply,
    VoiceRuntime,
    WebhookError,
    setup_speech,
)
from telephony.websocket import SERVER_OPTIONS as WEBSOCKET_OPTIONS
from telephony.websocket import InlineWebSocket, refuse_extensions

log = logging.getLogger(__name__)

TWIML_MIMETYPE = "application/xml"
STEP_HEADER = "X-IVR-Step"
RECOGNIZED_HEADER = "X-IVR-Recognized"


def create_app(settings: Settings | None = None, *, config: dict[str, Any] | None = None) -> Flask:
    """Build the web application.

    ``settings`` default to the environment (:func:`load_settings`); ``config`` is merged
    into ``app.config`` (tests use it). The flow file ``settings.flows_file`` is loaded and
    validated first: an invalid file raises :class:`ConfigError` (variable ``FLOWS_FILE``)
    listing every error, and the server does not start.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    flowset = _load_flowset(settings.flows_file)
    app = Flask(__name__)
    app.config.update(config or {})
    capture = app.config.get("SPEECH_CAPTURE")
    if capture not in (None, "record", "stream"):
        raise ConfigError("SPEECH_CAPTURE", f"must be 'record' or 'stream', not {capture!r}")
    services = build_services(settings)
    services.set("flows", flowset)
    services.set(SPEECH_MODEL, setup_speech(flowset, settings))
    services.set(SPEECH_CAPTURE, capture)
    install_services(services)
    app.extensions["services"] = services

    @app.get("/healthz")
    def healthz() -> Any:
        """Liveness probe (no signature, no database)."""
        return jsonify(status="ok")

    app.register_blueprint(voice_bp)
    app.register_blueprint(status_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(sms_bp)

    from campaigns.api import bp as campaigns_api_bp

    app.register_blueprint(campaigns_api_bp)
    # /media-stream sockets are read by the process's websocket hub, not a thread each.
    app.config["SOCK_SERVER_OPTIONS"] = dict(WEBSOCKET_OPTIONS)
    sock.init_app(app)
    app.register_error_handler(WebhookError, _bad_webhook)
    return app


def _bad_webhook(exc: WebhookError) -> Response:
    log.warning("bad webhook %s %s: %s", request.method, request.path, exc)
    return Response(f"bad request: {exc}\n", status=400, mimetype="text/plain")


def _load_flowset(path: str) -> Any:
    from ivr.actions import unimplemented_actions
    from ivr.loader import FlowError
    from ivr.validate import load_flows

    try:
        flowset = load_flows(path)
    except FlowError as exc:
        lines = [str(issue) for issue in exc.issues] or [str(exc)]
        raise ConfigError(
            "FLOWS_FILE", f"{path} is not a valid flow file:\n" + "\n".join(lines)
        ) from None
    missing = unimplemented_actions(flowset)
    if missing:
        raise ConfigError(
            "FLOWS_FILE",
            f"{path} uses actions with no implementation: {', '.join(missing)}",
        )
    return flowset


def services_of(app: Flask) -> Services:
    """The :class:`Services` container of an app made by :func:`create_app`."""
    services: Services = app.extensions["services"]
    return services


def _services() -> Services:
    return services_of(current_app)


# --------------------------------------------------------------------------- guards


def request_url() -> str:
    """The URL Twilio signed: the public base URL + path + query string."""
    settings = _services().settings
    url = settings.public_base_url + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    return url


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Reject (403) a request whose ``X-Twilio-Signature`` is missing or wrong."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from telephony.signing import is_valid

        signature = request.headers.get("X-Twilio-Signature", "")
        token = _services().settings.webhook_auth_token
        params = request.form.to_dict(flat=True)
        if not signature or not is_valid(token, request_url(), request.form, signature):
            caller = params.get("From", "")
            log.warning(
                "rejected %s %s: %s signature (call %s, from %s)",
                request.method,
                request.path,
                "missing" if not signature else "invalid",
                params.get("CallSid", "-"),
                mask_phone(caller) if caller else "-",
            )
            return Response("forbidden\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper


def _outage_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the database or Redis is unreachable (not a bug)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    return (
        RedisConnectionError,
        RedisTimeoutError,
        OperationalError,
        InterfaceError,
        PoolTimeoutError,
    )


def _log_outage(exc: BaseException) -> None:
    log.warning(
        "outage during %s (call %s): %s: %s",
        request.path,
        request.form.get("CallSid", "-"),
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )


def outage_safe(view: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a database or Redis outage into an apology and a transfer to an operator."""
    outages = _outage_errors()

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except outages as exc:
            from ivr.runtime import outage_twiml

            _log_outage(exc)
            return twiml_response(outage_twiml(_services()), step="outage")

    return wrapper


def unavailable_503(view: Callable[..., Any]) -> Callable[..., Any]:
    """A callback that cannot be stored during an outage answers 503 (never a traceback)."""
    outages = _outage_errors()

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except outages as exc:
            _log_outage(exc)
            return Response("temporarily unavailable\n", status=503, mimetype="text/plain")

    return wrapper


def twiml_response(
    twiml: str, *, step: str | None = None, reply: VoiceReply | None = None
) -> Response:
    """A TwiML HTTP response with the IVR's report headers for simulators and logs.

    ``X-IVR-Step``: the steps entered while answering, comma-separated, the last being
    where the call is now; ``X-IVR-Recognized``: the percent-encoded speech the answer
    acted on, with ``;confidence=0.87``.
    """
    response = Response(twiml, status=200, mimetype=TWIML_MIMETYPE)
    steps = reply.steps if reply is not None else ((step,) if step else ())
    if steps:
        response.headers[STEP_HEADER] = ",".join(quote(s, safe=":_-") for s in steps)
    if reply is not None and reply.recognized:
        header = quote(reply.recognized, safe="")
        if reply.confidence is not None:
            header += f";confidence={reply.confidence:.2f}"
        response.headers[RECOGNIZED_HEADER] = header
    return response


# --------------------------------------------------------------------------- voice

voice_bp = Blueprint("voice", __name__, url_prefix="/voice")


def _voice(
    answer: Callable[[VoiceRuntime, dict[str, str], dict[str, str]], VoiceReply],
) -> Response:
    """Run one voice webhook through the IVR runtime (query args, form params)."""
    runtime = VoiceRuntime(_services())
    reply = answer(runtime, request.args.to_dict(flat=True), request.form.to_dict(flat=True))
    return twiml_response(reply.twiml, reply=reply)


@voice_bp.post("/incoming")
@twilio_signed
@outage_safe
def voice_incoming() -> Response:
    """The number's Voice URL: start the ``hotline`` flow for the caller."""
    return _voice(lambda runtime, _query, form: runtime.incoming(form))


@voice_bp.post("/outbound")
@twilio_signed
@outage_safe
def voice_outbound() -> Response:
    """URL of an answered campaign call: ``/voice/outbound?attempt=ID[&flow=NAME]``."""
    return _voice(lambda runtime, query, form: runtime.outbound(query, form))


@voice_bp.post("/step")
@twilio_signed
@outage_safe
def voice_step() -> Response:
    """Action URL of every Gather/Record/Enqueue/Dial the engine renders."""
    return _voice(lambda runtime, query, form: runtime.step(query, form))


@voice_bp.post("/fallback")
@twilio_signed
def voice_fallback() -> Response:
    """Twilio's fallback URL: apologise in Russian and transfer to an operator."""
    from ivr.runtime import fallback_twiml

    params = request.form.to_dict(flat=True)
    log.error(
        "fallback for call %s: ErrorCode=%s ErrorUrl=%s",
        params.get("CallSid", "-"),
        params.get("ErrorCode", "-"),
        params.get("ErrorUrl", "-"),
    )
    return twiml_response(fallback_twiml(_services(), params), step="fallback")


# --------------------------------------------------------------------------- status

status_bp = Blueprint("status", __name__)


@status_bp.post("/voice/status")
@twilio_signed
@unavailable_503
def voice_status() -> Response:
    """Call status callback: stored idempotently and in order, then acknowledged."""
    from ivr.runtime import handle_call_status

    handle_call_status(
        _services(), request.form.to_dict(flat=True), request.args.to_dict(flat=True)
    )
    return Response(status=204)


@status_bp.post("/voice/amd")
@twilio_signed
@unavailable_503
def voice_amd() -> Response:
    """Asynchronous answering-machine detection result of a campaign call."""
    from ivr.runtime import handle_amd_status

    handle_amd_status(_services(), request.form.to_dict(flat=True), request.args.to_dict(flat=True))
    return Response(status=204)


# --------------------------------------------------------------------------- sms

sms_bp = Blueprint("sms", __name__, url_prefix="/sms")

SMS_HELP_REPLY = "{supplier}: справка по телефону {phone}. Чтобы отписаться, отправьте СТОП."


@sms_bp.post("/incoming")
@twilio_signed
@unavailable_503
def sms_incoming() -> Response:
    """The number's Messaging URL: opt-out/opt-in keywords, and the SMS in the contact log."""
    from twilio.twiml.messaging_response import MessagingResponse

    from campaigns.jobs import OPT_IN_REPLY, OPT_OUT_REPLY, handle_inbound_sms
    from campaigns.keywords import KeywordAction
    from crm_store.messages import record_inbound_sms

    services = _services()
    params = request.form.to_dict(flat=True)
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    sender = params.get("From", "")
    if not sid or not sender:
        return Response("bad request: MessageSid and From are required\n", status=400)
    action = handle_inbound_sms(services, params)
    with services.db.transaction() as session:
        record_inbound_sms(
            session,
            sid=sid,
            phone=sender,
            body=params.get("Body", ""),
            keyword_action=action.value if action is not None else None,
        )
    reply = MessagingResponse()
    settings = services.settings
    if action is KeywordAction.OPT_OUT:
        reply.message(OPT_OUT_REPLY)
    elif action is KeywordAction.OPT_IN:
        reply.message(OPT_IN_REPLY)
    elif action is KeywordAction.HELP:
        reply.message(
            SMS_HELP_REPLY.format(supplier=settings.supplier_name, phone=settings.operator_phone)
        )
    return Response(str(reply), status=200, mimetype=TWIML_MIMETYPE)


@sms_bp.post("/status")
@twilio_signed
@unavailable_503
def sms_status() -> Response:
    """SMS status callback of campaign and IVR messages (idempotent, order-safe)."""
    from campaigns.jobs import handle_sms_status
    from crm_store.messages import apply_message_status

    services = _services()
    params = {**request.form.to_dict(flat=True), **request.args.to_dict(flat=True)}
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if not sid or not status:
        return Response("bad request: MessageSid and MessageStatus are required\n", status=400)
    if not handle_sms_status(services, params):
        try:
            with services.db.transaction() as session:
                apply_message_status(
                    session, sid, status, error_code=params.get("ErrorCode") or None
                )
        except ValueError as exc:
            return Response(f"bad request: {exc}\n", status=400)
    return Response(status=204)


# --------------------------------------------------------------------------- media

media_bp = Blueprint("media", __name__)
sock = Sock()


def stream_request_url() -> str:
    """The ``ws(s)://`` URL Twilio signed for a Media Streams handshake."""
    from ivr.runtime import stream_url

    url = stream_url(_services().settings.public_base_url)
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    return url


@media_bp.before_request
def _no_websocket_extensions() -> None:
    """Media Streams are not compressed: no extension is negotiated in the handshake."""
    refuse_extensions(request.environ)


@sock.route(MEDIA_STREAM_PATH, bp=media_bp)
def media_stream(ws: Any) -> None:
    """Twilio Media Streams of a ``capture: stream`` step (read on the websocket hub)."""
    from ivr.runtime import MediaStreamCall
    from telephony.signing import is_valid

    services = _services()
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
    MediaStreamCall(services, InlineWebSocket(ws)).run()
