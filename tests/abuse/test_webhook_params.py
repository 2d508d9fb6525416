"""Every Twilio webhook with missing, garbage, huge or non-Latin parameters — signed, so
the view runs — answers 4xx or its polite TwiML, never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from contactcenter.config import Settings
from contactcenter.services import Services
from telephony.signing import sign
from tests.abuse.strategies import fuzz, hostile_text
from webhooks import services_of

WEBHOOKS = (
    "/voice/incoming",
    "/voice/outbound",
    "/voice/step",
    "/voice/whisper",
    "/voice/fallback",
    "/voice/status",
    "/voice/amd",
    "/voice/recording",
    "/sms/incoming",
    "/sms/status",
)
KNOWN_CALL = "CA" + "a" * 32
#: The parameters Twilio sends (and the query arguments our own URLs carry).
FORM_KEYS = (
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "Digits",
    "SpeechResult",
    "Confidence",
    "CallStatus",
    "CallDuration",
    "AnsweredBy",
    "SequenceNumber",
    "Timestamp",
    "RecordingSid",
    "RecordingUrl",
    "RecordingStatus",
    "RecordingDuration",
    "RecordingChannels",
    "DialCallStatus",
    "QueueResult",
    "ErrorCode",
    "ErrorUrl",
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "Body",
    "NumMedia",
    "Direction",
)
QUERY_KEYS = ("attempt", "flow", "step", "ev", "seq", "call", "campaign", "kind")

values = st.one_of(
    hostile_text,
    st.sampled_from(
        [KNOWN_CALL, "+79161234567", "completed", "busy", "human", "machine_start", "1", "7"]
    ),
)
forms = st.dictionaries(st.one_of(st.sampled_from(FORM_KEYS), hostile_text), values, max_size=8)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), values, max_size=4)


def _signed_post(
    client: FlaskClient, settings: Settings, path: str, form: dict[str, str], query: dict[str, str]
) -> Any:
    url = path + ("?" + urlencode(query) if query else "")
    signature = sign(settings.webhook_auth_token, settings.public_base_url + url, form)
    return client.post(url, data=form, headers={"X-Twilio-Signature": signature})


@pytest.fixture
def webhooks(abuse_app: Flask) -> tuple[FlaskClient, Settings, Services]:
    """A client, the settings it signs with and the services."""
    services = services_of(abuse_app)
    return abuse_app.test_client(), services.settings, services


def _fresh_call(client: FlaskClient, settings: Settings, services: Services) -> None:
    """Each example starts from the same state: no sessions, ``KNOWN_CALL`` in progress."""
    services.redis.flushdb()
    started = _signed_post(
        client,
        settings,
        "/voice/incoming",
        {"CallSid": KNOWN_CALL, "From": "+79161234567", "To": "+78001234567"},
        {},
    )
    assert started.status_code == 200


@pytest.mark.parametrize("path", WEBHOOKS)
@fuzz(25)
@given(form=forms, query=queries)
def test_a_webhook_never_answers_500(
    webhooks: tuple[FlaskClient, Settings, Services],
    path: str,
    form: dict[str, str],
    query: dict[str, str],
) -> None:
    client, settings, services = webhooks
    _fresh_call(client, settings, services)
    response = _signed_post(client, settings, path, form, query)
    assert response.status_code in (200, 204, 400, 404, 413), (
        response.status_code,
        response.get_data(as_text=True)[:300],
    )
    if response.status_code == 200 and path.startswith("/voice/"):
        assert response.mimetype == "application/xml"
        assert "<Response>" in response.get_data(as_text=True)


def test_an_unsigned_or_forged_webhook_is_refused(abuse_app: Flask) -> None:
    client = abuse_app.test_client()
    form = {"CallSid": KNOWN_CALL, "MessageSid": "SM" + "1" * 32}
    for path in WEBHOOKS:
        assert client.post(path, data=form).status_code == 403, path
        forged = client.post(path, data=form, headers={"X-Twilio-Signature": "AAAA" * 7})
        assert forged.status_code == 403, path


def test_a_call_sid_that_cannot_key_a_job_is_a_400(
    webhooks: tuple[FlaskClient, Settings, Services],
) -> None:
    """Regression: such a CallSid reached RQ's job id check (ValueError → 500)."""
    client, app_settings, _ = webhooks
    for path in ("/voice/incoming", "/voice/step", "/voice/outbound"):
        for call_sid in ("' OR '1'='1", "CA/../x", "CA 1", "CA:1", "СА123"):
            form = {"CallSid": call_sid, "From": "+79161234567", "To": "+78001234567"}
            response = _signed_post(client, app_settings, path, form, {"attempt": "1"})
            assert response.status_code == 400, (path, call_sid)


def test_a_whisper_for_a_call_sid_with_nul_is_said_without_context(
    webhooks: tuple[FlaskClient, Settings, Services],
) -> None:
    """Regression: PostgreSQL refused the NUL in the interaction lookup (DataError → 500)."""
    client, app_settings, _ = webhooks
    for call in ("CA\x00x", "' OR '1'='1", "../x"):
        response = _signed_post(client, app_settings, "/voice/whisper", {}, {"call": call})
        assert response.status_code == 200
        assert "<Say" in response.get_data(as_text=True)
