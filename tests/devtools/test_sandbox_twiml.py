"""TwiML semantics of the sandbox interpreter, driven through the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flask import Response

from devtools.sandbox.audio import pcm_to_wav
from devtools.sandbox.twiml import CallBehaviour
from devtools.simulator import Simulator, SimulatorError
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml


@pytest.fixture
def twiml_app() -> TwimlApp:
    """A signature-validating TwiML test app."""
    return make_twiml_app()


def _sim(app: TwimlApp, **kwargs: object) -> Simulator:
    return Simulator(app.app, TOKEN, PUBLIC, **kwargs)  # type: ignore[arg-type]


def _tone_wav(path: Path, seconds: float = 2.0) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    path.write_bytes(pcm_to_wav(samples))
    return path


def test_first_request_is_signed_and_carries_twilio_parameters(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Say>Здравствуйте</Say>"))
    call = _sim(twiml_app).call(from_="+79161234501", to="+78001234567")
    assert call.ended
    assert call.status == "completed"
    assert twiml_app.rejected == []
    (first,) = twiml_app.hits("/voice/incoming")
    assert first.form["CallStatus"] == "ringing"
    assert first.form["Direction"] == "inbound"
    assert first.form["From"] == "+79161234501"
    assert first.form["To"] == "+78001234567"
    assert first.form["ApiVersion"] == "2010-04-01"
    assert first.form["CallSid"].startswith("CA")
    assert len(first.form["CallSid"]) == 34
    assert first.form["AccountSid"].startswith("AC")
    assert call.heard("здравствуйте")
    assert call.end_reason == "no more TwiML"


def test_say_loop_and_pause_take_time(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Say loop="2" language="ru-RU">Раз</Say><Pause length="3"/><Say>Два</Say>'),
    )
    call = _sim(twiml_app).call()
    assert call.prompts == ["Раз", "Раз", "Два"]
    assert call.transcript[1].data["language"] == "ru-RU"
    assert call.live.duration_s >= 4


def test_gather_digits_end_with_finish_on_key_and_post_to_default_action(
    twiml_app: TwimlApp,
) -> None:
    twiml_app.on("/voice/incoming", twiml("<Gather><Say>Введите номер счёта</Say></Gather>"))
    call = _sim(twiml_app).call()
    assert call.waiting_for is not None
    assert call.waiting_for.kind == "gather"
    assert call.waiting_for.prompts == ("Введите номер счёта",)
    twiml_app.on("/voice/incoming", twiml("<Say>Спасибо</Say>"))
    call.press("7700112233#")
    second = twiml_app.hits("/voice/incoming")[1]
    assert second.form["Digits"] == "7700112233"
    assert second.form["CallStatus"] == "in-progress"
    assert call.heard("спасибо")


def test_gather_num_digits_stops_collecting(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather numDigits="1" action="/voice/menu"/>'))
    twiml_app.on("/voice/menu", twiml("<Hangup/>"))
    call = _sim(twiml_app).call().press("12")
    assert twiml_app.hits("/voice/menu")[0].form["Digits"] == "1"
    assert any("ignored: 2" in e.text for e in call.transcript)
    assert call.end_reason == "hung up by the application"


def test_gather_empty_finish_on_key_makes_hash_a_digit_and_waits_for_timeout(
    twiml_app: TwimlApp,
) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather finishOnKey="" timeout="7" action="next"/>'))
    twiml_app.on("/voice/next", twiml("<Hangup/>"))
    call = _sim(twiml_app).call()
    before = call.live.elapsed_s
    call.press("12#")
    assert twiml_app.hits("/voice/next")[0].form["Digits"] == "12#"
    assert call.live.elapsed_s - before >= 7


def test_gather_without_input_falls_through_to_next_verb(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml(
            '<Gather action="/voice/menu" timeout="3"><Say>Меню</Say></Gather>'
            "<Say>Мы не получили ответа</Say>"
        ),
    )
    call = _sim(twiml_app).call().wait_silence()
    assert twiml_app.hits("/voice/menu") == []
    assert call.heard("не получили ответа")
    assert call.ended


def test_gather_action_on_empty_result_posts_without_digits(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Gather action="/voice/menu" actionOnEmptyResult="true"/><Say>unreachable</Say>'),
    )
    twiml_app.on("/voice/menu", twiml("<Say>Повторите</Say>"))
    call = _sim(twiml_app).call().wait_silence()
    (hit,) = twiml_app.hits("/voice/menu")
    assert "Digits" not in hit.form
    assert "SpeechResult" not in hit.form
    assert call.heard("повторите")
    assert not call.heard("unreachable")


def test_only_finish_on_key_is_empty_input(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/voice/menu"/><Say>Пусто</Say>'))
    call = _sim(twiml_app).call().press("#")
    assert twiml_app.hits("/voice/menu") == []
    assert call.heard("пусто")


def test_speech_gather_sends_speech_result_and_confidence(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Gather input="speech" action="/voice/speech" language="ru-RU"/>'),
    )
    twiml_app.on("/voice/speech", twiml("<Hangup/>"))
    _sim(twiml_app).call().say_text("семь семь ноль ноль", confidence=0.81)
    (hit,) = twiml_app.hits("/voice/speech")
    assert hit.form["SpeechResult"] == "семь семь ноль ноль"
    assert hit.form["Confidence"] == "0.81"
    assert "Digits" not in hit.form


def test_dtmf_ignored_by_speech_gather_and_speech_ignored_by_dtmf_gather(
    twiml_app: TwimlApp,
) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Gather input="speech" action="/a"/><Gather action="/b"/><Say>конец</Say>'),
    )
    call = _sim(twiml_app).call().press("1").say_text("один")
    assert twiml_app.hits("/a") == []
    assert twiml_app.hits("/b") == []
    assert call.heard("конец")


def test_dtmf_speech_gather_accepts_both(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather input="dtmf speech" action="/a"/>'))
    twiml_app.on("/a", twiml("<Hangup/>"))
    _sim(twiml_app).call().press("5#")
    assert twiml_app.hits("/a")[0].form["Digits"] == "5"


def test_partial_result_callback_receives_growing_results(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Gather input="speech" action="/a" partialResultCallback="/partial"/>'),
    )
    twiml_app.on("/a", twiml("<Hangup/>"))
    twiml_app.on("/partial", "")
    _sim(twiml_app).call().say_text("да верно")
    partials = twiml_app.hits("/partial")
    assert [p.form["UnstableSpeechResult"] for p in partials] == ["да", "да верно"]
    assert [p.form["SequenceNumber"] for p in partials] == ["1", "2"]


def test_gather_get_method_sends_query_parameters_signed(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/menu?x=1" method="GET"/>'))
    twiml_app.on("/menu", twiml("<Hangup/>"))
    _sim(twiml_app).call().press("3#")
    (hit,) = twiml_app.hits("/menu")
    assert hit.method == "GET"
    assert hit.args["Digits"] == "3"
    assert hit.args["x"] == "1"
    assert twiml_app.rejected == []


def test_record_stores_audio_and_posts_recording_parameters(
    twiml_app: TwimlApp, tmp_path: Path
) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Say>Говорите после сигнала</Say><Record action="/rec" maxLength="30"/>'),
    )
    twiml_app.on("/rec", twiml("<Say>Запись принята</Say>"))
    sim = _sim(twiml_app)
    call = sim.call()
    assert call.waiting_for is not None
    assert call.waiting_for.kind == "record"
    call.say(_tone_wav(tmp_path / "reading.wav", 2.0))
    (hit,) = twiml_app.hits("/rec")
    assert hit.form["RecordingDuration"] == "2"
    assert hit.form["RecordingSid"].startswith("RE")
    assert hit.form["RecordingUrl"].endswith("/Recordings/" + hit.form["RecordingSid"])
    assert sim.fetch_recording(hit.form["RecordingUrl"]).startswith(b"RIFF")
    assert any(e.kind == "beep" for e in call.transcript)
    assert call.heard("принята")


def test_record_max_length_caps_duration(twiml_app: TwimlApp, tmp_path: Path) -> None:
    twiml_app.on("/voice/incoming", twiml('<Record action="/rec" maxLength="1" playBeep="false"/>'))
    twiml_app.on("/rec", twiml("<Hangup/>"))
    call = _sim(twiml_app).call().say(_tone_wav(tmp_path / "long.wav", 3.0))
    assert twiml_app.hits("/rec")[0].form["RecordingDuration"] == "1"
    assert not any(e.kind == "beep" for e in call.transcript)


def test_empty_record_continues_with_next_verb(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Record action="/rec"/><Say>Ничего не записано</Say>'))
    call = _sim(twiml_app).call().wait_silence()
    assert twiml_app.hits("/rec") == []
    assert call.heard("ничего не записано")


def test_dial_action_gets_dial_call_status(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Dial action="/dialed" timeout="20"><Number>+74950000000</Number></Dial>'),
    )
    twiml_app.on("/dialed", twiml("<Hangup/>"))
    _sim(twiml_app, behaviour=CallBehaviour(dial_status="busy")).call()
    hit = twiml_app.hits("/dialed")[0]
    assert hit.form["DialCallStatus"] == "busy"
    assert hit.form["DialCallSid"].startswith("CA")


def test_dial_without_action_continues(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Dial>+74950000000</Dial><Say>После звонка</Say>"))
    call = _sim(twiml_app).call()
    assert call.heard("после звонка")
    assert any(e.kind == "dial" and "number:+74950000000" in e.text for e in call.transcript)


def test_enqueue_posts_queue_result_and_plays_wait_url(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Enqueue action="/left" waitUrl="/hold">operators</Enqueue>'),
    )
    twiml_app.on("/hold", twiml("<Say>Ожидайте ответа оператора</Say>"))
    twiml_app.on("/left", twiml("<Say>До свидания</Say>"))
    call = _sim(twiml_app).call()
    assert call.heard("ожидайте ответа")
    hit = twiml_app.hits("/left")[0]
    assert hit.form["QueueResult"] == "bridged"
    assert hit.form["QueueSid"].startswith("QU")
    assert twiml_app.hits("/hold")[0].form["QueuePosition"] == "1"


def test_redirect_hangup_and_reject(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Redirect>/next</Redirect><Say>unreachable</Say>"))
    twiml_app.on("/next", twiml("<Say>Переход</Say><Hangup/><Say>after hangup</Say>"))
    call = _sim(twiml_app).call()
    assert call.heard("переход")
    assert not call.heard("unreachable")
    assert not call.heard("after hangup")
    twiml_app.on("/voice/incoming", twiml('<Reject reason="busy"/>'))
    assert _sim(twiml_app).call().status == "busy"
    twiml_app.on("/voice/incoming", twiml("<Reject/>"))
    assert _sim(twiml_app).call().status == "no-answer"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [("<Response><Say>x</Say>", 200, 12100), ("<Foo/>", 200, 12100), ("oops", 500, 11200)],
)
def test_application_errors_end_the_call(
    twiml_app: TwimlApp, body: str, status: int, code: int
) -> None:
    twiml_app.on("/voice/incoming", lambda _form: Response(body, status=status))
    call = _sim(twiml_app).call()
    assert call.ended
    assert call.live.error_code == code
    assert call.heard("application error")


def test_unknown_verb_is_an_application_error(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Sing>la</Sing>"))
    assert _sim(twiml_app).call().live.error_code == 12200
    twiml_app.on("/voice/incoming", twiml("<say>lower case</say>"))
    assert _sim(twiml_app).call().live.error_code == 12200


def test_ivr_hook_headers_fill_steps_and_recognition(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        (
            twiml("<Say>Шаг</Say>"),
            {
                "X-IVR-Step": "hotline:welcome, hotline:menu",
                "X-IVR-Recognized": "%D1%81%D0%B5%D0%BC%D1%8C;confidence=0.87",
            },
        ),
    )
    call = _sim(twiml_app).call()
    assert call.steps == ["hotline:welcome", "hotline:menu"]
    assert call.recognized == [{"text": "семь", "confidence": 0.87}]
    assert "семь (confidence 0.87)" in call.transcript_text()


def test_hangup_mid_gather_and_input_after_end(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/a"/>'))
    call = _sim(twiml_app).call().hangup()
    assert call.ended
    assert call.end_reason == "caller hung up"
    assert twiml_app.hits("/a") == []
    with pytest.raises(SimulatorError, match="already ended"):
        call.press("1")


def test_hangup_after_seconds_interrupts_a_prompt(twiml_app: TwimlApp) -> None:
    long_text = "очень длинное сообщение " * 10
    twiml_app.on("/voice/incoming", twiml(f"<Say>{long_text}</Say><Say>второе</Say>"))
    call = _sim(twiml_app, behaviour=CallBehaviour(hangup_after_s=3)).call()
    assert call.end_reason == "caller hung up"
    assert call.transcript[1].data.get("interrupted") is True
    assert not call.heard("второе")
    assert call.live.duration_s == 3


def test_hangup_after_verbs(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Say>один</Say><Say>два</Say><Say>три</Say>"))
    call = _sim(twiml_app, behaviour=CallBehaviour(hangup_after_verbs=2)).call()
    assert call.prompts == ["один", "два"]


def test_status_callback_on_inbound_call_end(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Say>Пока</Say>"))
    twiml_app.on("/voice/status", "")
    _sim(twiml_app, status_callback_path="/voice/status").call()
    (hit,) = twiml_app.hits("/voice/status")
    assert hit.form["CallStatus"] == "completed"
    assert int(hit.form["CallDuration"]) >= 1


def test_bad_simulator_input_is_a_clear_error(twiml_app: TwimlApp, tmp_path: Path) -> None:
    twiml_app.on("/voice/incoming", twiml('<Gather action="/a"/>'))
    sim = _sim(twiml_app)
    with pytest.raises(SimulatorError, match="invalid phone number"):
        sim.call(from_="not a number")
    call = sim.call()
    with pytest.raises(SimulatorError, match="DTMF"):
        call.press("12a")
    with pytest.raises(SimulatorError, match="not found"):
        call.say(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(SimulatorError, match="RIFF"):
        call.say(tmp_path / "bad.wav")
    with pytest.raises(SimulatorError, match="public_base_url"):
        Simulator(twiml_app.app, TOKEN)
