"""What the fault suite breaks things with besides :mod:`tests.netutil` (a redis-server of
its own, restarted with or without its data; a TCP forwarder in front of PostgreSQL that can
be cut and restored): real app server processes (``contactcenter serve``) and an HTTP client
for the call driver.

Nothing here touches the shared services: each test gets its own redis-server on a free port,
and PostgreSQL is only ever made unreachable through the forwarder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from tests.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]

#: The whole IVR path of the small hotline of ``tests.ivr.test_webhooks_app`` (``SMALL_FLOWS``)
#: when the caller finds an account: (step, event), each once.
FULL_PATH = [
    ("hotline:greet", "enter"),
    ("hotline:menu", "enter"),
    ("hotline:menu", "input"),
    ("hotline:ask", "enter"),
    ("hotline:ask", "input"),
    ("hotline:find", "enter"),
    ("hotline:find", "action"),
    ("hotline:found", "enter"),
    ("hotline:bye", "enter"),
]


def wait_until(predicate: Any, what: str, timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class AppServer:
    """``contactcenter serve`` in a process of its own (killed with SIGKILL by the tests)."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        command = [sys.executable, "-c", "from contactcenter.cli import main; main()",
                   "serve", "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"app server exited: {self.log_path.read_text()[-3000:]}")
            try:
                return requests.get(self.base_url + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, "the app server to answer /healthz", timeout_s=60)

    def kill(self) -> None:
        """SIGKILL the server process (no clean-up of any kind)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the server takes connections (the kernel does) but answers nothing."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def close(self) -> None:
        self.kill()
        self._log.close()


class HttpResponse:
    """The part of Flask's test response the call driver reads, over a real HTTP answer."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self._text = response.content.decode("utf-8")

    def get_data(self, as_text: bool = False) -> str:
        return self._text


class HttpClient:
    """``post(path, data=, headers=)`` over real HTTP to one app server (what Twilio does)."""

    def __init__(self, base_url: str, *, timeout_s: float = 15.0) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.posted = 0

    def post(self, path: str, *, data: Mapping[str, str], headers: Mapping[str, str]) -> Any:
        self.posted += 1
        response = requests.post(
            self.base_url + path, data=dict(data), headers=dict(headers), timeout=self.timeout_s
        )
        return HttpResponse(response)
