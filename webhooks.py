"""The Flask application: ``create_app()`` and the Twilio-facing views.

Views stay thin: they check the signature, hand the request to a plain module
(``ivr``, ``campaigns``, ``telephony``) and return what it produced.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify

from contactcenter.config import Settings, configure_logging, load_settings
from contactcenter.runtime import Services, install_services

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, config: dict[str, Any] | None = None) -> Flask:
    """Build the web application.

    ``settings`` default to the environment (:func:`load_settings`); ``config`` is merged
    into ``app.config`` (tests use it).
    """
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(config or {})
    services = Services(settings)
    install_services(services)
    app.extensions["services"] = services

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    return app


def services_of(app: Flask) -> Services:
    """The :class:`Services` container of an app made by :func:`create_app`."""
    services: Services = app.extensions["services"]
    return services
