"""The pure engine: steps, input handling, type-ahead, retries, transfers, actions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ivr import twiml
from ivr.action_context import ActionContext, ActionResult
from ivr.engine import Engine
from ivr.engine_input import MAX_INPUT_VISITS
from ivr.errors import ActionFailed
from ivr.events import Handoff, Heard, Input, Recording, SendSms, Start, TransferEnded
from ivr.schema import FlowSet
from ivr.session import CallSession

FLOWS: dict[str, Any] = {
    "defaults": {
        "max_no_input": 2,
        "max_no_match": 3,
        "no_input_prompts": ["Я вас не слышу."],
        "no_match_prompts": ["Неверный ввод.", "Снова неверно."],
        "operator_target": "operator:transfer",
        "variables": {"supplier_name": "ЭнергоСбыт"},
    },
    "flows": {
        "main": {
            "start": "greet",
            "steps": {
                "greet": {
                    "type": "say",
                    "prompts": "Вас приветствует {supplier_name}.",
                    "next": "menu",
                },
                "menu": {
                    "type": "menu",
                    "prompts": "Нажмите 1 или 2.",
                    "options": [
                        {"key": "1", "keywords": ["счёт"], "goto": "ask"},
                        {"key": "2", "keywords": ["баланс"], "goto": "bal", "intent": "balance"},
                        {"key": "3", "goto": "rec"},
                    ],
                },
                "ask": {
                    "type": "collect",
                    "value": "account_number",
                    "into": "account",
                    "prompts": "Введите номер счёта и решётку.",
                    "min_length": 3,
                    "max_length": 10,
                    "validate": "check_account_number",
                    "confirm": "always",
                    "next": "find",
                },
                "find": {
                    "type": "action",
                    "name": "find_account",
                    "args": {"number": "{account}"},
                    "branches": {"found": "found_say", "not_found": "ask"},
                },
                "found_say": {"type": "say", "prompts": "Счёт {account} найден.", "next": "sub"},
                "sub": {"type": "subflow", "flow": "helper", "next": "bye"},
                "bye": {"type": "hangup", "prompts": "До свидания."},
                "bal": {
                    "type": "branch",
                    "conditions": [{"when": "intent == 'balance'", "goto": "grid"}],
                    "otherwise": "bye",
                },
                "grid": {
                    "type": "transfer",
                    "to": "number",
                    "number": "+78002200220",
                    "prompts": "Соединяю.",
                    "on_failure": "bye",
                },
                "rec": {
                    "type": "record",
                    "purpose": "voicemail",
                    "prompts": "Говорите после сигнала.",
                    "next": "bye",
                },
            },
        },
        "helper": {
            "start": "text",
            "steps": {
                "text": {"type": "sms", "template": "Ваш счёт {account}.", "next": "back"},
                "back": {"type": "return", "outcome": "sent"},
            },
        },
        "operator": {
            "start": "transfer",
            "steps": {"transfer": {"type": "transfer", "prompts": "Соединяю с оператором."}},
        },
    },
}

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class Recorder:
    """Action implementations that record their calls."""

    def __init__(self) -> None:
        self.calls: list[ActionContext] = []
        self.known = {"12345"}

    def check_account_number(self, ctx: ActionContext) -> ActionResult:
        self.calls.append(ctx)
        if str(ctx.args["value"]).startswith("9"):
            return ActionResult("invalid", {"message": "Номер не может начинаться с девяти."})
        return ActionResult("valid")

    def find_account(self, ctx: ActionContext) -> ActionResult:
        self.calls.append(ctx)
        if ctx.args["number"] in self.known:
            return ActionResult("found", {"address": "ул. Ленина"}, state={"found": True})
        return ActionResult("not_found")

    def create_case(self, ctx: ActionContext) -> ActionResult:
        self.calls.append(ctx)
        return ActionResult("created", {"case_number": "42"})

    def actions(self) -> dict[str, Any]:
        return {
            "check_account_number": self.check_account_number,
            "find_account": self.find_account,
            "create_case": self.create_case,
        }


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(rec: Recorder) -> Engine:
    return Engine(
        FlowSet.model_validate(FLOWS), rec.actions(), lambda: NOW, base_url="https://ivr.example"
    )


def new_session() -> CallSession:
    return CallSession(call_sid="CA" + "0" * 32, flow="main", step="greet", caller="+79161234567")


def advance(session: CallSession) -> None:
    """What committing the outcome does to the version."""
    session.version += 1


def gather(verbs: list[twiml.Verb]) -> twiml.Gather:
    found = [v for v in verbs if isinstance(v, twiml.Gather)]
    assert len(found) == 1, verbs
    return found[0]


def texts(verbs: list[Any]) -> list[str]:
    out: list[str] = []
    for v in verbs:
        if isinstance(v, twiml.Say):
            out.append(v.text)
        elif isinstance(v, twiml.Gather):
            out.extend(p.text for p in v.prompts if isinstance(p, twiml.Say))
    return out


def send(engine: Engine, session: CallSession, event: Any) -> Any:
    out = engine.handle(session, event)
    advance(session)
    return out


def test_start_says_greeting_and_gathers_the_menu(engine: Engine) -> None:
    session = new_session()
    out = send(engine, session, Start("main"))
    assert texts(out.verbs) == ["Вас приветствует ЭнергоСбыт.", "Нажмите 1 или 2."]
    g = gather(out.verbs)
    assert g.num_digits == 1
    assert g.finish_on_key == ""
    assert g.input == "dtmf speech"
    assert g.hints == "счёт, баланс"
    query = parse_qs(urlsplit(g.action).query)
    assert g.action.startswith("https://ivr.example/voice/step?")
    assert query == {"flow": ["main"], "step": ["menu"], "seq": ["1"], "ev": ["gather"]}
    assert out.current_step == "main:menu"
    assert [s.step for s in out.steps] == ["main:greet", "main:menu"]
    assert "<Gather" in twiml.render(out.verbs)


def test_account_entry_with_typeahead_confirmation_action_subflow_and_sms(
    engine: Engine, rec: Recorder
) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    # The caller types ahead: 1 for the menu, then the account number and #.
    out = send(engine, session, Input(digits="112345#"))
    assert session.step == "ask"
    assert session.pending is not None
    assert texts(out.verbs) == ["Вы ввели: 1 2 3 4 5. Если верно, нажмите 1. Если нет, нажмите 2."]
    assert gather(out.verbs).num_digits == 1
    out = send(engine, session, Input(digits="1"))
    assert [c.name for c in rec.calls] == ["check_account_number", "find_account"]
    assert rec.calls[1].args == {"number": "12345"}
    assert rec.calls[0].input_source("value") == "dtmf"
    assert texts(out.verbs) == ["Счёт 12345 найден.", "До свидания."]
    assert isinstance(out.verbs[-1], twiml.Hangup)
    assert out.effects == [SendSms(to="+79161234567", body="Ваш счёт 12345.")]
    assert session.ended
    assert session.variables["address"] == "ул. Ленина"
    assert session.variables["subflow_outcome"] == "sent"
    assert session.variables["_action_state"] == {"found": True}
    assert "helper:back" in session.visited
    events = [(s.step, s.event) for s in out.steps]
    assert ("main:find", "action") in events
    assert ("main:sub", "return") in events
    # Anything after the end is answered with a hangup.
    assert engine.handle(session, Input(digits="5")).verbs == [twiml.Hangup()]


def test_confirmation_no_asks_again(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    send(engine, session, Input(digits="555#"))
    out = send(engine, session, Input(digits="2"))
    assert session.step == "ask"
    assert session.pending is None
    assert "account" not in session.variables
    assert texts(out.verbs) == ["Введите номер счёта и решётку."]


def test_validator_message_is_spoken_and_counts_as_no_match(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, Input(digits="9123#"))
    assert texts(out.verbs) == [
        "Номер не может начинаться с девяти.",
        "Неверный ввод.",
        "Введите номер счёта и решётку.",
    ]
    assert session.no_match == 1


def test_too_short_entry_reprompts_tapered_then_escalates(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    first = send(engine, session, Input(digits="12#"))
    second = send(engine, session, Input(digits="1#"))
    # the reason first (too few digits), then the flow's tapered reprompt
    assert texts(first.verbs)[:2] == ["Вы ввели слишком мало цифр.", "Неверный ввод."]
    assert texts(second.verbs)[:2] == ["Вы ввели слишком мало цифр.", "Снова неверно."]
    third = send(engine, session, Input(digits="7#"))
    enqueue = [v for v in third.verbs if isinstance(v, twiml.Enqueue)]
    assert enqueue
    assert enqueue[0].queue == "operators"
    assert session.flow == "operator"
    assert ("main:ask", "escalate") in [(s.step, s.event) for s in third.steps]


def test_no_input_reprompts_then_escalates_to_operator(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    out = send(engine, session, Input())
    assert texts(out.verbs) == ["Я вас не слышу.", "Нажмите 1 или 2."]
    assert session.no_input == 1
    out = send(engine, session, Input())
    enqueue = next(v for v in out.verbs if isinstance(v, twiml.Enqueue))
    assert enqueue.context["path"][:2] == ["main:greet", "main:menu"]
    assert enqueue.context["caller"] == "+79161234567"
    assert any(isinstance(e, Handoff) and e.kind == "queue" for e in out.effects)


def test_universal_operator_and_repeat(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    out = send(engine, session, Input(digits="*"))
    assert texts(out.verbs) == ["Нажмите 1 или 2."]
    assert session.no_match == 0
    out = send(engine, session, Input(speech="соедините с оператором"))
    assert session.flow == "operator"
    assert isinstance(out.verbs[-1], twiml.Enqueue)


def test_zero_inside_an_account_number_is_not_the_operator(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    send(engine, session, Input(digits="0012#"))
    assert session.step == "ask"
    assert session.pending == {"kind": "confirm", "value": "0012", "spoken": "0 0 1 2"}
    send(engine, session, Input(digits="0"))
    assert session.flow == "operator"


def test_menu_by_speech_keyword_and_branch_and_dial(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    out = send(engine, session, Input(speech="мой баланс пожалуйста", confidence=0.9))
    assert session.variables["intent"] == "balance"
    assert out.heard == [Heard("main:menu", "мой баланс пожалуйста", 0.9, "input:bal")]
    dial = next(v for v in out.verbs if isinstance(v, twiml.Dial))
    assert dial.number == "+78002200220"
    assert "ev=transfer" in (dial.action or "")
    failed = send(engine, session, TransferEnded("no-answer"))
    assert texts(failed.verbs) == ["До свидания."]
    assert session.ended


def test_successful_transfer_ends_the_call(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="2"))
    out = send(engine, session, TransferEnded("completed"))
    assert out.verbs == [twiml.Hangup()]


def test_record_then_action_with_the_recording(engine: Engine, rec: Recorder) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    out = send(engine, session, Input(digits="3"))
    record = next(v for v in out.verbs if isinstance(v, twiml.Record))
    assert "ev=record" in record.action
    out = send(engine, session, Recording(url="https://rec/1", duration=12, sid="RE1"))
    assert rec.calls[-1].name == "create_case"
    assert rec.calls[-1].args == {
        "recording_url": "https://rec/1",
        "recording_duration": 12,
        "purpose": "voicemail",
    }
    assert session.variables["case_number"] == "42"
    assert texts(out.verbs) == ["До свидания."]


def test_action_failure_apologises_and_transfers(rec: Recorder) -> None:
    def broken(ctx: ActionContext) -> ActionResult:
        raise ActionFailed("CRM said no")

    actions = rec.actions() | {"check_account_number": broken}
    engine = Engine(FlowSet.model_validate(FLOWS), actions, lambda: NOW)
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, Input(digits="123#"))
    assert texts(out.verbs) == ["Извините, произошла ошибка. Соединяю с оператором."]
    assert isinstance(out.verbs[-1], twiml.Enqueue)
    assert out.steps[-1].event == "error"


def test_unknown_menu_key_is_a_no_match_and_clears_typeahead(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    out = send(engine, session, Input(digits="71"))
    assert session.typeahead == ""
    assert session.no_match == 1
    assert texts(out.verbs)[0] == "Неверный ввод."


def test_unknown_flow_is_an_error_not_a_crash(engine: Engine) -> None:
    out = engine.handle(new_session(), Start("nope"))
    assert isinstance(out.verbs[-1], twiml.Enqueue)


def test_a_caller_stuck_in_a_loop_goes_to_the_operator(engine: Engine) -> None:
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    rounds = 0
    while session.flow == "main" and rounds < 20:
        # type a number, then deny it: asked again and again (entry and read-back count)
        send(engine, session, Input(digits="555#"))
        out = send(engine, session, Input(digits="2"))
        rounds += 1
    assert session.flow == "operator"
    assert rounds == MAX_INPUT_VISITS // 2
    assert ("main:ask", "escalate", "loop") in [(s.step, s.event, s.outcome) for s in out.steps]


def test_secret_inputs_are_masked_in_the_path_and_transcripts(rec: Recorder) -> None:
    flows = {
        "flows": {
            "main": {
                "start": "pin",
                "steps": {
                    "pin": {
                        "type": "collect",
                        "value": "digits",
                        "input": "both",
                        "into": "pin_code",
                        "prompts": "Введите ПИН-код.",
                        "next": "bye",
                    },
                    "bye": {"type": "hangup"},
                },
            },
            "operator": {"start": "transfer", "steps": {"transfer": {"type": "transfer"}}},
        }
    }
    engine = Engine(FlowSet.model_validate(flows), rec.actions(), lambda: NOW)
    session = CallSession(call_sid="CA1", flow="main", step="pin")
    send(engine, session, Start("main"))
    out = send(engine, session, Input(speech="один два три четыре", confidence=0.8))
    assert session.variables["pin_code"] == "1234"
    assert ("main:pin", "input", "***", "accepted") in [
        (s.step, s.event, s.input, s.outcome) for s in out.steps
    ]
    assert out.heard == [Heard("main:pin", "***", 0.8, "input:accepted")]
