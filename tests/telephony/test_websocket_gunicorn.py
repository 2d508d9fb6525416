"""``telephony.websocket`` under gunicorn's gthread workers (the Dockerfile's server).

flask-sock hands a route gunicorn's own socket there (``gunicorn.socket``), and the worker
processes are forked: each one must get its own hub. The app below echoes through
:class:`InlineWebSocket` on :func:`shared_hub`; gunicorn runs as a subprocess with two
workers and the sandbox's websocket client talks to it.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask_sock import Sock

from devtools.sandbox.wsclient import WebSocketClient
from telephony.websocket import SERVER_OPTIONS, InlineWebSocket, refuse_extensions, shared_hub

ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = ".".join(Path(__file__).resolve().relative_to(ROOT).with_suffix("").parts)


def create_echo_app() -> Flask:
    """An echo route on the process's hub, as ``/media-stream`` uses it ("bye" ends it)."""
    app = Flask("gunicorn_echo")
    app.config["SOCK_SERVER_OPTIONS"] = dict(SERVER_OPTIONS)
    app.before_request(lambda: refuse_extensions(request.environ))
    sock = Sock(app)

    @sock.route("/echo")
    def echo(ws: Any) -> None:
        inline = InlineWebSocket(ws)
        done = threading.Event()

        def on_messages(batch: list[str | bytes]) -> None:
            for message in batch:
                if message == "bye":
                    done.set()
                    return
                inline.send(f"{os.getpid()}:{str(message).upper()}")

        subscription = shared_hub().attach(inline, on_messages, done.set)
        done.wait(10)
        subscription.detach()
        subscription.wait_released()

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gunicorn_url() -> Iterator[str]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        "2",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(ROOT),
        f"{APP_MODULE}:create_echo_app()",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:  # an HTTP answer: a worker has loaded the app (the port opens before)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                try:
                    connection.request("GET", "/")
                    connection.getresponse().read()
                finally:
                    connection.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=5)
                    pytest.fail(f"gunicorn did not start: {err[:4000]}")
                time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/echo"
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.mark.integration
def test_inline_websockets_work_under_gunicorn_gthread_workers(gunicorn_url: str) -> None:
    pids = set()
    for n in range(6):
        client = WebSocketClient(gunicorn_url)
        try:
            client.send(f"привет {n}")
            client.send("hello")
            first, second = client.receive(5), client.receive(5)
            assert first is not None
            assert second is not None
            pid, _, text = first.partition(":")
            assert text == f"ПРИВЕТ {n}"
            assert second == f"{pid}:HELLO"
            pids.add(pid)
            client.send("bye")
        finally:
            client.close()
    assert pids  # every connection answered by a worker (each forked worker has its hub)
