"""Whole-call recordings of the hotline: the start, the status callback, the copy, the retention.

The hotline greeting tells callers the call is recorded. For every inbound call of a flow with
``record_calls`` (the default), :meth:`ivr.voice.VoiceRuntime.start` queues
:func:`start_recording_job` on RQ (:func:`queue_recording_start`, one job per ``CallSid``: a
duplicated webhook queues nothing) and answers at once. The job re-reads the call and asks the
provider to record it (Twilio's ``calls(sid).recordings.create`` with a recording status
callback); while the provider refuses because the call is not in progress yet (21220) or is
unavailable, it tries again later (:data:`START_RETRY_DELAYS_S`), then gives up and says so in
the log. The started recording is stored at once as an ``in-progress``
:class:`~crm_store.models.CallRecording`, so a repeated job starts nothing twice.

When the recording is ready the provider posts ``POST /voice/recording``, handled by
:func:`store_recording_callback`: the row of that ``RecordingSid`` on the call's interaction
gets its URL, duration, channels and status (a duplicated callback changes nothing), and a
completed one is queued for download (:func:`download_recording_job`, one per recording):
through the provider into the configured storage (:mod:`ivr.recording_storage`: a local
directory or an S3-compatible bucket). :func:`read_recording` and :func:`recording_link` give
a stored copy back (``contactcenter recordings get``).

Retention: :func:`purge_expired_recordings` deletes copies older than
``RECORDING_RETENTION_DAYS`` and marks their rows deleted. ``contactcenter worker`` keeps it
scheduled daily at ``RECORDING_PURGE_AT`` (UTC) with :func:`schedule_recordings_purge`: one
scheduled job per run time, whichever worker schedules it, and each run schedules the next.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus
from sqlalchemy import select

from contactcenter.phones import mask_phone
from contactcenter.services import Services, current_services
from crm_store.db import insert_or_existing
from crm_store.models import RECORDING_STATUSES, CallRecording, Interaction
from ivr.errors import BadRecordingCallback, RecordingNotStored, RecordingStorageError
from ivr.recording_storage import (
    LINK_EXPIRES_S,
    RecordingStorage,
    storage_for,
    storage_from_settings,
)
from ivr.sms import IVR_QUEUE
from telephony.errors import CallNotFound, TelephonyError
from telephony.status import TERMINAL_CALL_STATUSES

log = logging.getLogger(__name__)

#: Where the provider posts the status of a whole-call recording.
RECORDING_CALLBACK_PATH = "/voice/recording"
#: Seconds between the attempts to start a call's recording (about half a minute in all).
START_RETRY_DELAYS_S: tuple[int, ...] = (1, 2, 4, 8, 15)
#: Seconds before the download of a recording is tried again after it failed (the storage
#: full or unreachable, the provider unavailable): about six hours in all, the recording
#: stays at the provider meanwhile and its row keeps every detail of it.
DOWNLOAD_RETRY_DELAYS_S: tuple[int, ...] = (60, 300, 1800, 3600, 4 * 3600)
#: How long a failed recording job stays in RQ's failed registry.
FAILURE_TTL_S = 86400
#: Rows the retention job handles per transaction.
PURGE_BATCH = 500

_SID = re.compile(r"RE[0-9a-fA-F]{32}")
_PURGE_JOB_PREFIX = "recordings-purge-"


def _enqueue_once(
    services: Services,
    func: Callable[..., Any],
    *args: Any,
    job_id: str,
    description: str,
    at: datetime | None = None,
    at_front: bool = False,
    retry: Retry | None = None,
) -> bool:
    """Enqueue (or schedule ``at``) a job on the IVR queue once: False when a job with this
    id already exists (an RQ job id alone does not deduplicate). ``at_front``: ahead of the
    queue's other jobs (a recording start cannot wait behind downloads)."""
    queue = Queue(IVR_QUEUE, connection=services.redis)
    options: dict[str, Any] = {
        "job_id": job_id,
        "description": description,
        "result_ttl": 0,
        "failure_ttl": FAILURE_TTL_S,
    }
    if retry is not None:
        options["retry"] = retry
    try:
        if at is None:
            queue.enqueue(func, *args, unique=True, at_front=at_front, **options)
        else:
            job = queue.create_job(func, args=args, status=JobStatus.SCHEDULED, **options)
            job.enqueue_at_front = at_front
            queue.schedule_job(job, at, unique=True)
    except DuplicateJobError:
        return False
    return True


# --------------------------------------------------------------------------- the start


def recording_start_job_id(call_sid: str, attempt: int = 0) -> str:
    """The RQ job id of attempt ``attempt`` (0: the first) to start ``call_sid``'s recording."""
    return f"recording-start-{call_sid}" + (f"-{attempt}" if attempt else "")


