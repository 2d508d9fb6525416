"""Multiprocess metrics under a real gunicorn (2 gthread workers, the deployment's
``-c python:contactcenter.gunicorn_conf``): a scrape answered by any worker counts every
worker's requests, also those of workers that have exited, whose live gauges are dropped by
the ``child_exit`` hook; the workers write JSON log lines.

The app is preloaded (imported once, then forked: metrics must not be shared by the forked
workers) so that the reload of the workers (SIGHUP) takes no new import of the app.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contactcenter.config import Settings
from crm_store.db import Database
from tests.conftest import _CONFIG_VARIABLES
from tests.ivr.test_webhooks_app import SMALL_FLOWS, write_flows
from tests.netutil import free_port, poll
from tests.observability.scrape import value

ROOT = Path(__file__).resolve().parents[2]
HISTOGRAM = "contactcenter_http_request_duration_seconds"


@dataclass
class Server:
    port: int
    process: subprocess.Popen[str]
    multiproc_dir: Path
    log_path: Path

    def request(self, method: str, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers={"Connection": "close"})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def pids(self, kind: str) -> set[int]:
        """Pids with a value file of ``kind`` (``counter``, ``histogram``, ``gauge_livesum``)."""
        found = set()
        for path in self.multiproc_dir.glob(f"{kind}_*.db"):
            match = re.fullmatch(rf"{kind}_(\d+)\.db", path.name)
            if match:
                found.add(int(match.group(1)))
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def server(
    settings: Settings, db: Database, redis_client: object, tmp_path: Path
) -> Iterator[Server]:
    port = free_port()
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARIABLES}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        TELEPHONY="sandbox",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        FLOWS_FILE=write_flows(tmp_path, SMALL_FLOWS),
        LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
        CONSOLE_SECRET_KEY_FILE=str(tmp_path / "console-key"),
    )
    log_path = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn",
        "-c", "python:contactcenter.gunicorn_conf",
        # The app is loaded once and forked: a reload does not import it again.
        "--preload", "--no-control-socket", "--graceful-timeout", "5",
        "--worker-class", "gthread", "--workers", "2", "--threads", "4",
        "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT),
        "webhooks:create_app()",
    ]  # fmt: skip
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True
        )
    server = Server(port, process, multiproc_dir, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.integration
def test_a_scrape_counts_every_worker_also_after_they_exit(server: Server) -> None:
    sent = 1  # the readiness poll of the fixture
    for _ in range(30):
        assert server.request("GET", "/healthz")[0] == 200
        sent += 1
    for _ in range(5):
        assert server.request("POST", "/voice/status")[0] == 403  # unsigned
    old_workers = server.pids("histogram")
    assert old_workers
    assert server.pids("gauge_livesum") >= old_workers

    server.process.send_signal(signal.SIGHUP)  # new workers; the old ones exit
    gone = poll(lambda: [pid for pid in old_workers if _alive(pid)], lambda alive: not alive, 30)
    assert not gone, f"old workers still alive: {gone}"
    status, text = poll(
        lambda: server.request("GET", "/metrics"),
        lambda answer: answer[0] == 200,
        30,
    )
    assert status == 200
    # Answered by a new worker, it counts what the exited ones served.
    assert value(text, f"{HISTOGRAM}_count", route="/healthz", method="GET") == sent
    forbidden = {"route": "/voice/status", "method": "POST", "status": "403"}
    assert value(text, "contactcenter_http_requests_total", **forbidden) == 5
    # child_exit dropped the exited workers' live gauges; their counters stay.
    assert not (server.pids("gauge_livesum") & old_workers)
    assert old_workers <= server.pids("histogram")
    assert "\ncontactcenter_media_streams_open 0.0\n" in text

    lines = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    access = [line for line in lines if line.get("logger") == "contactcenter.access"]
    assert len([line for line in access if line["route"] == "/voice/status"]) == 5
    assert all(line["status"] == 403 and len(line["request_id"]) == 32 for line in access)


def test_a_worker_freezes_its_start_up_objects_after_loading_the_app() -> None:
    """The image's gunicorn workers move start-up objects out of the collector's walks."""
    import gc

    from contactcenter import gunicorn_conf

    gc.unfreeze()
    try:
        gunicorn_conf.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
