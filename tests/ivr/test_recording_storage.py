"""Where call recordings are kept: a local directory, or an S3-compatible bucket.

The bucket is a real S3-compatible HTTP server (moto's ``ThreadedMotoServer`` on loopback)
reached by boto3 like MinIO or Yandex Object Storage would be (``RECORDINGS_S3_ENDPOINT_URL``).
A hotline call's recording goes through the whole path: the simulator records the call, the
download job (a real RQ worker) puts the WAV in the bucket, ``contactcenter recordings get``
reads it back, the retention job deletes it.
"""

from __future__ import annotations

import io
import uuid
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from moto.server import ThreadedMotoServer
from rq import Queue, SimpleWorker
from sqlalchemy import select

from contactcenter.cli import main
from contactcenter.config import ConfigError, Settings, load_settings
from crm_store.db import Database
from crm_store.models import CallRecording
from devtools.simulator import Simulator
from ivr.errors import RecordingNotStored, RecordingStorageError
from ivr.recording_storage import (
    LocalRecordingStorage,
    S3RecordingStorage,
    split_s3_location,
    storage_from_settings,
)
from ivr.recordings import IVR_QUEUE, purge_expired_recordings, read_recording
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, UNKNOWN_CALLER, Clock
from .test_webhooks_app import interaction_of

RIFF = b"RIFF\x24\x00\x00\x00WAVEfmt "


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback (one per test process)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials and region from the standard AWS variables, nothing from ~/.aws."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "ru-central1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


def _s3(endpoint: str) -> Any:
    return boto3.session.Session().client("s3", endpoint_url=endpoint)


@pytest.fixture
def bucket(s3_endpoint: str, aws_env: None) -> str:
    name = f"recordings-{uuid.uuid4().hex[:12]}"
    _s3(s3_endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ru-central1"}
    )
    return name


