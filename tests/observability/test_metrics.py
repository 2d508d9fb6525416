"""``/metrics``: webhook latency per URL rule after a call, IVR counters, calls in progress
and RQ queues read from Redis at scrape time, the bearer token, bounded labels."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker

from contactcenter.config import Settings
from contactcenter.metrics import (
    confidence_band,
    exposition,
    media_stream_open,
    record_campaign_attempt,
    record_import,
    record_recognition,
)
from crm_store.db import Database
from tests.ivr.test_webhooks_app import SMALL_FLOWS, TwilioCall, add_account, write_flows
from tests.observability.scrape import value
from webhooks import create_app, services_of

HISTOGRAM = "contactcenter_http_request_duration_seconds"


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(settings.with_overrides(flows_file=write_flows(tmp_path, SMALL_FLOWS)))
    yield app
    services_of(app).db.dispose()


def scrape(app: Flask, **headers: str) -> str:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_a_call_shows_in_the_webhook_histograms_and_ivr_counters(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_account(db, "7700112233")
    before = scrape(app)
    call = TwilioCall(app.test_client(), settings)
    call.start()
    call.press("1")
    call.press("7700112233")
    assert call.last.ended
    assert call.status("completed", 3, duration=40) == 204
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(f"{HISTOGRAM}_count", route="/voice/incoming", method="POST") == 1
    assert delta(f"{HISTOGRAM}_count", route="/voice/step", method="POST") == 2
    assert delta(f"{HISTOGRAM}_count", route="/voice/status", method="POST") == 1
    assert delta(f"{HISTOGRAM}_bucket", route="/voice/step", method="POST", le="+Inf") == 2
    assert delta(f"{HISTOGRAM}_sum", route="/voice/step", method="POST") > 0
    step_ok = {"route": "/voice/step", "method": "POST", "status": "200"}
    assert delta("contactcenter_http_requests_total", **step_ok) == 2
    assert delta("contactcenter_ivr_calls_started_total", direction="inbound", flow="hotline") == 1
    for step in ("hotline:greet", "hotline:menu", "hotline:ask", "hotline:found"):
        assert delta("contactcenter_ivr_steps_total", step=step) == 1, step
    ended = {"direction": "inbound", "outcome": "completed_in_ivr"}
    assert delta("contactcenter_ivr_calls_ended_total", **ended) == 1
    # Bounded labels only: never the call, the caller or a raw path with its query.
    assert call.call_sid not in after
    assert "79161234567" not in after
    assert "seq=" not in after


def test_calls_in_progress_come_from_the_session_store(app: Flask, settings: Settings) -> None:
    assert value(scrape(app), "contactcenter_calls_in_progress") == 0
    first = TwilioCall(app.test_client(), settings)
    second = TwilioCall(app.test_client(), settings, caller="+79031112233")
    first.start()
    second.start()
    assert value(scrape(app), "contactcenter_calls_in_progress") == 2
    first.status("completed", 3, duration=12)
    assert value(scrape(app), "contactcenter_calls_in_progress") == 1


def _fails(reason: str) -> None:
    raise RuntimeError(reason)


def test_rq_queue_depth_and_failed_jobs_are_read_at_scrape_time(
    app: Flask, redis_client: Any, settings: Settings
) -> None:
    connection = Redis.from_url(settings.redis_url)
    try:
        imports = Queue("imports", connection=connection)
        for n in range(3):
            imports.enqueue("builtins.print", n)
        campaigns = Queue("campaigns", connection=connection)
        campaigns.enqueue(_fails, "boom")
        campaigns.enqueue(_fails, "boom again")
        SimpleWorker([campaigns], connection=connection).work(burst=True)
    finally:
        connection.close()
    text = scrape(app)
    assert value(text, "contactcenter_rq_up") == 1
    assert value(text, "contactcenter_rq_jobs", queue="imports") == 3
    assert value(text, "contactcenter_rq_jobs", queue="campaigns") == 0
    assert value(text, "contactcenter_rq_jobs_failed", queue="campaigns") == 2
    assert value(text, "contactcenter_rq_jobs_failed", queue="imports") == 0
    assert ('contactcenter_rq_jobs{queue="telephony"} 0.0') in text  # known, never used


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_scrape_with_redis_down_still_answers(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    down = settings.with_overrides(
        redis_url=f"redis://127.0.0.1:{_closed_port()}/0",
        flows_file=write_flows(tmp_path, SMALL_FLOWS),
    )
    app = create_app(down)
    try:
        text = scrape(app)
    finally:
        services_of(app).db.dispose()
    assert value(text, "contactcenter_rq_up") == 0
    assert "contactcenter_http_request_duration_seconds" in text


def test_the_metrics_token_is_a_bearer_token(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    token = "metrics-token-0123456789"
    app = create_app(
        settings.with_overrides(metrics_token=token, flows_file=write_flows(tmp_path, SMALL_FLOWS))
    )
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
        assert (
            client.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 401
        )
        assert "contactcenter_" in scrape(app, Authorization=f"Bearer {token}")
        assert client.get("/healthz").status_code == 200  # the probes stay open
    finally:
        services_of(app).db.dispose()


def test_unmatched_paths_and_odd_methods_get_bounded_labels(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/no/such/page/79161234567?phone=x").status_code == 404
    assert client.open("/healthz", method="PROPFIND").status_code == 405
    text = scrape(app)
    assert value(text, f"{HISTOGRAM}_count", route="<unmatched>", method="GET") >= 1
    # 405: no URL rule matched either
    assert value(text, f"{HISTOGRAM}_count", route="<unmatched>", method="OTHER") >= 1
    assert "79161234567" not in text
    assert "PROPFIND" not in text


def test_speech_campaign_import_and_media_stream_metrics() -> None:
    before, _ = exposition()
    record_recognition("digits", "silence", "один два", 0.93, 0.12)
    record_recognition("digits", "no_input", "", 0.0, 0.0)
    record_campaign_attempt("voice", "no_answer")
    record_import("payments", "completed", 250)
    with media_stream_open():
        inside, _ = exposition()
    after, _ = exposition()
    b, i, a = before.decode(), inside.decode(), after.decode()

    def delta(name: str, **labels: str) -> float:
        return value(a, name, **labels) - value(b, name, **labels)

    heard = {"grammar": "digits", "reason": "silence", "confidence": "high"}
    assert delta("contactcenter_speech_recognitions_total", **heard) == 1
    silent = {"grammar": "digits", "reason": "no_input", "confidence": "empty"}
    assert delta("contactcenter_speech_recognitions_total", **silent) == 1
    assert delta("contactcenter_speech_real_time_factor_count", grammar="digits") == 1
    assert delta("contactcenter_campaign_attempts_total", channel="voice", outcome="no_answer") == 1
    assert delta("contactcenter_import_rows_total", kind="payments", status="completed") == 250
    assert delta("contactcenter_import_runs_total", kind="payments", status="completed") == 1
    opened = value(i, "contactcenter_media_streams_open") - value(
        b, "contactcenter_media_streams_open"
    )
    assert opened == 1
    assert value(a, "contactcenter_media_streams_open") == value(
        b, "contactcenter_media_streams_open"
    )


@pytest.mark.parametrize(
    ("text", "confidence", "band"),
    [("", 0.9, "empty"), ("да", 0.3, "low"), ("да", 0.5, "medium"), ("да", 0.8, "high")],
)
def test_confidence_bands(text: str, confidence: float, band: str) -> None:
    assert confidence_band(text, confidence) == band
