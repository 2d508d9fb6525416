"""``make run``'s set-up records a call: a web server, a ``contactcenter worker`` process and
``contactcenter simulate call --url`` on one Redis.

The server's provider is the sandbox (state in Redis); its webhook queues the start of the
recording, the worker process starts it through the sandbox, which knows the simulated call
through the shared state; the simulator posts the recording callback when the caller hangs up
and the worker downloads the recording into ``RECORDINGS_DIR``.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from redis import Redis
from rq import Worker
from sqlalchemy import select
from werkzeug.serving import make_server

from contactcenter.cli import main
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import CallRecording, Interaction
from webhooks import create_app, services_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_url(settings: Settings, db: Database, tmp_path: Path) -> Iterator[str]:
    """The app served over HTTP on loopback, its PUBLIC_BASE_URL being that address."""
    holder: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda env, sr: holder["app"](env, sr), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app = create_app(
        settings.with_overrides(public_base_url=base, recordings_dir=str(tmp_path / "rec"))
    )
    holder["app"] = app
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05))
    thread.start()
    yield base
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    services_of(app).db.dispose()


@pytest.fixture
def worker_env(settings: Settings, server_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PUBLIC_BASE_URL": server_url,
        "RECORDINGS_DIR": str(tmp_path / "rec"),
        "TELEPHONY": "sandbox",
    }


@pytest.fixture
def worker_process(worker_env: dict[str, str], redis_client: Redis) -> Iterator[None]:
    """``contactcenter worker`` in its own process, listening once this returns."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "contactcenter"), "worker", "--name", "make-run"],
        cwd=ROOT,
        env={**os.environ, **worker_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(w.name == "make-run" for w in Worker.all(connection=redis_client)):
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _recording(db: Database, call_sid: str) -> CallRecording | None:
    with db.transaction() as s:
        row = s.scalar(
            select(CallRecording)
            .join(Interaction, Interaction.id == CallRecording.interaction_id)
            .where(Interaction.provider_sid == call_sid)
        )
        if row is not None:
            s.expunge(row)
        return row


@pytest.mark.integration
def test_simulate_call_against_a_server_and_its_worker_is_recorded(
    server_url: str,
    worker_env: dict[str, str],
    worker_process: None,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(
        main, ["simulate", "call", "--url", server_url, "--from", "+79035550000", "--verbose"]
    )
    assert result.exit_code == 0, result.output
    assert "запис" in result.output  # the greeting announces the recording
    assert "call recording" in result.output
    assert "status callback → 204" in result.output
    call_sid = result.output.split()[1].rstrip(":")
    assert call_sid.startswith("CA")
    deadline = time.monotonic() + 30
    row = _recording(db, call_sid)
    while row is None or row.storage_path is None:
        assert time.monotonic() < deadline, f"not downloaded: {row and row.status}"
        time.sleep(0.1)
        row = _recording(db, call_sid)
    assert row.status == "completed"
    assert row.url.endswith(f"/Recordings/{row.sid}")
    assert row.storage_path == str(tmp_path / "rec" / f"{row.sid}.wav")
    with wave.open(io.BytesIO(Path(row.storage_path).read_bytes())) as wav:
        assert wav.getnchannels() == 2
