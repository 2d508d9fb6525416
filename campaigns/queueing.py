"""The campaigns' RQ queue: enqueueing a job exactly once, and the ids of campaign jobs.

An RQ job id alone does not deduplicate (the same id enqueued twice runs twice), so every
campaign job goes through :func:`enqueue_unique` with ``unique=True`` and a deterministic id
made of letters, digits and ``-`` only: duplicated dispatchers, callbacks or launches
enqueue nothing twice. A job that *failed* (its worker met a database outage, say) does not
block its id: the next enqueue of that id takes it out of the failed registry and runs it
again — every campaign job re-reads its state and is idempotent, so a retry is safe, and a
target whose dial failed is called once the cause is gone rather than a day later when the
failed job expires. ``contactcenter worker`` listens to :data:`QUEUE_NAME` (with the
scheduler, for the jobs enqueued ``at`` a time).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from rq import Queue
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from contactcenter.services import Services

QUEUE_NAME = "campaigns"
"""The RQ queue of campaign jobs (``contactcenter worker`` listens to it)."""
FAILURE_TTL_S = 86400
"""How long a failed campaign job stays in RQ's failed registry."""

log = logging.getLogger(__name__)


def campaign_queue(services: Services) -> Queue:
    """The RQ queue of campaign jobs on ``services.redis``."""
    return Queue(QUEUE_NAME, connection=services.redis)


def enqueue_unique(
    services: Services,
    func: Callable[..., Any],
    *args: Any,
    job_id: str,
    at: dt.datetime | None = None,
) -> bool:
    """Enqueue (or schedule ``at``) a job once: False when a job with this id already exists.

    A job with this id that failed is taken out of the failed registry and enqueued (or
    scheduled) again, once: of two callers reviving it at the same time only one wins.
    """
    queue = campaign_queue(services)
    try:
        if at is None:
            queue.enqueue(
                func, *args, job_id=job_id, unique=True, result_ttl=0, failure_ttl=FAILURE_TTL_S
            )
        else:
            job = queue.create_job(
                func,
                args=args,
                job_id=job_id,
                result_ttl=0,
                failure_ttl=FAILURE_TTL_S,
                status=JobStatus.SCHEDULED,
            )
            queue.schedule_job(job, at, unique=True)
    except DuplicateJobError:
        return _revive_failed(queue, job_id, at)
    return True


def _revive_failed(queue: Queue, job_id: str, at: dt.datetime | None) -> bool:
    """Enqueue again a job that failed; False when the job is not a failed one."""
    registry = queue.failed_job_registry
    try:
        if at is None:
            registry.requeue(job_id)
        else:
            job = Job.fetch(job_id, connection=queue.connection)
            # ZREM is the claim: only the caller that removes it from the registry goes on.
            if not queue.connection.zrem(registry.key, job_id):
                return False
            queue.schedule_job(job, at)
    except (InvalidJobOperation, NoSuchJobError):
        return False
    log.info("campaign job %s had failed: enqueued again", job_id)
    return True


def dial_job_id(target_id: int, attempt_no: int) -> str:
    """The job of a target's attempt (a call or an SMS)."""
    return f"cc-dial-{target_id}-{attempt_no}"


def dispatch_job_id(campaign_id: int, tick: int, *, now: bool = False) -> str:
    """A dispatcher run of a tick (``now``: the run a launch or resume starts at once)."""
    return f"cc-dispatch-{campaign_id}-{tick}" + ("-now" if now else "")


def reconcile_job_id(attempt_id: int) -> str:
    """The reconciliation of an attempt's intent."""
    return f"cc-reconcile-{attempt_id}"


def settle_job_id(attempt_id: int) -> str:
    """The check with the provider of an attempt whose final status callback did not come."""
    return f"cc-settle-{attempt_id}"


def hangup_job_id(attempt_id: int) -> str:
    """The hang-up of a call answered by a machine."""
    return f"cc-hangup-{attempt_id}"


def launch_job_id(campaign_id: int) -> str:
    """The planning of a campaign launched through the API."""
    return f"cc-launch-{campaign_id}"
