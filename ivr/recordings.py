"""Whole-call recordings of the hotline: the status callback, the download, the retention.

The hotline greeting tells callers the call is recorded; :meth:`ivr.voice.VoiceRuntime.start`
asks the provider to record every inbound call of a flow with ``record_calls`` (the default).
When the recording is ready the provider posts ``POST /voice/recording``, handled by
:func:`store_recording_callback`: one :class:`~crm_store.models.CallRecording` row per
``RecordingSid`` on the call's interaction (a duplicated callback changes nothing), and an
RQ job (:func:`download_recording_job`, one per recording) that downloads the WAV through
the provider into the configured :class:`RecordingStorage` (a local directory,
``RECORDINGS_DIR``). :func:`purge_expired_recordings_job` deletes copies older than
``RECORDING_RETENTION_DAYS`` and marks their rows deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from rq import Queue
from sqlalchemy import select

from contactcenter.config import Settings
from contactcenter.services import Services, current_services
from crm_store.db import insert_or_existing
from crm_store.models import RECORDING_STATUSES, CallRecording, Interaction
from ivr.errors import BadRecordingCallback
from ivr.sms import IVR_QUEUE

log = logging.getLogger(__name__)

_SID = re.compile(r"RE[0-9a-fA-F]{32}")


class RecordingStorage(Protocol):
    """Where our copies of call recordings live."""

    def save(self, name: str, data: bytes) -> str:
        """Store ``data`` as ``name``; return the path (or key) to keep on the row."""
        ...

    def delete(self, path: str) -> None:
        """Delete a stored copy; a copy already gone is not an error."""
        ...


class LocalRecordingStorage:
    """Recordings as files in a local directory (``RECORDINGS_DIR``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, name: str, data: bytes) -> str:
        """Write ``root/name`` atomically (a temporary file renamed into place)."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"not a plain file name: {name!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
        return str(target)

    def delete(self, path: str) -> None:
        """Remove the file if it is still there."""
        Path(path).unlink(missing_ok=True)


def storage_from_settings(settings: Settings) -> RecordingStorage:
    """The configured recording storage (a local directory)."""
    return LocalRecordingStorage(settings.recordings_dir)


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
    """Check a recording status callback; raises :class:`BadRecordingCallback`."""
    call_sid = (params.get("CallSid") or "").strip()
    sid = (params.get("RecordingSid") or "").strip()
    url = (params.get("RecordingUrl") or "").strip()
    status = (params.get("RecordingStatus") or "").strip()
    if not call_sid or not _SID.fullmatch(sid):
        raise BadRecordingCallback("CallSid and a RecordingSid (RE…) are required")
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
    same recording (e.g. ``completed`` after ``in-progress``) updates the row. A completed
    recording is queued for download (one RQ job per recording).
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
        Queue(IVR_QUEUE, connection=services.redis).enqueue(
            download_recording_job,
            callback.sid,
            job_id=f"recording-download-{callback.sid}",
            description=f"download recording {callback.sid}",
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


def download_recording(
    services: Services, sid: str, storage: RecordingStorage | None = None
) -> str | None:
    """Download recording ``sid`` through the provider into the storage; return its path.

    Does nothing (returns the path kept) when it was already downloaded or deleted.
    """
    with services.db.transaction() as s:
        row = s.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if row is None:
            raise LookupError(f"recording {sid} is not stored")
        if row.storage_path is not None or row.deleted_at is not None:
            return row.storage_path
        url = row.url
    wav = services.telephony.fetch_recording(url or sid)
    path = (storage or storage_from_settings(services.settings)).save(f"{sid}.wav", wav)
    with services.db.transaction() as s:
        row = s.scalar(select(CallRecording).where(CallRecording.sid == sid))
        if row is not None:
            row.storage_path = path
    log.info("recording %s downloaded (%d bytes)", sid, len(wav))
    return path


def download_recording_job(sid: str) -> str | None:
    """RQ job: :func:`download_recording` with the process's services."""
    return download_recording(current_services(), sid)


def purge_expired_recordings(
    services: Services, *, now: datetime | None = None, storage: RecordingStorage | None = None
) -> int:
    """Delete our copies of recordings older than the retention; return how many.

    The rows stay (the interaction keeps the fact it was recorded) with ``deleted_at`` set
    and ``storage_path`` cleared.
    """
    now = now or services.clock()
    cutoff = now - timedelta(days=services.settings.recording_retention_days)
    store = storage or storage_from_settings(services.settings)
    deleted = 0
    with services.db.transaction() as s:
        rows = s.scalars(
            select(CallRecording).where(
                CallRecording.created_at < cutoff, CallRecording.deleted_at.is_(None)
            )
        ).all()
        for row in rows:
            if row.storage_path is not None:
                store.delete(row.storage_path)
            row.storage_path = None
            row.deleted_at = now
            deleted += 1
    if deleted:
        log.info("retention: %d call recordings older than %s deleted", deleted, cutoff)
    return deleted


def purge_expired_recordings_job() -> int:
    """RQ job (schedule it daily): :func:`purge_expired_recordings` now."""
    return purge_expired_recordings(current_services())
