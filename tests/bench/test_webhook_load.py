"""The webhook load client signs like Twilio and follows TwiML; the baseline checks signatures.

The client is run for real against the baseline app served on a local port (no timing
assertions: only what was requested, and how it was answered)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from bench import baseline_app
from bench.webhook_load import LoadPlan, _next_request, percentile, run_load

TOKEN = "bench-token"


@pytest.fixture
def baseline(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, lambda e, s: [], threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("BASELINE_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PUBLIC_BASE_URL", url)
    server.app = baseline_app.create_app()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield url
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def _plan(url: str, token: str) -> LoadPlan:
    return LoadPlan(
        base_url=url,
        auth_token=token,
        callers=["+79161234501", "+79161234502"],
        keys=("1", "2"),
        pause_s=(0.0, 0.0),
        concurrency=2,
        duration_s=60,
        max_calls=6,
    )


def test_calls_follow_the_gathers_and_end_with_a_status_callback(baseline: str) -> None:
    result = run_load(_plan(baseline, TOKEN))
    assert result.calls == 6
    assert result.error_count() == 0
    routes = {s.route for s in result.samples}
    assert routes == {"/voice/incoming", "/voice/step", "/voice/status"}
    # each call: incoming, one step per key, then its status callback
    per_route = {r: sum(1 for s in result.samples if s.route == r) for r in routes}
    assert per_route["/voice/step"] == 2 * per_route["/voice/incoming"]
    assert per_route["/voice/status"] == result.calls
    assert all(s.status in (200, 204) for s in result.samples)


def test_a_wrong_token_is_refused_by_the_baseline(baseline: str) -> None:
    result = run_load(_plan(baseline, "not-the-token"))
    assert {s.status for s in result.samples} == {403}
    assert {s.route for s in result.samples} == {"/voice/incoming", "/voice/status"}


def test_twiml_is_followed_as_twilio_would() -> None:
    gather = (
        '<Response><Say>x</Say><Gather action="/voice/step?s=1"><Say>y</Say></Gather></Response>'
    )
    assert _next_request(gather) == ("gather", "/voice/step?s=1")
    assert _next_request("<Response><Redirect> /voice/step </Redirect></Response>") == (
        "redirect",
        "/voice/step",
    )
    assert _next_request("<Response><Say>x</Say><Hangup/></Response>") is None
    assert _next_request("<Response><Enqueue>operators</Enqueue></Response>") is None
    assert _next_request("not xml") is None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
