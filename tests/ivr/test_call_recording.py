"""Issue 14, "Recording": every hotline call is recorded, as its greeting says.

Calls run through the call simulator (the sandbox's TwiML interpreter) into the real app;
the simulator is the app's provider, records the call and posts the signed recording status
callback to ``POST /voice/recording`` when the call ends. The inbound webhook only queues the
start of the recording: RQ jobs (on a real RQ worker against the real Redis) start it while
the call lasts, retrying while the provider refuses, and download it afterwards.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select

from contactcenter.cli import main
from contactcenter.config import PROJECT_ROOT, ConfigError, Settings, load_settings
from contactcenter.phones import mask_phone
from crm_store.db import Database
from crm_store.models import CallRecording, Interaction
from devtools.sandbox import RedisCallState, SandboxProvider, WsgiTransport
from devtools.sandbox.rest import Fault, RestServer, inject_fault
from devtools.sandbox.transport import signed_request
from devtools.simulator import SimulatedCall, Simulator
from ivr.recording_storage import LocalRecordingStorage
from ivr.recordings import (
    IVR_QUEUE,
    START_RETRY_DELAYS_S,
    purge_expired_recordings,
    recording_start_job_id,
    start_call_recording,
)
from telephony.twilio_provider import TwilioProvider
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, UNKNOWN_CALLER, Clock
from .test_webhooks_app import interaction_of

HOTLINE = "+78001234567"


def _app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = Clock(IN_WINDOW)
    yield application
    services_of(application).db.dispose()


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def app(
    settings: Settings, db: Database, redis_client: Any, recordings_dir: Path
) -> Iterator[Flask]:
    yield from _app(settings.with_overrides(recordings_dir=str(recordings_dir)))


def _recordings(db: Database) -> list[CallRecording]:
    with db.transaction() as s:
        rows = list(s.scalars(select(CallRecording).order_by(CallRecording.id)))
        s.expunge_all()
        return rows


def _queue(app: Flask) -> Queue:
    return Queue(IVR_QUEUE, connection=services_of(app).redis)


def _run_jobs(app: Flask) -> None:
    redis = services_of(app).redis
    SimpleWorker([_queue(app)], connection=redis).work(burst=True)


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


def _hotline_call(sim: Simulator) -> str:
    call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
    assert call.heard("запис")  # the greeting announces the recording
    call.hangup()
    assert call.ended
    return call.sid


def _duplicate_start(app: Flask, settings: Settings, call: SimulatedCall) -> int:
    """Post the call's ``/voice/incoming`` webhook again, as Twilio may."""
    params = call.live.base_params()
    params["CallStatus"] = "ringing"
    url = f"{settings.public_base_url}/voice/incoming"
    return signed_request(
        WsgiTransport(app), settings.webhook_auth_token, "POST", url, params
    ).status


def test_hotline_call_leaves_a_recording_reachable_from_its_interaction(
    app: Flask, db: Database, recordings_dir: Path
) -> None:
    with Simulator.for_app(app) as sim:  # it runs the app's jobs while the call lasts
        sid = _hotline_call(sim)
        whole = sim.calls[0].call_recording
        assert whole is not None
        assert sim.calls[0].recordings == []  # no <Record> in this call
        _run_jobs(app)  # the download goes through the provider: the simulator is open
    interaction = interaction_of(db, sid)
    [row] = _recordings(db)
    assert row.interaction_id == interaction.id
    assert row.sid == whole["sid"]
    assert row.status == "completed"
    assert row.channels == 2
    assert row.duration_s == whole["duration"]
    assert row.url.endswith(f"/Recordings/{row.sid}")
    assert row.deleted_at is None
    assert row.storage_path == str(recordings_dir / f"{row.sid}.wav")
    data = Path(row.storage_path).read_bytes()
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 2
        assert wav.getnframes() >= 8000 * max(row.duration_s, 1) - 1
    assert _queue(app).job_ids == []  # the start and the download ran, nothing is left


def test_the_simulator_runs_its_calls_jobs_only(app: Flask) -> None:
    stale = _queue(app).enqueue("operator.add", 1, 2, job_id=f"recording-download-RE{'9' * 32}")
    with Simulator.for_app(app) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
        assert list(sim.call_recordings) == [call.sid]  # its start ran while it lasted
        assert _queue(app).job_ids == [stale.id]  # left to the app's worker


