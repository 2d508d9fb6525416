"""A load client that calls like Twilio: signed webhooks, TwiML followed, keys pressed.

Each simulated caller is a thread: it posts ``/voice/incoming`` (``CallSid``, ``From``,
``To``, ``CallStatus``…) signed with ``X-Twilio-Signature`` exactly as Twilio signs (the
SDK's :class:`~twilio.request_validator.RequestValidator`), reads the TwiML answer and
follows it as Twilio would: a ``<Gather>`` is answered after a pause with the next key of
the caller's script (posted to the Gather's ``action``), a ``<Redirect>`` is fetched at
once, anything else (``<Hangup>``, ``<Enqueue>``, ``<Dial>``, a document with nothing
left to do) ends the call, which then gets its ``completed`` status callback. A caller
whose keys are used up hangs up. Every request's latency is kept per route (the URL's
path), with its HTTP status; a 5xx or a connection error counts as an error.

The same client drives our application and the bare baseline (:mod:`bench.baseline_app`),
so the two are compared request for request.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import ParseError

import requests
from defusedxml import ElementTree
from twilio.request_validator import RequestValidator

#: How long one request may take before it counts as an error.
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Sample:
    """One request: its route, status (0: no answer) and latency."""

    route: str
    status: int
    seconds: float


@dataclass
class LoadResult:
    """What a run measured."""

    samples: list[Sample] = field(default_factory=list)
    calls: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def routes(self) -> list[str]:
        """The routes seen, most requested first."""
        counts: dict[str, int] = defaultdict(int)
        for s in self.samples:
            counts[s.route] += 1
        return sorted(counts, key=lambda r: -counts[r])

    def latencies(self, route: str | None = None) -> list[float]:
        """Latencies (s) of the successful requests of ``route`` (every route: None)."""
        return sorted(
            s.seconds
            for s in self.samples
            if (route is None or s.route == route) and 0 < s.status < 500
        )

    def error_count(self) -> int:
        """Requests answered 5xx or not at all."""
        return sum(1 for s in self.samples if s.status == 0 or s.status >= 500)

    def throughput(self) -> float:
        """Requests per second over the run."""
        return len(self.samples) / self.wall_s if self.wall_s else 0.0


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) of sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean in milliseconds."""
    return {
        "n": float(len(values)),
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "mean": (statistics.fmean(values) * 1000) if values else float("nan"),
    }


@dataclass(frozen=True)
class LoadPlan:
    """Who calls, how often and what they press."""

    base_url: str
    auth_token: str
    callers: Sequence[str]
    keys: Sequence[str]
    to: str = "+78001234567"
    pause_s: tuple[float, float] = (2.0, 5.0)
    concurrency: int = 200
    duration_s: float = 60.0
    seed: int = 1
    max_calls: int | None = None
    """Stop placing calls after this many (all callers together); None: only the time."""


class _Caller:
    def __init__(
        self, plan: LoadPlan, result: LoadResult, lock: threading.Lock, rng: random.Random
    ):
        self.plan = plan
        self.result = result
        self.lock = lock
        self.rng = rng
        self.http = requests.Session()
        self.signer = RequestValidator(plan.auth_token)

    def _post(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        headers = {"X-Twilio-Signature": self.signer.compute_signature(url, params)}
        route = urlsplit(url).path
        started = time.perf_counter()
        try:
            answer = self.http.post(url, data=params, headers=headers, timeout=REQUEST_TIMEOUT_S)
            status, body = answer.status_code, answer.text
        except requests.RequestException as exc:
            status, body = 0, ""
            with self.lock:
                self.result.errors.append(f"{route}: {type(exc).__name__}")
        elapsed = time.perf_counter() - started
        with self.lock:
            self.result.samples.append(Sample(route, status, elapsed))
            if status >= 500:
                self.result.errors.append(f"{route}: HTTP {status}")
        return status, body

    def call(self, phone: str, stop_at: float) -> None:
        sid = "CA" + uuid.uuid4().hex
        base = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": sid,
            "From": phone,
            "To": self.plan.to,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        started = time.monotonic()
        url = urljoin(self.plan.base_url, "/voice/incoming")
        params = {**base, "CallStatus": "ringing"}
        keys = list(self.plan.keys)
        for _ in range(50):  # a guard against a loop of redirects
            status, body = self._post(url, params)
            if status != 200:
                break
            nxt = _next_request(body)
            if nxt is None:
                break
            kind, target = nxt
            url = urljoin(url, target)
            params = {**base, "CallStatus": "in-progress"}
            if kind == "gather":
                if not keys or time.monotonic() >= stop_at:
                    break
                low, high = self.plan.pause_s
                if high > 0:
                    time.sleep(self.rng.uniform(low, high))
                params["Digits"] = keys.pop(0)
        duration = str(max(1, round(time.monotonic() - started)))
        self._post(
            urljoin(self.plan.base_url, "/voice/status"),
            {**base, "CallStatus": "completed", "CallDuration": duration},
        )
        with self.lock:
            self.result.calls += 1


def _next_request(twiml: str) -> tuple[str, str] | None:
    """("gather", action) or ("redirect", url) of a TwiML document; None: the call ends."""
    try:
        root = ElementTree.fromstring(twiml)
    except ParseError:
        return None
    for element in root:
        if element.tag == "Gather":
            return ("gather", element.get("action") or "")
        if element.tag == "Redirect":
            return ("redirect", (element.text or "").strip())
        if element.tag in ("Hangup", "Enqueue", "Dial", "Reject", "Connect"):
            return None
    return None


def run_load(plan: LoadPlan, progress: Callable[[str], None] | None = None) -> LoadResult:
    """Run ``plan.concurrency`` callers for ``plan.duration_s``: each places calls one after
    another (a new caller number each time, round robin) until the time is up."""
    result = LoadResult()
    lock = threading.Lock()
    stop_at = time.monotonic() + plan.duration_s
    numbers = list(plan.callers)
    counter = [0]

    def caller_loop(index: int) -> None:
        rng = random.Random(plan.seed * 100_003 + index)
        caller = _Caller(plan, result, lock, rng)
        # spread the first calls over the first pause so they do not arrive in one burst
        if plan.pause_s[1] > 0:
            time.sleep(rng.uniform(0, plan.pause_s[1]))
        while time.monotonic() < stop_at:
            with lock:
                if plan.max_calls is not None and counter[0] >= plan.max_calls:
                    break
                phone = numbers[counter[0] % len(numbers)]
                counter[0] += 1
            caller.call(phone, stop_at)
        caller.http.close()

    threads = [
        threading.Thread(target=caller_loop, args=(i,), daemon=True)
        for i in range(plan.concurrency)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        if progress is not None and int(time.perf_counter() - started) % 30 == 0:
            with lock:
                progress(f"{result.calls} calls, {len(result.samples)} requests")
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - started
    return result
