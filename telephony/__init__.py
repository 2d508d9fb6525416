"""Telephony providers: the Twilio adapter and the local sandbox emulator.

Public API: :class:`TelephonyProvider` (the interface), :class:`CallInfo`,
:data:`TELEPHONY_QUEUE` (the RQ queue of the sandbox provider's call and SMS lives),
:class:`MessageInfo`, the exceptions of :mod:`telephony.errors`, :func:`sign` /
:func:`is_valid` for ``X-Twilio-Signature``, and :func:`get_provider` which picks the
provider named by ``Settings.telephony`` and caches it in :class:`Services`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telephony.base import (
    ANSWERED_BY_VALUES,
    DEFAULT_STATUS_EVENTS,
    TELEPHONY_QUEUE,
    TERMINAL_CALL_STATUSES,
    TERMINAL_MESSAGE_STATUSES,
    CallInfo,
    MessageInfo,
    TelephonyProvider,
)
from telephony.errors import (
    AuthenticationFailed,
    CallNotFound,
    InvalidNumber,
    OptedOut,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TelephonyError,
)
from telephony.signing import SIGNATURE_HEADER, is_valid, sign

if TYPE_CHECKING:
    from contactcenter.runtime import Services

PROVIDER_KEY = "telephony.provider"


def build_provider(services: Services) -> TelephonyProvider:
    """A new provider for ``services.settings.telephony`` (``twilio`` or ``sandbox``).

    The sandbox posts webhooks over HTTP to ``PUBLIC_BASE_URL`` (the running app), runs call
    and SMS lives as RQ jobs on the ``telephony`` queue with a virtual clock (a worker must
    listen on it), and keeps live-call state in Redis so ``update_call`` and
    ``fetch_recording`` from any process reach the call. Outcomes of outbound calls and SMS
    are scripted by the scenario file ``SANDBOX_SCENARIO`` (every call answered by a person
    when unset); an invalid scenario raises :class:`~contactcenter.config.ConfigError`.
    """
    settings = services.settings
    if settings.telephony == "twilio":
        from telephony.twilio_provider import TwilioProvider

        return TwilioProvider.from_settings(settings)
    if settings.telephony == "sandbox":
        from rq import Queue

        from contactcenter.config import ConfigError
        from telephony.sandbox import (
            HttpTransport,
            RedisCallState,
            SandboxProvider,
            ScenarioError,
        )

        try:
            return SandboxProvider(
                HttpTransport(),
                settings.sandbox_auth_token,
                mode="rq",
                queue=Queue(TELEPHONY_QUEUE, connection=services.redis),
                state=RedisCallState(services.redis),
                scenario_path=settings.sandbox_scenario,
            )
        except ScenarioError as exc:
            raise ConfigError("SANDBOX_SCENARIO", f"{settings.sandbox_scenario}: {exc}") from None
    raise ValueError(f"unknown telephony provider {settings.telephony!r}")


def get_provider(services: Services) -> TelephonyProvider:
    """The process's provider, built on first use and cached in ``services``."""
    provider: TelephonyProvider | None = services.get(PROVIDER_KEY)
    if provider is None:
        provider = build_provider(services)
        services.set(PROVIDER_KEY, provider)
    return provider


__all__ = [
    "ANSWERED_BY_VALUES",
    "DEFAULT_STATUS_EVENTS",
    "SIGNATURE_HEADER",
    "TELEPHONY_QUEUE",
    "TERMINAL_CALL_STATUSES",
    "TERMINAL_MESSAGE_STATUSES",
    "AuthenticationFailed",
    "CallInfo",
    "CallNotFound",
    "InvalidNumber",
    "MessageInfo",
    "OptedOut",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "TelephonyError",
    "TelephonyProvider",
    "build_provider",
    "get_provider",
    "is_valid",
    "sign",
]
