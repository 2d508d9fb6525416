"""The sandbox provider: a local Twilio that calls our webhooks like the real one.

``place_call`` returns at once with a ``queued`` call; the call's life (status callbacks in
Twilio's order, AMD, the TwiML conversation with a scripted callee) runs

* ``mode="inline"`` — when the test calls :meth:`SandboxProvider.run_until_idle`;
* ``mode="thread"`` — in a background thread pool (:meth:`SandboxProvider.wait_idle` joins);
* ``mode="rq"`` — as an RQ job (:func:`telephony.sandbox.jobs.run_sandbox_call`) on the
  ``telephony`` queue, for processes that cannot keep threads alive (RQ work horses exit
  after each job). The job rebuilds the provider from the environment and posts the
  webhooks over HTTP to ``PUBLIC_BASE_URL``.

Live-call status and pending ``update_call`` requests live in a :class:`CallState`
(in memory, or in Redis so another process can redirect or end a call). Time is a
:class:`Clock`; the default virtual clock makes ringing and prompts take no real time.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any, Literal

from contactcenter.phones import InvalidPhoneError, normalize_phone
from telephony.base import (
    CallInfo,
    CallStatusUpdate,
    MachineDetection,
    MessageInfo,
    check_call_arguments,
    check_update_arguments,
)
from telephony.errors import CallNotFound, InvalidNumber, OptedOut, ProviderRejected
from telephony.sandbox.clock import Clock, VirtualClock
from telephony.sandbox.interpreter import (
    API_VERSION,
    CallBehaviour,
    CallerAction,
    CallUpdate,
    LiveCall,
    new_sid,
)
from telephony.sandbox.media import WsConnect, default_ws_connect
from telephony.sandbox.scenario import CallOutcome, Scenario, SmsOutcome
from telephony.sandbox.state import CallState, MemoryCallState
from telephony.sandbox.transport import (
    Transport,
    WebhookResponse,
    WebhookTransportError,
    signed_request,
)
from telephony.status import DEFAULT_STATUS_EVENTS, TERMINAL_CALL_STATUSES

log = logging.getLogger(__name__)

SANDBOX_ACCOUNT_SID = "AC" + "5a" * 16
TWILIO_API_BASE = "https://api.twilio.com"

# Twilio's default Advanced Opt-Out keywords (matched on the whole trimmed body).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
MAX_SMS_CHARS = 1600


@dataclass(frozen=True)
class DeliveryPolicy:
    """How status callbacks are delivered: in order (default), reordered and/or duplicated.

    ``reorder`` holds a call's or message's status callbacks until it ends and sends them
    shuffled; ``duplicate_rate`` sends each callback twice with that probability. Both are
    deterministic with ``seed``.
    """

    reorder: bool = False
    duplicate_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")


@dataclass
class SentCallback:
    """A callback the sandbox sent and what our app answered (None: unreachable)."""

    url: str
    params: dict[str, str]
    status: int | None


@dataclass
class CallRecord:
    """A sandbox call and its history."""

    sid: str
    to: str
    from_: str
    direction: str
    url: str | None
    twiml: str | None
    status: str
    status_callback: str | None = None
    status_events: tuple[str, ...] = ("completed",)
    machine_detection: str | None = None
    async_amd: bool = True
    amd_callback: str | None = None
    timeout_s: int = 30
    time_limit_s: int | None = None
    attempt: int = 1
    outcome: CallOutcome | None = None
    answered_by: str | None = None
    duration_s: int = 0
    live: LiveCall | None = None
    callbacks: list[SentCallback] = field(default_factory=list)
    error: str | None = None
    delivery_key: str = ""


@dataclass
class MessageRecord:
    """A sandbox SMS and its history."""

    sid: str
    to: str
    from_: str
    body: str
    status: str
    segments: int
    status_callback: str | None
    attempt: int = 1
    error_code: int | None = None
    callbacks: list[SentCallback] = field(default_factory=list)
    delivery_key: str = ""


@dataclass(frozen=True)
class Recording:
    """A recording made by ``<Record>``: WAV bytes and duration in seconds."""

    sid: str
    call_sid: str
    wav: bytes
    duration_s: int


class _Outbox:
    """Sends one call's or message's callbacks according to the delivery policy."""

    def __init__(
        self,
        send: Callable[[str, dict[str, str]], int | None],
        sent: list[SentCallback],
        policy: DeliveryPolicy,
        key: str,
    ) -> None:
        self._send = send
        self._sent = sent
        self._policy = policy
        self._rng = random.Random(f"{policy.seed}:{key}")  # noqa: S311 - test scheduling
        self._held: list[tuple[str, dict[str, str]]] = []

    def emit(self, url: str, params: dict[str, str]) -> None:
        copies = 2 if self._rng.random() < self._policy.duplicate_rate else 1
        for _ in range(copies):
            if self._policy.reorder:
                self._held.append((url, params))
            else:
                self._deliver(url, params)

    def _deliver(self, url: str, params: dict[str, str]) -> None:
        self._sent.append(SentCallback(url, params, self._send(url, params)))

    def flush(self) -> None:
        held, self._held = self._held, []
        self._rng.shuffle(held)
        for url, params in held:
            self._deliver(url, params)


def _rfc2822(clock: Clock) -> str:
    return format_datetime(clock.now())


class SandboxProvider:
    """:class:`telephony.base.TelephonyProvider` emulating Twilio locally."""

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
        self.recordings: dict[str, Recording] = {}
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

    # -- calls ------------------------------------------------------------------------

    def place_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: MachineDetection | None = None,
        async_amd: bool = True,
        amd_callback: str | None = None,
        timeout_s: int = 30,
        time_limit_s: int | None = None,
        twiml: str | None = None,
    ) -> CallInfo:
        """Queue an outbound call; its life runs later (see the module docstring)."""
        events = check_call_arguments(status_events, machine_detection, timeout_s, time_limit_s)
        to = self._number(to, 21211, "To")
        from_ = self._number(from_, 21212, "From")
        if not url and not twiml:
            raise ProviderRejected("Url or Twiml is required", code=21205, status=400)
        for name, value in (("Url", url), ("StatusCallback", status_callback)):
            if value and not value.startswith(("http://", "https://")):
                raise ProviderRejected(
                    f"{name} is not a valid URL: {value}", code=21205, status=400
                )
        attempt = self._next_attempt(to)
        record = CallRecord(
            sid=new_sid("CA"),
            to=to,
            from_=from_,
            direction="outbound-api",
            url=url or None,
            twiml=twiml,
            status="queued",
            status_callback=status_callback,
            status_events=events or ("completed",),
            machine_detection=machine_detection,
            async_amd=async_amd,
            amd_callback=amd_callback,
            timeout_s=timeout_s,
            time_limit_s=time_limit_s,
            attempt=attempt,
            outcome=self.scenario.call_outcome(to, attempt),
            delivery_key=self._delivery_key(),
        )
        with self._lock:
            self.calls[record.sid] = record
        self.state.set_status(record.sid, "queued")
        if self.mode == "rq":
            self._enqueue("telephony.sandbox.jobs.run_sandbox_call", call_spec(record))
        else:
            self._schedule(lambda: self._run_call(record))
        return CallInfo(record.sid, "queued")

    def update_call(
        self,
        sid: str,
        *,
        url: str | None = None,
        twiml: str | None = None,
        status: CallStatusUpdate | None = None,
    ) -> CallInfo:
        """Redirect a live call, or end it (``completed``/``canceled``)."""
        check_update_arguments(url, twiml, status)
        current = self.state.get_status(sid)
        if current is None:
            raise CallNotFound(f"call {sid} was not found", code=20404, status=404)
        if current in TERMINAL_CALL_STATUSES:
            raise CallNotFound(f"call {sid} is not in progress ({current})", code=21220, status=400)
        self.state.push_update(sid, CallUpdate(url=url, twiml=twiml, status=status))
        return CallInfo(sid, status or current)

    def _enqueue(self, function: str, spec: dict[str, Any]) -> None:
        spec = {**spec, "scenario_path": self.scenario_path}
        self.queue.enqueue(function, spec, job_id=f"sandbox-{spec['sid']}", result_ttl=3600)

    def run_call_spec(self, spec: Mapping[str, Any]) -> CallRecord:
        """Run the life of a call placed in another process (the RQ job body)."""
        record = call_from_spec(spec)
        record.outcome = self.scenario.call_outcome(record.to, record.attempt)
        with self._lock:
            self.calls[record.sid] = record
        self._run_call(record)
        return record

    def run_sms_spec(self, spec: Mapping[str, Any]) -> MessageRecord:
        """Run the life of an SMS sent from another process (the RQ job body)."""
        record = MessageRecord(
            sid=str(spec["sid"]),
            to=str(spec["to"]),
            from_=str(spec["from"]),
            body=str(spec["body"]),
            status="queued",
            segments=int(spec["segments"]),
            status_callback=spec.get("status_callback"),
            attempt=int(spec["attempt"]),
            delivery_key=str(spec["delivery_key"]),
        )
        with self._lock:
            self.messages[record.sid] = record
        self._sms_life(record, self.scenario.sms_outcome(record.to, record.attempt))
        return record

    def _status_params(self, record: CallRecord, status: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "CallSid": record.sid,
            "From": record.from_,
            "To": record.to,
            "Caller": record.from_,
            "Called": record.to,
            "Direction": record.direction,
            "ApiVersion": API_VERSION,
            "CallStatus": status,
        }

    def _run_call(self, record: CallRecord) -> None:
        try:
            self._call_life(record)
        except Exception as exc:
            record.error = str(exc)
            if record.status not in TERMINAL_CALL_STATUSES:
                record.status = "failed"
                self.state.set_status(record.sid, "failed")
            raise

    def _call_life(self, record: CallRecord) -> None:
        outcome = record.outcome or CallOutcome()
        outbox = _Outbox(self._send, record.callbacks, self.delivery, record.delivery_key)
        sequence = iter(range(1_000_000))

        def event(name: str, status: str, **extra: str) -> None:
            record.status = status
            self.state.set_status(record.sid, status)
            if record.status_callback and name in record.status_events:
                params = self._status_params(record, status)
                params.update(
                    SequenceNumber=str(next(sequence)),
                    Timestamp=_rfc2822(self.clock),
                    CallbackSource="call-progress-events",
                )
                params.update(extra)
                outbox.emit(record.status_callback, params)

        try:
            self._progress(record, outcome, event)
        finally:
            outbox.flush()

    def _pending_update(self, record: CallRecord) -> CallUpdate | None:
        update = self.state.pop_update(record.sid)
        if update is not None and not update.status:
            record.url, record.twiml = update.url, update.twiml
            return None
        return update

    def _progress(
        self, record: CallRecord, outcome: CallOutcome, event: Callable[..., None]
    ) -> None:
        event("initiated", "initiated")
        if self._pending_update(record) is not None:
            event("completed", "canceled", CallDuration="0")
            return
        if outcome.answer == "failed":
            event("completed", "failed", CallDuration="0")
            return
        event("ringing", "ringing")
        if outcome.answer == "busy":
            self.clock.sleep(min(outcome.ring_s, 3.0))
            event("completed", "busy", CallDuration="0")
            return
        if outcome.answer == "no-answer" or outcome.ring_s >= record.timeout_s:
            self.clock.sleep(record.timeout_s)
            event("completed", "no-answer", CallDuration="0")
            return
        self.clock.sleep(outcome.ring_s)
        if self._pending_update(record) is not None:
            event("completed", "canceled", CallDuration="0")
            return
        amd: dict[str, str] = {}
        amd_params: dict[str, str] = {}
        if record.machine_detection:
            record.answered_by = outcome.answered_by(record.machine_detection)
            is_machine = record.answered_by.startswith("machine")
            detect_ms = outcome.detection_s * 1000
            if is_machine and record.machine_detection == "DetectMessageEnd":
                detect_ms = outcome.greeting_s * 1000
            amd_params = {
                "AnsweredBy": record.answered_by,
                "MachineDetectionDuration": str(round(detect_ms)),
            }
            if not record.async_amd:
                self.clock.sleep(detect_ms / 1000)
                amd = {"AnsweredBy": record.answered_by}
        answered_at = self.clock.now()
        event("answered", "in-progress", **amd)

        def send_amd() -> None:
            if not amd_params or not record.async_amd:
                return
            if not record.amd_callback:
                log.warning("call %s: AMD without AsyncAmdStatusCallback (21262)", record.sid)
                return
            params = {
                "AccountSid": self.account_sid,
                "CallSid": record.sid,
                **amd_params,
            }
            record.callbacks.append(
                SentCallback(record.amd_callback, params, self._send(record.amd_callback, params))
            )

        live = LiveCall(
            sid=record.sid,
            account_sid=self.account_sid,
            from_=record.from_,
            to=record.to,
            direction=record.direction,
            url=record.url,
            twiml=record.twiml,
            token=self.auth_token,
            transport=self.transport,
            clock=self.clock,
            api_base_url=self.api_base_url,
            first_params=amd,
            behaviour=CallBehaviour(
                hangup_after_s=outcome.hangup_after_s,
                hangup_after_verbs=outcome.hangup_after_verbs,
                dial_status=outcome.dial_status,
                queue_result=outcome.queue_result,
                time_limit_s=record.time_limit_s or 4 * 3600,
            ),
            store_recording=self._store_recording,
            poll_update=lambda: self.state.pop_update(record.sid),
            ws_connect=self.ws_connect,
            realtime=self.realtime,
            answered_at=answered_at,
            after_first_document=send_amd,
        )
        record.live = live
        drive(live, self._callee_inputs(outcome, record.answered_by))
        record.duration_s = live.duration_s
        final = {"CallDuration": str(live.duration_s)}
        if record.answered_by:
            final["AnsweredBy"] = record.answered_by
        event("completed", live.status, **final)

    @staticmethod
    def _callee_inputs(outcome: CallOutcome, answered_by: str | None) -> Iterator[CallerAction]:
        if outcome.answer != "human":
            # Machines, faxes and silent lines never press or say anything.
            while True:
                yield CallerAction.silence()
        yield from outcome.inputs
        while True:
            yield CallerAction.silence()

    def _store_recording(self, sid: str, call_sid: str, wav: bytes, duration: int) -> None:
        with self._lock:
            self.recordings[sid] = Recording(sid, call_sid, wav, duration)
        self.state.put_recording(sid, call_sid, wav, duration)

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        """The WAV bytes of a recording made in the sandbox."""
        sid = recording_url_or_sid.rstrip("/").rsplit("/", 1)[-1]
        for suffix in (".wav", ".mp3", ".json"):
            sid = sid.removesuffix(suffix)
        wav = self.state.get_recording(sid)
        if wav is None:
            raise CallNotFound(f"recording {sid} was not found", code=20404, status=404)
        return wav

    # -- SMS --------------------------------------------------------------------------

    def send_sms(
        self, to: str, from_: str, body: str, *, status_callback: str | None
    ) -> MessageInfo:
        """Queue an SMS; its status callbacks follow (sent → delivered, or a failure)."""
        to = self._number(to, 21211, "To")
        from_ = self._number(from_, 21212, "From")
        if not body:
            raise ProviderRejected("Message body is required", code=21602, status=400)
        if len(body) > MAX_SMS_CHARS:
            raise ProviderRejected("Message body exceeds 1600 characters", code=21617, status=400)
        if self.state.is_opted_out(to, from_):
            raise OptedOut("Attempt to send to unsubscribed recipient", code=21610, status=400)
        from campaigns.sms import count_segments

        attempt = self._next_attempt(f"sms:{to}")
        record = MessageRecord(
            sid=new_sid("SM"),
            to=to,
            from_=from_,
            body=body,
            status="queued",
            segments=count_segments(body)[2],
            status_callback=status_callback,
            attempt=attempt,
            delivery_key=self._delivery_key(),
        )
        with self._lock:
            self.messages[record.sid] = record
        if self.mode == "rq":
            self._enqueue(
                "telephony.sandbox.jobs.run_sandbox_sms",
                {
                    "sid": record.sid,
                    "to": to,
                    "from": from_,
                    "body": body,
                    "segments": record.segments,
                    "status_callback": status_callback,
                    "attempt": attempt,
                    "delivery_key": record.delivery_key,
                },
            )
        else:
            outcome = self.scenario.sms_outcome(to, attempt)
            self._schedule(lambda: self._sms_life(record, outcome))
        return MessageInfo(record.sid, "queued", record.segments)

    def _sms_life(self, record: MessageRecord, outcome: SmsOutcome) -> None:
        outbox = _Outbox(self._send, record.callbacks, self.delivery, record.delivery_key)

        def event(status: str, error_code: int | None = None) -> None:
            record.status = status
            record.error_code = error_code
            if not record.status_callback:
                return
            params = {
                "AccountSid": self.account_sid,
                "MessageSid": record.sid,
                "SmsSid": record.sid,
                "From": record.from_,
                "To": record.to,
                "MessageStatus": status,
                "SmsStatus": status,
                "ApiVersion": API_VERSION,
            }
            if error_code is not None:
                params["ErrorCode"] = str(error_code)
            outbox.emit(record.status_callback, params)

        try:
            self.clock.sleep(1)
            if outcome.status == "failed":
                event("failed", outcome.error_code)
                return
            event("sent")
            self.clock.sleep(2)
            if outcome.status == "undelivered":
                event("undelivered", outcome.error_code)
            else:
                event("delivered")
        finally:
            outbox.flush()

    def receive_sms(self, from_: str, to: str, body: str, url: str) -> WebhookResponse:
        """An SMS from a subscriber to our number: post Twilio's inbound webhook to ``url``.

        Twilio's Advanced Opt-Out keywords set ``OptOutType`` and (un)block later sends.
        """
        from_ = self._number(from_, 21211, "From")
        to = self._number(to, 21211, "To")
        keyword = body.strip().upper()
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": new_sid("SM"),
            "SmsSid": "",
            "SmsMessageSid": "",
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        params["SmsSid"] = params["SmsMessageSid"] = params["MessageSid"]
        if keyword in OPT_OUT_KEYWORDS:
            params["OptOutType"] = "STOP"
            self.state.set_opted_out(from_, to, True)
        elif keyword in OPT_IN_KEYWORDS:
            params["OptOutType"] = "START"
            self.state.set_opted_out(from_, to, False)
        elif keyword in HELP_KEYWORDS:
            params["OptOutType"] = "HELP"
        return signed_request(self.transport, self.auth_token, "POST", url, params)

    def is_opted_out(self, number: str, sender: str) -> bool:
        """Whether ``number`` replied STOP to ``sender``."""
        return self.state.is_opted_out(number, sender)


def drive(live: LiveCall, inputs: Iterator[CallerAction]) -> None:
    """Run ``live`` to its end, answering every input request from ``inputs``."""
    conversation = live.run()
    try:
        next(conversation)
        while True:
            conversation.send(next(inputs))
    except StopIteration:
        return


def call_info_json(record: CallRecord, account_sid: str) -> dict[str, Any]:
    """The REST representation of a sandbox call (a subset of Twilio's Call resource)."""
    return {
        "sid": record.sid,
        "account_sid": account_sid,
        "to": record.to,
        "from": record.from_,
        "status": record.status,
        "direction": record.direction,
        "answered_by": record.answered_by,
        "duration": str(record.duration_s) if record.status in TERMINAL_CALL_STATUSES else None,
        "api_version": API_VERSION,
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{record.sid}.json",
    }


def message_info_json(record: MessageRecord, account_sid: str) -> dict[str, Any]:
    """The REST representation of a sandbox message (a subset of Twilio's Message resource)."""
    return {
        "sid": record.sid,
        "account_sid": account_sid,
        "to": record.to,
        "from": record.from_,
        "body": record.body,
        "status": record.status,
        "num_segments": str(record.segments),
        "direction": "outbound-api",
        "error_code": record.error_code,
        "api_version": API_VERSION,
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{record.sid}.json",
    }


def call_spec(record: CallRecord) -> dict[str, Any]:
    """What an RQ job needs to run a call placed in another process (JSON-safe)."""
    return {
        "sid": record.sid,
        "to": record.to,
        "from": record.from_,
        "url": record.url,
        "twiml": record.twiml,
        "status_callback": record.status_callback,
        "status_events": list(record.status_events),
        "machine_detection": record.machine_detection,
        "async_amd": record.async_amd,
        "amd_callback": record.amd_callback,
        "timeout_s": record.timeout_s,
        "time_limit_s": record.time_limit_s,
        "attempt": record.attempt,
        "delivery_key": record.delivery_key,
    }


def call_from_spec(spec: Mapping[str, Any]) -> CallRecord:
    """The :class:`CallRecord` of a :func:`call_spec`."""
    return CallRecord(
        sid=str(spec["sid"]),
        to=str(spec["to"]),
        from_=str(spec["from"]),
        direction="outbound-api",
        url=spec.get("url"),
        twiml=spec.get("twiml"),
        status="queued",
        status_callback=spec.get("status_callback"),
        status_events=tuple(spec.get("status_events") or ("completed",)),
        machine_detection=spec.get("machine_detection"),
        async_amd=bool(spec.get("async_amd", True)),
        amd_callback=spec.get("amd_callback"),
        timeout_s=int(spec.get("timeout_s", 30)),
        time_limit_s=spec.get("time_limit_s"),
        attempt=int(spec.get("attempt", 1)),
        delivery_key=str(spec.get("delivery_key", "")),
    )
