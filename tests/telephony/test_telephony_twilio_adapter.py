"""The Twilio adapter, through the real ``twilio`` SDK, against the sandbox's REST emulation."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from contactcenter.config import Settings
from contactcenter.services import Services
from contactcenter.wiring import build_services
from devtools.sandbox import SandboxProvider, Scenario, WsgiTransport
from devtools.sandbox.audio import pcm_to_wav
from devtools.sandbox.rest import Fault, RestServer, inject_fault
from telephony import (
    AuthenticationFailed,
    CallNotFound,
    InvalidNumber,
    OptedOut,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TelephonyProvider,
)
from telephony.base import RecordingInfo
from telephony.twilio_provider import TwilioProvider
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml

ACCOUNT = "AC" + "12" * 16
FROM = "+78001234567"


@pytest.fixture
def app() -> TwimlApp:
    state = make_twiml_app()
    state.on("/voice/status", "")
    state.on("/sms/status", "")
    state.on("/voice/outbound", twiml("<Say>Здравствуйте</Say>"))
    return state


@pytest.fixture
def sandbox(app: TwimlApp) -> SandboxProvider:
    return SandboxProvider(WsgiTransport(app.app), TOKEN, account_sid=ACCOUNT)


@pytest.fixture
def server(sandbox: SandboxProvider) -> Iterator[RestServer]:
    with RestServer(sandbox) as srv:
        sandbox.api_base_url = srv.base_url  # RecordingUrl points at the emulation
        yield srv


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def adapter(server: RestServer, sleeps: Sleeps) -> TwilioProvider:
    return TwilioProvider(ACCOUNT, TOKEN, base_url=server.base_url, sleep=sleeps)


def test_adapter_implements_the_interface(adapter: TwilioProvider) -> None:
    assert isinstance(adapter, TelephonyProvider)


def test_place_call_through_the_sdk(
    adapter: TwilioProvider, sandbox: SandboxProvider, app: TwimlApp, server: RestServer
) -> None:
    info = adapter.place_call(
        "+79161234501",
        FROM,
        f"{PUBLIC}/voice/outbound",
        status_callback=f"{PUBLIC}/voice/status",
        machine_detection="DetectMessageEnd",
        amd_callback=f"{PUBLIC}/voice/status",
        time_limit_s=600,
    )
    assert info.status == "queued"
    record = sandbox.calls[info.sid]
    assert record.to == "+79161234501"
    assert record.status_events == ("initiated", "ringing", "answered", "completed")
    assert record.machine_detection == "DetectMessageEnd"
    assert record.async_amd is True
    assert record.time_limit_s == 600
    sandbox.run_until_idle()
    statuses = [h.form["CallStatus"] for h in app.hits("/voice/status") if "CallStatus" in h.form]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]


def test_update_call_through_the_sdk(adapter: TwilioProvider, sandbox: SandboxProvider) -> None:
    sid = adapter.place_call(
        "+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None
    ).sid
    assert adapter.update_call(sid, status="canceled").sid == sid
    sandbox.run_until_idle()
    assert sandbox.calls[sid].status == "canceled"
    with pytest.raises(CallNotFound) as err:
        adapter.update_call(sid, url=f"{PUBLIC}/voice/outbound")
    assert err.value.code == 21220
    with pytest.raises(CallNotFound):
        adapter.update_call("CA" + "0" * 32, twiml="<Response><Hangup/></Response>")


def test_send_sms_through_the_sdk(
    adapter: TwilioProvider, sandbox: SandboxProvider, app: TwimlApp
) -> None:
    info = adapter.send_sms("+79161234501", FROM, "ж" * 80, status_callback=f"{PUBLIC}/sms/status")
    assert info.status == "queued"
    assert info.segments == 2
    sandbox.run_until_idle()
    assert [h.form["MessageStatus"] for h in app.hits("/sms/status")] == ["sent", "delivered"]


def test_fetch_call_and_message_through_the_sdk(
    adapter: TwilioProvider, sandbox: SandboxProvider
) -> None:
    """What a lost status callback would have said, read back from the REST API."""
    sid = adapter.place_call(
        "+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None
    ).sid
    assert adapter.fetch_call(sid).status == "queued"
    assert adapter.fetch_call(sid).duration_s is None  # not over yet
    sandbox.run_until_idle()
    ended = adapter.fetch_call(sid)
    assert (ended.sid, ended.status) == (sid, "completed")
    assert ended.duration_s == sandbox.calls[sid].duration_s
    with pytest.raises(CallNotFound):
        adapter.fetch_call("CA" + "0" * 32)
    msg = adapter.send_sms("+79161234501", FROM, "ж" * 80, status_callback=None)
    assert adapter.fetch_message(msg.sid).status == "queued"
    sandbox.run_until_idle()
    fetched = adapter.fetch_message(msg.sid)
    assert (fetched.sid, fetched.status, fetched.segments) == (msg.sid, "delivered", 2)
    with pytest.raises(CallNotFound):
        adapter.fetch_message("SM" + "0" * 32)


def test_fetch_recording_with_auth(
    adapter: TwilioProvider,
    sandbox: SandboxProvider,
    app: TwimlApp,
    server: RestServer,
    tmp_path: Path,
) -> None:
    wav_path = tmp_path / "msg.wav"
    wav_path.write_bytes(pcm_to_wav((np.ones(16000) * 1000).astype(np.int16)))
    app.on("/voice/outbound", twiml('<Record action="/voice/rec"/>'))
    app.on("/voice/rec", twiml("<Hangup/>"))
    sandbox.scenario = Scenario.from_dict(
        {"calls": {"default": {"inputs": [{"audio": str(wav_path)}]}}}
    )
    adapter.place_call("+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None)
    sandbox.run_until_idle()
    form = app.hits("/voice/rec")[0].form
    assert form["RecordingUrl"].startswith(server.base_url)
    by_url = adapter.fetch_recording(form["RecordingUrl"])
    by_sid = adapter.fetch_recording(form["RecordingSid"])
    assert by_url == by_sid == wav_path.read_bytes()
    with pytest.raises(CallNotFound):
        adapter.fetch_recording("RE" + "0" * 32)
    with pytest.raises(ValueError, match="recording URL"):
        adapter.fetch_recording("https://evil.example/2010-04-01/Recordings/RE" + "0" * 32)


def test_429_is_retried_with_backoff(
    adapter: TwilioProvider, server: RestServer, sleeps: Sleeps
) -> None:
    inject_fault(server.app, Fault(429, 20429, "Too Many Requests", "/Calls.json"), times=2)
    info = adapter.place_call(
        "+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None
    )
    assert info.sid.startswith("CA")
    assert len(sleeps) == 2
    assert all(0 <= s <= adapter.backoff_max_s for s in sleeps)


def test_500_is_retried_then_gives_up(
    adapter: TwilioProvider, server: RestServer, sleeps: Sleeps
) -> None:
    inject_fault(server.app, Fault(500, None, "boom", "/Messages.json"), times=10)
    with pytest.raises(ProviderUnavailable) as err:
        adapter.send_sms("+79161234501", FROM, "текст", status_callback=None)
    assert err.value.retryable
    assert err.value.status == 500
    assert len(sleeps) == adapter.max_retries


def test_rate_limit_exhausted_is_rate_limited(server: RestServer, sleeps: Sleeps) -> None:
    adapter = TwilioProvider(ACCOUNT, TOKEN, base_url=server.base_url, sleep=sleeps, max_retries=1)
    inject_fault(server.app, Fault(429, 20429, "Too Many Requests"), times=5)
    with pytest.raises(RateLimited):
        adapter.place_call("+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None)
    assert len(sleeps) == 1


def test_error_codes_are_mapped_without_retry(
    adapter: TwilioProvider,
    server: RestServer,
    sandbox: SandboxProvider,
    app: TwimlApp,
    sleeps: Sleeps,
) -> None:
    with pytest.raises(InvalidNumber) as err:
        adapter.place_call("+1", FROM, f"{PUBLIC}/voice/outbound", status_callback=None)
    assert err.value.code == 21211
    inject_fault(server.app, Fault(400, 21614, "not a mobile number"))
    with pytest.raises(InvalidNumber):
        adapter.send_sms("+79161234501", FROM, "текст", status_callback=None)
    app.on("/sms/in", "<Response/>")
    sandbox.receive_sms("+79161234501", FROM, "STOP", f"{PUBLIC}/sms/in")
    with pytest.raises(OptedOut):
        adapter.send_sms("+79161234501", FROM, "текст", status_callback=None)
    inject_fault(server.app, Fault(400, 21215, "geo permissions"))
    with pytest.raises(ProviderRejected) as rejected:
        adapter.place_call("+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None)
    assert (rejected.value.code, rejected.value.status) == (21215, 400)
    assert sleeps == []


def test_wrong_credentials(server: RestServer) -> None:
    adapter = TwilioProvider(
        ACCOUNT, "wrong-token", base_url=server.base_url, sleep=lambda _s: None
    )
    with pytest.raises(AuthenticationFailed):
        adapter.send_sms("+79161234501", FROM, "текст", status_callback=None)


def test_network_failure_is_provider_unavailable(sleeps: Sleeps) -> None:
    adapter = TwilioProvider(
        ACCOUNT, TOKEN, base_url="http://127.0.0.1:9", sleep=sleeps, max_retries=2
    )
    with pytest.raises(ProviderUnavailable):
        adapter.send_sms("+79161234501", FROM, "текст", status_callback=None)
    assert len(sleeps) == 2


def test_backoff_is_bounded_and_jittered(sleeps: Sleeps) -> None:
    adapter = TwilioProvider(ACCOUNT, TOKEN, sleep=sleeps, backoff_base_s=1, backoff_max_s=5)
    delays = [adapter.backoff_delay(n) for n in range(1, 12) for _ in range(20)]
    assert max(delays) <= 5
    assert len(set(delays)) > 100


def test_get_provider_picks_by_settings_and_caches(settings: Settings) -> None:
    services = build_services(settings)
    provider = services.telephony
    assert isinstance(provider, SandboxProvider)
    assert services.telephony is provider
    twilio_settings = settings.with_overrides(
        telephony="twilio", twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN
    )
    assert isinstance(Services(twilio_settings).telephony, TwilioProvider)


def test_start_recording_through_the_sdk_records_the_whole_call(
    adapter: TwilioProvider, sandbox: SandboxProvider, app: TwimlApp, server: RestServer
) -> None:
    app.on("/voice/recording", "")
    started: list[RecordingInfo] = []

    def outbound(_form: dict[str, str]) -> str:
        started.append(adapter.start_recording(sid, status_callback=f"{PUBLIC}/voice/recording"))
        return twiml("<Say>Разговор записывается</Say>")

    app.on("/voice/outbound", outbound)
    sid = adapter.place_call(
        "+79161234501", FROM, f"{PUBLIC}/voice/outbound", status_callback=None
    ).sid
    with pytest.raises(CallNotFound) as early:  # queued, not in progress yet
        adapter.start_recording(sid, status_callback=None)
    assert early.value.code == 21220
    sandbox.run_until_idle()
    [info] = started
    assert info.call_sid == sid
    assert info.sid.startswith("RE")
    [hit] = app.hits("/voice/recording")
    assert hit.form["RecordingSid"] == info.sid
    assert hit.form["RecordingStatus"] == "completed"
    assert hit.form["RecordingChannels"] == "2"
    assert hit.form["RecordingUrl"].startswith(server.base_url)
    wav = adapter.fetch_recording(hit.form["RecordingUrl"])
    with wave.open(io.BytesIO(wav)) as audio:
        assert audio.getnchannels() == 2
        assert audio.getnframes() == 8000 * max(1, int(hit.form["RecordingDuration"]))
    with pytest.raises(CallNotFound):  # the call is over: nothing left to record
        adapter.start_recording(sid, status_callback=None)