def test_the_webhook_only_queues_the_start_a_worker_records_the_live_call(
    app: Flask, settings: Settings, db: Database, recordings_dir: Path
) -> None:
    services = services_of(app)
    with Simulator.for_app(app, run_jobs=False) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
        assert sim.call_recordings == {}  # no REST call from the webhook
        assert _queue(app).job_ids == [recording_start_job_id(call.sid)]
        assert _duplicate_start(app, settings, call) == 200
        assert _queue(app).job_ids == [recording_start_job_id(call.sid)]  # one job per call
        _run_jobs(app)
        [(recording_sid, callback, channels)] = sim.call_recordings.values()
        assert callback == f"{settings.public_base_url}/voice/recording"
        assert channels == "dual"
        [row] = _recordings(db)
        assert (row.sid, row.status, row.url, row.storage_path) == (
            recording_sid,
            "in-progress",
            "",
            None,
        )
        # The job once more (a duplicate after it ran): the stored recording, no new one.
        assert start_call_recording(services, call.sid) == recording_sid
        assert len(sim.call_recordings) == 1
        call.hangup()
        _run_jobs(app)  # the download
    [row] = _recordings(db)
    assert (row.sid, row.status) == (recording_sid, "completed")
    assert row.duration_s == (sim.calls[0].call_recording or {}).get("duration")
    assert row.storage_path == str(recordings_dir / f"{recording_sid}.wav")


def test_a_call_that_ended_before_the_job_ran_is_not_recorded(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with Simulator.for_app(app, run_jobs=False) as sim:
        sid = _hotline_call(sim)
        assert interaction_of(db, sid).status == "completed"
        with caplog.at_level(logging.INFO, logger="ivr.recordings"):
            _run_jobs(app)
        assert sim.call_recordings == {}
        assert sim.finished_recordings == {}
    assert _recordings(db) == []
    assert f"call {sid} ended (completed) before its recording started" in caplog.text
    assert _queue(app).scheduled_job_registry.get_job_ids() == []


@contextmanager
def _sandbox_call(app: Flask) -> Iterator[tuple[str, RedisCallState]]:
    """A live hotline call the app's own provider (the sandbox, state in Redis) knows as
    ringing; the simulator plays the caller only (it hangs up at the end)."""
    with Simulator.for_app(app, as_provider=False) as sim:
        sid = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE).sid
        state = RedisCallState(services_of(app).redis)
        state.set_status(sid, "ringing")
        yield sid, state


def test_the_start_is_retried_while_the_call_is_not_in_progress(app: Flask, db: Database) -> None:
    with _sandbox_call(app) as (sid, state):
        _retried_until_in_progress(app, db, sid, state)


def _retried_until_in_progress(app: Flask, db: Database, sid: str, state: RedisCallState) -> None:
    queue = _queue(app)
    before = datetime.now(UTC)
    _run_jobs(app)  # the sandbox refuses like Twilio: 21220, the call is still ringing
    registry = queue.scheduled_job_registry
    assert registry.get_job_ids() == [recording_start_job_id(sid, 1)]
    at = registry.get_scheduled_time(recording_start_job_id(sid, 1))
    # RQ keeps scheduled times to the second.
    assert before.replace(microsecond=0) + timedelta(seconds=1) <= at
    assert at <= datetime.now(UTC) + timedelta(seconds=1)
    assert state.take_call_recording(sid) is None
    assert _recordings(db) == []
    state.set_status(sid, "in-progress")
    assert _run_scheduled(app) == [recording_start_job_id(sid, 1)]
    started = state.take_call_recording(sid)
    assert started is not None
    assert started.callback == "http://localhost/voice/recording"
    [row] = _recordings(db)
    assert (row.sid, row.status) == (started.sid, "in-progress")
    assert registry.get_job_ids() == []


