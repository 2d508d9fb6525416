"""The Flask application: :func:`create_app` composes the web layer's blueprints.

One blueprint per module of :mod:`web`: :mod:`web.voice` (the hotline's webhooks and call
status callbacks, ``/voice/…``), :mod:`web.sms` (``/sms/…``), :mod:`web.media` (the
``/media-stream`` websocket), :mod:`web.api` (the supervisors' REST API,
``/api/campaigns``), :mod:`web.api_outages` (``/api/outages``), :mod:`web.api_contacts`
(``/api/dnc``, ``/api/consents``), :mod:`web.api_imports` (``/api/imports``),
:mod:`web.api_consumers` (consumers, accounts, interactions, recordings), :mod:`web.api_cases`,
:mod:`web.api_users`, :mod:`web.api_docs` (``/api/openapi.json``, ``/api/docs``) and
:mod:`web.health` (``/healthz``, ``/readyz``, ``/metrics``, and the hooks that time and log
every request: docs/observability.md); what the
API blueprints share is in :mod:`web.api_common`, what all share in :mod:`web.common`. Every
``/api`` error is JSON ``{"error": {"code", "message", "details"}}`` (docs/api.md). The web
console (``/console``, :mod:`web.console`) is installed by :func:`web.console.init_console`.

Start-up, in order: the settings (the environment unless given), the flow file (loaded and
validated: an invalid one stops the server, :func:`ivr.startup.load_flowset`), the wired
:class:`~contactcenter.services.Services` (:func:`contactcenter.wiring.build_services`:
telephony provider, status subscribers) and the :class:`~ivr.startup.IvrSetup` (flows, the
speech model for their language). ``app.config["SPEECH_CAPTURE"]`` (``record`` or
``stream``) forces one capture mode for every voice step (the call simulator sets it).

Run it with ``contactcenter serve`` or ``gunicorn 'webhooks:create_app()'`` (see the
Dockerfile: threads, since each media stream holds one).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from contactcenter.config import ConfigError, Settings, load_settings
from contactcenter.logs import configure_logging
from contactcenter.services import install_services
from contactcenter.wiring import build_services
from ivr.errors import WebhookError
from ivr.startup import audit_flow_deploy, load_flowset, setup_ivr
from telephony.errors import InvalidStatusCallback
from web import (
    api,
    api_cases,
    api_consumers,
    api_contacts,
    api_docs,
    api_imports,
    api_outages,
    api_users,
    health,
    media,
    sms,
    voice,
)
from web.common import (
    MAX_REQUEST_BYTES,
    DatabaseIntConverter,
    bad_request,
    http_error,
    ivr_of,
    refuse_oversized_body,
    services_of,
    too_large,
)
from web.console import init_console

__all__ = ["create_app", "ivr_of", "services_of"]


def create_app(settings: Settings | None = None, *, config: dict[str, Any] | None = None) -> Flask:
    """Build the web application.

    ``settings`` default to the environment (:func:`load_settings`); ``config`` is merged
    into ``app.config`` (tests use it). The flow file ``settings.flows_file`` is loaded and
    validated first: an invalid file raises :class:`ConfigError` (variable ``FLOWS_FILE``)
    listing every error, and the server does not start.
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    flowset = load_flowset(settings.flows_file)
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseIntConverter  # before any route is added
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config.update(config or {})
    app.before_request(refuse_oversized_body)
    capture = app.config.get("SPEECH_CAPTURE")
    if capture not in (None, "record", "stream"):
        raise ConfigError("SPEECH_CAPTURE", f"must be 'record' or 'stream', not {capture!r}")
    services = build_services(settings)
    install_services(services)
    app.extensions["services"] = services
    app.extensions["ivr"] = setup_ivr(flowset, settings, capture)
    audit_flow_deploy(services, flowset, settings.flows_file)

    health.init_app(app)
    app.register_blueprint(voice.bp)
    app.register_blueprint(sms.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_outages.bp)
    app.register_blueprint(api_contacts.bp)
    app.register_blueprint(api_imports.bp)
    app.register_blueprint(api_consumers.bp)
    app.register_blueprint(api_cases.bp)
    app.register_blueprint(api_users.bp)
    app.register_blueprint(api_docs.bp)
    media.init_app(app)
    init_console(app)
    app.register_error_handler(WebhookError, bad_request)
    app.register_error_handler(InvalidStatusCallback, bad_request)
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(HTTPException, http_error)
    return app