def queue_recording_start(services: Services, call_sid: str) -> bool:
    """Queue the start of the call's recording; False when it was queued already."""
    return _enqueue_once(
        services,
        start_recording_job,
        call_sid,
        0,
        job_id=recording_start_job_id(call_sid),
        description=f"start recording call {call_sid}",
        at_front=True,
    )


def start_call_recording(services: Services, call_sid: str, *, attempt: int = 0) -> str | None:
    """Ask the provider to record live call ``call_sid``; return the recording SID.

    Returns None without asking when the call is unknown, has ended or already has a
    recording. A refusal that may pass (the call not in progress yet, the provider
    unavailable or rate limiting) schedules attempt ``attempt + 1`` after
    ``START_RETRY_DELAYS_S[attempt]``; after the last one, or on any other refusal, the call
    goes on unrecorded and a warning is logged (the caller's number masked).
    """
    with services.db.transaction() as s:
        interaction = s.scalar(select(Interaction).where(Interaction.provider_sid == call_sid))
        if interaction is None:
            log.warning("call %s: no interaction, its recording is not started", call_sid)
            return None
        if interaction.ended_at is not None or interaction.status in TERMINAL_CALL_STATUSES:
            log.info(
                "call %s ended (%s) before its recording started", call_sid, interaction.status
            )
            return None
        existing = s.scalar(
            select(CallRecording.sid)
            .where(CallRecording.interaction_id == interaction.id)
            .order_by(CallRecording.id)
            .limit(1)
        )
        if existing is not None:
            log.info("call %s: already recorded (%s)", call_sid, existing)
            return str(existing)
        interaction_id, phone = interaction.id, interaction.phone
    callback = f"{services.settings.public_base_url}{RECORDING_CALLBACK_PATH}"
    try:
        info = services.telephony.start_recording(call_sid, status_callback=callback)
    except TelephonyError as exc:
        passing = exc.retryable or (isinstance(exc, CallNotFound) and exc.code == 21220)
        if passing and attempt < len(START_RETRY_DELAYS_S):
            delay = START_RETRY_DELAYS_S[attempt]
            _enqueue_once(
                services,
                start_recording_job,
                call_sid,
                attempt + 1,
                job_id=recording_start_job_id(call_sid, attempt + 1),
                description=f"start recording call {call_sid} (attempt {attempt + 2})",
                at=datetime.now(UTC) + timedelta(seconds=delay),
                at_front=True,
            )
            log.info("call %s: recording not started yet (%s), again in %d s", call_sid, exc, delay)
            return None
        log.warning(
            "call %s from %s goes on unrecorded: the recording could not be started after "
            "%d attempt(s): %s",
            call_sid,
            mask_phone(phone) if phone else "withheld",
            attempt + 1,
            exc,
        )
        return None
    with services.db.transaction() as s:
        insert_or_existing(
            s,
            CallRecording(
                interaction_id=interaction_id,
                sid=info.sid,
                url="",
                channels=2,  # the provider records both parties ("dual")
                status="in-progress",
            ),
            lambda: s.scalar(select(CallRecording).where(CallRecording.sid == info.sid)),
        )
    log.info("call %s: recording %s started", call_sid, info.sid)
    return info.sid


def start_recording_job(call_sid: str, attempt: int = 0) -> str | None:
    """RQ job: :func:`start_call_recording` with the process's services."""
    return start_call_recording(current_services(), call_sid, attempt=attempt)


# --------------------------------------------------------------------------- the callback


@dataclass(frozen=True)
class RecordingCallback:
    """The fields of a recording status callback we keep."""

    call_sid: str
    sid: str
    url: str
    status: str
    duration_s: int
    channels: int


def parse_recording_callback(params: Mapping[str, str]) -> RecordingCallback:
    """Check a recording status callback; raises :class:`BadRecordingCallback`.

    Control characters (a NUL, which PostgreSQL cannot store) in ``CallSid`` or
    ``RecordingUrl`` are refused too.
    """
    call_sid = (params.get("CallSid") or "").strip()
    sid = (params.get("RecordingSid") or "").strip()
    url = (params.get("RecordingUrl") or "").strip()
    status = (params.get("RecordingStatus") or "").strip()
    if not call_sid or not _SID.fullmatch(sid):
        raise BadRecordingCallback("CallSid and a RecordingSid (RE…) are required")
    if not (call_sid + url).isprintable():
        raise BadRecordingCallback("control characters in CallSid or RecordingUrl")
    if status not in RECORDING_STATUSES:
        raise BadRecordingCallback(f"unknown RecordingStatus {status!r}")
    if status == "completed" and not url.startswith(("http://", "https://")):
        raise BadRecordingCallback("a completed recording needs a RecordingUrl")
    try:
        duration = int(params.get("RecordingDuration") or 0)
        channels = int(params.get("RecordingChannels") or 1)
    except ValueError:
        raise BadRecordingCallback("RecordingDuration and RecordingChannels are integers") from None
    if duration < 0 or channels not in (1, 2):
        raise BadRecordingCallback("bad RecordingDuration or RecordingChannels")
    return RecordingCallback(call_sid, sid, url[:500], status, duration, channels)


