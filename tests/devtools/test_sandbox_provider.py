"""The sandbox provider: outbound call lives, status callbacks, AMD, SMS, scenarios."""

from __future__ import annotations

import threading
from email.utils import parsedate_to_datetime

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from werkzeug.serving import make_server

from devtools.sandbox import (
    CallOutcome,
    DeliveryPolicy,
    RedisCallState,
    SandboxProvider,
    Scenario,
    ScenarioError,
    WsgiTransport,
)
from devtools.sandbox.jobs import QUEUE_NAME
from telephony import CallNotFound, InvalidNumber, OptedOut, ProviderRejected, TelephonyProvider
from telephony.base import RecordingInfo
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml

FROM = "+78001234567"
STATUS = f"{PUBLIC}/voice/status"
ANSWER = f"{PUBLIC}/voice/outbound"


@pytest.fixture
def app() -> TwimlApp:
    state = make_twiml_app()
    state.on("/voice/status", "")
    state.on("/voice/amd", "")
    state.on("/sms/status", "")
    state.on("/voice/outbound", twiml("<Say>Напоминаем о задолженности</Say>"))
    return state


def _provider(app: TwimlApp, scenario: Scenario | None = None, **kwargs: object) -> SandboxProvider:
    return SandboxProvider(WsgiTransport(app.app), TOKEN, scenario=scenario, **kwargs)  # type: ignore[arg-type]


def _statuses(app: TwimlApp, path: str = "/voice/status") -> list[str]:
    return [r.form["CallStatus"] for r in app.hits(path)]


def test_sandbox_implements_the_provider_interface(app: TwimlApp) -> None:
    assert isinstance(_provider(app), TelephonyProvider)


def test_answered_call_callbacks_in_twilio_order_with_sequence_numbers(app: TwimlApp) -> None:
    provider = _provider(app)
    info = provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS)
    assert info.status == "queued"
    assert info.sid.startswith("CA")
    assert app.received == []  # nothing happens before the life runs
    assert provider.run_until_idle() == 1
    hits = app.hits("/voice/status")
    assert [h.form["CallStatus"] for h in hits] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [h.form["SequenceNumber"] for h in hits] == ["0", "1", "2", "3"]
    times = [parsedate_to_datetime(h.form["Timestamp"]) for h in hits]
    assert times == sorted(times)
    assert times[0].tzinfo is not None
    assert int(hits[-1].form["CallDuration"]) >= 1
    assert {h.form["Direction"] for h in hits} == {"outbound-api"}
    (answer,) = app.hits("/voice/outbound")
    assert answer.form["CallStatus"] == "in-progress"
    assert app.rejected == []
    assert provider.calls[info.sid].status == "completed"
    assert provider.calls[info.sid].live is not None


def test_only_listed_events_are_sent(app: TwimlApp) -> None:
    provider = _provider(app)
    provider.place_call(
        "+79161234501", FROM, ANSWER, status_callback=STATUS, status_events=("completed",)
    )
    provider.run_until_idle()
    assert _statuses(app) == ["completed"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("busy", ["initiated", "ringing", "busy"]),
        ("no-answer", ["initiated", "ringing", "no-answer"]),
        ("failed", ["initiated", "failed"]),
    ],
)
def test_unanswered_outcomes(app: TwimlApp, answer: str, expected: list[str]) -> None:
    scenario = Scenario(call_default=CallOutcome(answer=answer))
    provider = _provider(app, scenario)
    provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS)
    provider.run_until_idle()
    assert _statuses(app) == expected
    assert app.hits("/voice/outbound") == []
    assert app.hits("/voice/status")[-1].form["CallDuration"] == "0"


def test_ringing_longer_than_timeout_is_no_answer(app: TwimlApp) -> None:
    provider = _provider(app, Scenario(call_default=CallOutcome(ring_s=40)))
    provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS, timeout_s=20)
    provider.run_until_idle()
    assert _statuses(app)[-1] == "no-answer"


