"""The sandbox provider's plumbing: construction, scheduling of lives, signed callbacks.

:class:`SandboxCore` is shared by the call side (:mod:`devtools.sandbox.calls`) and the
message side (:mod:`devtools.sandbox.messages`) of
:class:`~devtools.sandbox.provider.SandboxProvider`: its settings, the records, the clock and
shared state, where a call's or message's life runs (inline, a thread pool or an RQ job) and
how a callback is signed and posted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Literal

from contactcenter.phones import InvalidPhoneError, normalize_phone
from devtools.sandbox.clock import Clock, VirtualClock
from devtools.sandbox.media import WsConnect, default_ws_connect
from devtools.sandbox.records import (
    SANDBOX_ACCOUNT_SID,
    TWILIO_API_BASE,
    CallRecord,
    DeliveryPolicy,
    MessageRecord,
    StoredRecording,
)
from devtools.sandbox.scenario import Scenario
from devtools.sandbox.state import CallState, MemoryCallState
from devtools.sandbox.transport import Transport, WebhookTransportError, signed_request
from telephony.errors import InvalidNumber

log = logging.getLogger(__name__)


class SandboxCore:
    """Settings, records and plumbing of a sandbox provider (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        auth_token: str,
        *,
        account_sid: str = SANDBOX_ACCOUNT_SID,
        api_base_url: str = TWILIO_API_BASE,
        scenario: Scenario | None = None,
        clock: Clock | None = None,
        mode: Literal["inline", "thread", "rq"] = "inline",
        max_workers: int = 4,
        state: CallState | None = None,
        delivery: DeliveryPolicy | None = None,
        ws_connect: WsConnect = default_ws_connect,
        realtime: bool = False,
        queue: Any = None,
        scenario_path: str | None = None,
    ) -> None:
        if not auth_token:
            raise ValueError("the sandbox needs an auth token to sign webhooks")
        if mode not in ("inline", "thread", "rq"):
            raise ValueError("mode must be 'inline', 'thread' or 'rq'")
        if mode == "rq" and queue is None:
            raise ValueError("mode 'rq' needs an rq.Queue")
        if scenario is not None and scenario_path is not None:
            raise ValueError("give a scenario or a scenario_path, not both")
        self.transport = transport
        self.auth_token = auth_token
        self.account_sid = account_sid
        self.api_base_url = api_base_url.rstrip("/")
        self.scenario_path = scenario_path
        self.scenario = scenario or (
            Scenario.from_yaml(scenario_path) if scenario_path else Scenario()
        )
        self.queue = queue
        self.clock: Clock = clock or VirtualClock()
        self.mode = mode
        self.max_workers = max_workers
        self.state: CallState = state or MemoryCallState()
        self.delivery = delivery or DeliveryPolicy()
        self.ws_connect = ws_connect
        self.realtime = realtime
        self.calls: dict[str, CallRecord] = {}
        self.messages: dict[str, MessageRecord] = {}
        self.recordings: dict[str, StoredRecording] = {}
        self._counter = 0
        self._pending: list[Callable[[], None]] = []
        self._futures: list[Future[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()

    # -- plumbing ---------------------------------------------------------------------

    def _schedule(self, job: Callable[[], None]) -> None:
        if self.mode == "inline":
            with self._lock:
                self._pending.append(job)
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="sandbox-call"
                )
            self._futures.append(self._executor.submit(job))

    def run_until_idle(self) -> int:
        """Run every queued call and message life (inline mode); returns how many ran."""
        ran = 0
        while True:
            with self._lock:
                if not self._pending:
                    return ran
                job = self._pending.pop(0)
            job()
            ran += 1

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait for background lives (thread mode) and re-raise the first failure."""
        with self._lock:
            futures, self._futures = list(self._futures), []
        done, not_done = wait_futures(futures, timeout=timeout_s)
        if not_done:
            raise TimeoutError(f"{len(not_done)} sandbox calls still running after {timeout_s}s")
        for future in done:
            future.result()
        self.run_until_idle()

    def close(self) -> None:
        """Stop the thread pool (thread mode)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _send(self, url: str, params: dict[str, str]) -> int | None:
        try:
            resp = signed_request(self.transport, self.auth_token, "POST", url, params)
        except WebhookTransportError as exc:
            log.warning("sandbox callback to %s failed: %s", url, exc)
            return None
        if not resp.ok:
            log.warning("sandbox callback to %s answered HTTP %s", url, resp.status)
        return resp.status

    def _number(self, raw: str, code: int, what: str) -> str:
        try:
            return normalize_phone(raw, require_russian=False)
        except InvalidPhoneError as exc:
            message = f"The '{what}' number {raw} is not valid: {exc}"
            raise InvalidNumber(message, code=code, status=400) from None

    def _delivery_key(self) -> str:
        # The n-th call or message of this provider: deterministic, unlike the random SIDs.
        with self._lock:
            self._counter += 1
            return str(self._counter)

    def _next_attempt(self, number: str) -> int:
        return self.state.next_attempt(number)

    def _enqueue(self, function: str, spec: dict[str, Any]) -> None:
        spec = {**spec, "scenario_path": self.scenario_path}
        self.queue.enqueue(function, spec, job_id=f"sandbox-{spec['sid']}", result_ttl=3600)