def _object_exists(endpoint: str, location: str) -> bool:
    bucket, key = split_s3_location(location)
    listed = _s3(endpoint).list_objects_v2(Bucket=bucket, Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", []))


# --------------------------------------------------------------------------- the storages


def test_s3_storage_saves_reads_links_and_deletes(bucket: str, s3_endpoint: str) -> None:
    storage = S3RecordingStorage(bucket, prefix="/calls/2026/", endpoint_url=s3_endpoint)
    sid = "RE" + "a" * 32
    location = storage.save(f"{sid}.wav", RIFF + b"data")
    assert location == f"s3://{bucket}/calls/2026/{sid}.wav"
    assert _object_exists(s3_endpoint, location)
    assert storage.read(location) == RIFF + b"data"
    url = storage.link(location, expires_s=120)
    assert url.startswith(f"{s3_endpoint}/{bucket}/calls/2026/{sid}.wav?")
    assert "X-Amz-Signature=" in url  # SigV4, as every S3-compatible service takes
    assert requests.get(url, timeout=10).content == RIFF + b"data"
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403  # not public
    storage.delete(location)
    assert not _object_exists(s3_endpoint, location)
    storage.delete(location)  # a copy already gone is not an error
    with pytest.raises(RecordingNotStored, match="no such object"):
        storage.read(location)
    with pytest.raises(RecordingNotStored):
        storage.link(location)
    with pytest.raises(ValueError, match="plain file name"):
        storage.save("../escape.wav", b"x")


def test_s3_storage_failures_are_clear_errors(s3_endpoint: str, aws_env: None) -> None:
    storage = S3RecordingStorage("no-such-bucket-here", endpoint_url=s3_endpoint)
    with pytest.raises(RecordingStorageError, match="NoSuchBucket"):
        storage.save("RE1.wav", RIFF)
    with pytest.raises(RecordingStorageError, match="NoSuchBucket"):
        storage.delete("s3://no-such-bucket-here/RE1.wav")
    with pytest.raises(ValueError, match="s3://bucket/key"):
        storage.read("/var/recordings/RE1.wav")


def test_local_storage_saves_reads_links_and_deletes(tmp_path: Path) -> None:
    storage = LocalRecordingStorage(tmp_path / "rec")
    location = storage.save("RE1.wav", RIFF)
    assert location == str(tmp_path / "rec" / "RE1.wav")
    assert storage.read(location) == RIFF
    assert storage.link(location) == location
    assert [p.name for p in (tmp_path / "rec").iterdir()] == ["RE1.wav"]  # no .part left
    storage.delete(location)
    storage.delete(location)
    with pytest.raises(RecordingNotStored):
        storage.read(location)
    with pytest.raises(RecordingNotStored):
        storage.link(location)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(RecordingStorageError, match="cannot write"):
        LocalRecordingStorage(tmp_path / "file").save("RE1.wav", RIFF)


def test_storage_settings(tmp_path: Path) -> None:
    assert load_settings({}).recordings_storage == "local"
    assert isinstance(storage_from_settings(load_settings({})), LocalRecordingStorage)
    loaded = load_settings(
        {
            "RECORDINGS_STORAGE": "S3",
            "RECORDINGS_S3_BUCKET": "cc-recordings",
            "RECORDINGS_S3_PREFIX": "/calls/",
            "RECORDINGS_S3_ENDPOINT_URL": "https://storage.yandexcloud.net",
            "RECORDING_PURGE_AT": "4:30",
        }
    )
    assert (
        loaded.recordings_storage,
        loaded.recordings_s3_bucket,
        loaded.recordings_s3_prefix,
        loaded.recordings_s3_endpoint_url,
        loaded.recording_purge_at.isoformat(),
    ) == ("s3", "cc-recordings", "calls", "https://storage.yandexcloud.net", "04:30:00")
    storage = storage_from_settings(loaded)
    assert isinstance(storage, S3RecordingStorage)
    assert (storage.bucket, storage.prefix) == ("cc-recordings", "calls")
    bad = {
        "RECORDINGS_S3_BUCKET": [{"RECORDINGS_STORAGE": "s3"}, {"RECORDINGS_S3_BUCKET": "My_B"}],
        "RECORDINGS_STORAGE": [{"RECORDINGS_STORAGE": "ftp"}],
        "RECORDINGS_S3_PREFIX": [{"RECORDINGS_S3_PREFIX": "a/../b"}],
        "RECORDINGS_S3_ENDPOINT_URL": [{"RECORDINGS_S3_ENDPOINT_URL": "minio:9000"}],
        "RECORDING_PURGE_AT": [{"RECORDING_PURGE_AT": v} for v in ("24:00", "3", "03:60")],
    }
    for variable, envs in bad.items():
        for env in envs:
            with pytest.raises(ConfigError, match=variable):
                load_settings(env)
    with pytest.raises(ConfigError, match="RECORDINGS_S3_BUCKET"):
        storage_from_settings(Settings(recordings_storage="s3"))


def test_worker_refuses_s3_storage_without_a_bucket(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RECORDINGS_STORAGE", "s3")
    result = CliRunner().invoke(main, ["worker", "--burst"])
    assert result.exit_code == 2
    assert "configuration error: RECORDINGS_S3_BUCKET: is required when" in result.output


# --------------------------------------------------------------------------- a call's recording


@pytest.fixture
def s3_settings(settings: Settings, bucket: str, s3_endpoint: str, tmp_path: Path) -> Settings:
    return settings.with_overrides(
        recordings_dir=str(tmp_path / "before"),  # where local copies were kept before S3
        recordings_storage="s3",
        recordings_s3_bucket=bucket,
        recordings_s3_prefix="calls",
        recordings_s3_endpoint_url=s3_endpoint,
    )


@pytest.fixture
def s3_app(s3_settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(s3_settings)
    services_of(application).clock = Clock(IN_WINDOW)
    yield application
    services_of(application).db.dispose()


def _recorded_call(app: Flask) -> tuple[str, CallRecording]:
    """A hotline call recorded by the simulator, its recording downloaded by an RQ worker."""
    services = services_of(app)
    with Simulator.for_app(app) as sim:
        call = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
        call.hangup()
        queue = Queue(IVR_QUEUE, connection=services.redis)
        SimpleWorker([queue], connection=services.redis).work(burst=True)
    with services.db.transaction() as s:
        row = s.scalars(select(CallRecording)).one()
        s.expunge(row)
    return call.sid, row


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("RECORDINGS_STORAGE", settings.recordings_storage)
    monkeypatch.setenv("RECORDINGS_DIR", settings.recordings_dir)
    if settings.recordings_s3_bucket:
        monkeypatch.setenv("RECORDINGS_S3_BUCKET", settings.recordings_s3_bucket)
        monkeypatch.setenv("RECORDINGS_S3_PREFIX", settings.recordings_s3_prefix)
        monkeypatch.setenv("RECORDINGS_S3_ENDPOINT_URL", settings.recordings_s3_endpoint_url or "")


def test_hotline_recording_goes_to_the_bucket_is_fetched_and_expires(
    s3_app: Flask,
    s3_settings: Settings,
    db: Database,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call_sid, row = _recorded_call(s3_app)
    bucket = s3_settings.recordings_s3_bucket
    location = f"s3://{bucket}/calls/{row.sid}.wav"
    assert row.storage_path == location
    assert row.interaction_id == interaction_of(db, call_sid).id
    assert _object_exists(s3_endpoint, location)
    services = services_of(s3_app)
    data = read_recording(services, row.sid)
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnchannels() == 2
    # Retrievable: `contactcenter recordings get`, by recording SID or by call SID.
    _env(monkeypatch, s3_settings)
    out = tmp_path / "copy.wav"
    result = CliRunner().invoke(main, ["recordings", "get", row.sid, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == data
    result = CliRunner().invoke(main, ["recordings", "get", call_sid, "--link"])
    assert result.exit_code == 0, result.output
    assert requests.get(result.output.strip(), timeout=10).content == data
    # The retention job deletes the object; the row stays, marked.
    later = datetime.now(UTC) + timedelta(days=s3_settings.recording_retention_days + 1)
    assert purge_expired_recordings(services, now=later) == 1
    assert not _object_exists(s3_endpoint, location)
    assert purge_expired_recordings(services, now=later) == 0
    result = CliRunner().invoke(main, ["recordings", "get", row.sid, "--out", str(out)])
    assert result.exit_code == 1
    assert "was deleted by the retention job on" in result.output


def test_retention_deletes_copies_kept_before_the_storage_changed(
    s3_app: Flask, db: Database, tmp_path: Path, s3_endpoint: str
) -> None:
    """Recordings downloaded into RECORDINGS_DIR before the switch to a bucket still expire."""
    _call_sid, row = _recorded_call(s3_app)
    old = LocalRecordingStorage(tmp_path / "before").save("RE" + "0" * 32 + ".wav", RIFF)
    with db.transaction() as s:
        s.add(
            CallRecording(
                interaction_id=row.interaction_id,
                sid="RE" + "0" * 32,
                url="https://api.twilio.com/x",
                status="completed",
                storage_path=old,
                created_at=datetime.now(UTC) - timedelta(days=400),
            )
        )
    assert purge_expired_recordings(services_of(s3_app)) == 1
    assert not Path(old).exists()
    assert _object_exists(s3_endpoint, row.storage_path or "")  # the recent one stays


def test_recordings_get_explains_why_there_is_no_copy(
    settings: Settings,
    db: Database,
    redis_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = settings.with_overrides(recordings_dir=str(tmp_path / "rec"))
    application = create_app(local)
    services_of(application).clock = Clock(IN_WINDOW)
    _env(monkeypatch, local)
    try:
        with Simulator.for_app(application) as sim:
            call = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
            result = CliRunner().invoke(main, ["recordings", "get", call.sid, "--link"])
            assert result.exit_code == 1
            assert "is not downloaded yet (status in-progress)" in result.output
            call.hangup()
            queue = Queue(IVR_QUEUE, connection=redis_client)
            SimpleWorker([queue], connection=redis_client).work(burst=True)  # the download
        with db.transaction() as s:
            sid = s.scalars(select(CallRecording.sid)).one()
    finally:
        services_of(application).db.dispose()
    result = CliRunner().invoke(main, ["recordings", "get", sid, "--link"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "rec" / f"{sid}.wav")
    result = CliRunner().invoke(main, ["recordings", "get", sid, "--out", "-"])
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"RIFF")
    for args, message in (
        (["RE" + "f" * 32, "--link"], "no recording RE"),
        ([sid], "give either --out FILE or --link"),
        ([sid, "--link", "--out", "x.wav"], "give either --out FILE or --link"),
    ):
        result = CliRunner().invoke(main, ["recordings", "get", *args])
        assert result.exit_code in (1, 2)
        assert message in result.output
    (tmp_path / "rec" / f"{sid}.wav").unlink()
    result = CliRunner().invoke(main, ["recordings", "get", sid, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