def store_recording_callback(services: Services, callback: RecordingCallback) -> bool:
    """Store the recording on its call's interaction; return True when it is new.

    A duplicated callback (same ``RecordingSid``) changes nothing; a later status of the
    same recording (``completed`` after the ``in-progress`` row the start stored) updates the
    row. A completed recording is queued for download (one RQ job per recording).
    """
    with services.db.transaction() as s:
        interaction_id = s.scalar(
            select(Interaction.id).where(Interaction.provider_sid == callback.call_sid)
        )
        if interaction_id is None:
            log.warning("recording %s: no interaction for call %s", callback.sid, callback.call_sid)
            return False
        row, created = insert_or_existing(
            s,
            CallRecording(
                interaction_id=interaction_id,
                sid=callback.sid,
                url=callback.url,
                duration_s=callback.duration_s,
                channels=callback.channels,
                status=callback.status,
            ),
            lambda: s.scalar(select(CallRecording).where(CallRecording.sid == callback.sid)),
        )
        changed = created or row.status not in (callback.status, "completed")
        if not created and changed:
            row.status = callback.status
            row.url = callback.url or row.url
            row.duration_s = callback.duration_s
            row.channels = callback.channels
    if changed and callback.status == "completed":
        _enqueue_once(
            services,
            download_recording_job,
            callback.sid,
            job_id=f"recording-download-{callback.sid}",
            description=f"download recording {callback.sid}",
            retry=Retry(max=len(DOWNLOAD_RETRY_DELAYS_S), interval=list(DOWNLOAD_RETRY_DELAYS_S)),
        )
    log.info(
        "call %s: recording %s %s (%d s)%s",
        callback.call_sid,
        callback.sid,
        callback.status,
        callback.duration_s,
        "" if created else " (duplicate callback)" if not changed else " (updated)",
    )
    return created


# --------------------------------------------------------------------------- our copy


def download_recording(
    services: Services, sid: str, storage: RecordingStorage | None = None
) -> str | None:
    """Download recording ``sid`` through the provider into the storage; return its location.

    Does nothing (returns the location kept) when it was already downloaded or deleted.
    A storage that cannot take the copy (a full disk, a bucket out of reach) raises
    :class:`~ivr.errors.RecordingStorageError` after logging it: the job fails and RQ tries
    again later (:data:`DOWNLOAD_RETRY_DELAYS_S`); the row is left as it was.
    """
    with services.db.transaction() as s:
        row = s.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if row is None:
            raise RecordingNotStored(f"recording {sid} is not stored")
        if row.storage_path is not None or row.deleted_at is not None:
            return row.storage_path
        url = row.url
    wav = services.telephony.fetch_recording(url or sid)
    try:
        location = (storage or storage_from_settings(services.settings)).save(f"{sid}.wav", wav)
    except RecordingStorageError as exc:
        # RQ logs the traceback with the failed job; this line says what it means.
        log.error(  # noqa: TRY400
            "recording %s (%d bytes) not stored: %s; the download is retried later",
            sid,
            len(wav),
            exc,
        )
        raise
    with services.db.transaction() as s:
        row = s.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if row is not None:
            row.storage_path = location
    log.info("recording %s downloaded (%d bytes)", sid, len(wav))
    return location


def download_recording_job(sid: str) -> str | None:
    """RQ job: :func:`download_recording` with the process's services."""
    return download_recording(current_services(), sid)


def stored_location(services: Services, sid: str) -> str:
    """Where the copy of recording ``sid`` (or of call ``sid``'s recording, ``CA…``) is.

    Raises :class:`RecordingNotStored` saying why there is none: no such recording, not
    downloaded yet, or deleted by the retention job.
    """
    with services.db.transaction() as s:
        query = select(CallRecording)
        if sid.startswith("CA"):
            query = query.join(Interaction, Interaction.id == CallRecording.interaction_id).where(
                Interaction.provider_sid == sid
            )
        else:
            query = query.where(CallRecording.sid == sid)
        row = s.scalar(query.order_by(CallRecording.id.desc()).limit(1))
        if row is None:
            raise RecordingNotStored(f"no recording {sid}")
        if row.deleted_at is not None:
            raise RecordingNotStored(
                f"recording {row.sid} was deleted by the retention job on {row.deleted_at:%Y-%m-%d}"
            )
        if row.storage_path is None:
            raise RecordingNotStored(
                f"recording {row.sid} is not downloaded yet (status {row.status}); a worker "
                "downloads it when its completed status callback arrives"
            )
        return row.storage_path


