"""What the fault suite breaks things with: a redis-server of its own (stopped, restarted with
or without its data), a TCP proxy in front of PostgreSQL that can be cut and restored, real
app server processes (``contactcenter serve``) and an HTTP client for the call driver.

Nothing here touches the shared services: each test gets its own redis-server on a free port,
and PostgreSQL is only ever made unreachable through the proxy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
import requests

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


def free_port() -> int:
    """A TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, what: str, timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A private redis-server with an append-only file, so a restart may keep its data."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("redis-server is not installed: run `make test`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        try:
            wait_until(lambda: _pings(client), "redis-server to start")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL: what a crash does (the append-only file has every write, fsync always)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, keep_data: bool) -> None:
        """Kill and start again on the same port, with its data or with none."""
        self.stop()
        if not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class TcpProxy:
    """A TCP forwarder to ``upstream`` that can be cut (every connection dropped, new ones
    closed at once) and restored: an unreachable database without touching the server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._sockets.difference_update((source, sink))

    def cut(self) -> None:
        """Drop every open connection; refuse new ones until :meth:`restore`."""
        self._cut.set()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self.listener.close()
        self._thread.join(timeout=5)


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
