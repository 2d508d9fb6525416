"""The call simulator: inbound calls through our real webhooks, driven from a test or the CLI.

::

    sim = Simulator(app, auth_token, "http://localhost")   # or Simulator("http://host:5000", token)
    call = sim.call(from_="+79161234501", to="+78001234567")  # POST /voice/incoming
    call.press("1")
    call.say("tests/fixtures/audio/ru/account_7700112233.wav")  # Record / Media Streams capture
    call.say_text("да")                                        # SpeechResult of a speech Gather
    call.wait_silence()                                        # no input: the timeout path
    assert call.heard("принят")
    print(call.transcript_text())

Every request is signed like Twilio's. The app may report what it did through response
headers (see ``devtools/README.md``): ``X-IVR-Step`` (the steps visited, comma-separated)
and ``X-IVR-Recognized`` (``<percent-encoded text>;confidence=0.87``); they appear in the
transcript (``heard: … (confidence 0.87)``), ``call.steps`` and ``call.recognized``.

The simulator is also a :class:`~telephony.base.TelephonyProvider` for in-process runs:
:meth:`Simulator.for_app` registers it in the app's ``Services`` under
``Services.telephony`` (until :meth:`Simulator.close`), so ``update_call`` from our
``/media-stream`` route redirects the simulated call as Twilio's REST API would, and
``fetch_recording`` serves the recordings the simulated caller made. Outbound calls and SMS
go to the provider the app had before (built on demand from the settings).

Some of the app's RQ jobs need a worker while the call lasts (the start of its whole-call
recording, an SMS it asked for), and a virtual clock makes a simulated call take no real time.
So, for an in-process app, the simulator also runs the jobs the app queued on its IVR queue
for a call while the call lasts (``run_jobs``, the default of :meth:`Simulator.for_app`):
after the first TwiML document (the call is then in progress) and after every turn of the
caller, with a real RQ worker. Other jobs, and those queued by the end of the call (the
recording's download), are left to the app's worker (a test runs one).

Against a running server (``make run``: a web process and ``contactcenter worker`` on one
Redis) pass that Redis as ``redis``: the simulated calls' status, ``update_call`` requests
and whole-call recordings then go through the sandbox's shared state there
(:class:`~devtools.sandbox.state.RedisCallState`), so the server's sandbox provider records
and redirects them, and each call waits (``app_job_wait_s``, real time) for the worker to
start its recording once it is in progress.

Flow coverage: with a :class:`~devtools.flow_coverage.CoverageRecorder` (the ``coverage``
argument, or ``CC_FLOW_COVERAGE`` in the environment) every call appends the steps it
visited to a coverage data file after each caller action (see :mod:`devtools.flow_coverage`).
Calls into an in-process app that is not ours (no ``create_app`` services) are not recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from werkzeug.serving import make_server

from contactcenter.phones import InvalidPhoneError, normalize_phone
from contactcenter.services import Services, install_services
from devtools.flow_coverage import CoverageError, CoverageRecorder
from devtools.sandbox.audio import AudioError, call_recording_wav, read_wav
from devtools.sandbox.clock import Clock, RealClock, VirtualClock
from devtools.sandbox.interpreter import LiveCall
from devtools.sandbox.media import WsConnect, default_ws_connect
from devtools.sandbox.records import SANDBOX_ACCOUNT_SID, TWILIO_API_BASE, StoredRecording
from devtools.sandbox.state import CallState, RedisCallState
from devtools.sandbox.transport import (
    HttpTransport,
    Transport,
    WebhookTransportError,
    WsgiTransport,
    signed_request,
)
from devtools.sandbox.twiml import (
    CallBehaviour,
    CallerAction,
    CallUpdate,
    InputRequest,
    TranscriptEntry,
    new_sid,
)
from ivr.recordings import START_RETRY_DELAYS_S, recording_start_job_id
from ivr.sms import IVR_QUEUE
from telephony.base import (
    CallInfo,
    CallStatusUpdate,
    MachineDetection,
    MessageInfo,
    RecordingChannels,
    RecordingInfo,
    TelephonyProvider,
    check_update_arguments,
)
from telephony.errors import CallNotFound, ProviderRejected
from telephony.status import DEFAULT_STATUS_EVENTS
from webhooks import services_of

#: Job statuses of an app job that has not run to its end yet.
_PENDING = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


class SimulatorError(Exception):
    """The simulator was used wrongly (e.g. input after the call ended, a bad number)."""


class RecordingNotFound(SimulatorError, CallNotFound):
    """No simulated call made the recording asked for (a provider 404 as well)."""


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("ё", "е").split())


class _LoopbackServer:
    """Serves an in-process app on 127.0.0.1 so Media Streams websockets can reach it."""

    def __init__(self, app: Any) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05),
            name="simulator-ws",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _InProcessWorker(SimpleWorker):
    """RQ's SimpleWorker running chosen jobs of the app inside the simulator's process
    (:meth:`SimpleWorker.execute_job`, no work loop: no signal handlers, no remote-command
    thread)."""


def _flows_file_of(app: Any) -> str | None:
    """The flow file of an app made by ``webhooks.create_app`` (None for other apps)."""
    services = getattr(app, "extensions", {}).get("services")
    settings = getattr(services, "settings", None)
    flows_file = getattr(settings, "flows_file", None)
    return str(flows_file) if flows_file else None


class Simulator:
    """Places simulated inbound calls to our app (in-process Flask app or a URL)."""

    def __init__(
        self,
        app_or_url: Any,
        auth_token: str,
        public_base_url: str | None = None,
        *,
        incoming_path: str = "/voice/incoming",
        status_callback_path: str | None = None,
        account_sid: str = SANDBOX_ACCOUNT_SID,
        api_base_url: str = TWILIO_API_BASE,
        clock: Clock | None = None,
        realtime: bool = False,
        behaviour: CallBehaviour | None = None,
        ws_connect: WsConnect | None = None,
        transport: Transport | None = None,
        coverage: CoverageRecorder | str | Path | None = None,
        flows_file: str | Path | None = None,
        run_jobs: bool = False,
        redis: Redis | None = None,
        app_job_wait_s: float = 5.0,
    ) -> None:
        """``coverage``: where to record visited steps (a recorder or a path; default
        ``CC_FLOW_COVERAGE``); ``flows_file``: the app's flow file, stored with the data
        (default: the in-process app's ``Settings.flows_file``); ``run_jobs``: run the
        in-process app's IVR jobs during the calls (needs :meth:`register_as_provider`);
        ``redis``: the running server's Redis, shared with its sandbox provider and worker
        (see the module docstring), whose recording start each call waits up to
        ``app_job_wait_s`` for."""
        if not auth_token:
            raise SimulatorError("an auth token is needed to sign webhooks")
        self._app: Any = None
        if isinstance(app_or_url, str):
            parsed = urlsplit(app_or_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise SimulatorError(f"not an http(s) URL: {app_or_url!r}")
            base = public_base_url or app_or_url
            self.transport: Transport = transport or HttpTransport()
        else:
            if not callable(app_or_url):
                raise SimulatorError("app_or_url must be a WSGI app or an http(s) URL")
            if not public_base_url:
                raise SimulatorError("public_base_url is needed with an in-process app")
            base = public_base_url
            self._app = app_or_url
            self.transport = transport or WsgiTransport(app_or_url)
        self.public_base_url = base.rstrip("/")
        self.auth_token = auth_token
        self.incoming_path = incoming_path
        self.status_callback_path = status_callback_path
        self.account_sid = account_sid
        self.api_base_url = api_base_url
        self.realtime = realtime
        self.clock: Clock = clock or (RealClock() if realtime else VirtualClock())
        self.behaviour = behaviour or CallBehaviour()
        self._ws_connect = ws_connect
        self._loopback: _LoopbackServer | None = None
        self._lock = threading.Lock()
        self.recordings: dict[str, StoredRecording] = {}
        self.calls: list[SimulatedCall] = []
        self._live: dict[str, LiveCall] = {}
        self._pending: dict[str, list[CallUpdate]] = {}
        #: Whole-call recordings started by ``start_recording``: call SID → (recording
        #: SID, status callback, channels).
        self.call_recordings: dict[str, tuple[str, str | None, RecordingChannels]] = {}
        #: Whole-call recordings of ended calls: call SID → sid, url, duration.
        self.finished_recordings: dict[str, dict[str, Any]] = {}
        self.run_jobs = run_jobs
        self._redis = redis
        self.state: CallState | None = RedisCallState(redis) if redis is not None else None
        self.app_job_wait_s = app_job_wait_s
        self._services: Services | None = None
        self._previous_provider: TelephonyProvider | None = None
        self._outbound_provider: TelephonyProvider | None = None
        if flows_file is None and self._app is not None:
            flows_file = _flows_file_of(self._app)
        self.flows_file = str(flows_file) if flows_file is not None else None
        recorder = CoverageRecorder(coverage) if isinstance(coverage, str | Path) else coverage
        if recorder is None and (self._app is None or self.flows_file is not None):
            try:
                recorder = CoverageRecorder.from_env()
            except CoverageError as exc:
                raise SimulatorError(str(exc)) from None
        self.coverage = recorder

    @classmethod
    def for_app(cls, app: Any, *, as_provider: bool = True, **kwargs: Any) -> Self:
        """A simulator for an app made by ``webhooks.create_app``: its token and public URL.

        Status callbacks go to ``/voice/status`` unless ``status_callback_path`` is given.
        With ``as_provider`` (the default) the simulator becomes the app's telephony
        provider until it is closed (see :meth:`register_as_provider`) and runs the app's
        IVR jobs during the calls (``run_jobs``, see the module docstring).
        """
        services = services_of(app)
        settings = services.settings
        kwargs.setdefault("status_callback_path", "/voice/status")
        kwargs.setdefault("run_jobs", as_provider)
        sim = cls(app, settings.webhook_auth_token, settings.public_base_url, **kwargs)
        if as_provider:
            sim.register_as_provider(services)
        return sim

    # -- the provider side (Twilio's REST API for the simulated calls) -------------------

    def register_as_provider(self, services: Services) -> None:
        """Become the telephony provider of ``services`` (the in-process app's) until
        :meth:`close`, which puts the previous provider back."""
        if self._services is not None:
            raise SimulatorError("the simulator is already registered as a provider")
        self._previous_provider = services.built_telephony()
        self._services = services
        services.telephony = self

    def _unregister(self) -> None:
        services, self._services = self._services, None
        if services is not None and services.built_telephony() is self:
            services.telephony = self._previous_provider

    def _outbound(self) -> TelephonyProvider:
        """Where outbound calls and SMS go: the app's provider from before the simulator."""
        if self._services is None:
            raise ProviderRejected(
                "the call simulator places no outbound calls or SMS "
                "(it is not registered as an app's provider)"
            )
        if self._outbound_provider is None:
            self._outbound_provider = self._previous_provider or self._services.provider_factory(
                self._services
            )
        return self._outbound_provider

    def place_call(
        self,
        to: str,
        from_: str,
        url: str,
        *,
        status_callback: str | None,
        status_events: Sequence[str] = DEFAULT_STATUS_EVENTS,
        machine_detection: MachineDetection | None = None,
        async_amd: bool = True,
        amd_callback: str | None = None,
        timeout_s: int = 30,
        time_limit_s: int | None = None,
    ) -> CallInfo:
        """Outbound calls are not simulated: they go to the app's previous provider."""
        return self._outbound().place_call(
            to,
            from_,
            url,
            status_callback=status_callback,
            status_events=status_events,
            machine_detection=machine_detection,
            async_amd=async_amd,
            amd_callback=amd_callback,
            timeout_s=timeout_s,
            time_limit_s=time_limit_s,
        )

    def send_sms(
        self, to: str, from_: str, body: str, *, status_callback: str | None
    ) -> MessageInfo:
        """SMS are not simulated: they go to the app's previous provider."""
        return self._outbound().send_sms(to, from_, body, status_callback=status_callback)

    def fetch_call(self, sid: str) -> CallInfo:
        """A simulated call's status now; other calls are asked of the previous provider."""
        with self._lock:
            live = self._live.get(sid)
            if live is not None:
                return CallInfo(sid, live.status)
        return self._outbound().fetch_call(sid)

    def fetch_message(self, sid: str) -> MessageInfo:
        """SMS are not simulated: asked of the app's previous provider."""
        return self._outbound().fetch_message(sid)

    def update_call(
        self,
        sid: str,
        *,
        url: str | None = None,
        twiml: str | None = None,
        status: CallStatusUpdate | None = None,
    ) -> CallInfo:
        """Redirect a simulated call to ``url`` / ``twiml`` or end it, as Twilio's REST API
        does; the call takes the update before its next verb or after the caller's input.

        Raises :class:`~telephony.errors.CallNotFound` for an unknown or ended call and
        ``ValueError`` unless exactly one of ``url``, ``twiml`` and ``status`` is given.
        """
        check_update_arguments(url, twiml, status)
        with self._lock:
            live = self._live.get(sid)
            if live is None:
                raise CallNotFound(f"call {sid} was not found", code=20404, status=404)
            if live.ended:
                raise CallNotFound(
                    f"call {sid} is not in progress ({live.status})", code=21220, status=400
                )
            self._pending.setdefault(sid, []).append(
                CallUpdate(url=url, twiml=twiml, status=status)
            )
            return CallInfo(sid, status or live.status)

    def start_recording(
        self,
        call_sid: str,
        *,
        status_callback: str | None,
        channels: RecordingChannels = "dual",
    ) -> RecordingInfo:
        """Record a simulated call in progress; when it ends the recording is stored (served
        by :meth:`fetch_recording`) and its status callback is posted, signed, like Twilio's.

        Like Twilio: an unknown call is a 20404; a call not in progress (still ringing, or
        over) is refused with 21220, as is a second recording of the same call.
        """
        if channels not in ("mono", "dual"):
            raise ValueError("channels must be 'mono' or 'dual'")
        with self._lock:
            live = self._live.get(call_sid)
            if live is None:
                raise CallNotFound(f"call {call_sid} was not found", code=20404, status=404)
            if live.ended or live.status != "in-progress":
                raise CallNotFound(
                    f"call {call_sid} is not in progress ({live.status})", code=21220, status=400
                )
            if call_sid in self.call_recordings:
                raise ProviderRejected("the call is already being recorded", code=21220)
            sid = new_sid("RE")
            self.call_recordings[call_sid] = (sid, status_callback, channels)
        return RecordingInfo(sid=sid, call_sid=call_sid, status="in-progress")

    def finish_recording(self, live: LiveCall) -> None:
        """Store the whole-call recording of ended ``live`` and post its status callback.

        The recording was started through this simulator (its provider side) or, against a
        server, through the shared state by the server's sandbox provider.
        """
        with self._lock:
            started = self.call_recordings.pop(live.sid, None)
        if started is None and self.state is not None:
            shared = self._shared(live, lambda state: state.take_call_recording(live.sid))
            if shared is not None:
                channels_: RecordingChannels = "mono" if shared.channels == "mono" else "dual"
                started = (shared.sid, shared.callback, channels_)
        if started is None:
            return
        sid, callback, channels = started
        count = 2 if channels == "dual" else 1
        duration = live.duration_s
        wav = call_recording_wav(duration, count)
        self._store_recording(sid, live.sid, wav, duration)
        if self.state is not None:
            self._shared(live, lambda state: state.put_recording(sid, live.sid, wav, duration))
        url = f"{self.api_base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}"
        with self._lock:
            self.finished_recordings[live.sid] = {"sid": sid, "url": url, "duration": duration}
        if not callback:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": live.sid,
            "RecordingSid": sid,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": str(duration),
            "RecordingChannels": str(count),
            "RecordingSource": "StartCallRecordingAPI",
            "RecordingStartTime": format_datetime(live.answered_at),
        }
        try:
            resp = signed_request(self.transport, self.auth_token, "POST", callback, params)
            live.note("recording", f"call recording {sid} status callback → {resp.status}")
        except WebhookTransportError as exc:
            live.note("error", f"recording status callback failed: {exc}")

    def _poll_update(self, sid: str) -> CallUpdate | None:
        with self._lock:
            queue = self._pending.get(sid)
            if queue:
                return queue.pop(0)
            live = self._live.get(sid)
        if self.state is None or live is None:
            return None
        return self._shared(live, lambda state: state.pop_update(sid))

    # -- the app's side: its jobs, the server's shared state ------------------------------

    def _shared(self, live: LiveCall, operation: Any) -> Any:
        """``operation(state)`` on the shared state; a Redis failure is noted on the call
        and turns the sharing off (the call goes on, unseen by the server's provider)."""
        state = self.state
        if state is None:
            return None
        try:
            return operation(state)
        except RedisError as exc:
            live.note("error", f"shared sandbox state unreachable, no longer used: {exc}")
            self.state = None
            return None

    def _call_answered(self, live: LiveCall) -> None:
        """The first TwiML document is playing: the call is in progress. The app's job
        that starts its recording runs now (in-process) or is waited for (a server)."""
        self._shared(live, lambda state: state.set_status(live.sid, "in-progress"))
        self.run_app_jobs()
        self._await_recording_start(live)

    def run_app_jobs(self) -> int:
        """Run the jobs the in-process app queued on its IVR queue for this simulator's live
        calls (their ids name the call: ``recording-start-CA…``, ``ivr-sms-CA…``), here, on a
        real RQ worker with the app's services; returns how many ran. Other jobs are left to
        the app's worker. Does nothing without ``run_jobs`` or an app registered as ours."""
        services = self._services
        if not self.run_jobs or services is None:
            return 0
        with self._lock:
            live = [sid for sid, call in self._live.items() if not call.ended]
        queue = Queue(IVR_QUEUE, connection=services.redis)
        ours = [job_id for job_id in queue.get_job_ids() if any(s in job_id for s in live)]
        if not ours:
            return 0
        install_services(services)  # what the jobs' current_services() returns
        worker = _InProcessWorker([queue], connection=services.redis)
        worker.register_birth()
        ran = 0
        try:
            for job_id in ours:
                if not queue.remove(job_id):
                    continue  # another worker took it
                try:
                    job = Job.fetch(job_id, connection=services.redis)
                except NoSuchJobError:
                    continue
                worker.execute_job(job, queue)
                ran += 1
        finally:
            worker.register_death()
        return ran

    def _await_recording_start(self, live: LiveCall) -> None:
        """Against a server: wait (real time, up to ``app_job_wait_s``) until the server's
        worker has run the job that starts this call's recording, if the app queued one."""
        redis = self._redis
        if redis is None or self.state is None:
            return
        ids = [recording_start_job_id(live.sid, n) for n in range(len(START_RETRY_DELAYS_S) + 1)]
        deadline = time.monotonic() + self.app_job_wait_s
        try:
            while True:
                pending = False
                for job_id in ids:
                    try:
                        status = Job.fetch(job_id, connection=redis).get_status()
                    except NoSuchJobError:
                        continue
                    pending = pending or status in _PENDING
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    live.note("error", "the app's worker did not start the call recording in time")
                    return
                time.sleep(0.02)
        except RedisError as exc:
            live.note("error", f"cannot see the app's jobs: {exc}")

    def url(self, path: str) -> str:
        """The public URL of ``path`` on our app."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.public_base_url}/{path.lstrip('/')}"

    def _connect(self, url: str, headers: Mapping[str, str]) -> Any:
        if self._ws_connect is not None:
            return self._ws_connect(url, headers)
        if self._app is None:
            return default_ws_connect(url, headers)
        # In-process app: serve it on loopback and point the websocket there; the
        # signature still covers the public URL, as behind a reverse proxy.
        with self._lock:
            if self._loopback is None:
                self._loopback = _LoopbackServer(self._app)
            port = self._loopback.port
        parts = urlsplit(url)
        local = urlunsplit(("ws", f"127.0.0.1:{port}", parts.path, parts.query, ""))
        return default_ws_connect(local, headers)

    def _store_recording(self, sid: str, call_sid: str, wav: bytes, duration: int) -> None:
        self.recordings[sid] = StoredRecording(sid, call_sid, wav, duration)

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        """WAV bytes of a recording a simulated call made (by SID or recording URL).

        Raises :class:`RecordingNotFound` (a :class:`~telephony.errors.CallNotFound`) when
        no simulated call made it.
        """
        sid = recording_url_or_sid.rstrip("/").rsplit("/", 1)[-1].removesuffix(".wav")
        recording = self.recordings.get(sid)
        if recording is None:
            raise RecordingNotFound(f"no recording {sid}", code=20404, status=404)
        return recording.wav

    def call(
        self,
        from_: str = "+79161234501",
        to: str = "+78001234567",
        *,
        behaviour: CallBehaviour | None = None,
        path: str | None = None,
    ) -> SimulatedCall:
        """Start an inbound call: POST ``/voice/incoming`` and play until input is needed."""
        try:
            caller = normalize_phone(from_, require_russian=False)
            called = normalize_phone(to, require_russian=False)
        except InvalidPhoneError as exc:
            raise SimulatorError(f"invalid phone number: {exc}") from None
        sid = new_sid("CA")
        live = LiveCall(
            sid=sid,
            account_sid=self.account_sid,
            from_=caller,
            to=called,
            direction="inbound",
            url=self.url(path or self.incoming_path),
            token=self.auth_token,
            transport=self.transport,
            clock=self.clock,
            api_base_url=self.api_base_url,
            behaviour=behaviour or self.behaviour,
            store_recording=self._store_recording,
            poll_update=lambda: self._poll_update(sid),
            ws_connect=self._connect,
            realtime=self.realtime,
            first_status="ringing",
            after_first_document=lambda: self._call_answered(live),
        )
        self._shared(live, lambda state: state.set_status(sid, "ringing"))
        with self._lock:
            self._live[sid] = live  # update_call may reach it while the greeting plays
        call = SimulatedCall(self, live)
        self.calls.append(call)
        return call

    def close(self) -> None:
        """Hang up live calls, stop the loopback server (if one was started) and give the
        app its previous telephony provider back."""
        for call in self.calls:
            if not call.ended:
                call.hangup()
        with self._lock:
            server, self._loopback = self._loopback, None
        if server is not None:
            server.stop()
        self._unregister()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimulatedCall:
    """One simulated inbound call; every input method returns the call for chaining."""

    def __init__(self, simulator: Simulator, live: LiveCall) -> None:
        self._sim = simulator
        self.live = live
        self._conversation = live.run()
        self.waiting_for: InputRequest | None = None
        self._status_sent = False
        self._steps_recorded = 0
        self._coverage_parts = 0
        self._advance(None)

    # -- driving ----------------------------------------------------------------------

    def _advance(self, action: CallerAction | None) -> None:
        try:
            if action is None:
                self.waiting_for = next(self._conversation)
            else:
                self.waiting_for = self._conversation.send(action)
        except StopIteration:
            self.waiting_for = None
            self._on_end()
        finally:
            self._record_coverage()
        if not self.ended:
            self._sim.run_app_jobs()

    def _record_coverage(self) -> None:
        """Append the steps reported since the last write to the coverage data."""
        recorder = self._sim.coverage
        new = self.live.steps[self._steps_recorded :]
        if recorder is None or not new:
            return
        try:
            recorder.record(
                self.live.sid, self._coverage_parts, new, flows_file=self._sim.flows_file
            )
        except CoverageError as exc:
            raise SimulatorError(str(exc)) from None
        self._steps_recorded += len(new)
        self._coverage_parts += 1

    def _on_end(self) -> None:
        live = self.live
        self._sim._shared(live, lambda state: state.set_status(live.sid, live.status))
        self._sim.finish_recording(live)
        if self._status_sent or not self._sim.status_callback_path:
            return
        self._status_sent = True
        live = self.live
        params = live.base_params()
        params.update(
            CallStatus=live.status,
            CallDuration=str(live.duration_s),
            SequenceNumber="0",
            Timestamp=format_datetime(live.clock.now()),
            CallbackSource="call-progress-events",
        )
        url = self._sim.url(self._sim.status_callback_path)
        try:
            resp = signed_request(self._sim.transport, self._sim.auth_token, "POST", url, params)
            live.note("status", f"status callback {live.status} → {resp.status}")
        except WebhookTransportError as exc:
            live.note("error", f"status callback failed: {exc}")

    def _act(self, action: CallerAction) -> SimulatedCall:
        if self.ended:
            raise SimulatorError(f"the call has already ended ({self.live.end_reason})")
        self._advance(action)
        return self

    def press(self, keys: str) -> SimulatedCall:
        """Press DTMF keys, e.g. ``"1"`` or ``"7700112233#"``."""
        try:
            return self._act(CallerAction.press(keys))
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def say(self, wav_path: str | Path, text: str = "") -> SimulatedCall:
        """Say a WAV file (recorded by ``<Record>``, streamed to Media Streams).

        ``text`` is what Twilio's own recogniser would return if the call waits at a
        speech ``<Gather>`` (the sandbox has no recogniser of its own).
        """
        try:
            audio = read_wav(wav_path)
        except AudioError as exc:
            raise SimulatorError(str(exc)) from None
        return self._act(CallerAction("audio", text, audio=audio, label=Path(wav_path).name))

    def say_text(self, text: str, confidence: float = 0.92) -> SimulatedCall:
        """Say words to a speech ``<Gather>`` (they arrive as ``SpeechResult``)."""
        try:
            return self._act(CallerAction.speech(text, confidence))
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def wait_silence(self) -> SimulatedCall:
        """Do nothing until the input times out."""
        return self._act(CallerAction.silence())

    def hangup(self) -> SimulatedCall:
        """Hang up (a no-op when the call has ended)."""
        if not self.ended:
            self._advance(CallerAction.hangup())
            if not self.ended:  # pragma: no cover - run() always ends on hangup
                self.live.hang_up()
                self._on_end()
        return self

    # -- what happened ----------------------------------------------------------------

    @property
    def sid(self) -> str:
        """The call SID."""
        return self.live.sid

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.live.ended

    @property
    def status(self) -> str:
        """Twilio's ``CallStatus`` now (``in-progress``, ``completed``, ``busy`` …)."""
        return self.live.status

    @property
    def end_reason(self) -> str | None:
        """Why the call ended (None while it lasts)."""
        return self.live.end_reason

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """Everything that happened, in order."""
        return list(self.live.transcript)

    @property
    def prompts(self) -> list[str]:
        """The texts the caller heard (``<Say>``), in order."""
        return [e.text for e in self.live.transcript if e.kind == "say"]

    @property
    def steps(self) -> list[str]:
        """IVR steps the app reported via ``X-IVR-Step``."""
        return list(self.live.steps)

    @property
    def recognized(self) -> list[dict[str, Any]]:
        """Recogniser results the app reported via ``X-IVR-Recognized``."""
        return list(self.live.recognized)

    @property
    def recordings(self) -> list[dict[str, Any]]:
        """Recordings made on this call (sid, url, duration)."""
        return list(self.live.recordings)

    @property
    def call_recording(self) -> dict[str, Any] | None:
        """The whole-call recording (``sid``, ``url``, ``duration``) once the call ended, if
        the app started one (``<Record>`` recordings are in :attr:`recordings`)."""
        return self._sim.finished_recordings.get(self.live.sid)

    def heard(self, fragment: str) -> bool:
        """Whether some prompt contained ``fragment`` (case and ё/е insensitive)."""
        needle = _normalise(fragment)
        return any(needle in _normalise(text) for text in self.prompts)

    def transcript_text(self, *, verbose: bool = False) -> str:
        """A readable transcript (``verbose`` adds every webhook request)."""
        live = self.live
        lines = [f"call {live.sid}: {live.from_} → {live.to}"]
        for entry in live.transcript:
            if entry.kind == "webhook" and not verbose:
                continue
            text = entry.text
            if entry.kind == "recognized":
                text = f"heard: {_heard(entry.data)}"
            lines.append(f"[{entry.at_s:7.1f}s] {entry.kind.upper():<10} {text}")
        return "\n".join(lines)


def _heard(info: Mapping[str, Any]) -> str:
    """``text (confidence 0.87)`` from an ``X-IVR-Recognized`` entry."""
    confidence = info.get("confidence")
    suffix = f" (confidence {confidence:.2f})" if isinstance(confidence, float) else ""
    return f"{info.get('text', '')}{suffix}"


__all__ = ["SimulatedCall", "Simulator", "SimulatorError"]
