"""Issue 14, "Recording": every hotline call is recorded, as its greeting says.

Calls run through the call simulator (the sandbox's TwiML interpreter) into the real app;
the simulator is the app's provider, records the call and posts the signed recording status
callback to ``POST /voice/recording`` when the call ends; the download job runs on a real
RQ worker against the real Redis.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import select

from contactcenter.config import PROJECT_ROOT, Settings
from crm_store.db import Database
from crm_store.models import CallRecording, Interaction
from devtools.sandbox.transport import WsgiTransport, signed_request
from devtools.simulator import Simulator
from ivr.recordings import IVR_QUEUE, LocalRecordingStorage, purge_expired_recordings
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, UNKNOWN_CALLER, Clock
from .test_webhooks_app import interaction_of


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


def _run_jobs(app: Flask) -> None:
    redis = services_of(app).redis
    SimpleWorker([Queue(IVR_QUEUE, connection=redis)], connection=redis).work(burst=True)


def _hotline_call(sim: Simulator) -> str:
    call = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
    assert call.heard("запис")  # the greeting announces the recording
    call.hangup()
    assert call.ended
    return call.sid


def test_hotline_call_leaves_a_recording_reachable_from_its_interaction(
    app: Flask, db: Database, recordings_dir: Path
) -> None:
    with Simulator.for_app(app) as sim:
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
        with Simulator.for_app(application) as sim:
            sid = _hotline_call(sim)
            assert sim.call_recordings == {}
            assert sim.calls[0].call_recording is None
            _run_jobs(application)
    interaction_of(db, sid)  # the call itself was handled
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
        call = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
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
    queue = Queue(IVR_QUEUE, connection=services_of(app).redis)
    assert queue.job_ids == [f"recording-download-{'RE' + 'a' * 32}"]
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
    from click.testing import CliRunner

    from contactcenter.cli import main

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
    from contactcenter.config import ConfigError, load_settings

    loaded = load_settings(
        {"RECORDINGS_DIR": str(tmp_path / "r"), "RECORDING_RETENTION_DAYS": "90"}
    )
    assert loaded.recordings_dir == str(tmp_path / "r")
    assert loaded.recording_retention_days == 90
    assert load_settings({}).recording_retention_days == 365
    for bad in ("0", "3651", "year"):
        with pytest.raises(ConfigError, match="RECORDING_RETENTION_DAYS"):
            load_settings({"RECORDING_RETENTION_DAYS": bad})
