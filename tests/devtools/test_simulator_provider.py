"""The simulator as the app's telephony provider: ``update_call`` redirects a simulated
call, ``fetch_recording`` serves its recordings, outbound traffic goes to the previous
provider, and ``simulate call`` runs without forcing a capture mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

import devtools.cli
from contactcenter.cli import main
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import Interaction
from devtools.sandbox.audio import pcm_to_wav
from devtools.simulator import Simulator, SimulatorError
from telephony import CallInfo, CallNotFound, ProviderRejected, TelephonyProvider
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml
from webhooks import create_app, services_of


@pytest.fixture
def twiml_app() -> TwimlApp:
    """A signature-validating TwiML test app."""
    return make_twiml_app()


def _sim(app: TwimlApp) -> Simulator:
    return Simulator(app.app, TOKEN, PUBLIC)


def test_update_call_redirects_a_waiting_call(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Gather action="/menu" timeout="5"><Say>Нажмите 1</Say></Gather><Say>Ещё раз</Say>'),
    )
    twiml_app.on("/moved", twiml("<Say>Перенаправлено</Say>"))
    sim = _sim(twiml_app)
    call = sim.call()
    assert call.waiting_for is not None
    info = sim.update_call(call.sid, url=f"{PUBLIC}/moved")
    assert info == CallInfo(call.sid, "in-progress")
    call.wait_silence()
    assert call.ended
    assert call.heard("перенаправлено")
    assert not call.heard("ещё раз")
    assert len(twiml_app.hits("/moved")) == 1
    assert any(e.kind == "redirect" for e in call.transcript)


def test_fetch_call_reports_a_simulated_call_as_it_goes(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/menu"><Say>Нажмите 1</Say></Gather>'))
    sim = _sim(twiml_app)
    call = sim.call()
    assert sim.fetch_call(call.sid) == CallInfo(call.sid, "in-progress")
    call.hangup()
    assert sim.fetch_call(call.sid).status == "completed"
    # Other calls and every SMS are asked of the app's previous provider: none here.
    with pytest.raises(ProviderRejected, match="no outbound calls"):
        sim.fetch_call("CA" + "0" * 32)
    with pytest.raises(ProviderRejected, match="no outbound calls"):
        sim.fetch_message("SM" + "0" * 32)


def test_update_call_with_twiml_or_status(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/menu"><Say>Нажмите 1</Say></Gather>'))
    sim = _sim(twiml_app)
    first = sim.call()
    sim.update_call(first.sid, twiml="<Response><Say>Новый текст</Say></Response>")
    first.press("1")
    assert first.heard("новый текст")
    assert twiml_app.hits("/menu") == []
    second = sim.call()
    sim.update_call(second.sid, status="completed")
    second.wait_silence()
    assert second.ended
    assert second.end_reason == "ended by the API (completed)"


def test_update_call_errors(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Say>Привет</Say>"))
    sim = _sim(twiml_app)
    with pytest.raises(CallNotFound, match="not found"):
        sim.update_call("CA" + "0" * 32, url=f"{PUBLIC}/x")
    call = sim.call()
    assert call.ended
    with pytest.raises(CallNotFound, match="not in progress") as caught:
        sim.update_call(call.sid, url=f"{PUBLIC}/x")
    assert caught.value.code == 21220
    with pytest.raises(ValueError, match="exactly one"):
        sim.update_call(call.sid, url=f"{PUBLIC}/x", status="completed")


def test_fetch_recording_of_a_simulated_call(twiml_app: TwimlApp, tmp_path: Path) -> None:
    twiml_app.on("/voice/incoming", twiml('<Record action="/rec" playBeep="false"/>'))
    twiml_app.on("/rec", twiml("<Say>Спасибо</Say>"))
    sim = _sim(twiml_app)
    wav = tmp_path / "tone.wav"
    t = np.arange(8000) / 8000
    wav.write_bytes(pcm_to_wav((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)))
    sim.call().say(wav)
    (hit,) = twiml_app.hits("/rec")
    assert sim.fetch_recording(hit.form["RecordingSid"]).startswith(b"RIFF")
    with pytest.raises(CallNotFound, match="no recording") as caught:
        sim.fetch_recording("RE" + "0" * 32)
    assert isinstance(caught.value, SimulatorError)  # old callers catch this one
    assert caught.value.status == 404


class RecordingProvider:
    """A provider noting the outbound traffic handed to it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def place_call(self, to: str, from_: str, url: str, **kwargs: Any) -> CallInfo:
        self.sent.append(("call", to))
        return CallInfo("CA" + "1" * 32, "queued")

    def send_sms(self, to: str, from_: str, body: str, **kwargs: Any) -> Any:
        self.sent.append(("sms", to))
        return None

    def start_recording(self, call_sid: str, **kwargs: Any) -> Any:
        self.sent.append(("recording", call_sid))
        raise CallNotFound(f"call {call_sid} is not in progress", code=21220, status=400)

    def update_call(self, sid: str, **kwargs: Any) -> CallInfo:
        raise AssertionError("the simulator handles update_call")

    def fetch_recording(self, recording_url_or_sid: str) -> bytes:
        raise AssertionError("the simulator handles fetch_recording")


def test_for_app_registers_the_simulator_as_the_provider_until_closed(
    settings: Settings, db: Database, redis_client: Any
) -> None:
    app = create_app(settings)
    services = services_of(app)
    previous = RecordingProvider()
    services.telephony = previous
    with Simulator.for_app(app) as sim:
        assert isinstance(sim, TelephonyProvider)
        assert services.built_telephony() is sim
        sim.place_call("+79161234501", "+78001234567", f"{PUBLIC}/x", status_callback=None)
        sim.send_sms("+79161234501", "+78001234567", "Текст", status_callback=None)
        assert previous.sent == [("call", "+79161234501"), ("sms", "+79161234501")]
        with pytest.raises(SimulatorError, match="already registered"):
            sim.register_as_provider(services)
    assert services.built_telephony() is previous
    with Simulator.for_app(app, as_provider=False):
        assert services.built_telephony() is previous
    services.db.dispose()


def test_an_unregistered_simulator_places_no_outbound_calls(twiml_app: TwimlApp) -> None:
    sim = _sim(twiml_app)
    with pytest.raises(ProviderRejected, match="no outbound calls"):
        sim.place_call("+79161234501", "+78001234567", f"{PUBLIC}/x", status_callback=None)
    with pytest.raises(ProviderRejected, match="no outbound calls"):
        sim.send_sms("+79161234501", "+78001234567", "Текст", status_callback=None)


def test_cli_without_capture_does_not_force_a_capture_mode(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database, redis_client: Any
) -> None:
    seen: list[dict[str, object] | None] = []
    real_create_app = devtools.cli.create_app

    def spying_create_app(
        app_settings: Settings, *, config: dict[str, object] | None = None
    ) -> Any:
        seen.append(config)
        return real_create_app(app_settings, config=config)

    monkeypatch.setattr(devtools.cli, "create_app", spying_create_app)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["simulate", "call", "--press", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [{}]


def test_a_simulated_inbound_call_never_ends_before_it_started(
    settings: Settings, db: Database, redis_client: Any
) -> None:
    app = create_app(settings)
    sim = Simulator.for_app(app)
    try:
        call = sim.call("+79161234501")
        call.hangup()
    finally:
        sim.close()
        services_of(app).db.dispose()
    with db.transaction() as session:
        rows = session.scalars(select(Interaction).where(Interaction.channel == "voice")).all()
        assert rows, "the call was not logged"
        for row in rows:
            assert row.ended_at is not None
            assert row.ended_at >= row.started_at
