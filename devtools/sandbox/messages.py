"""The SMS side of the sandbox provider: outbound messages, inbound SMS, opt-outs.

An outbound message goes ``queued`` → ``sent`` → ``delivered`` (or the scripted ``failed`` /
``undelivered`` with its error code), each a status callback; an inbound SMS is posted to our
webhook with Twilio's parameters, and Twilio's Advanced Opt-Out keywords (STOP, START, HELP
…) set ``OptOutType`` and block or unblock later sends to that number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devtools.sandbox.core import SandboxCore
from devtools.sandbox.records import MessageRecord, Outbox
from devtools.sandbox.scenario import SmsOutcome
from devtools.sandbox.transport import WebhookResponse, signed_request
from devtools.sandbox.twiml import API_VERSION, new_sid
from telephony.base import MessageInfo
from telephony.errors import CallNotFound, OptedOut, ProviderRejected
from telephony.sms import count_segments

# Twilio's default Advanced Opt-Out keywords (matched on the whole trimmed body).
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
MAX_SMS_CHARS = 1600


class SandboxMessages(SandboxCore):
    """SMS of the sandbox provider (``send_sms``, ``receive_sms``, opt-outs)."""

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
        self.state.set_status(record.sid, "queued")
        if self.mode == "rq":
            self._enqueue(
                "devtools.sandbox.jobs.run_sandbox_sms",
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

    def fetch_message(self, sid: str) -> MessageInfo:
        """A message's status now (``GET /Messages/{sid}.json``)."""
        status = self.state.get_status(sid)
        if status is None:
            raise CallNotFound(f"message {sid} was not found", code=20404, status=404)
        record = self.messages.get(sid)
        return MessageInfo(sid, status, record.segments if record is not None else 1)

    def _sms_life(self, record: MessageRecord, outcome: SmsOutcome) -> None:
        outbox = Outbox(self._send, record.callbacks, self.delivery, record.delivery_key)

        def event(status: str, error_code: int | None = None) -> None:
            record.status = status
            record.error_code = error_code
            self.state.set_status(record.sid, status)
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
