"""The composition root: how a process of the application is wired.

:func:`build_services` makes the :class:`~contactcenter.services.Services` of the web app,
``contactcenter worker`` and the CLI commands that reach the phone network: the telephony
provider that ``Settings.telephony`` names (Twilio's REST API, or the sandbox emulator of the
developer tools) and the campaigns package subscribed to status callbacks. It sits on top of
every other package, so none of them has to know which provider or which subscribers exist.
"""

from __future__ import annotations

from rq import Queue

from campaigns.status import subscribe as subscribe_campaigns
from contactcenter.config import ConfigError, Settings
from contactcenter.services import Services, default_provider
from devtools.sandbox import HttpTransport, RedisCallState, SandboxProvider, ScenarioError
from telephony.base import TELEPHONY_QUEUE, TelephonyProvider


def provider_for(services: Services) -> TelephonyProvider:
    """A new provider for ``services.settings.telephony`` (``twilio`` or ``sandbox``).

    The sandbox posts webhooks over HTTP to ``PUBLIC_BASE_URL`` (the running app), runs call
    and SMS lives as RQ jobs on the ``telephony`` queue with a virtual clock (a worker must
    listen on it), and keeps live-call state in Redis so ``update_call`` and
    ``fetch_recording`` from any process reach the call. Outcomes of outbound calls and SMS
    are scripted by the scenario file ``SANDBOX_SCENARIO`` (every call answered by a person
    when unset); an invalid scenario raises :class:`~contactcenter.config.ConfigError`.
    """
    settings = services.settings
    if settings.telephony != "sandbox":
        return default_provider(services)
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


def build_services(settings: Settings) -> Services:
    """The wired :class:`Services` of one process (provider factory, status subscribers)."""
    services = Services(settings, provider_factory=provider_for)
    subscribe_campaigns(services.status_hooks)
    return services
