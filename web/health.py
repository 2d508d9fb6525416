"""The ``health`` blueprint: ``/healthz``, ``/readyz``, ``/metrics``; and the request hooks.

- ``GET /healthz``: liveness (the process answers; nothing else is touched).
- ``GET /readyz``: readiness. Every check runs at once, each in its own thread with a
  deadline (:data:`CHECK_TIMEOUT_S`), so the answer comes within ~2 s however a dependency
  fails: 200 when all pass, 503 naming the failing ones. Checks: ``database`` (``SELECT 1``),
  ``redis`` (``PING`` on a client of its own with 1 s timeouts), ``flows`` (the flow set in
  memory), ``speech`` (the model's state; without one the IVR falls back to the keypad, so it
  never fails readiness, it says ``degraded``), ``telephony`` (the provider's credentials
  are configured; nothing is sent to the provider). A check still hanging from an earlier
  probe fails at once instead of starting another thread.
- ``GET /metrics``: Prometheus text (:func:`contactcenter.metrics.exposition`) plus what is
  read from Redis at scrape time: RQ queue depths, failed jobs and workers
  (:class:`RqCollector`), calls in progress (:class:`CallsInProgressCollector`). With
  ``METRICS_TOKEN`` set it wants ``Authorization: Bearer <token>``.

:func:`init_app` registers the blueprint and the hooks every request goes through: a request
id (``X-Request-Id`` in and out) and the call SID / campaign attempt bound to the log context
(:func:`contactcenter.logs.bind_log_context`), the latency histogram per URL rule, and one
access log line (route, status, duration; never the query string).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis import Redis
from rq.queue import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.worker import Worker
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from campaigns.queueing import QUEUE_NAME as CAMPAIGN_QUEUE
from contactcenter.ingest import IMPORT_QUEUE
from contactcenter.logs import bind_log_context, clear_log_context, new_request_id
from contactcenter.metrics import exposition, observe_request
from contactcenter.services import Services
from ivr.capture import MEDIA_STREAM_PATH
from ivr.session import KEY_PREFIX as SESSION_PREFIX
from ivr.sms import IVR_QUEUE
from ivr.startup import IvrSetup
from telephony import TELEPHONY_QUEUE

log = logging.getLogger(__name__)
access_log = logging.getLogger("contactcenter.access")

bp = Blueprint("health", __name__)

#: How long ``/readyz`` waits for its checks (they run in parallel).
CHECK_TIMEOUT_S = 2.0
#: Timeouts of the Redis clients of probes and scrapes (seconds).
REDIS_PROBE_TIMEOUT_S = 1.0
#: The queues a worker serves by default: shown at 0 before their first job.
KNOWN_QUEUES = (CAMPAIGN_QUEUE, IVR_QUEUE, TELEPHONY_QUEUE, IMPORT_QUEUE)
#: An ended call's session lives this long (``SessionStore.expire_soon``); a live call's is
#: renewed to hours at every step, so a session with a longer TTL is a call in progress.
ENDED_SESSION_TTL_S = 300
#: Routes answered without an access log line (probes and scrapes, every few seconds).
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/console/static/<path:filename>"})
#: The label of a request no URL rule matched (404s: never the raw path).
UNMATCHED = "<unmatched>"
_REQUEST_ID_HEADER = "X-Request-Id"


# ---------------------------------------------------------------------- readiness


@dataclass
class CheckResult:
    """One readiness check: passed or not, what it found, how long it took."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the check in ``/readyz``'s body."""
        body: dict[str, Any] = {"ok": self.ok, "ms": round(self.ms, 1), **self.detail}
        if self.error is not None:
            body["error"] = self.error
        return body


class CheckFailed(Exception):
    """A readiness check found its dependency unusable (the message says why)."""


@dataclass
class _Probes:
    """Per app: the checks still running (a hung one is not started again)."""

    running: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _describe(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}"[:300]


def check_database(services: Services) -> dict[str, Any]:
    """``SELECT 1`` through the app's pool. A pooled connection the server dropped while
    it was in use recently fails as a disconnect, which empties the pool: tried once more
    on a fresh connection, so one dead connection does not make the app look unready."""
    for attempt in (1, 2):
        try:
            with services.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            break
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    return {"dialect": services.db.engine.dialect.name}


def check_redis(services: Services) -> dict[str, Any]:
    """``PING`` on a client of its own with short timeouts (the app's waits longer)."""
    client = probe_redis(services.settings.redis_url)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_flows(setup: IvrSetup) -> dict[str, Any]:
    """The flow set the app loaded at start-up."""
    if not setup.flows.flows:
        raise CheckFailed("no flow loaded")
    return {"flows": len(setup.flows.flows)}


