"""Twilio's REST API, the subset our adapter uses, served by the sandbox.

``create_rest_app(provider)`` is a WSGI app implementing ``POST /Calls.json``,
``POST|GET /Calls/{sid}.json``, ``POST /Calls/{sid}/Recordings.json`` (a whole-call
recording), ``POST /Messages.json``, ``GET /Messages/{sid}.json`` and ``GET /Recordings/{sid}.wav``
under ``/2010-04-01/Accounts/{AccountSid}`` with HTTP basic auth and Twilio's JSON error
bodies. :class:`RestServer` serves it on loopback so the real ``twilio`` SDK can be pointed
at it (``client.api.base_url``). Faults (429, 5xx, any error code) can be injected to test
retries and error mapping.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from devtools.sandbox.provider import SandboxProvider
from devtools.sandbox.records import CallRecord, MessageRecord
from devtools.sandbox.twiml import API_VERSION
from telephony.errors import TelephonyError
from telephony.status import TERMINAL_CALL_STATUSES

PREFIX = "/2010-04-01/Accounts/<account_sid>"


@dataclass(frozen=True)
class Fault:
    """An error response to return instead of serving a request."""

    status: int
    code: int | None = None
    message: str = "injected fault"
    path_contains: str = ""


def _error(status: int, code: int | None, message: str) -> Response:
    body: dict[str, Any] = {"status": status, "message": message, "code": code}
    if code is not None:
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    resp = jsonify(body)
    resp.status_code = status
    return resp


def _events(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v for v in value.replace(",", " ").split() if v)
    return out


def create_rest_app(provider: SandboxProvider) -> Flask:
    """The REST emulation over ``provider`` (faults in ``app.extensions['faults']``)."""
    app = Flask("devtools.sandbox.rest")
    faults: deque[Fault] = deque()
    lock = threading.Lock()
    app.extensions["faults"] = faults
    app.extensions["fault_lock"] = lock
    app.extensions["requests"] = []

    @app.before_request
    def authenticate_and_inject() -> Response | None:
        app.extensions["requests"].append((request.method, request.path))
        auth = request.authorization
        if (
            auth is None
            or auth.username != provider.account_sid
            or auth.password != provider.auth_token
        ):
            return _error(401, 20003, "Authenticate")
        if (request.view_args or {}).get("account_sid") != provider.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        with lock:
            for fault in list(faults):
                if fault.path_contains in request.path:
                    faults.remove(fault)
                    return _error(fault.status, fault.code, fault.message)
        return None

    @app.errorhandler(TelephonyError)
    def telephony_error(exc: TelephonyError) -> Response:
        return _error(exc.status or 400, exc.code, str(exc))

    @app.errorhandler(ValueError)
    def bad_request(exc: ValueError) -> Response:
        return _error(400, 21201, str(exc))

    @app.post(f"{PREFIX}/Calls.json")
    def create_call(account_sid: str) -> Any:
        form = request.form
        machine = form.get("MachineDetection") or None
        if machine not in (None, "Enable", "DetectMessageEnd"):
            return _error(400, 21626, f"invalid MachineDetection {machine!r}")
        events = _events(form.getlist("StatusCallbackEvent")) or ["completed"]
        info = provider.place_call(
            form.get("To", ""),
            form.get("From", ""),
            form.get("Url", ""),
            status_callback=form.get("StatusCallback") or None,
            status_events=events,
            machine_detection=machine,  # type: ignore[arg-type]
            async_amd=(form.get("AsyncAmd", "false").lower() == "true"),
            amd_callback=form.get("AsyncAmdStatusCallback") or None,
            timeout_s=int(form.get("Timeout", "60")),
            time_limit_s=int(form["TimeLimit"]) if form.get("TimeLimit") else None,
            twiml=form.get("Twiml") or None,
        )
        resp = jsonify(call_info_json(provider.calls[info.sid], account_sid))
        resp.status_code = 201
        return resp

    @app.route(f"{PREFIX}/Calls/<call_sid>.json", methods=["GET", "POST"])
    def call_resource(account_sid: str, call_sid: str) -> Any:
        if request.method == "POST":
            form = request.form
            provider.update_call(
                call_sid,
                url=form.get("Url") or None,
                twiml=form.get("Twiml") or None,
                status=form.get("Status") or None,  # type: ignore[arg-type]
            )
        record = provider.calls.get(call_sid)
        if record is None:
            info = provider.fetch_call(call_sid)  # another process's call (rq mode), or 404
            return jsonify({"sid": info.sid, "account_sid": account_sid, "status": info.status,
                            "duration": None})  # fmt: skip
        return jsonify(call_info_json(record, account_sid))

    @app.post(f"{PREFIX}/Messages.json")
    def create_message(account_sid: str) -> Any:
        form = request.form
        info = provider.send_sms(
            form.get("To", ""),
            form.get("From", ""),
            form.get("Body", ""),
            status_callback=form.get("StatusCallback") or None,
        )
        resp = jsonify(message_info_json(provider.messages[info.sid], account_sid))
        resp.status_code = 201
        return resp

    @app.get(f"{PREFIX}/Messages/<message_sid>.json")
    def message_resource(account_sid: str, message_sid: str) -> Any:
        info = provider.fetch_message(message_sid)
        record = provider.messages.get(message_sid)
        if record is None:  # sent by another process of the sandbox (rq mode)
            return jsonify({"sid": info.sid, "account_sid": account_sid, "status": info.status,
                            "num_segments": str(info.segments)})  # fmt: skip
        return jsonify(message_info_json(record, account_sid))

    @app.post(f"{PREFIX}/Calls/<call_sid>/Recordings.json")
    def create_call_recording(account_sid: str, call_sid: str) -> Any:
        form = request.form
        info = provider.start_recording(
            call_sid,
            status_callback=form.get("RecordingStatusCallback") or None,
            channels="mono" if form.get("RecordingChannels") == "mono" else "dual",
        )
        resp = jsonify(
            {
                "account_sid": account_sid,
                "call_sid": info.call_sid,
                "sid": info.sid,
                "status": info.status,
                "channels": 1 if form.get("RecordingChannels") == "mono" else 2,
                "source": "StartCallRecordingAPI",
                "api_version": API_VERSION,
                "uri": f"/{API_VERSION}/Accounts/{account_sid}/Recordings/{info.sid}.json",
            }
        )
        resp.status_code = 201
        return resp

    @app.get(f"{PREFIX}/Recordings/<recording>")
    def recording_media(account_sid: str, recording: str) -> Any:
        wav = provider.fetch_recording(recording)
        return Response(wav, mimetype="audio/x-wav")

    return app


def inject_fault(app: Flask, fault: Fault, times: int = 1) -> None:
    """Make the next ``times`` matching requests fail with ``fault``."""
    with app.extensions["fault_lock"]:
        for _ in range(times):
            app.extensions["faults"].append(fault)


class RestServer:
    """The REST emulation served on a loopback port in a background thread."""

    def __init__(self, provider: SandboxProvider, host: str = "127.0.0.1", port: int = 0):
        self.app = create_rest_app(provider)
        self._server = make_server(host, port, self.app, threaded=True)
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05),
            name="sandbox-rest",
            daemon=True,
        )

    def start(self) -> Self:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def call_info_json(record: CallRecord, account_sid: str) -> dict[str, Any]:
    """The REST representation of a sandbox call (a subset of Twilio's Call resource)."""
    return {
        "sid": record.sid,
        "account_sid": account_sid,
        "to": record.to,
        "from": record.from_,
        "status": record.status,
        "direction": record.direction,
        "answered_by": record.answered_by,
        "duration": str(record.duration_s) if record.status in TERMINAL_CALL_STATUSES else None,
        "api_version": API_VERSION,
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{record.sid}.json",
    }


def message_info_json(record: MessageRecord, account_sid: str) -> dict[str, Any]:
    """The REST representation of a sandbox message (a subset of Twilio's Message resource)."""
    return {
        "sid": record.sid,
        "account_sid": account_sid,
        "to": record.to,
        "from": record.from_,
        "body": record.body,
        "status": record.status,
        "num_segments": str(record.segments),
        "direction": "outbound-api",
        "error_code": record.error_code,
        "api_version": API_VERSION,
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{record.sid}.json",
    }
