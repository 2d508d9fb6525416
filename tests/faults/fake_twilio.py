"""A local HTTP server standing in for Twilio's REST API, answering from a script.

Each request to ``…/Calls.json`` or ``…/Messages.json`` takes the next behaviour of the script
(then ``ok``): ``("ok",)`` creates the resource (201), ``("status", 429, retry_after)`` or
``("status", 503, None)`` refuses it, ``("hang",)`` creates it and answers only when the
server closes (a timeout on our side after Twilio did the work), ``("hang-before",)`` answers
nothing and creates nothing. ``created`` lists what was created: the duplicates we look for.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class FakeTwilio:
    """The fake REST API on a free loopback port (``base_url``); ``close()`` when done."""

    def __init__(self) -> None:
        self.script: list[tuple[Any, ...]] = []
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.handle(self, form)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def handle(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        kind = "Messages" if handler.path.endswith("/Messages.json") else "Calls"
        with self._lock:
            self.requests.append((kind, form.get("To", "")))
            behaviour = self.script.pop(0) if self.script else ("ok",)
        if behaviour[0] == "status":
            _, status, retry_after = behaviour
            body = {"code": 20429 if status == 429 else 20500, "message": "try later",
                    "status": status}  # fmt: skip
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._answer(handler, status, body, headers)
            return
        if behaviour[0] == "hang-before":
            self._closing.wait(30)
            return
        prefix = "SM" if kind == "Messages" else "CA"
        resource = {
            "sid": prefix + uuid.uuid4().hex,
            "status": "queued",
            "num_segments": "1",
            "to": form.get("To", ""),
            "status_callback": form.get("StatusCallback", ""),
        }
        with self._lock:
            self.created.append(resource)
        if behaviour[0] == "hang":
            self._closing.wait(30)
            return
        self._answer(handler, 201, resource, {})

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
