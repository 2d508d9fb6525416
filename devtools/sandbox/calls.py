"""The call side of the sandbox provider: outbound call lives, updates, recordings.

A call's life follows Twilio: ``initiated``, ``ringing``, then the scripted outcome (busy, no
answer, failed, or answered by a person or a machine, with AMD), the TwiML conversation of a
:class:`~devtools.sandbox.interpreter.LiveCall` with the scripted callee, and ``completed``;
status callbacks carry Twilio's parameters, ``SequenceNumber`` and ``Timestamp``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import format_datetime
from typing import Any

from devtools.sandbox.audio import call_recording_wav
from devtools.sandbox.clock import Clock
from devtools.sandbox.core import SandboxCore
from devtools.sandbox.interpreter import LiveCall
from devtools.sandbox.records import (
    CallRecord,
    Outbox,
    SentCallback,
    StoredRecording,
    call_from_spec,
    call_spec,
)
from devtools.sandbox.scenario import CallOutcome
from devtools.sandbox.state import CallRecordingStart
from devtools.sandbox.twiml import API_VERSION, CallBehaviour, CallerAction, CallUpdate, new_sid
from telephony.base import (
    CallInfo,
    CallStatusUpdate,
    MachineDetection,
    RecordingChannels,
    RecordingInfo,
    check_call_arguments,
    check_update_arguments,
)
from telephony.errors import CallNotFound, ProviderRejected
from telephony.status import DEFAULT_STATUS_EVENTS, TERMINAL_CALL_STATUSES

log = logging.getLogger(__name__)


def _rfc2822(clock: Clock) -> str:
    return format_datetime(clock.now())


class SandboxCalls(SandboxCore):
    """Outbound calls of the sandbox provider (``place_call``, ``update_call``, recordings)."""

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
            self._enqueue("devtools.sandbox.jobs.run_sandbox_call", call_spec(record))
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

    def fetch_call(self, sid: str) -> CallInfo:
        """A call's status now (``GET /Calls/{sid}.json``); its duration once it has ended."""
        status = self.state.get_status(sid)
        if status is None:
            raise CallNotFound(f"call {sid} was not found", code=20404, status=404)
        record = self.calls.get(sid)
        ended = status in TERMINAL_CALL_STATUSES
        duration = record.duration_s if record is not None and ended else None
        return CallInfo(sid, status, duration)

    def start_recording(
        self,
        call_sid: str,
        *,
        status_callback: str | None,
        channels: RecordingChannels = "dual",
    ) -> RecordingInfo:
        """Record a call in progress (any process sharing the state); the recording is
        stored and its status callback posted when the call completes.

        Like Twilio: an unknown call is a 20404; a call not in progress (queued, ringing, or
        over) is refused with 21220, as is a second recording of the same call.
        """
        if channels not in ("mono", "dual"):
            raise ValueError("channels must be 'mono' or 'dual'")
        current = self.state.get_status(call_sid)
        if current is None:
            raise CallNotFound(f"call {call_sid} was not found", code=20404, status=404)
        if current != "in-progress":
            raise CallNotFound(
                f"call {call_sid} is not in progress ({current})", code=21220, status=400
            )
        sid = new_sid("RE")
        if not self.state.start_call_recording(
            call_sid, CallRecordingStart(sid, status_callback, channels)
        ):
            raise ProviderRejected("the call is already being recorded", code=21220, status=400)
        return RecordingInfo(sid=sid, call_sid=call_sid, status="in-progress")

    def _finish_recording(self, record: CallRecord, duration: int, outbox: Outbox) -> None:
        started = self.state.take_call_recording(record.sid)
        if started is None:
            return
        sid, callback = started.sid, started.callback
        count = 2 if started.channels == "dual" else 1
        self._store_recording(sid, record.sid, call_recording_wav(duration, count), duration)
        if callback:
            outbox.emit(
                callback,
                {
                    "AccountSid": self.account_sid,
                    "CallSid": record.sid,
                    "RecordingSid": sid,
                    "RecordingUrl": f"{self.api_base_url}/{API_VERSION}/Accounts/"
                    f"{self.account_sid}/Recordings/{sid}",
                    "RecordingStatus": "completed",
                    "RecordingDuration": str(duration),
                    "RecordingChannels": str(count),
                    "RecordingSource": "StartCallRecordingAPI",
                },
            )

    def run_call_spec(self, spec: Mapping[str, Any]) -> CallRecord:
        """Run the life of a call placed in another process (the RQ job body)."""
        record = call_from_spec(spec)
        record.outcome = self.scenario.call_outcome(record.to, record.attempt)
        with self._lock:
            self.calls[record.sid] = record
        self._run_call(record)
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
        outbox = Outbox(self._send, record.callbacks, self.delivery, record.delivery_key)
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
            self._progress(record, outcome, event, outbox)
        finally:
            outbox.flush()

    def _pending_update(self, record: CallRecord) -> CallUpdate | None:
        update = self.state.pop_update(record.sid)
        if update is not None and not update.status:
            record.url, record.twiml = update.url, update.twiml
            return None
        return update

    def _progress(
        self,
        record: CallRecord,
        outcome: CallOutcome,
        event: Callable[..., None],
        outbox: Outbox,
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
        self._finish_recording(record, live.duration_s, outbox)
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
            self.recordings[sid] = StoredRecording(sid, call_sid, wav, duration)
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


def drive(live: LiveCall, inputs: Iterator[CallerAction]) -> None:
    """Run ``live`` to its end, answering every input request from ``inputs``."""
    conversation = live.run()
    try:
        next(conversation)
        while True:
            conversation.send(next(inputs))
    except StopIteration:
        return