@pytest.mark.parametrize(
    ("answer", "mode", "machine_end", "answered_by"),
    [
        ("human", "Enable", "beep", "human"),
        ("machine", "Enable", "beep", "machine_start"),
        ("machine", "DetectMessageEnd", "beep", "machine_end_beep"),
        ("machine", "DetectMessageEnd", "silence", "machine_end_silence"),
        ("machine", "DetectMessageEnd", "other", "machine_end_other"),
        ("fax", "Enable", "beep", "fax"),
        ("unknown", "DetectMessageEnd", "beep", "unknown"),
    ],
)
def test_async_amd_answered_by(
    app: TwimlApp, answer: str, mode: str, machine_end: str, answered_by: str
) -> None:
    scenario = Scenario(call_default=CallOutcome(answer=answer, machine_end=machine_end))
    provider = _provider(app, scenario)
    provider.place_call(
        "+79161234501",
        FROM,
        ANSWER,
        status_callback=STATUS,
        machine_detection=mode,  # type: ignore[arg-type]
        amd_callback=f"{PUBLIC}/voice/amd",
    )
    provider.run_until_idle()
    (amd,) = app.hits("/voice/amd")
    assert amd.form["AnsweredBy"] == answered_by
    assert int(amd.form["MachineDetectionDuration"]) > 0
    assert app.hits("/voice/status")[-1].form["AnsweredBy"] == answered_by
    assert "AnsweredBy" not in app.hits("/voice/outbound")[0].form


def test_sync_amd_puts_answered_by_on_the_answer_webhook(app: TwimlApp) -> None:
    provider = _provider(app, Scenario(call_default=CallOutcome(answer="machine")))
    provider.place_call(
        "+79161234501",
        FROM,
        ANSWER,
        status_callback=None,
        machine_detection="DetectMessageEnd",
        async_amd=False,
    )
    provider.run_until_idle()
    assert app.hits("/voice/outbound")[0].form["AnsweredBy"] == "machine_end_beep"
    assert app.hits("/voice/amd") == []


def test_scripted_callee_presses_and_hangs_up_mid_message(app: TwimlApp) -> None:
    app.on(
        "/voice/outbound",
        twiml('<Gather action="/voice/menu" numDigits="1"><Say>Нажмите 1</Say></Gather>'),
    )
    app.on("/voice/menu", twiml("<Say>" + "Длинное сообщение. " * 20 + "</Say>"))
    scenario = Scenario.from_dict(
        {
            "calls": {
                "numbers": {
                    "+79161234501": {"answer": "human", "inputs": ["1"], "hangup_after_s": 8}
                }
            }
        }
    )
    provider = _provider(app, scenario)
    info = provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS)
    provider.run_until_idle()
    assert app.hits("/voice/menu")[0].form["Digits"] == "1"
    record = provider.calls[info.sid]
    assert record.live is not None
    assert record.live.end_reason == "caller hung up"
    assert record.duration_s == 8
    assert app.hits("/voice/status")[-1].form["CallDuration"] == "8"


def test_machine_never_presses(app: TwimlApp) -> None:
    app.on("/voice/outbound", twiml('<Gather action="/voice/menu"/><Say>Перезвоните нам</Say>'))
    scenario = Scenario(call_default=CallOutcome(answer="machine", inputs=()))
    provider = _provider(app, scenario)
    info = provider.place_call("+79161234501", FROM, ANSWER, status_callback=None)
    provider.run_until_idle()
    assert app.hits("/voice/menu") == []
    live = provider.calls[info.sid].live
    assert live is not None
    assert any(e.text == "Перезвоните нам" for e in live.transcript)