def read_recording(services: Services, sid: str) -> bytes:
    """The WAV bytes of our copy of recording ``sid`` (see :func:`stored_location`)."""
    location = stored_location(services, sid)
    return storage_for(services.settings, location).read(location)


def recording_link(services: Services, sid: str, *, expires_s: int = LINK_EXPIRES_S) -> str:
    """Where a person can fetch our copy: a file path, or a presigned URL for a bucket."""
    location = stored_location(services, sid)
    return storage_for(services.settings, location).link(location, expires_s=expires_s)


# --------------------------------------------------------------------------- the retention


def purge_expired_recordings(
    services: Services, *, now: datetime | None = None, storage: RecordingStorage | None = None
) -> int:
    """Delete our copies of recordings older than the retention; return how many.

    The rows stay (the interaction keeps the fact it was recorded) with ``deleted_at`` set
    and ``storage_path`` cleared. A copy the storage fails to delete keeps its row as it is
    (logged; the next run tries again).
    """
    now = now or services.clock()
    cutoff = now - timedelta(days=services.settings.recording_retention_days)
    store = storage or storage_from_settings(services.settings)
    deleted = failed = 0
    last_id = 0
    while True:
        with services.db.transaction() as s:
            rows = s.scalars(
                select(CallRecording)
                .where(
                    CallRecording.created_at < cutoff,
                    CallRecording.deleted_at.is_(None),
                    CallRecording.id > last_id,
                )
                .order_by(CallRecording.id)
                .limit(PURGE_BATCH)
            ).all()
            for row in rows:
                last_id = row.id
                if row.storage_path is not None:
                    try:
                        storage_for(services.settings, row.storage_path, store).delete(
                            row.storage_path
                        )
                    except RecordingStorageError as exc:
                        log.warning("retention: recording %s not deleted: %s", row.sid, exc)
                        failed += 1
                        continue
                row.storage_path = None
                row.deleted_at = now
                deleted += 1
        if len(rows) < PURGE_BATCH:
            break
    if deleted or failed:
        log.info(
            "retention: %d call recordings older than %s deleted%s",
            deleted,
            cutoff,
            f", {failed} failed" if failed else "",
        )
    return deleted


def next_purge_at(services: Services, after: datetime | None = None) -> datetime:
    """The first ``RECORDING_PURGE_AT`` (UTC) strictly after ``after`` (default: now, on the
    wall clock RQ's scheduler goes by)."""
    after = (after or datetime.now(UTC)).astimezone(UTC)
    at = datetime.combine(after.date(), services.settings.recording_purge_at, tzinfo=UTC)
    return at if at > after else at + timedelta(days=1)


def purge_job_id(at: datetime) -> str:
    """The id of the retention job scheduled at ``at`` (one per run time)."""
    return f"{_PURGE_JOB_PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M}"


def schedule_recordings_purge(services: Services, after: datetime | None = None) -> datetime:
    """Make sure the retention job is scheduled at the next run time after ``after``
    (default: now); return that time. Any number of workers schedule one job."""
    at = next_purge_at(services, after)
    if _enqueue_once(
        services,
        purge_expired_recordings_job,
        at.isoformat(),
        job_id=purge_job_id(at),
        description="delete call recordings past their retention",
        at=at,
    ):
        log.info("retention: call recordings purge scheduled at %s", at)
    return at


def scheduled_purges(services: Services) -> list[str]:
    """The ids of the retention jobs scheduled on the IVR queue."""
    queue = Queue(IVR_QUEUE, connection=services.redis)
    ids = queue.scheduled_job_registry.get_job_ids()
    return sorted(i for i in ids if i.startswith(_PURGE_JOB_PREFIX))


def purge_expired_recordings_job(scheduled_for: str | None = None) -> int:
    """RQ job, daily: :func:`purge_expired_recordings` now, then the next run scheduled
    (after ``scheduled_for``, the time this run was scheduled at, so never this one again)."""
    services = current_services()
    try:
        return purge_expired_recordings(services)
    finally:
        after = datetime.now(UTC)
        if scheduled_for:
            after = max(after, datetime.fromisoformat(scheduled_for))
        schedule_recordings_purge(services, after)
