"""The daily retention of call recordings: ``contactcenter worker`` keeps one purge scheduled.

Real Redis and RQ: the workers are the real ``contactcenter worker`` command (in this process
and as two concurrent processes), the purge runs on a real RQ worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select

from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services, install_services
from crm_store.db import Database
from crm_store.models import CallRecording, Interaction
from ivr.recording_storage import LocalRecordingStorage
from ivr.recordings import (
    IVR_QUEUE,
    next_purge_at,
    purge_job_id,
    schedule_recordings_purge,
    scheduled_purges,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def services(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> Iterator[Services]:
    services = Services(settings.with_overrides(recordings_dir=str(tmp_path / "rec")))
    install_services(services)  # what the jobs' current_services() returns
    yield services
    services.db.dispose()


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "RECORDINGS_DIR": str(tmp_path / "rec"),
        "RECORDING_PURGE_AT": "03:15",
    }


def _expected_ids(services: Services, before: datetime) -> set[str]:
    """The purge's id for a start at ``before`` or now (should 03:15 pass in between)."""
    at_03_15 = services.settings.with_overrides(recording_purge_at=time(3, 15))
    probe = Services(at_03_15)
    return {purge_job_id(next_purge_at(probe, t)) for t in (before, datetime.now(UTC))}


def test_worker_start_keeps_exactly_one_purge_scheduled(
    services: Services, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(settings, tmp_path).items():
        monkeypatch.setenv(name, value)
    before = datetime.now(UTC)
    for name in ("first", "second"):
        result = CliRunner().invoke(main, ["worker", "--burst", "--name", name])
        assert result.exit_code == 0, result.output
        assert "call recordings retention scheduled at " in result.output
        assert result.output.count(":15 UTC") == 1
    [job_id] = scheduled_purges(services)
    assert job_id in _expected_ids(services, before)
    queue = Queue(IVR_QUEUE, connection=services.redis)
    at = queue.scheduled_job_registry.get_scheduled_time(job_id)
    assert (at.hour, at.minute) == (3, 15)
    assert timedelta(0) < at - before <= timedelta(days=1)
    # A worker of other queues only leaves the schedule alone.
    result = CliRunner().invoke(main, ["worker", "--burst", "--queue", "campaigns"])
    assert result.exit_code == 0, result.output
    assert "retention" not in result.output
    assert scheduled_purges(services) == [job_id]


def test_two_worker_processes_schedule_one_purge(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    env = {**os.environ, **_env(settings, tmp_path)}
    command = [str(Path(sys.executable).parent / "contactcenter"), "worker", "--burst"]
    before = datetime.now(UTC)
    workers = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert all("call recordings retention scheduled at" in out for out in outputs), outputs
    [job_id] = scheduled_purges(services)
    assert job_id in _expected_ids(services, before)


def _recording(db: Database, sid: str, age_days: int, storage: LocalRecordingStorage) -> str:
    path = storage.save(f"{sid}.wav", b"RIFF-test")
    with db.transaction() as s:
        interaction = Interaction(channel="voice", direction="inbound", status="completed")
        s.add(interaction)
        s.flush()
        s.add(
            CallRecording(
                interaction_id=interaction.id,
                sid=sid,
                url=f"https://api.twilio.com/Recordings/{sid}",
                status="completed",
                storage_path=path,
                created_at=datetime.now(UTC) - timedelta(days=age_days),
            )
        )
    return path


def _run_due_purge(services: Services) -> str:
    """Run the scheduled purge on a real RQ worker as if its time had come; its id."""
    queue = Queue(IVR_QUEUE, connection=services.redis)
    [job_id] = scheduled_purges(services)
    job = Job.fetch(job_id, connection=services.redis)
    queue.scheduled_job_registry.remove(job)
    queue.enqueue_job(job)
    SimpleWorker([queue], connection=services.redis).work(burst=True)
    return job_id


def _deleted(db: Database) -> dict[str, datetime | None]:
    with db.transaction() as s:
        return {r.sid: r.deleted_at for r in s.scalars(select(CallRecording))}


def test_the_purge_deletes_once_and_schedules_its_next_run(
    services: Services, db: Database, tmp_path: Path
) -> None:
    storage = LocalRecordingStorage(tmp_path / "rec")
    retention = services.settings.recording_retention_days
    old = _recording(db, "RE" + "1" * 32, retention + 2, storage)
    recent = _recording(db, "RE" + "2" * 32, retention - 2, storage)
    first_at = schedule_recordings_purge(services)
    assert schedule_recordings_purge(services) == first_at  # no second job
    assert scheduled_purges(services) == [purge_job_id(first_at)]

    assert _run_due_purge(services) == purge_job_id(first_at)
    assert not Path(old).exists()
    assert Path(recent).exists()
    deleted = _deleted(db)
    assert deleted["RE" + "1" * 32] is not None
    assert deleted["RE" + "2" * 32] is None
    second_at = first_at + timedelta(days=1)
    assert scheduled_purges(services) == [purge_job_id(second_at)]  # the next run, only

    assert _run_due_purge(services) == purge_job_id(second_at)
    assert _deleted(db) == deleted  # nothing deleted twice, nothing else deleted
    assert Path(recent).exists()
    assert scheduled_purges(services) == [purge_job_id(second_at + timedelta(days=1))]


def test_next_purge_time(services: Services) -> None:
    at_03 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert next_purge_at(services, at_03 - timedelta(seconds=1)) == at_03
    assert next_purge_at(services, at_03) == at_03 + timedelta(days=1)
    assert next_purge_at(services, datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == datetime(
        2027, 1, 1, 3, 0, tzinfo=UTC
    )
    assert purge_job_id(at_03) == "recordings-purge-20261205T0300"