def test_random_outcomes_are_deterministic_with_a_seed() -> None:
    raw = {
        "seed": 42,
        "calls": {
            "random": [
                {"weight": 50, "answer": "human"},
                {"weight": 30, "answer": "machine"},
                {"weight": 20, "answer": "busy"},
            ]
        },
    }
    numbers = [f"+7916123{i:04d}" for i in range(200)]
    first = [Scenario.from_dict(raw).call_outcome(n).answer for n in numbers]
    again = [Scenario.from_dict(raw).call_outcome(n).answer for n in reversed(numbers)]
    assert first == list(reversed(again))
    assert set(first) == {"human", "machine", "busy"}
    other = [Scenario.from_dict({**raw, "seed": 43}).call_outcome(n).answer for n in numbers]
    assert other != first
    share = first.count("human") / len(first)
    assert 0.35 < share < 0.65


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"calls": {"default": {"answer": "maybe"}}}, "answer must be one of"),
        ({"calls": {"numbers": {"12": {}}}}, "calls.numbers"),
        ({"calls": {"default": {"inputs": ["12x"]}}}, "calls.default.inputs"),
        ({"calls": {"random": [{"weight": 0}]}}, "weight must be positive"),
        ({"sms": {"default": {"status": "lost"}}}, "status must be one of"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_invalid_scenarios_are_clear_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict(raw)


def test_update_call_redirects_a_live_call(app: TwimlApp) -> None:
    provider = _provider(app)
    app.on("/voice/new", twiml("<Say>Новый сценарий</Say>"))

    def outbound(_form: dict[str, str]) -> str:
        provider.update_call(sid, url=f"{PUBLIC}/voice/new")
        return twiml("<Say>старый</Say><Say>не дослушан</Say>")

    app.on("/voice/outbound", outbound)
    sid = provider.place_call("+79161234501", FROM, ANSWER, status_callback=None).sid
    provider.run_until_idle()
    live = provider.calls[sid].live
    assert live is not None
    says = [e.text for e in live.transcript if e.kind == "say"]
    assert says == ["Новый сценарий"]
    assert app.hits("/voice/new")[0].form["CallSid"] == sid


def test_update_call_completes_and_cancels(app: TwimlApp) -> None:
    provider = _provider(app)
    queued = provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS).sid
    assert provider.update_call(queued, status="canceled").status == "canceled"
    provider.run_until_idle()
    assert _statuses(app) == ["initiated", "canceled"]
    with pytest.raises(CallNotFound) as err:
        provider.update_call(queued, status="completed")
    assert err.value.code == 21220
    with pytest.raises(CallNotFound) as missing:
        provider.update_call("CA" + "0" * 32, status="completed")
    assert missing.value.code == 20404
    with pytest.raises(ValueError, match="exactly one"):
        provider.update_call(queued)


def test_invalid_numbers_are_rejected_with_twilio_codes(app: TwimlApp) -> None:
    provider = _provider(app)
    with pytest.raises(InvalidNumber) as err:
        provider.place_call("12345", FROM, ANSWER, status_callback=None)
    assert err.value.code == 21211
    with pytest.raises(InvalidNumber):
        provider.send_sms("not a phone", FROM, "текст", status_callback=None)
    with pytest.raises(ProviderRejected, match="not a valid URL"):
        provider.place_call("+79161234501", FROM, "/voice/outbound", status_callback=None)
    with pytest.raises(ValueError, match="unknown status events"):
        provider.place_call(
            "+79161234501", FROM, ANSWER, status_callback=STATUS, status_events=["x"]
        )


def test_reordered_and_duplicated_callbacks_still_carry_sequence_numbers(app: TwimlApp) -> None:
    provider = _provider(app, delivery=DeliveryPolicy(reorder=True, duplicate_rate=0.5, seed=3))
    provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS)
    provider.run_until_idle()
    hits = app.hits("/voice/status")
    sequence = [int(h.form["SequenceNumber"]) for h in hits]
    assert len(hits) > 4  # some were duplicated
    assert sorted(set(sequence)) == [0, 1, 2, 3]
    assert sequence != sorted(sequence)  # delivered out of order
    by_seq = {int(h.form["SequenceNumber"]): h.form["CallStatus"] for h in hits}
    assert [by_seq[i] for i in range(4)] == ["initiated", "ringing", "in-progress", "completed"]


def test_sms_delivered_without_callback_for_initial_status(app: TwimlApp) -> None:
    provider = _provider(app)
    info = provider.send_sms(
        "+79161234501", FROM, "Ваш долг 100 руб.", status_callback=f"{PUBLIC}/sms/status"
    )
    assert info.status == "queued"
    assert info.segments == 1
    assert info.sid.startswith("SM")
    provider.run_until_idle()
    hits = app.hits("/sms/status")
    assert [h.form["MessageStatus"] for h in hits] == ["sent", "delivered"]
    assert all(h.form["MessageSid"] == info.sid for h in hits)
    assert all("ErrorCode" not in h.form for h in hits)


