"""The bare baseline of the webhook benchmark: a Flask app that checks the Twilio signature
with the SDK's :class:`~twilio.request_validator.RequestValidator` and answers every voice
webhook with one fixed ``<Gather>``, and the status callback with an empty 204.

Served by the same gunicorn as our app (``gunicorn 'bench.baseline_app:create_app()'``),
it is what any Twilio webhook costs before doing anything: the floor our IVR step is
measured against. ``BASELINE_AUTH_TOKEN`` and ``PUBLIC_BASE_URL`` (the URL Twilio signed)
come from the environment.
"""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator

GATHER = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Gather action="/voice/step" input="dtmf" numDigits="1" timeout="5">'
    '<Say language="ru-RU">Нажмите 1.</Say></Gather></Response>'
)


def create_app() -> Flask:
    """The baseline app (signature check + fixed TwiML)."""
    app = Flask("baseline")
    validator = RequestValidator(os.environ["BASELINE_AUTH_TOKEN"])
    public = os.environ["PUBLIC_BASE_URL"].rstrip("/")

    def signed() -> None:
        url = public + request.full_path.rstrip("?")
        if not validator.validate(url, request.form, request.headers.get("X-Twilio-Signature", "")):
            abort(403)

    @app.post("/voice/incoming")
    @app.post("/voice/step")
    def voice() -> Response:
        signed()
        return Response(GATHER, mimetype="text/xml")

    @app.post("/voice/status")
    def status() -> Response:
        signed()
        return Response(status=204)

    return app
