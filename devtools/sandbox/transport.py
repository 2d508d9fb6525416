"""How the sandbox reaches our app: in-process WSGI or real HTTP.

Every webhook is a form request signed with ``X-Twilio-Signature`` for the exact URL; the
transport only moves bytes. Tests use :class:`WsgiTransport` against a Flask app; RQ workers
and the CLI's ``--url`` use :class:`HttpTransport` against a running server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from werkzeug.test import Client

from telephony.signing import SIGNATURE_HEADER, sign

USER_AGENT = "TwilioProxy/1.1 (contactcenter sandbox)"


@dataclass(frozen=True)
class WebhookResponse:
    """What our app answered: HTTP status, body text and headers (lower-case names)."""

    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300


class WebhookTransportError(Exception):
    """The app could not be reached (connection refused, timeout)."""


class Transport(Protocol):
    """Delivers one request to our app."""

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Send ``params`` (form body for POST, query string for GET) to ``url``."""
        ...


def _strip_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


class WsgiTransport:
    """Calls a WSGI app (a Flask app) in-process through werkzeug's test client."""

    def __init__(self, app: Any) -> None:
        self._client = Client(app)

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Run the request through the app and return its response."""
        url = _strip_fragment(url)
        if method == "GET":
            resp = self._client.open(url, method="GET", headers=dict(headers))
        else:
            resp = self._client.open(url, method="POST", data=dict(params), headers=dict(headers))
        body = resp.get_data(as_text=True)
        out = WebhookResponse(
            resp.status_code, body, {k.lower(): v for k, v in resp.headers.items()}
        )
        resp.close()
        return out


class HttpTransport:
    """Real HTTP with ``requests`` (Twilio's 15 s budget, no redirects followed)."""

    def __init__(self, session: requests.Session | None = None, timeout_s: float = 15.0):
        self._session = session or requests.Session()
        self.timeout_s = timeout_s

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Send the request over the network."""
        url = _strip_fragment(url)
        try:
            if method == "GET":
                resp = self._session.get(
                    url, headers=dict(headers), timeout=self.timeout_s, allow_redirects=False
                )
            else:
                resp = self._session.post(
                    url,
                    data=dict(params),
                    headers=dict(headers),
                    timeout=self.timeout_s,
                    allow_redirects=False,
                )
        except requests.RequestException as exc:
            raise WebhookTransportError(f"{url}: {exc}") from exc
        return WebhookResponse(
            resp.status_code, resp.text, {k.lower(): v for k, v in resp.headers.items()}
        )


def signed_request(
    transport: Transport, token: str, method: str, url: str, params: Mapping[str, str]
) -> WebhookResponse:
    """Send a webhook the way Twilio does: signed for the exact URL requested.

    For GET the parameters go into the query string and the signature covers that URL.
    """
    method = method.upper()
    if method not in ("GET", "POST"):
        raise ValueError(f"webhook method must be GET or POST, not {method!r}")
    clean = {k: v for k, v in params.items() if v is not None}
    if method == "GET":
        sep = "&" if urlsplit(url).query else "?"
        full = f"{url}{sep}{urlencode(clean)}" if clean else url
        signature = sign(token, _strip_fragment(full), {})
        return transport.request(
            "GET", full, {}, {SIGNATURE_HEADER: signature, "User-Agent": USER_AGENT}
        )
    signature = sign(token, _strip_fragment(url), clean)
    headers = {
        SIGNATURE_HEADER: signature,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return transport.request("POST", url, clean, headers)
