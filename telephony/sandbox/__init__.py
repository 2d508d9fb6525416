"""A local Twilio: TwiML interpreter, status callbacks, AMD, SMS, Media Streams, REST.

See ``telephony/README.md`` for the scenario format and how tests use it.
"""

from telephony.sandbox.clock import Clock, RealClock, VirtualClock
from telephony.sandbox.interpreter import (
    CallBehaviour,
    CallerAction,
    CallUpdate,
    InputRequest,
    LiveCall,
    TranscriptEntry,
)
from telephony.sandbox.provider import (
    SANDBOX_ACCOUNT_SID,
    CallRecord,
    DeliveryPolicy,
    MessageRecord,
    Recording,
    SandboxProvider,
    SentCallback,
)
from telephony.sandbox.scenario import CallOutcome, Scenario, ScenarioError, SmsOutcome
from telephony.sandbox.state import CallState, MemoryCallState, RedisCallState
from telephony.sandbox.transport import HttpTransport, Transport, WebhookResponse, WsgiTransport

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
    "Recording",
    "RedisCallState",
    "SandboxProvider",
    "Scenario",
    "ScenarioError",
    "SentCallback",
    "SmsOutcome",
    "TranscriptEntry",
    "Transport",
    "VirtualClock",
    "WebhookResponse",
    "WsgiTransport",
]
