"""Prometheus metrics of the process: what the web app, the IVR, speech and campaigns count.

The metric objects are built once per process, lazily, on the first recording or scrape
(:func:`process_metrics`), into a registry of this module — not prometheus-client's global
one: importing the module builds nothing, and however many apps a process creates (the test
suite makes hundreds), each metric is registered exactly once. Recording is cheap enough for
the hot path (a dict lookup and a locked add, ~1-3 µs; no I/O): an IVR step takes ~6 ms.

Labels have bounded values only: routes are URL rules (``/voice/step``, never a path with
ids), steps are the flow file's ``flow:step`` names, outcomes come from the code's own
vocabularies. Never a call SID, a phone number or an account as a label.

Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set (the directory must exist and be emptied
before the server starts), every worker writes its values to files there and a scrape adds
them up (:func:`exposition`; ``contactcenter/gunicorn_conf.py`` removes a dead worker's
gauges). What lives elsewhere is collected at scrape time by the collectors
the web layer hands :func:`exposition`: RQ queues, calls in progress (:mod:`web.health`).

See ``docs/observability.md`` for every metric.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

PREFIX = "contactcenter"
#: Where multiprocess mode keeps the workers' values (set before the server starts).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Webhook latency buckets (seconds): an IVR step is ~6 ms, Twilio gives up after 15 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
#: Recognizer real-time factor buckets (processing time / audio time).
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
#: HTTP methods kept as label values; any other is ``OTHER``.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class ProcessMetrics:
    """The process's metric objects (see the module docstring and docs/observability.md)."""

    registry: CollectorRegistry
    request_seconds: Histogram
    requests: Counter
    calls_started: Counter
    calls_ended: Counter
    ivr_steps: Counter
    recognitions: Counter
    recognition_rtf: Histogram
    media_streams_open: Gauge
    campaign_attempts: Counter
    import_runs: Counter
    import_rows: Counter


_built: ProcessMetrics | None = None
_build_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """True when values are shared through ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn)."""
    return bool(os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()))


def process_metrics() -> ProcessMetrics:
    """The process's metrics, built on first use (once, thread-safe)."""
    global _built
    built = _built
    if built is not None:
        return built
    with _build_lock:
        if _built is None:
            _built = _build()
        return _built


def _build() -> ProcessMetrics:
    registry = CollectorRegistry(auto_describe=True)

    def name(short: str) -> str:
        return f"{PREFIX}_{short}"

    return ProcessMetrics(
        registry=registry,
        request_seconds=Histogram(
            name("http_request_duration_seconds"),
            "Time to answer an HTTP request (webhooks, API, console), by URL rule.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        requests=Counter(
            name("http_requests"),
            "HTTP requests answered, by URL rule and status code.",
            ("route", "method", "status"),
            registry=registry,
        ),
        calls_started=Counter(
            name("ivr_calls_started"),
            "Calls whose IVR flow started (a session was created).",
            ("direction", "flow"),
            registry=registry,
        ),
        calls_ended=Counter(
            name("ivr_calls_ended"),
            "Calls that reached a terminal status, by the call's outcome.",
            ("direction", "outcome"),
            registry=registry,
        ),
        ivr_steps=Counter(
            name("ivr_steps"),
            "IVR steps entered, by flow:step.",
            ("step",),
            registry=registry,
        ),
        recognitions=Counter(
            name("speech_recognitions"),
            "Utterances recognised, by grammar kind, end reason and confidence band.",
            ("grammar", "reason", "confidence"),
            registry=registry,
        ),
        recognition_rtf=Histogram(
            name("speech_real_time_factor"),
            "Recognizer processing time divided by audio time, per utterance.",
            ("grammar",),
            buckets=RTF_BUCKETS,
            registry=registry,
        ),
        media_streams_open=Gauge(
            name("media_streams_open"),
            "Media Streams websockets open now.",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        campaign_attempts=Counter(
            name("campaign_attempts"),
            "Campaign attempts that got a final outcome, by channel and outcome.",
            ("channel", "outcome"),
            registry=registry,
        ),
        import_runs=Counter(
            name("import_runs"),
            "Import runs finished, by kind and final status.",
            ("kind", "status"),
            registry=registry,
        ),
        import_rows=Counter(
            name("import_rows"),
            "Rows processed by finished import runs, by kind and final status.",
            ("kind", "status"),
            registry=registry,
        ),
    )


# ---------------------------------------------------------------------- recording


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request answered (``route``: the URL rule, never the raw path)."""
    m = process_metrics()
    method = method if method in HTTP_METHODS else "OTHER"
    m.request_seconds.labels(route, method).observe(seconds)
    m.requests.labels(route, method, str(status)).inc()


def record_call_started(direction: str, flow: str) -> None:
    """A call's IVR session was created."""
    process_metrics().calls_started.labels(direction, flow).inc()


def record_call_ended(direction: str | None, outcome: str | None) -> None:
    """A call reached its terminal status with ``outcome`` (the Interaction's)."""
    process_metrics().calls_ended.labels(direction or "unknown", outcome or "none").inc()


def record_ivr_steps(steps: Iterable[str]) -> None:
    """IVR steps entered (``flow:step`` names of the flow file)."""
    counter = process_metrics().ivr_steps
    for step in steps:
        counter.labels(step).inc()


def confidence_band(text: str, confidence: float) -> str:
    """``empty`` (nothing heard), ``low`` (< 0.5), ``medium`` (< 0.8) or ``high``."""
    if not text:
        return "empty"
    if confidence < 0.5:
        return "low"
    return "medium" if confidence < 0.8 else "high"


def record_recognition(
    grammar: str, reason: str, text: str, confidence: float, real_time_factor: float
) -> None:
    """One utterance recognised (grammar kind, end reason, what was heard and how fast)."""
    m = process_metrics()
    m.recognitions.labels(grammar, reason, confidence_band(text, confidence)).inc()
    if real_time_factor > 0:
        m.recognition_rtf.labels(grammar).observe(real_time_factor)


@contextmanager
def media_stream_open() -> Iterator[None]:
    """Count a Media Streams websocket as open while the block runs."""
    gauge = process_metrics().media_streams_open
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def record_campaign_attempt(channel: str, outcome: str) -> None:
    """A campaign attempt got its final outcome."""
    process_metrics().campaign_attempts.labels(channel, outcome).inc()


def record_import(kind: str, status: str, rows: int) -> None:
    """An import run finished with ``status`` after ``rows`` rows."""
    m = process_metrics()
    m.import_runs.labels(kind, status).inc()
    if rows > 0:
        m.import_rows.labels(kind, status).inc(rows)


# ---------------------------------------------------------------------- exposition


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The Prometheus text of the process's metrics (of every worker in multiprocess mode)
    and of the ``extra`` scrape-time collectors; returns (body, content type).

    Each scrape gets its own registry, so concurrent scrapes share nothing but the metrics.
    """
    own = process_metrics().registry  # built now: every family shows, at 0 if need be
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        registry.register(_RegistryCollector(own))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _RegistryCollector(Collector):
    """Another registry's metrics, collected into a scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        """Everything ``registry`` holds now."""
        return self.registry.collect()
