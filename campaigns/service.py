"""Supervisor operations on campaigns: create, preview, launch, pause, resume, cancel, status.

The CLI (``contactcenter campaign …``) and the REST API (``/api/campaigns``) are thin
wrappers around these functions. Status changes take effect within a dispatcher tick:
every job reads the campaign's status first, so queued jobs of a paused campaign put their
target back, and those of a cancelled one cancel it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rq.exceptions import DuplicateJobError
from sqlalchemy import func, select

from campaigns.attempts import cancel_targets, definition_of, now_utc
from campaigns.audience import AudiencePreview, preview_audience
from campaigns.definition import CampaignDefinition
from campaigns.dispatcher import start_dispatch
from campaigns.errors import CampaignError, CampaignNotFound
from campaigns.planner import PlanResult, plan_targets
from campaigns.queueing import campaign_queue, launch_job_id
from contactcenter.services import Services, current_services
from crm_store.models import TARGET_STATES, Campaign, CampaignTarget, ContactAttempt

_TRANSITIONS = {
    "launch": ({"draft", "planned"}, "running"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "cancel": ({"draft", "planned", "running", "paused"}, "cancelled"),
}


def create_campaign(
    services: Services, definition: CampaignDefinition, *, created_by: str = "system"
) -> int:
    """Store a validated definition as a ``draft`` campaign; returns its id."""
    with services.db.transaction() as s:
        campaign = Campaign(
            name=definition.name,
            channel=definition.channel.value,
            status="draft",
            definition=definition.to_json(),
            created_by=created_by,
            created_at=now_utc(services),
        )
        s.add(campaign)
        s.flush()
        return int(campaign.id)


def today(services: Services) -> dt.date:
    """Today's date (UTC) by the campaigns' clock (``services.clock``)."""
    return now_utc(services).date()


def get_definition(services: Services, campaign_id: int) -> tuple[Campaign, CampaignDefinition]:
    """A campaign row (detached) and its definition, or :class:`CampaignNotFound`."""
    with services.db.transaction() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"campaign {campaign_id} does not exist")
        return campaign, definition_of(campaign)


def preview(services: Services, campaign_id: int, *, sample_size: int = 10) -> AudiencePreview:
    """Audience count, sample and split by time zone of a campaign, before launch."""
    _, definition = get_definition(services, campaign_id)
    with services.db.session() as session:
        return preview_audience(
            session, definition.audience, now=now_utc(services), sample_size=sample_size
        )


def _transition(services: Services, campaign_id: int, action: str) -> str:
    allowed, new = _TRANSITIONS[action]
    now = now_utc(services)
    with services.db.transaction() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"campaign {campaign_id} does not exist")
        if campaign.status not in allowed:
            raise CampaignError(f"cannot {action} campaign {campaign_id}: it is {campaign.status}")
        campaign.status = new
        if action == "launch":
            campaign.launched_at = now
        if action == "cancel":
            campaign.finished_at = now
            cancel_targets(s, campaign_id, now)
    return new


def launch(
    services: Services,
    campaign_id: int,
    *,
    progress: Callable[[int], None] | None = None,
    start: bool = True,
) -> PlanResult:
    """Plan the targets (idempotent) and start the dispatcher."""
    campaign, _ = get_definition(services, campaign_id)
    if campaign.status not in ("draft", "planned"):
        raise CampaignError(f"cannot launch campaign {campaign_id}: it is {campaign.status}")
    result = plan_targets(services.db, campaign_id, now=now_utc(services), progress=progress)
    _transition(services, campaign_id, "launch")
    if start:
        start_dispatch(services, campaign_id)
    return result


def launch_job(campaign_id: int) -> dict[str, int]:
    """RQ job: :func:`launch` in a worker (the API's launch; planning may take minutes)."""
    result = launch(current_services(), campaign_id)
    return {"planned": result.inserted, "control_group": result.control_group}


def enqueue_launch(services: Services, campaign_id: int) -> str:
    """Check that the campaign can be launched and queue :func:`launch_job`; returns its id."""
    campaign, _ = get_definition(services, campaign_id)
    if campaign.status not in ("draft", "planned"):
        raise CampaignError(f"cannot launch campaign {campaign_id}: it is {campaign.status}")
    job_id = launch_job_id(campaign_id)
    try:
        campaign_queue(services).enqueue(
            launch_job, campaign_id, job_id=job_id, unique=True, result_ttl=3600, job_timeout=3600
        )
    except DuplicateJobError:
        raise CampaignError(f"campaign {campaign_id} is already being launched") from None
    return job_id


def pause(services: Services, campaign_id: int) -> str:
    """Stop dialing; calls already ringing finish, queued jobs put their targets back."""
    return _transition(services, campaign_id, "pause")


def resume(services: Services, campaign_id: int, *, start: bool = True) -> str:
    """Continue a paused campaign."""
    status = _transition(services, campaign_id, "resume")
    if start:
        start_dispatch(services, campaign_id)
    return status


def cancel(services: Services, campaign_id: int) -> str:
    """End a campaign for good: every target not yet contacted is cancelled."""
    return _transition(services, campaign_id, "cancel")


@dataclass(frozen=True)
class CampaignStatus:
    """Progress of a campaign: targets by state, attempts by status, an ETA from pacing."""

    campaign_id: int
    name: str
    status: str
    channel: str
    targets: dict[str, int]
    attempts: dict[str, int]
    eta_s: float | None
    launched_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All targets."""
        return sum(self.targets.values())

    @property
    def finished(self) -> int:
        """Targets in a final state."""
        return sum(
            v for k, v in self.targets.items() if k in ("done", "skipped", "failed", "cancelled")
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (API)."""
        return {
            "id": self.campaign_id,
            "name": self.name,
            "status": self.status,
            "channel": self.channel,
            "targets": self.targets,
            "attempts": self.attempts,
            "total": self.total,
            "finished": self.finished,
            "eta_s": self.eta_s,
            "launched_at": self.launched_at.isoformat() if self.launched_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def status(services: Services, campaign_id: int) -> CampaignStatus:
    """Counts by target state and attempt status, and the ETA at the configured pace."""
    campaign, definition = get_definition(services, campaign_id)
    with services.db.transaction() as s:
        targets = {state: 0 for state in TARGET_STATES}
        for state, count in s.execute(
            select(CampaignTarget.state, func.count())
            .where(CampaignTarget.campaign_id == campaign_id)
            .group_by(CampaignTarget.state)
        ):
            targets[str(state)] = int(count)
        attempts = {
            str(st): int(n)
            for st, n in s.execute(
                select(ContactAttempt.status, func.count())
                .where(ContactAttempt.campaign_id == campaign_id)
                .group_by(ContactAttempt.status)
            )
        }
    waiting = targets["pending"] + targets["scheduled"] + targets["retry"]
    rate = (
        definition.pacing.sms_per_second
        if campaign.channel == "sms"
        else definition.pacing.calls_per_second
    )
    eta = waiting / rate if campaign.status == "running" and rate > 0 else None
    return CampaignStatus(
        campaign_id=campaign_id,
        name=campaign.name,
        status=campaign.status,
        channel=campaign.channel,
        targets=targets,
        attempts=attempts,
        eta_s=eta,
        launched_at=campaign.launched_at,
        finished_at=campaign.finished_at,
    )


def list_campaigns(services: Services, *, limit: int = 100) -> list[dict[str, Any]]:
    """Newest campaigns first (id, name, channel, status, created)."""
    with services.db.transaction() as s:
        rows = s.execute(
            select(
                Campaign.id, Campaign.name, Campaign.channel, Campaign.status, Campaign.created_at
            )
            .order_by(Campaign.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "channel": r.channel,
            "status": r.status,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]
