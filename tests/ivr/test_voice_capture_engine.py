"""The pure engine's voice capture plan (no model, no Redis): what it renders and how it
treats what our recognizer heard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ivr import twiml
from ivr.engine import Engine
from ivr.events import Input, Outcome, Start, VoiceInput
from ivr.schema import FlowSet, MenuStep
from ivr.session import CallSession
from ivr.voice_policy import VOICE_UNAVAILABLE_PROMPT, SpeechPolicy, step_grammar, voice_steps

FLOWS: dict[str, Any] = {
    "defaults": {"operator_target": "main:bye", "max_no_match": 3},
    "flows": {
        "main": {
            "start": "menu",
            "steps": {
                "menu": {
                    "type": "menu",
                    "input": "both",
                    "prompts": "Скажите «показания» или нажмите 1.",
                    "options": [{"key": "1", "keywords": ["показания"], "goto": "account"}],
                },
                "account": {
                    "type": "collect",
                    "value": "account_number",
                    "input": "both",
                    "capture": "record",
                    "into": "account",
                    "min_length": 5,
                    "max_length": 10,
                    "confirm": {"below_confidence": 0.8},
                    "prompts": "Назовите номер лицевого счёта.",
                    "next": "date",
                },
                "date": {
                    "type": "collect",
                    "value": "date",
                    "input": "both",
                    "into": "when",
                    "prompts": "Введите дату.",
                    "next": "bye",
                },
                "bye": {"type": "hangup", "prompts": "До свидания."},
            },
        }
    },
}
BASE = "https://ivr.example"
POLICY = SpeechPolicy(lang="ru", stream_url="wss://ivr.example/media-stream")


def now() -> datetime:
    return datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def make(policy: SpeechPolicy | None = POLICY) -> tuple[Engine, CallSession]:
    engine = Engine(FlowSet.model_validate(FLOWS), {}, now, base_url=BASE, speech=policy)
    return engine, CallSession(call_sid="CA1", flow="main", step="", caller="+79161234567")


def send(engine: Engine, session: CallSession, event: Any) -> Outcome:
    outcome = engine.handle(session, event)
    session.version += 1  # as the session store commits it
    return outcome


def kinds(outcome: Outcome) -> list[str]:
    return [type(v).__name__ for v in outcome.verbs]


def said(outcome: Outcome) -> list[str]:
    texts = []
    for verb in outcome.verbs:
        if isinstance(verb, twiml.Say):
            texts.append(verb.text)
        elif isinstance(verb, twiml.Gather):
            texts += [p.text for p in verb.prompts if isinstance(p, twiml.Say)]
    return texts


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_menu_streams_with_a_keypad_gather_in_parallel_and_a_fall_through() -> None:
    engine, session = make()
    out = send(engine, session, Start("main"))
    assert kinds(out) == ["StartStream", "Gather", "Redirect"]
    start, gather, redirect = out.verbs
    assert isinstance(start, twiml.StartStream)
    assert isinstance(gather, twiml.Gather)
    assert isinstance(redirect, twiml.Redirect)
    params = dict(start.parameters)
    assert start.url == "wss://ivr.example/media-stream"
    assert params["grammar"] == "menu"
    assert params["lang"] == "ru"
    assert "показания" in params["keywords"].split(",")
    assert "оператор" in params["keywords"].split(",")  # universal commands are heard too
    assert params["call_sid"] == "CA1"
    assert params["step_token"] == "main:menu:1"
    assert float(params["prompt_seconds"]) > 1
    assert gather.input == "dtmf"
    assert not gather.action_on_empty_result
    assert query(redirect.url) == {"flow": "main", "step": "menu", "seq": "1", "ev": "listen"}
    assert session.stream == start.name
    # The next answer stops that stream first.
    out = send(engine, session, Input(digits="1"))
    assert isinstance(out.verbs[0], twiml.StopStream)
    assert out.verbs[0].name == start.name
    assert session.stream is None


def test_record_capture_then_low_confidence_is_read_back_by_voice() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    out = send(engine, session, Input(digits="1"))
    assert kinds(out) == ["StopStream", "Say", "Record", "Redirect"]
    record = out.verbs[2]
    assert isinstance(record, twiml.Record)
    assert not record.play_beep
    assert record.trim == "trim-silence"
    assert query(record.action)["ev"] == "record"
    heard = "семь семь ноль ноль один один два два три три"
    out = send(engine, session, VoiceInput(text=heard, confidence=0.62, audio_ref="https://r/1"))
    assert session.pending is not None
    assert session.pending["value"] == "7700112233"
    assert said(out)[0] == "Вы назвали: 7 7 0 0 1 1 2 2 3 3. Верно?"
    assert kinds(out)[-2:] == ["Record", "Redirect"]  # the answer may be spoken too
    assert [(h.text, h.confidence, h.decision, h.audio_ref) for h in out.heard] == [
        (heard, 0.62, "input:confirm", "https://r/1")
    ]
    out = send(engine, session, VoiceInput(text="да верно", confidence=0.9))
    assert session.variables["account"] == "7700112233"
    assert session.variables["account_source"] == "speech"
    assert session.step == "date"
    assert [h.decision for h in out.heard] == ["confirm:yes"]


def test_confident_speech_is_accepted_without_a_read_back() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    send(engine, session, VoiceInput(text="семь семь ноль ноль один", confidence=0.95))
    assert session.variables["account"] == "77001"
    assert session.step == "date"


def test_implausible_speech_retries_by_keypad() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, VoiceInput(text="один два", confidence=0.9))  # too short
    assert session.step == "account"
    assert kinds(out) == ["Gather"]
    gather = out.verbs[0]
    assert isinstance(gather, twiml.Gather)
    assert gather.input == "dtmf"
    assert [h.decision for h in out.heard] == ["no_match"]
    send(engine, session, Input(digits="7700112233#"))
    assert session.step == "date"


def test_a_key_during_the_recording_wins_and_the_entry_goes_on_by_keypad() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, VoiceInput(digits="7", text="ignored"))
    assert out.heard == []
    assert kinds(out) == ["Gather"]
    gather = out.verbs[0]
    assert isinstance(gather, twiml.Gather)
    assert gather.prompts == ()  # quiet: the caller is typing
    send(engine, session, Input(digits="700112233#"))
    assert session.variables["account"] == "7700112233"


def test_recognition_failure_gives_the_notice_once_and_keypad() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, VoiceInput(failed="fetch_failed"))
    assert said(out)[0] == VOICE_UNAVAILABLE_PROMPT
    assert kinds(out) == ["Gather"]
    assert session.speech_notice
    assert [(r.event, r.outcome) for r in out.steps][-1:] == [("voice_failed", "fetch_failed")]


def test_silence_at_a_recording_retries_by_keypad() -> None:
    engine, session = make()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, VoiceInput(speech_detected=False))
    assert session.no_input == 1
    assert kinds(out) == ["Gather"]
    assert out.heard == []


def test_no_model_notice_once_per_call_then_keypad() -> None:
    engine, session = make(SpeechPolicy(lang=None))
    out = send(engine, session, Start("main"))
    assert said(out)[0] == VOICE_UNAVAILABLE_PROMPT
    assert kinds(out) == ["Gather"]
    out = send(engine, session, Input(digits="1"))
    assert VOICE_UNAVAILABLE_PROMPT not in said(out)
    assert kinds(out) == ["Gather"]


def test_a_model_of_another_language_is_not_used() -> None:
    engine, session = make(SpeechPolicy(lang="ko"))
    out = send(engine, session, Start("main"))
    assert said(out)[0] == VOICE_UNAVAILABLE_PROMPT
    assert kinds(out) == ["Gather"]


def test_forced_capture_mode_and_date_steps_stay_keypad() -> None:
    engine, session = make(SpeechPolicy(lang="ru", capture="record"))
    out = send(engine, session, Start("main"))
    assert kinds(out) == ["Say", "Record", "Redirect"]
    send(engine, session, Input(digits="1"))  # a key into the record's Redirect: keypad path
    send(engine, session, VoiceInput(text="семь семь ноль ноль один", confidence=0.95))
    assert session.step == "date"
    flows = FlowSet.model_validate(FLOWS)
    assert voice_steps(flows)["main:date"] is None
    menu = flows.step("main", "menu")
    assert isinstance(menu, MenuStep)
    grammar = step_grammar(flows, menu)
    assert grammar is not None
    assert grammar.kind == "menu"


def test_without_a_policy_speech_is_twilios_gather() -> None:
    engine, session = make(None)
    out = send(engine, session, Start("main"))
    gather = out.verbs[0]
    assert isinstance(gather, twiml.Gather)
    assert gather.input == "dtmf speech"