def test_the_start_gives_up_after_its_last_attempt_and_logs_it_masked(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with _sandbox_call(app) as (sid, _state), caplog.at_level(logging.INFO, "ivr.recordings"):
        _run_jobs(app)  # ringing for ever
        attempts = [recording_start_job_id(sid)]
        while ran := _run_scheduled(app):
            attempts += ran
    assert attempts == [
        recording_start_job_id(sid, n) for n in range(len(START_RETRY_DELAYS_S) + 1)
    ]
    assert _recordings(db) == []
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert f"call {sid} from {mask_phone(UNKNOWN_CALLER)} goes on unrecorded" in text
    assert f"after {len(START_RETRY_DELAYS_S) + 1} attempt(s)" in text
    assert UNKNOWN_CALLER not in caplog.text


def test_a_call_the_provider_does_not_know_is_not_retried(
    app: Flask, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with Simulator.for_app(app, as_provider=False) as sim:  # the app's sandbox never saw it
        call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
        with caplog.at_level(logging.WARNING, logger="ivr.recordings"):
            _run_jobs(app)
    assert _queue(app).scheduled_job_registry.get_job_ids() == []
    assert f"call {call.sid} from {mask_phone(UNKNOWN_CALLER)} goes on unrecorded" in caplog.text
    assert "after 1 attempt(s)" in caplog.text
    assert _recordings(db) == []


def test_twilio_adapter_start_is_retried_when_the_provider_is_unavailable(
    app: Flask, db: Database
) -> None:
    """The real Twilio SDK (``calls(sid).recordings.create``) against the sandbox's REST
    emulation: a 503 is retried by a later job, then the recording starts."""
    services = services_of(app)
    sandbox = SandboxProvider(WsgiTransport(app), services.settings.webhook_auth_token)
    with RestServer(sandbox) as server:
        services.telephony = TwilioProvider(
            sandbox.account_sid, sandbox.auth_token, base_url=server.base_url, max_retries=0
        )
        with Simulator.for_app(app, as_provider=False) as sim:
            call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
            sandbox.state.set_status(call.sid, "in-progress")
            inject_fault(server.app, Fault(503, path_contains="/Recordings.json"))
            _run_jobs(app)
            assert _queue(app).scheduled_job_registry.get_job_ids() == [
                recording_start_job_id(call.sid, 1)
            ]
            assert _recordings(db) == []
            _run_scheduled(app)
            started = sandbox.state.take_call_recording(call.sid)
    assert started is not None
    assert started.callback == "http://localhost/voice/recording"
    assert started.channels == "dual"
    [row] = _recordings(db)
    assert (row.sid, row.status) == (started.sid, "in-progress")


def test_flow_with_record_calls_false_is_not_recorded(
    settings: Settings, db: Database, redis_client: Any, tmp_path: Path
) -> None:
    flows = yaml.safe_load((PROJECT_ROOT / "call_flows.yaml").read_text(encoding="utf-8"))
    flows["flows"]["hotline"]["record_calls"] = False
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(yaml.safe_dump(flows, allow_unicode=True), encoding="utf-8")
    overrides = settings.with_overrides(
        flows_file=str(flows_file), recordings_dir=str(tmp_path / "rec")
    )
    for application in _app(overrides):
        with Simulator.for_app(application, run_jobs=False) as sim:
            call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
            assert _queue(application).job_ids == []  # no start queued
            call.hangup()
            assert sim.call_recordings == {}
            assert sim.calls[0].call_recording is None
            _run_jobs(application)
        interaction_of(db, call.sid)  # the call itself was handled
    assert _recordings(db) == []
    assert not (tmp_path / "rec").exists()


def _callback(call_sid: str, recording_sid: str, duration: int = 7) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}"
        f"/Recordings/{recording_sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": str(duration),
        "RecordingChannels": "2",
        "RecordingSource": "StartCallRecordingAPI",
    }


def _start_call(app: Flask) -> str:
    with Simulator.for_app(app, as_provider=False) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to=HOTLINE)
        return call.sid


def test_duplicate_recording_callback_is_stored_once(app: Flask, settings: Settings) -> None:
    call_sid = _start_call(app)
    transport = WsgiTransport(app)
    url = f"{settings.public_base_url}/voice/recording"
    params = _callback(call_sid, "RE" + "a" * 32)
    db = services_of(app).db
    for _ in range(3):
        resp = signed_request(transport, settings.webhook_auth_token, "POST", url, params)
        assert resp.status == 204
    rows = _recordings(db)
    assert [(r.sid, r.duration_s, r.channels, r.status) for r in rows] == [
        ("RE" + "a" * 32, 7, 2, "completed")
    ]
    assert _queue(app).job_ids == [
        recording_start_job_id(call_sid),  # queued by the call's start, not run here
        f"recording-download-{'RE' + 'a' * 32}",
    ]
    with db.transaction() as s:
        interaction = s.scalars(select(Interaction).where(Interaction.provider_sid == call_sid))
        assert interaction.one().id == rows[0].interaction_id


def test_forged_recording_callback_is_refused(app: Flask, settings: Settings) -> None:
    call_sid = _start_call(app)
    transport = WsgiTransport(app)
    url = f"{settings.public_base_url}/voice/recording"
    resp = signed_request(
        transport, "not-the-token", "POST", url, _callback(call_sid, "RE" + "b" * 32)
    )
    assert resp.status == 403
    assert _recordings(services_of(app).db) == []


