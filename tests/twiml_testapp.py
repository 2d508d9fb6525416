"""A tiny TwiML app for the sandbox, simulator and provider tests (a helper module, not a
conftest), shared by ``tests/telephony`` and ``tests/devtools``.

It answers configured routes with TwiML, validates ``X-Twilio-Signature`` against the
public URL (like our real webhooks), and records every request it received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from telephony.signing import SIGNATURE_HEADER, is_valid

TOKEN = "test-auth-token"
PUBLIC = "http://localhost"

Handler = str | tuple[str, dict[str, str]] | Callable[[dict[str, str]], Any]


@dataclass
class Received:
    """One request the test app received."""

    path: str
    method: str
    form: dict[str, str]
    args: dict[str, str]
    signature: str | None


@dataclass
class TwimlApp:
    """The Flask app plus its routes and the requests it saw."""

    app: Flask
    routes: dict[str, Handler]
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    public: str = PUBLIC

    def on(self, path: str, handler: Handler) -> None:
        """Answer ``path`` with TwiML (a string, ``(twiml, headers)``, or a function of the form
        params returning either)."""
        self.routes[path] = handler

    def hits(self, path: str) -> list[Received]:
        """Requests received on ``path``."""
        return [r for r in self.received if r.path == path]


def make_twiml_app(validate: bool = True, token: str = TOKEN) -> TwimlApp:
    """Build the test app."""
    app = Flask("telephony_test_app")
    state = TwimlApp(app=app, routes={})

    @app.route("/<path:path>", methods=["GET", "POST"])
    def any_route(path: str) -> Any:
        full = "/" + path
        base = state.public
        url = base + request.full_path.rstrip("?") if request.query_string else base + full
        params = request.form if request.method == "POST" else {}
        signature = request.headers.get(SIGNATURE_HEADER)
        if validate and not is_valid(token, url, params, signature):
            state.rejected.append(full)
            return Response("forbidden", status=403)
        state.received.append(
            Received(full, request.method, dict(request.form), dict(request.args), signature)
        )
        handler = state.routes.get(full)
        if handler is None:
            return Response("not found", status=404)
        result = handler(dict(request.values)) if callable(handler) else handler
        if isinstance(result, Response):
            return result
        headers: dict[str, str] = {}
        if isinstance(result, tuple):
            result, headers = result
        return Response(str(result), mimetype="text/xml", headers=headers)

    return state


def twiml(*verbs: str) -> str:
    """A TwiML document with ``verbs``."""
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"
