"""Drive campaigns in tests: the real sandbox provider, RQ SimpleWorker, virtual time.

The sandbox posts its webhooks through :class:`CampaignTransport`, which answers the voice
URL with a short TwiML message and, as the web layer does, checks status / AMD / SMS
callbacks (form fields plus the URL's query) and publishes them to ``services.status_hooks``,
where the campaigns package is subscribed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rq import SimpleWorker

from campaigns import service
from campaigns.definition import parse_definition
from campaigns.dispatcher import DispatchResult, dispatch_once
from campaigns.queueing import campaign_queue
from campaigns.status import subscribe
from campaigns.voicemail import machine_answer_twiml
from contactcenter.config import Settings
from contactcenter.services import Services, install_services
from crm_store.models import Campaign
from devtools.sandbox import SandboxProvider, Scenario, WebhookResponse
from telephony.status import StatusKind, parse_status_callback
from tests.campaigns.campaign_factories import RUSSIAN_ZONES, add_debtor

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Say language="ru-RU">Напоминаем о задолженности.</Say><Hangup/></Response>'
)


class Clock:
    """A settable clock for ``Services.clock`` (the campaign jobs' time)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


STATUS_PATHS = {
    "/voice/status": StatusKind.CALL,
    "/voice/amd": StatusKind.AMD,
    "/sms/status": StatusKind.SMS,
}


class CampaignTransport:
    """Routes sandbox webhooks to the campaign status hooks (what the web views do)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.outbound_fetches = 0

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> WebhookResponse:
        parts = urlsplit(url)
        if parts.path == "/voice/outbound":
            self.outbound_fetches += 1
            attempt = dict(parse_qsl(parts.query)).get("attempt", "")
            machine = (
                machine_answer_twiml(self.services, int(attempt), params.get("AnsweredBy", ""))
                if attempt.isdigit()
                else None
            )
            return WebhookResponse(200, machine or TWIML, {"content-type": "application/xml"})
        kind = STATUS_PATHS.get(parts.path)
        if kind is None:
            return WebhookResponse(404, "not found")
        callback = parse_status_callback(kind, dict(params), dict(parse_qsl(parts.query)))
        self.services.status_hooks.publish(self.services, callback)
        return WebhookResponse(204, "")


UNPACED = {
    "calls_per_second": 100,
    "max_concurrent": 100,
    "global_calls_per_second": 100,
    "global_max_concurrent": 100,
}
"""Pacing that never holds a test's few targets back."""


def launch_debtor_campaign(
    services: Services, targets: int, *, today: dt.date, name: str, **definition: Any
) -> int:
    """Debtors 1..``targets`` (one per Russian zone in turn) and a voice campaign over every
    debtor, unpaced unless ``definition`` says otherwise, launched without its dispatcher."""
    with services.db.transaction() as s:
        for n in range(1, targets + 1):
            add_debtor(s, n, today=today, timezone=RUSSIAN_ZONES[n % len(RUSSIAN_ZONES)])
    data: dict[str, Any] = {
        "name": name,
        "channel": "voice",
        "audience": {"min_debt": 1},
        "pacing": UNPACED,
        **definition,
    }
    cid = service.create_campaign(services, parse_definition(data))
    service.launch(services, cid, start=False)
    return cid


def make_services(
    settings: Settings, clock: Clock, scenario: dict[str, Any] | None = None
) -> tuple[Services, SandboxProvider]:
    """Services with the sandbox provider and the virtual clock, installed process-wide."""
    services = Services(settings, clock=clock)
    subscribe(services.status_hooks)
    # The private Redis outlives a test: start from an empty one (queues, pacing slots).
    services.redis.flushdb()
    provider = SandboxProvider(
        CampaignTransport(services),
        settings.sandbox_auth_token,
        scenario=Scenario.from_dict(scenario or {}),
        mode="inline",
    )
    services.telephony = provider
    install_services(services)
    _created.append(services)
    return services, provider


_created: list[Services] = []


def dispose_all() -> None:
    """Close the database pools of every ``Services`` made by :func:`make_services`."""
    while _created:
        services = _created.pop()
        services.db.dispose()
        services.redis.close()


class QuietSimpleWorker(SimpleWorker):
    """RQ's SimpleWorker without the command pub/sub thread.

    The thread only serves ``rq`` remote commands (stop, kill-horse); joining it costs
    about half a second per burst, which dominates tests that run thousands of bursts.
    """

    def subscribe(self) -> None:
        """No remote-command channel in tests."""

    def unsubscribe(self) -> None:
        """Nothing to tear down."""


def work(services: Services) -> int:
    """Run every queued campaign job in this process (RQ SimpleWorker, burst mode)."""
    queue = campaign_queue(services)
    count = int(queue.count)
    if count:
        QuietSimpleWorker([queue], connection=services.redis).work(
            burst=True, logging_level="WARNING"
        )
    return count


def step(services: Services, provider: SandboxProvider, campaign_id: int) -> DispatchResult:
    """One dispatcher run, its jobs, and the calls' lives."""
    result = dispatch_once(services, campaign_id)
    work(services)
    provider.run_until_idle()
    work(services)
    return result


def run_to_end(
    services: Services,
    provider: SandboxProvider,
    clock: Clock,
    campaign_id: int,
    *,
    step_s: float = 60,
    max_steps: int = 20_000,
) -> int:
    """Step the campaign, advancing virtual time, until it completes; returns the steps."""
    for n in range(max_steps):
        result = step(services, provider, campaign_id)
        if result.status != "running":
            return n
        clock.advance(seconds=step_s)
        if result.enqueued == 0 and result.next_due is not None and result.next_due > clock.now:
            clock.now = result.next_due  # nothing to do until then: jump ahead
    with services.db.transaction() as s:
        status = s.get(Campaign, campaign_id)
    raise AssertionError(f"campaign did not finish in {max_steps} steps ({status})")
