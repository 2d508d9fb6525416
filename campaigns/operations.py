"""Supervisor operations on campaigns, audited: create, launch, pause, resume, cancel.

The console and the REST API both act through this module. The operations are
:mod:`campaigns.service`'s; each also writes an audit row (entity
``campaign``, :func:`crm_store.audit.record`) attributed to ``actor`` (e.g.
``console:anna``): the definition's name, channel and regions on creation, the status
before and after on an action. A launch is queued (:func:`campaigns.service.enqueue_launch`:
planning runs in a worker), so its row says ``launching``; the worker's own change to
``running`` follows as the campaign's status.
"""

from __future__ import annotations

from typing import Literal

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from campaigns import service
from campaigns.definition import CampaignDefinition
from campaigns.errors import CampaignNotFound
from campaigns.queueing import launch_job_id
from contactcenter.services import Services
from crm_store import audit
from crm_store.audit import acting_as
from crm_store.models import Campaign

AUDIT_ENTITY = "campaign"
Action = Literal["launch", "pause", "resume", "cancel"]
ACTIONS: tuple[Action, ...] = ("launch", "pause", "resume", "cancel")


def create(services: Services, definition: CampaignDefinition, *, actor: str, user: str) -> int:
    """Store ``definition`` as a draft created by ``user``; returns its id."""
    campaign_id = service.create_campaign(services, definition, created_by=user)
    with acting_as(actor), services.db.transaction() as s:
        audit.record(
            s,
            AUDIT_ENTITY,
            str(campaign_id),
            "insert",
            None,
            {
                "name": definition.name,
                "channel": definition.channel.value,
                "status": "draft",
                "regions": definition.audience.regions,
            },
        )
    return campaign_id


def _status(services: Services, campaign_id: int) -> str:
    with services.db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"campaign {campaign_id} does not exist")
        return campaign.status


def _record_status(
    services: Services, campaign_id: int, before: str, after: str, actor: str
) -> None:
    with acting_as(actor), services.db.transaction() as s:
        audit.record(
            s, AUDIT_ENTITY, str(campaign_id), "update", {"status": before}, {"status": after}
        )


def launch(services: Services, campaign_id: int, *, actor: str) -> str:
    """Queue the launch (planning runs in a worker), audited; returns the RQ job id.
    Raises :class:`~campaigns.errors.CampaignError` when the status does not allow it."""
    before = _status(services, campaign_id)
    job_id = service.enqueue_launch(services, campaign_id)
    _record_status(services, campaign_id, before, "launching", actor)
    return job_id


def act(services: Services, campaign_id: int, action: str, *, actor: str) -> str:
    """Launch (queued), pause, resume or cancel; returns the new status (``launching`` for a
    queued launch). Raises :class:`~campaigns.errors.CampaignError` when not possible."""
    if action not in ACTIONS:
        raise ValueError(f"unknown campaign action {action!r}")
    if action == "launch":
        launch(services, campaign_id, actor=actor)
        return "launching"
    before = _status(services, campaign_id)
    after = str(getattr(service, action)(services, campaign_id))
    _record_status(services, campaign_id, before, after, actor)
    return after


def launching(services: Services, campaign_id: int) -> bool:
    """True while the queued launch of the campaign waits for or runs in a worker."""
    try:
        job = Job.fetch(launch_job_id(campaign_id), connection=services.redis)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED)
