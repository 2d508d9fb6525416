"""A local Twilio: TwiML interpreter, status callbacks, AMD, SMS, Media Streams, REST.

See ``devtools/README.md`` for the scenario format and how tests use it.
"""

from devtools.sandbox.clock import Clock, RealClock, VirtualClock
from devtools.sandbox.interpreter import LiveCall
from devtools.sandbox.provider import SandboxProvider
from devtools.sandbox.records import (
    SANDBOX_ACCOUNT_SID,
    CallRecord,
    DeliveryPolicy,
    MessageRecord,
    SentCallback,
    StoredRecording,
)
from devtools.sandbox.scenario import CallOutcome, Scenario, ScenarioError, SmsOutcome
from devtools.sandbox.state import CallState, MemoryCallState, RedisCallState
from devtools.sandbox.transport import HttpTransport, Transport, WebhookResponse, WsgiTransport
from devtools.sandbox.twiml import (
    CallBehaviour,
    CallerAction,
    CallUpdate,
    InputRequest,
    TranscriptEntry,
)

__all__ = [
    "SANDBOX_ACCOUNT_SID",
    "CallBehaviour",
    "CallOutcome",
    "CallRecord",
    "CallState",
    "CallUpdate",
    "CallerAction",
    "Clock",
    "DeliveryPolicy",
    "HttpTransport",
    "InputRequest",
    "LiveCall",
    "MemoryCallState",
    "MessageRecord",
    "RealClock",
    "RedisCallState",
    "SandboxProvider",
    "Scenario",
    "ScenarioError",
    "SentCallback",
    "SmsOutcome",
    "StoredRecording",
    "TranscriptEntry",
    "Transport",
    "VirtualClock",
    "WebhookResponse",
    "WsgiTransport",
]