def test_bad_recording_callback_is_refused_with_400(app: Flask, settings: Settings) -> None:
    call_sid = _start_call(app)
    params = _callback(call_sid, "RE" + "c" * 32)
    params["RecordingStatus"] = "exploded"
    url = f"{settings.public_base_url}/voice/recording"
    resp = signed_request(WsgiTransport(app), settings.webhook_auth_token, "POST", url, params)
    assert resp.status == 400
    assert _recordings(services_of(app).db) == []


def test_retention_job_deletes_expired_recordings(
    app: Flask, db: Database, recordings_dir: Path
) -> None:
    services = services_of(app)
    now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    storage = LocalRecordingStorage(recordings_dir)
    call_sid = _start_call(app)
    interaction_id = interaction_of(db, call_sid).id
    retention = services.settings.recording_retention_days
    ages = {"RE" + "1" * 32: retention + 1, "RE" + "2" * 32: retention - 1}
    with db.transaction() as s:
        for sid, age in ages.items():
            s.add(
                CallRecording(
                    interaction_id=interaction_id,
                    sid=sid,
                    url=f"https://api.twilio.com/Recordings/{sid}",
                    duration_s=3,
                    channels=2,
                    status="completed",
                    storage_path=storage.save(f"{sid}.wav", b"RIFF-test"),
                    created_at=now - timedelta(days=age),
                )
            )
    assert purge_expired_recordings(services, now=now) == 1
    old, recent = (r for r in sorted(_recordings(db), key=lambda r: r.sid))
    assert old.deleted_at == now
    assert old.storage_path is None
    assert not (recordings_dir / f"{old.sid}.wav").exists()
    assert recent.deleted_at is None
    assert recent.storage_path is not None
    assert Path(recent.storage_path).exists()
    assert purge_expired_recordings(services, now=now) == 0  # already deleted


def test_recordings_purge_command_applies_the_configured_retention(
    app: Flask, db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalRecordingStorage(tmp_path / "cli")
    call_sid = _start_call(app)
    interaction_id = interaction_of(db, call_sid).id
    sid = "RE" + "3" * 32
    with db.transaction() as s:
        s.add(
            CallRecording(
                interaction_id=interaction_id,
                sid=sid,
                url=f"https://api.twilio.com/Recordings/{sid}",
                duration_s=3,
                channels=2,
                status="completed",
                storage_path=storage.save(f"{sid}.wav", b"RIFF-test"),
                created_at=datetime.now(UTC) - timedelta(days=31),
            )
        )
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RECORDINGS_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("RECORDING_RETENTION_DAYS", "60")
    result = CliRunner().invoke(main, ["recordings", "purge"])
    assert result.exit_code == 0, result.output
    assert "deleted 0 call recording(s) older than 60 days" in result.output
    assert (tmp_path / "cli" / f"{sid}.wav").exists()
    monkeypatch.setenv("RECORDING_RETENTION_DAYS", "30")
    result = CliRunner().invoke(main, ["recordings", "purge"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 call recording(s) older than 30 days" in result.output
    assert not (tmp_path / "cli" / f"{sid}.wav").exists()
    [row] = _recordings(db)
    assert row.deleted_at is not None


def test_recording_settings_are_validated(tmp_path: Path) -> None:
    loaded = load_settings(
        {"RECORDINGS_DIR": str(tmp_path / "r"), "RECORDING_RETENTION_DAYS": "90"}
    )
    assert loaded.recordings_dir == str(tmp_path / "r")
    assert loaded.recording_retention_days == 90
    assert load_settings({}).recording_retention_days == 365
    for bad in ("0", "3651", "year"):
        with pytest.raises(ConfigError, match="RECORDING_RETENTION_DAYS"):
            load_settings({"RECORDING_RETENTION_DAYS": bad})


def test_simulate_call_in_process_records_the_call(
    settings: Settings,
    db: Database,
    redis_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``contactcenter simulate call`` (the in-process app, the simulator its provider and
    its worker while the call lasts) ends with the call recorded on its interaction."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RECORDINGS_DIR", str(tmp_path / "rec"))
    result = CliRunner().invoke(main, ["simulate", "call", "--from", UNKNOWN_CALLER])
    assert result.exit_code == 0, result.output
    assert "call recording RE" in result.output
    call_sid = result.output.split()[1].rstrip(":")
    [row] = _recordings(db)
    assert row.interaction_id == interaction_of(db, call_sid).id
    assert (row.status, row.channels) == ("completed", 2)
    assert Queue(IVR_QUEUE, connection=redis_client).job_ids == [
        f"recording-download-{row.sid}"  # for the app's worker
    ]
