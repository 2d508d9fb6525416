"""What the blueprints share: the app's services, the signature check, the outage guard.

Every Twilio route is wrapped in :func:`twilio_signed` (``X-Twilio-Signature`` against
``Settings.public_base_url`` + path + query; 403 otherwise) and in :func:`on_outage`, which
turns a database or Redis outage into the answer the route gives then: for a call, an apology
and a transfer to an operator (:func:`apology`); for a callback Twilio retries, 503
(:func:`retry_later`). Never a 500, never silence.

The REST API's one error body, ``{"error": {"code", "message", "details"}}``, is
:func:`error_body` / :func:`json_error`; :func:`http_error` gives it to HTTP errors outside any
view under ``/api`` (unknown paths, wrong methods), :func:`too_large` to oversized bodies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from flask import Flask, Response, current_app, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from contactcenter.phones import mask_phone
from contactcenter.services import Services
from ivr.errors import WebhookError
from ivr.startup import IvrSetup
from ivr.voice import VoiceReply, outage_twiml
from telephony.errors import InvalidStatusCallback
from telephony.signing import is_valid

log = logging.getLogger(__name__)

TWIML_MIMETYPE = "application/xml"
#: The request body limit of every route (Flask ``MAX_CONTENT_LENGTH``), larger ones get 413.
#: Twilio's largest form post is an inbound SMS: 1,600 characters of Cyrillic body (up to
#: 9,600 bytes percent-encoded), ten media URLs and some forty other fields — well under 64 KiB.
MAX_REQUEST_BYTES = 64 * 1024
STEP_HEADER = "X-IVR-Step"
RECOGNIZED_HEADER = "X-IVR-Recognized"
#: The exceptions that mean the database or Redis is unreachable (not a bug).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)

P = ParamSpec("P")
R = TypeVar("R")


def services_of(app: Flask) -> Services:
    """The :class:`Services` container of an app made by ``webhooks.create_app``."""
    services: Services = app.extensions["services"]
    return services


def ivr_of(app: Flask) -> IvrSetup:
    """The :class:`~ivr.startup.IvrSetup` of an app made by ``webhooks.create_app``."""
    setup: IvrSetup = app.extensions["ivr"]
    return setup


def current_services() -> Services:
    """The services of the app serving this request."""
    return services_of(current_app)


def current_ivr() -> IvrSetup:
    """The IVR set-up of the app serving this request."""
    return ivr_of(current_app)


def request_url() -> str:
    """The URL Twilio signed: the public base URL + path + query string."""
    url = current_services().settings.public_base_url + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    return url


def twilio_signed(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Reject (403) a request whose ``X-Twilio-Signature`` is missing or wrong."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        token = current_services().settings.webhook_auth_token
        if not signature or not is_valid(token, request_url(), request.form, signature):
            caller = request.form.get("From", "")
            log.warning(
                "rejected %s %s: %s signature (call %s, from %s)",
                request.method,
                request.path,
                "missing" if not signature else "invalid",
                request.form.get("CallSid", "-"),
                mask_phone(caller) if caller else "-",
            )
            return Response("forbidden\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper


def on_outage(
    answer: Callable[[], Response],
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Answer ``answer()`` when the view meets a database or Redis outage (logged)."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                return view(*args, **kwargs)
            except OUTAGE_ERRORS as exc:
                log.warning(
                    "outage during %s (call %s): %s: %s",
                    request.path,
                    request.form.get("CallSid", "-"),
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
                return answer()

        return wrapper

    return decorate


def apology() -> Response:
    """A call during an outage: an apology in Russian and a transfer to an operator."""
    call_sid = (request.form.get("CallSid") or "").strip()[:64] or None
    return twiml_response(outage_twiml(current_ivr(), call_sid), step="outage")


def retry_later() -> Response:
    """A callback that cannot be stored during an outage: 503, so Twilio retries it."""
    return Response("temporarily unavailable\n", status=503, mimetype="text/plain")


#: The largest ``<int:…>`` a route matches: what an ``integer`` key column holds on
#: PostgreSQL; a larger one is an unknown page (404), never an out-of-range error (500).
#: A route over a ``bigint`` key says so: ``<int(max=9223372036854775807):…>``.
MAX_PATH_INT = 2**31 - 1


class DatabaseIntConverter(IntegerConverter):
    """The app's ``<int:…>`` converter: non-negative, at most :data:`MAX_PATH_INT` unless
    the rule gives its own ``max``."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_PATH_INT)
        super().__init__(map, *args, **kwargs)


#: The attribute of a view function giving its own body limit (a callable → bytes), for the
#: views that take more than :data:`MAX_REQUEST_BYTES` (uploads, see ``web.api_common``).
BODY_LIMIT_ATTR = "body_limit"


def refuse_oversized_body() -> Response | None:
    """The app's first ``before_request``: a declared ``Content-Length`` over the route's
    limit (its :data:`BODY_LIMIT_ATTR`, else ``MAX_CONTENT_LENGTH``) is refused with 413
    before any view or authentication runs, even on routes that never read a body.
    A body of unknown length (chunked) is cut at the limit where a view reads it."""
    length = request.content_length
    if length is None:
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    body_limit = getattr(view, BODY_LIMIT_ATTR, None)
    limit = body_limit() if callable(body_limit) else current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and length > int(limit):
        return too_large()
    return None


def too_large(exc: Exception | None = None) -> Response:
    """A request body over :data:`MAX_REQUEST_BYTES` (or an SMS body over Twilio's limit): 413."""
    log.warning("refused %s %s: request too large", request.method, request.path)
    if request.path.startswith("/api/"):
        return json_error(413, "request entity too large")
    return Response("request entity too large\n", status=413, mimetype="text/plain")


#: The ``error.code`` of an API error by HTTP status (others: the status phrase in snake case).
ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_code(status: int) -> str:
    """The ``error.code`` of HTTP ``status`` (:data:`ERROR_CODES`)."""
    if status in ERROR_CODES:
        return ERROR_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_body(status: int, message: str, details: Any = None) -> dict[str, Any]:
    """The REST API's one error body: ``{"error": {"code", "message", "details"}}``.

    ``code`` names the kind of error (:func:`error_code`), ``message`` says what is wrong in
    a sentence, ``details`` (or null) gives the particulars where there are several (the
    fields of an invalid request, the items of a refused batch).
    """
    return {"error": {"code": error_code(status), "message": message, "details": details}}


def json_error(status: int, message: str, details: Any = None) -> Response:
    """An API error answer: :func:`error_body` with ``status``."""
    response = jsonify(error_body(status, message, details))
    response.status_code = status
    return response


def http_error(exc: HTTPException) -> Response | HTTPException:
    """HTTP errors outside any view (an unknown ``/api`` path, a wrong method): the API's
    error body for the REST API, Werkzeug's own answer elsewhere."""
    if request.path.startswith("/api/"):
        response = json_error(exc.code or 500, exc.description or exc.name)
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response
    return exc


def bad_request(exc: WebhookError | InvalidStatusCallback) -> Response:
    """A webhook that lacks what we need, or breaks Twilio's contract: 400, nothing stored."""
    log.warning("bad webhook %s %s: %s", request.method, request.path, exc)
    return Response(f"bad request: {exc}\n", status=400, mimetype="text/plain")


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


def form() -> dict[str, str]:
    """The request's form fields (one value each)."""
    return request.form.to_dict(flat=True)


def query() -> dict[str, str]:
    """The request URL's query arguments (one value each)."""
    return request.args.to_dict(flat=True)