def test_sms_segments_for_long_cyrillic_text(app: TwimlApp) -> None:
    info = _provider(app).send_sms("+79161234501", FROM, "ж" * 71, status_callback=None)
    assert info.segments == 2


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [("undelivered", ["sent", "undelivered"], "30003"), ("failed", ["failed"], "30008")],
)
def test_sms_failures(app: TwimlApp, status: str, expected: list[str], code: str) -> None:
    scenario = Scenario.from_dict({"sms": {"numbers": {"+79161234501": {"status": status}}}})
    provider = _provider(app, scenario)
    provider.send_sms("+79161234501", FROM, "текст", status_callback=f"{PUBLIC}/sms/status")
    provider.run_until_idle()
    hits = app.hits("/sms/status")
    assert [h.form["MessageStatus"] for h in hits] == expected
    assert hits[-1].form["ErrorCode"] == code


def test_inbound_stop_opts_out_and_start_opts_back_in(app: TwimlApp) -> None:
    app.on("/sms/incoming", '<?xml version="1.0"?><Response/>')
    provider = _provider(app)
    resp = provider.receive_sms("+79161234501", FROM, " stop ", f"{PUBLIC}/sms/incoming")
    assert resp.status == 200
    hit = app.hits("/sms/incoming")[0]
    assert hit.form["OptOutType"] == "STOP"
    assert hit.form["Body"] == " stop "
    with pytest.raises(OptedOut) as err:
        provider.send_sms("+79161234501", FROM, "текст", status_callback=None)
    assert err.value.code == 21610
    provider.receive_sms("+79161234501", FROM, "START", f"{PUBLIC}/sms/incoming")
    assert app.hits("/sms/incoming")[1].form["OptOutType"] == "START"
    provider.send_sms("+79161234501", FROM, "текст", status_callback=None)
    provider.receive_sms("+79161234501", FROM, "help", f"{PUBLIC}/sms/incoming")
    provider.receive_sms("+79161234501", FROM, "СТОП", f"{PUBLIC}/sms/incoming")
    assert app.hits("/sms/incoming")[2].form["OptOutType"] == "HELP"
    assert "OptOutType" not in app.hits("/sms/incoming")[3].form


def test_thread_mode_runs_lives_in_the_background(app: TwimlApp) -> None:
    provider = _provider(app, mode="thread")
    try:
        sids = [
            provider.place_call(f"+7916123450{i}", FROM, ANSWER, status_callback=STATUS).sid
            for i in range(3)
        ]
        provider.wait_idle(timeout_s=30)
    finally:
        provider.close()
    assert all(provider.calls[sid].status == "completed" for sid in sids)
    for sid in sids:
        statuses = [
            h.form["CallStatus"] for h in app.hits("/voice/status") if h.form["CallSid"] == sid
        ]
        assert statuses == ["initiated", "ringing", "in-progress", "completed"]


def test_redis_state_lets_another_provider_redirect_the_call(
    app: TwimlApp, redis_client: object
) -> None:
    assert isinstance(redis_client, Redis)
    worker = _provider(app, state=RedisCallState(redis_client))
    web = _provider(app, state=RedisCallState(redis_client))
    app.on("/voice/new", twiml("<Say>Перенаправлено</Say>"))

    def outbound(_form: dict[str, str]) -> str:
        web.update_call(sid, url=f"{PUBLIC}/voice/new")  # another process, same Redis
        return twiml("<Say>старый</Say>")

    app.on("/voice/outbound", outbound)
    sid = worker.place_call("+79161234501", FROM, ANSWER, status_callback=None).sid
    worker.run_until_idle()
    live = worker.calls[sid].live
    assert live is not None
    assert [e.text for e in live.transcript if e.kind == "say"] == ["Перенаправлено"]
    assert RedisCallState(redis_client).get_status(sid) == "completed"
    with pytest.raises(CallNotFound):
        web.update_call(sid, status="completed")


