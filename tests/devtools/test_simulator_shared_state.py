"""The simulator sharing the sandbox's state in Redis with another process's sandbox provider
(``make run``: the web process and ``contactcenter worker``): that provider records and
redirects the simulated calls like Twilio's REST API would."""

from __future__ import annotations

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devtools.sandbox import RedisCallState, SandboxProvider, WsgiTransport
from devtools.simulator import Simulator
from telephony import CallNotFound
from tests.twiml_testapp import PUBLIC, TOKEN, make_twiml_app, twiml


def test_another_processs_sandbox_records_a_simulated_call(redis_client: Redis) -> None:
    app = make_twiml_app()
    seen: list[str] = []

    def incoming(form: dict[str, str]) -> str:
        seen.append(form["CallSid"])
        return twiml('<Gather action="/menu" timeout="5"><Say>Разговор записывается</Say></Gather>')

    app.on("/voice/incoming", incoming)
    app.on("/voice/recording", "")
    server = SandboxProvider(WsgiTransport(app.app), TOKEN, state=RedisCallState(redis_client))
    sim = Simulator(app.app, TOKEN, PUBLIC, redis=redis_client)
    call = sim.call()
    assert seen == [call.sid]
    assert RedisCallState(redis_client).get_status(call.sid) == "in-progress"
    info = server.start_recording(call.sid, status_callback=f"{PUBLIC}/voice/recording")
    call.hangup()
    assert RedisCallState(redis_client).get_status(call.sid) == "completed"
    [hit] = app.hits("/voice/recording")
    assert hit.form["RecordingSid"] == info.sid
    assert hit.form["CallSid"] == call.sid
    assert hit.form["RecordingChannels"] == "2"
    assert server.fetch_recording(hit.form["RecordingUrl"]).startswith(b"RIFF")
    assert call.call_recording is not None
    assert call.call_recording["sid"] == info.sid
    with pytest.raises(CallNotFound) as ended:
        server.start_recording(call.sid, status_callback=None)
    assert ended.value.code == 21220  # the call is over


def test_a_ringing_simulated_call_cannot_be_recorded_yet(redis_client: Redis) -> None:
    app = make_twiml_app()
    server = SandboxProvider(WsgiTransport(app.app), TOKEN, state=RedisCallState(redis_client))
    refusals: list[int | None] = []

    def incoming(form: dict[str, str]) -> str:
        try:
            server.start_recording(form["CallSid"], status_callback=None)
        except CallNotFound as exc:  # the webhook is answered before the call is in progress
            refusals.append(exc.code)
        return twiml("<Say>Здравствуйте</Say>")

    app.on("/voice/incoming", incoming)
    Simulator(app.app, TOKEN, PUBLIC, redis=redis_client).call()
    assert refusals == [21220]


def test_another_processs_sandbox_redirects_a_simulated_call(redis_client: Redis) -> None:
    app = make_twiml_app()
    app.on("/voice/incoming", twiml('<Gather action="/menu" timeout="5"><Say>Меню</Say></Gather>'))
    app.on("/moved", twiml("<Say>Перенаправлено</Say>"))
    server = SandboxProvider(WsgiTransport(app.app), TOKEN, state=RedisCallState(redis_client))
    call = Simulator(app.app, TOKEN, PUBLIC, redis=redis_client).call()
    server.update_call(call.sid, url=f"{PUBLIC}/moved")
    call.wait_silence()
    assert call.heard("перенаправлено")
    assert call.ended


def test_an_unreachable_shared_state_is_noted_and_the_call_goes_on() -> None:
    app = make_twiml_app()
    app.on("/voice/incoming", twiml("<Say>Здравствуйте</Say>"))
    unreachable = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    sim = Simulator(app.app, TOKEN, PUBLIC, redis=unreachable)
    call = sim.call()
    assert call.ended
    assert call.heard("здравствуйте")
    assert any("shared sandbox state unreachable" in e.text for e in call.transcript)
    assert sim.state is None
