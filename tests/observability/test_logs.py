"""Structured logs: masking of personal data, JSON lines with the bound context, one access
line per webhook, LOG_FORMAT / METRICS_TOKEN settings."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import ConfigError, Settings, load_settings
from contactcenter.logs import (
    MaskingFilter,
    TextFormatter,
    bind_log_context,
    clear_log_context,
    configure_logging,
    log_context,
    mask_text,
    new_request_id,
    remove_logging_handler,
)
from crm_store.db import Database
from telephony.signing import sign
from webhooks import create_app, services_of


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("from +79161234567 now", "from +7916***4567 now"),
        ("call 8 (916) 123-45-67 back", "call +7916***4567 back"),
        ("call +7 916 123-45-67 back", "call +7916***4567 back"),
        ("sms to 89161234567", "sms to +7916***4567"),
        ("abroad +4915112345678", "abroad +4915***5678"),
        ("account 5012345678 found", "account ***5678 found"),
        ("account 501234567890.", "account ***7890."),
    ],
)
def test_phones_and_account_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_text(raw) == masked
    assert mask_text(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "kept",
    [
        "call CA" + "1234567890" * 3 + "ab answered",  # a SID: digits inside a word
        "at 2026-12-05 17:01:33,123 run 42",
        "amount 1 234 567,89 RUB, 12 rows, id 123456789",
        "request 0f3c2a9b8d7e6f5a4b3c2d1e0f9a8b7c",
        "already masked +7916***4567",
    ],
)
def test_other_numbers_are_kept(kept: str) -> None:
    assert mask_text(kept) == kept


def _record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("t.logger", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_filter_masks_arguments_and_extra_fields() -> None:
    record = _record(
        "caller %s account %s", "+79161234567", 5012345678, holder_name="Иванов Иван", n=3
    )
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "caller +7916***4567 account ***5678"
    assert record.holder_name == "***"  # type: ignore[attr-defined]
    assert record.n == 3  # type: ignore[attr-defined]


def _lookup(account: str, phone: str) -> None:
    raise ValueError(f"no account {account} for {phone}")


def test_json_lines_carry_the_bound_context_and_masked_tracebacks() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        bind_log_context(fresh=True, call_sid="CA" + "a" * 32, campaign_id=7, attempt_id=None)
        logger = logging.getLogger("tests.observability.json")
        logger.info("dialing %s", "+79161234567", extra={"route": "/voice/step"})
        try:
            _lookup("5012345678", "+79031112233")
        except ValueError:
            logger.exception("lookup failed")
    finally:
        clear_log_context()
        remove_logging_handler()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "dialing +7916***4567"
    assert first["level"] == "INFO"
    assert first["logger"] == "tests.observability.json"
    assert first["call_sid"] == "CA" + "a" * 32
    assert first["campaign_id"] == 7
    assert "attempt_id" not in first  # None is not bound
    assert first["route"] == "/voice/step"
    assert first["ts"].endswith("Z")
    assert "ValueError: no account ***5678 for +7903***2233" in second["exception"]
    assert "5012345678" not in stream.getvalue()
    assert "+79031112233" not in stream.getvalue()


def test_text_lines_show_the_context() -> None:
    record = _record("hello %s", "+79161234567")
    bind_log_context(fresh=True, request_id="r1", call_sid="CA1")
    try:
        MaskingFilter().filter(record)
        line = TextFormatter().format(record)
    finally:
        clear_log_context()
    assert line.endswith("INFO t.logger hello +7916***4567 [request_id=r1 call_sid=CA1]")


def test_context_binding_merges_and_fresh_starts_over() -> None:
    bind_log_context(fresh=True, call_sid="CA1")
    bind_log_context(attempt_id=5)
    assert log_context() == {"call_sid": "CA1", "attempt_id": 5}
    bind_log_context(fresh=True, job="j")
    assert log_context() == {"job": "j"}
    clear_log_context()
    assert log_context() == {}


def test_request_ids_are_plain_tokens() -> None:
    assert new_request_id("abc-123.X_y") == "abc-123.X_y"
    for bad in (None, "", "a b", "x" * 65, "<script>"):
        generated = new_request_id(bad)
        assert len(generated) == 32
        assert int(generated, 16) >= 0


def test_log_format_setting() -> None:
    assert load_settings({}).log_format == "text"
    twilio = {
        "TELEPHONY": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_FROM_NUMBER": "+78001234567",
        "PUBLIC_BASE_URL": "https://ivr.example.ru",
    }
    assert load_settings(twilio).log_format == "json"
    assert load_settings({**twilio, "LOG_FORMAT": "TEXT"}).log_format == "text"
    with pytest.raises(ConfigError) as caught:
        load_settings({"LOG_FORMAT": "xml"})
    assert caught.value.variable == "LOG_FORMAT"


def test_metrics_token_setting() -> None:
    assert load_settings({}).metrics_token is None
    assert load_settings({"METRICS_TOKEN": "s" * 16}).metrics_token == "s" * 16
    with pytest.raises(ConfigError) as caught:
        load_settings({"METRICS_TOKEN": "short"})
    assert caught.value.variable == "METRICS_TOKEN"


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    services_of(app).db.dispose()


def test_one_access_line_per_webhook_with_the_call_bound(
    app: Flask, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    call_sid = "CA" + uuid.uuid4().hex
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "From": "+79161234567",
        "To": "+78001234567",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    path = "/voice/incoming"
    signature = sign(settings.webhook_auth_token, settings.public_base_url + path, params)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        with caplog.at_level(logging.INFO):
            response = app.test_client().post(
                path,
                data=params,
                headers={"X-Twilio-Signature": signature, "X-Request-Id": "req-42"},
            )
            app.test_client().get("/healthz")  # probes write no access line
    finally:
        remove_logging_handler()
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "req-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "contactcenter.access"]
    assert len(access) == 1
    (line,) = access
    assert line["route"] == "/voice/incoming"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["request_id"] == "req-42"
    assert line["call_sid"] == call_sid
    # The IVR's own lines of this request carry the call too, and no full phone number.
    ivr_lines = [line for line in lines if line["logger"].startswith("ivr.")]
    assert ivr_lines
    assert all(line.get("call_sid") == call_sid for line in ivr_lines)
    assert "+79161234567" not in stream.getvalue()
    assert log_context() == {}  # nothing leaks past the request


def test_the_access_line_never_carries_the_query_string(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="contactcenter.access"):
        response = app.test_client().post("/voice/outbound?attempt=12&phone=%2B79161234567")
    assert response.status_code == 403  # unsigned
    (record,) = [r for r in caplog.records if r.name == "contactcenter.access"]
    assert record.route == "/voice/outbound"  # type: ignore[attr-defined]
    assert record.status == 403  # type: ignore[attr-defined]
    assert "phone" not in record.getMessage()
    assert "7916" not in record.getMessage()
