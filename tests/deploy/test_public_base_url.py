"""``PUBLIC_BASE_URL`` in production: start-up refuses a value Twilio's signatures can never
match, and behind a TLS proxy the signed URL is built from it, never from X-Forwarded-*."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import ConfigError, Settings, load_settings
from crm_store.db import Database
from ivr.capture import stream_url
from telephony.signing import sign
from webhooks import create_app, services_of

TWILIO = {
    "TELEPHONY": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "a-real-looking-token",
    "TWILIO_FROM_NUMBER": "+74950000000",
}
PUBLIC = "https://ivr.example.ru/cc"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "is required when TELEPHONY=twilio"),
        ("http://ivr.example.ru", "must be an https:// URL"),
        ("https://localhost:5000", "not 'localhost'"),
        ("https://127.0.0.1", "not '127.0.0.1'"),
        ("https://[::1]:8443", "not '::1'"),
        ("https://ivr.example.ru/?x=1", "query"),
    ],
)
def test_production_refuses_a_base_url_twilio_cannot_sign(value: str | None, why: str) -> None:
    env = dict(TWILIO)
    if value is not None:
        env["PUBLIC_BASE_URL"] = value
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == "PUBLIC_BASE_URL"
    assert why in str(info.value)


def test_production_takes_a_public_https_url_and_the_sandbox_keeps_its_default() -> None:
    assert load_settings({**TWILIO, "PUBLIC_BASE_URL": PUBLIC + "/"}).public_base_url == PUBLIC
    assert load_settings({}).public_base_url == "http://127.0.0.1:5000"


@pytest.fixture
def proxied_app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    """The app as deployed: Twilio mode, public URL with a path the proxy strips."""
    app = create_app(
        settings.with_overrides(
            telephony="twilio",
            twilio_account_sid=TWILIO["TWILIO_ACCOUNT_SID"],
            twilio_auth_token=TWILIO["TWILIO_AUTH_TOKEN"],
            twilio_from_number=TWILIO["TWILIO_FROM_NUMBER"],
            public_base_url=PUBLIC,
            console_secret_key="k" * 48,
        )
    )
    yield app
    services_of(app).db.dispose()


def _post_via_proxy(app: Flask, signed_url: str, host: str = "ivr.example.ru") -> int:
    """POST /sms/status as the TLS proxy forwards it: plain HTTP to the container's address,
    the public scheme, host and stripped prefix in X-Forwarded-* headers."""
    params = {"MessageSid": "SMx"}  # not a valid SID: a request that passes the check gets 400
    signature = sign(TWILIO["TWILIO_AUTH_TOKEN"], signed_url, params)
    response = app.test_client().post(
        "/sms/status",
        base_url="http://10.0.0.5:8000",
        data=params,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": host,
            "X-Forwarded-Prefix": "/cc",
            "X-Forwarded-For": "54.172.60.1",
        },
    )
    return response.status_code


def test_behind_a_tls_proxy_the_signature_is_checked_against_the_public_url(
    proxied_app: Flask,
) -> None:
    assert _post_via_proxy(proxied_app, PUBLIC + "/sms/status") == 400
    # what the container saw is not what Twilio signed
    assert _post_via_proxy(proxied_app, "http://10.0.0.5:8000/sms/status") == 403
    assert _post_via_proxy(proxied_app, "https://ivr.example.ru/sms/status") == 403
    # a forged forwarded host does not move the URL the signature must match
    assert _post_via_proxy(proxied_app, "https://evil.example/sms/status", "evil.example") == 403
    assert stream_url(PUBLIC) == "wss://ivr.example.ru/cc/media-stream"
