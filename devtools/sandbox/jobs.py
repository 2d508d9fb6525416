"""RQ jobs that run sandbox call and SMS lives (``SandboxProvider(mode="rq")``).

A worker must listen on the ``telephony`` queue (``rq worker telephony …``). Each job
rebuilds a sandbox provider from the environment (:func:`contactcenter.services.current_services`):
webhooks go over HTTP to ``PUBLIC_BASE_URL``, signed with the sandbox token, and live-call
state is in Redis so the web process can redirect or end the call. The scenario is the one
of the provider that placed the call or sent the SMS (its ``SANDBOX_SCENARIO``, carried in the
job), so every process agrees on the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contactcenter.services import current_services
from devtools.sandbox.provider import SandboxProvider
from devtools.sandbox.state import RedisCallState
from devtools.sandbox.transport import HttpTransport
from telephony.base import TELEPHONY_QUEUE

QUEUE_NAME = TELEPHONY_QUEUE


def _provider(spec: Mapping[str, Any]) -> SandboxProvider:
    services = current_services()
    return SandboxProvider(
        HttpTransport(),
        services.settings.sandbox_auth_token,
        state=RedisCallState(services.redis),
        scenario_path=spec.get("scenario_path"),
    )


def run_sandbox_call(spec: dict[str, Any]) -> str:
    """Run one outbound sandbox call to its end; returns its final status."""
    record = _provider(spec).run_call_spec(spec)
    return str(record.status)


def run_sandbox_sms(spec: dict[str, Any]) -> str:
    """Run one sandbox SMS to its final status; returns it."""
    record = _provider(spec).run_sms_spec(spec)
    return str(record.status)
