"""``X-Twilio-Signature``: compute (the sandbox) and validate (our webhooks).

The signature is Base64(HMAC-SHA1(auth token, full URL + each POST parameter name and value
sorted by name)). Validate against the URL Twilio requested, i.e. built from the configured
``PUBLIC_BASE_URL``, never from what a proxy forwarded to us.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"

Params = Mapping[str, str] | Mapping[str, Sequence[str]]


def _flat(params: Params) -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    getlist = getattr(params, "getlist", None)
    for name in params:
        if callable(getlist):
            values = [str(v) for v in getlist(name)]
        else:
            raw = params[name]
            values = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        flat[name] = values
    return flat


class _MultiParams(dict[str, list[str]]):
    """A dict the validator reads repeated values from (it calls ``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def sign(token: str, url: str, params: Params) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a POST of ``params`` to ``url``."""
    if not token:
        raise ValueError("auth token must not be empty")
    validator = RequestValidator(token)
    signature: str = validator.compute_signature(url, _MultiParams(_flat(params)))
    return signature


def is_valid(token: str, url: str, params: Params, signature: str | None) -> bool:
    """Whether ``signature`` is the right one for ``params`` posted to ``url``.

    ``params`` may be a plain mapping or a werkzeug ``MultiDict`` (``request.form``); a
    missing or empty signature is never valid.
    """
    if not token or not signature:
        return False
    validator = RequestValidator(token)
    return bool(validator.validate(url, _MultiParams(_flat(params)), signature))