def check_speech(setup: IvrSetup) -> dict[str, Any]:
    """The speech model's state: never a failure (the IVR falls back to the keypad)."""
    speech = setup.speech
    if speech.available:
        return {"state": "available", "lang": speech.lang}
    return {"state": "degraded", "lang": speech.lang, "reason": speech.reason[:200]}


def check_telephony(services: Services) -> dict[str, Any]:
    """The provider's credentials are configured (nothing is sent to the provider)."""
    settings = services.settings
    if settings.telephony == "twilio":
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                ("TWILIO_FROM_NUMBER", settings.twilio_from_number),
            )
            if not value
        ]
        if missing:
            raise CheckFailed(f"not configured: {', '.join(missing)}")
    return {"provider": settings.telephony}


def probe_redis(url: str) -> Redis:
    """A Redis client that gives up within :data:`REDIS_PROBE_TIMEOUT_S` (caller closes it)."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_PROBE_TIMEOUT_S,
        socket_connect_timeout=REDIS_PROBE_TIMEOUT_S,
        retry_on_timeout=False,
    )


def readiness_checks(app: Flask) -> dict[str, Callable[[], dict[str, Any]]]:
    """The checks of ``/readyz`` for ``app``, by name."""
    services: Services = app.extensions["services"]
    setup: IvrSetup = app.extensions["ivr"]
    return {
        "database": lambda: check_database(services),
        "redis": lambda: check_redis(services),
        "flows": lambda: check_flows(setup),
        "speech": lambda: check_speech(setup),
        "telephony": lambda: check_telephony(services),
    }


def run_checks(app: Flask, timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, CheckResult]:
    """Run every readiness check of ``app`` in parallel, each given ``timeout_s``."""
    probes: _Probes = app.extensions.setdefault("health_probes", _Probes())
    results: dict[str, CheckResult] = {}
    threads: dict[str, tuple[threading.Thread, float]] = {}
    for name, check in readiness_checks(app).items():
        with probes.lock:
            since = probes.running.get(name)
            if since is None:
                probes.running[name] = time.monotonic()
        if since is not None:
            waited = time.monotonic() - since
            results[name] = CheckResult(False, error=f"still running since {waited:.0f} s ago")
            continue
        thread = threading.Thread(target=_run_one, args=(probes, name, check, results), daemon=True)
        threads[name] = (thread, time.monotonic())
        thread.start()
    deadline = time.monotonic() + timeout_s
    for name, (thread, started) in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            elapsed = (time.monotonic() - started) * 1000
            results[name] = CheckResult(False, error=f"timed out after {timeout_s:g} s", ms=elapsed)
    return {name: results[name] for name in readiness_checks(app) if name in results}


def _run_one(
    probes: _Probes,
    name: str,
    check: Callable[[], dict[str, Any]],
    results: dict[str, CheckResult],
) -> None:
    started = time.monotonic()
    try:
        detail = check()
        result = CheckResult(True, detail)
    except Exception as exc:  # noqa: BLE001 - every failure of a dependency is "not ready"
        result = CheckResult(False, error=_describe(exc))
    finally:
        with probes.lock:
            probes.running.pop(name, None)
    result.ms = (time.monotonic() - started) * 1000
    results.setdefault(name, result)


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness probe (no signature, no database)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness probe: 200 when every check passes, else 503 naming the failing ones."""
    results = run_checks(current_app)
    failing = [name for name, result in results.items() if not result.ok]
    body = {
        "status": "ready" if not failing else "unavailable",
        "failing": failing,
        "checks": {name: result.to_dict() for name, result in results.items()},
    }
    if failing:
        log.warning("not ready: %s", "; ".join(f"{n}: {results[n].error}" for n in failing))
    return jsonify(body), 503 if failing else 200


# ---------------------------------------------------------------------- metrics


