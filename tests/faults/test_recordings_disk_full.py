"""A full disk under ``RECORDINGS_DIR``: the download job fails visibly, says so in the log,
keeps the recording's row as it was, leaves no partial file and is tried again later; once
there is room the copy is stored.

The disk is filled at the file-system boundary only: ``Path.write_bytes`` of a file under the
recordings directory writes half the bytes and raises ``OSError(ENOSPC)``, as a full disk
does (mounting a tiny tmpfs needs privileges a test machine may not give).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import CallRecording
from devtools.simulator import Simulator
from ivr.recordings import DOWNLOAD_RETRY_DELAYS_S, IVR_QUEUE
from tests.ivr.test_hotline_calls import IN_WINDOW, UNKNOWN_CALLER, Clock
from webhooks import create_app, services_of

pytestmark = pytest.mark.integration

HOTLINE = "+78001234567"


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def app(
    settings: Settings, db: Database, redis_client: Any, recordings_dir: Path
) -> Iterator[Flask]:
    application = create_app(settings.with_overrides(recordings_dir=str(recordings_dir)))
    services_of(application).clock = Clock(IN_WINDOW)
    yield application
    services_of(application).db.dispose()


def _queue(app: Flask) -> Queue:
    return Queue(IVR_QUEUE, connection=services_of(app).redis)


def _run_jobs(app: Flask) -> None:
    SimpleWorker([_queue(app)], connection=services_of(app).redis).work(
        burst=True, logging_level="WARNING"
    )


def _run_scheduled(app: Flask) -> list[str]:
    """Run the jobs scheduled for later as if their time had come; return their ids."""
    queue = _queue(app)
    registry = queue.scheduled_job_registry
    ids = registry.get_job_ids()
    for job_id in ids:
        job = Job.fetch(job_id, connection=queue.connection)
        registry.remove(job)
        queue.enqueue_job(job)
    _run_jobs(app)
    return ids


def _row(db: Database) -> CallRecording:
    with db.transaction() as s:
        row = s.scalars(select(CallRecording)).one()
        s.expunge(row)
        return row


class FullDisk:
    """Whether the recordings' disk is full, and the writes it refused."""

    def __init__(self) -> None:
        self.full = True
        self.refused: list[Path] = []


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch, recordings_dir: Path) -> FullDisk:
    """While ``disk.full``, writes under ``recordings_dir`` fail half-way with ENOSPC."""
    original = Path.write_bytes
    state = FullDisk()

    def write_bytes(self: Path, data: Any) -> int:
        if state.full and recordings_dir in self.parents:
            original(self, bytes(data)[: len(data) // 2])
            state.refused.append(self)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    return state


def test_a_full_disk_fails_the_download_visibly_and_it_is_retried_later(
    app: Flask,
    db: Database,
    recordings_dir: Path,
    disk: FullDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Simulator.for_app(app, run_jobs=False) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
        _run_jobs(app)  # the recording starts
        call.hangup()
        before = _row(db)
        assert (before.status, before.storage_path) == ("completed", None)
        with caplog.at_level(logging.WARNING):
            _run_jobs(app)  # the download: the disk is full
        assert len(disk.refused) == 1
        after = _row(db)
        # The recording's metadata is all there; only the copy is missing.
        assert (after.sid, after.url, after.duration_s, after.channels, after.status) == (
            before.sid,
            before.url,
            before.duration_s,
            before.channels,
            "completed",
        )
        assert after.storage_path is None
        assert list(recordings_dir.iterdir()) == []  # no partial file left taking room
        assert f"recording {before.sid}" in caplog.text
        assert "No space left on device" in caplog.text
        assert "retried later" in caplog.text
        queue = _queue(app)
        job_id = f"recording-download-{before.sid}"
        assert queue.scheduled_job_registry.get_job_ids() == [job_id]  # tried again later
        job = Job.fetch(job_id, connection=queue.connection)
        assert job.retries_left == len(DOWNLOAD_RETRY_DELAYS_S) - 1

        disk.full = False  # room again
        assert _run_scheduled(app) == [job_id]
    stored = _row(db)
    assert stored.storage_path == str(recordings_dir / f"{stored.sid}.wav")
    assert Path(stored.storage_path).read_bytes().startswith(b"RIFF")
    assert [p.name for p in recordings_dir.iterdir()] == [f"{stored.sid}.wav"]