def test_redis_state_lets_another_provider_record_the_call(
    app: TwimlApp, redis_client: object
) -> None:
    assert isinstance(redis_client, Redis)
    worker = _provider(app, state=RedisCallState(redis_client))
    web = _provider(app, state=RedisCallState(redis_client))
    app.on("/voice/recording", "")
    started: list[RecordingInfo] = []

    def outbound(_form: dict[str, str]) -> str:
        # The call is in progress now: another process (same Redis) records it.
        started.append(
            web.start_recording(sid, status_callback=f"{PUBLIC}/voice/recording", channels="mono")
        )
        with pytest.raises(ProviderRejected, match="already"):
            web.start_recording(sid, status_callback=None)
        return twiml("<Say>Разговор записывается</Say>")

    app.on("/voice/outbound", outbound)
    sid = worker.place_call("+79161234501", FROM, ANSWER, status_callback=None).sid
    with pytest.raises(CallNotFound, match="not in progress") as early:
        web.start_recording(sid, status_callback=None)  # queued: Twilio refuses too
    assert early.value.code == 21220
    with pytest.raises(CallNotFound, match="not found") as unknown:
        web.start_recording("CA" + "0" * 32, status_callback=None)
    assert unknown.value.code == 20404
    worker.run_until_idle()
    [info] = started
    [hit] = app.hits("/voice/recording")
    assert hit.form["RecordingSid"] == info.sid
    assert hit.form["RecordingChannels"] == "1"
    assert hit.form["CallSid"] == sid
    assert web.fetch_recording(hit.form["RecordingUrl"]).startswith(b"RIFF")
    with pytest.raises(CallNotFound):
        web.start_recording(sid, status_callback=None)


def test_rq_mode_runs_the_life_in_a_worker_over_http(
    redis_client: object, redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(redis_client, Redis)
    app = make_twiml_app()
    app.on("/voice/status", "")
    app.on("/sms/status", "")
    app.on("/voice/outbound", twiml('<Gather numDigits="1" action="/voice/menu"/>'))
    app.on("/voice/menu", twiml("<Say>Спасибо</Say>"))
    server = make_server("127.0.0.1", 0, app.app, threaded=True)
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    app.public = base
    monkeypatch.setenv("PUBLIC_BASE_URL", base)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    queue = Queue(QUEUE_NAME, connection=redis_client)
    web = SandboxProvider(
        WsgiTransport(app.app), TOKEN, mode="rq", queue=queue, state=RedisCallState(redis_client)
    )
    try:
        sid = web.place_call(
            "+79161234501", FROM, f"{base}/voice/outbound", status_callback=f"{base}/voice/status"
        ).sid
        msg = web.send_sms("+79161234501", FROM, "текст", status_callback=f"{base}/sms/status").sid
        assert app.received == []
        assert len(queue) == 2
        SimpleWorker([queue], connection=redis_client).work(burst=True)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    statuses = [h.form["CallStatus"] for h in app.hits("/voice/status")]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert all(h.form["CallSid"] == sid for h in app.hits("/voice/status"))
    assert app.hits("/voice/menu") == []  # the default callee stays silent
    assert [h.form["MessageStatus"] for h in app.hits("/sms/status")] == ["sent", "delivered"]
    assert app.hits("/sms/status")[0].form["MessageSid"] == msg
    assert RedisCallState(redis_client).get_status(sid) == "completed"
    assert app.rejected == []


def test_update_call_completes_a_live_call_before_the_next_verb(app: TwimlApp) -> None:
    provider = _provider(app)

    def outbound(_form: dict[str, str]) -> str:
        provider.update_call(sid, status="completed")
        return twiml("<Say>не прозвучит</Say>")

    app.on("/voice/outbound", outbound)
    sid = provider.place_call("+79161234501", FROM, ANSWER, status_callback=STATUS).sid
    provider.run_until_idle()
    live = provider.calls[sid].live
    assert live is not None
    assert live.end_reason == "ended by the API (completed)"
    assert not any(e.kind == "say" for e in live.transcript)
    assert _statuses(app)[-1] == "completed"


def test_update_call_with_twiml(app: TwimlApp) -> None:
    provider = _provider(app)

    def outbound(_form: dict[str, str]) -> str:
        provider.update_call(sid, twiml="<Response><Say>Новый текст</Say></Response>")
        return twiml("<Say>старый</Say>")

    app.on("/voice/outbound", outbound)
    sid = provider.place_call("+79161234501", FROM, ANSWER, status_callback=None).sid
    provider.run_until_idle()
    live = provider.calls[sid].live
    assert live is not None
    assert [e.text for e in live.transcript if e.kind == "say"] == ["Новый текст"]