class RqCollector(Collector):
    """RQ at scrape time: jobs waiting, running, scheduled and failed per queue; workers."""

    def __init__(self, redis_url: str, known_queues: Iterable[str] = KNOWN_QUEUES) -> None:
        self.redis_url = redis_url
        self.known_queues = tuple(known_queues)

    def collect(self) -> Iterable[Metric]:
        """Read the queues (one pipelined round trip after the queue list)."""
        client = probe_redis(self.redis_url)
        up = GaugeMetricFamily("contactcenter_rq_up", "1 when RQ's Redis answered the scrape.")
        try:
            names = sorted(set(self.known_queues) | {q.name for q in Queue.all(client)})
            pipe = client.pipeline(transaction=False)
            for queue_name in names:
                queue = Queue(queue_name, connection=client)
                pipe.llen(queue.key)
                for registry in (StartedJobRegistry, ScheduledJobRegistry, FailedJobRegistry):
                    pipe.zcard(registry(queue=queue).key)
            pipe.scard(Worker.redis_workers_keys)
            counts = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - a scrape reports Redis down, never a 500
            log.warning("metrics: RQ not readable: %s", _describe(exc))
            up.add_metric([], 0)
            yield up
            return
        finally:
            client.close()
        up.add_metric([], 1)
        yield up
        families = [
            GaugeMetricFamily(
                "contactcenter_rq_jobs", "Jobs waiting in an RQ queue.", labels=["queue"]
            ),
            GaugeMetricFamily("contactcenter_rq_jobs_started", "Jobs running.", labels=["queue"]),
            GaugeMetricFamily(
                "contactcenter_rq_jobs_scheduled", "Jobs scheduled for later.", labels=["queue"]
            ),
            GaugeMetricFamily(
                "contactcenter_rq_jobs_failed", "Jobs in the failed registry.", labels=["queue"]
            ),
        ]
        for index, queue_name in enumerate(names):
            for offset, family in enumerate(families):
                family.add_metric([queue_name], int(counts[index * 4 + offset]))
        yield from families
        workers = GaugeMetricFamily("contactcenter_rq_workers", "RQ workers registered.")
        workers.add_metric([], int(counts[-1]))
        yield workers


class CallsInProgressCollector(Collector):
    """Calls in progress at scrape time: IVR sessions in Redis not yet ended (an ended
    call's session expires within :data:`ENDED_SESSION_TTL_S`)."""

    def __init__(self, redis_url: str, prefix: str = SESSION_PREFIX) -> None:
        self.redis_url = redis_url
        self.prefix = prefix

    def collect(self) -> Iterable[Metric]:
        """Scan the session keys and read their TTLs (pipelined per batch of the scan)."""
        gauge = GaugeMetricFamily(
            "contactcenter_calls_in_progress", "Calls with a live IVR session (from Redis)."
        )
        client = probe_redis(self.redis_url)
        try:
            live = 0
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                if b":" not in key[len(self.prefix) :]:  # the session, not its response/claims
                    batch.append(key)
                if len(batch) >= 1000:
                    live += self._live(client, batch)
                    batch = []
            live += self._live(client, batch)
        except Exception as exc:  # noqa: BLE001 - a scrape reports nothing, never a 500
            log.warning("metrics: call sessions not readable: %s", _describe(exc))
            return
        finally:
            client.close()
        gauge.add_metric([], live)
        yield gauge

    @staticmethod
    def _live(client: Redis, keys: list[bytes]) -> int:
        if not keys:
            return 0
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        return sum(1 for ttl in pipe.execute() if int(ttl) > ENDED_SESSION_TTL_S)


def _authorized(token: str | None) -> bool:
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus text exposition (``METRICS_TOKEN``: bearer token required)."""
    services: Services = current_app.extensions["services"]
    if not _authorized(services.settings.metrics_token):
        response = jsonify(error={"code": "unauthorized", "message": "a bearer token is required"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    url = services.settings.redis_url
    body, content_type = exposition([RqCollector(url), CallsInProgressCollector(url)])
    return Response(body, content_type=content_type)


# ---------------------------------------------------------------------- request hooks


def _start_request() -> None:
    """Bind the request's log context and start its clock."""
    g.observability_started = time.perf_counter()
    request_id = new_request_id(request.headers.get(_REQUEST_ID_HEADER))
    g.request_id = request_id
    call_sid = request.args.get("CallSid")
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    size = request.content_length
    if (
        call_sid is None
        and request.mimetype == "application/x-www-form-urlencoded"
        and size is not None
        and size <= limit
    ):
        call_sid = request.form.get("CallSid") or request.form.get("MessageSid")
    attempt = request.args.get("attempt", "")
    bind_log_context(
        fresh=True,
        request_id=request_id,
        call_sid=call_sid[:64] if call_sid else None,
        attempt_id=int(attempt) if attempt.isdigit() and len(attempt) < 12 else None,
    )


def _finish_request(response: Response) -> Response:
    """Observe the latency, write the access line, echo the request id."""
    started = g.get("observability_started")
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    if g.get("request_id"):
        response.headers.setdefault(_REQUEST_ID_HEADER, g.request_id)
    if started is None or route == MEDIA_STREAM_PATH:
        return response  # a websocket's duration is the stream's, not a latency
    seconds = time.perf_counter() - started
    observe_request(route, request.method, response.status_code, seconds)
    if route not in QUIET_ROUTES:
        access_log.info(
            "%s %s %s %.1f ms",
            request.method,
            route,
            response.status_code,
            seconds * 1000,
            extra={
                "route": route,
                "method": request.method,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
    return response


def _end_request(_exc: BaseException | None) -> None:
    clear_log_context()


def init_app(app: Flask) -> None:
    """Register the blueprint and the request hooks on ``app`` (the clock starts before
    any other ``before_request`` hook, so refused requests are measured too)."""
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
