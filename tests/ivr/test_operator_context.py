"""Issue 14, operator context: what the caller already did reaches the operator.

Through the sandbox's TwiML interpreter (the call simulator) against the real app: with
``OPERATOR_ROUTING=dial`` the operator's leg fetches our whisper and hears the account and
the reason; with ``taskrouter`` (and the default ``queue``) the ``<Task>`` attributes carry
the account, the balance heard, the reason and the last step. Every call's Interaction gets
a summary (path, outcome, account) that the interaction search finds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from contactcenter.config import ConfigError, Settings, load_settings
from crm_store.db import Database
from crm_store.interactions import InteractionQuery, search_interactions
from devtools.sandbox.transport import WsgiTransport, signed_request
from devtools.simulator import SimulatedCall, Simulator
from ivr.operator_routing import mask_account, whisper_text
from ivr.twiml import Dial, Enqueue, render
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, KNOWN_CALLER, Clock, add_customer
from .test_webhooks_app import interaction_of

ACCOUNT = "5500123456"
WORKFLOW = "WW" + "ab" * 16
OPERATOR = "+74951112233"

MakeApp = Callable[[Settings], Flask]


@pytest.fixture
def make_app(db: Database, redis_client: Any) -> Iterator[Callable[[Settings], Flask]]:
    """Apps over the test database and Redis, with the given settings."""
    apps: list[Flask] = []

    def make(settings: Settings) -> Flask:
        application = create_app(settings)
        services_of(application).clock = Clock(IN_WINDOW)
        apps.append(application)
        return application

    yield make
    for application in apps:
        services_of(application).db.dispose()


@pytest.fixture
def customer(db: Database) -> int:
    return add_customer(
        db,
        ACCOUNT,
        address="улица Мира, дом семь",
        phones=(KNOWN_CALLER,),
        debt=Decimal("1234.56"),
        paid=Decimal("500.00"),
    )


def balance_then_operator(
    app: Flask, settings: Settings, status_callback_path: str | None = None
) -> SimulatedCall:
    """A known caller confirms the address, hears the balance, then asks for an operator."""
    with Simulator(
        app,
        settings.webhook_auth_token,
        settings.public_base_url,
        status_callback_path=status_callback_path,
    ) as sim:
        call = sim.call(from_=KNOWN_CALLER, to="+78001234567")
        assert call.heard("Ваш адрес: улица Мира, дом семь. Верно?")
        call.press("1")
        call.press("2")
        assert call.heard("Ваша задолженность составляет")
        call.press("0")
        assert "operator:connect" in call.steps
        assert call.ended
    return call


def entries(call: SimulatedCall, kind: str) -> list[Any]:
    return [e for e in call.transcript if e.kind == kind]


def test_dial_routing_whispers_the_account_and_reason_to_the_operator(
    settings: Settings,
    db: Database,
    make_app: MakeApp,
    customer: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings.with_overrides(operator_routing="dial", operator_phone=OPERATOR)
    app = make_app(settings)
    caplog.set_level(logging.DEBUG)
    call = balance_then_operator(app, settings)
    dials = [e for e in call.transcript if e.kind == "dial"]
    assert [d.data["targets"] for d in dials] == [[f"number:{OPERATOR}"]]
    whispers = entries(call, "whisper")
    assert len(whispers) == 1
    said = whispers[0].text
    assert whispers[0].data["to"] == OPERATOR
    assert "Лицевой счёт: 5 5 0 0 1 2 3 4 5 6." in said
    assert "Причина: вопрос о задолженности и оплате." in said
    assert "задолженность 1234,56 руб." in said
    assert "Последний шаг: hotline:after_service." in said
    # the whisper is heard before the bridge: between the dial and the end of the call
    assert call.transcript.index(dials[0]) < call.transcript.index(whispers[0])
    # the agent hears the account; the logs never carry it whole
    assert ACCOUNT not in caplog.text
    assert "***56" in caplog.text
    assert interaction_of(db, call.sid).outcome == "transferred_queue"


def test_taskrouter_routing_puts_the_context_in_task_attributes(
    settings: Settings, db: Database, make_app: MakeApp, customer: int
) -> None:
    settings = settings.with_overrides(
        operator_routing="taskrouter", taskrouter_workflow_sid=WORKFLOW
    )
    app = make_app(settings)
    call = balance_then_operator(app, settings)
    (enqueue,) = entries(call, "enqueue")[:1]
    assert enqueue.data["workflow_sid"] == WORKFLOW
    task = enqueue.data["task"]
    assert task["account_number"] == ACCOUNT
    assert task["debt"] == "1234.56"
    assert task["reason"] == "balance"
    assert task["last_step"] == "hotline:after_service"
    assert task["path"][-1] == "operator:connect"
    assert task["caller"] == KNOWN_CALLER
    assert not entries(call, "whisper")


def test_default_queue_routing_keeps_enqueue_with_a_task(
    settings: Settings, db: Database, make_app: MakeApp, customer: int
) -> None:
    assert load_settings({}).operator_routing == "queue"
    app = make_app(settings)
    call = balance_then_operator(app, settings)
    enqueue = entries(call, "enqueue")[0]
    assert enqueue.data["queue"] == "operators"
    assert "workflow_sid" not in enqueue.data
    assert enqueue.data["task"]["account_number"] == ACCOUNT
    assert enqueue.data["task"]["last_step"] == "hotline:after_service"
    stored = interaction_of(db, call.sid).data["handoff"]
    assert stored["account_number"] == ACCOUNT


def test_call_summary_names_path_outcome_and_account_and_search_finds_it(
    settings: Settings, db: Database, make_app: MakeApp, customer: int
) -> None:
    app = make_app(settings)
    call = balance_then_operator(app, settings)
    interaction = interaction_of(db, call.sid)
    assert f"Лицевой счёт {ACCOUNT}." in interaction.summary
    assert "Итог: передан оператору (transferred_queue)." in interaction.summary
    assert "hotline:main_menu → " in interaction.summary
    assert interaction.summary.endswith("operator:connect.")
    with db.transaction() as s:
        for text in (ACCOUNT, "transferred_queue", "operator:connect", "ПЕРЕДАН ОПЕРАТОРУ"):
            found = search_interactions(s, InteractionQuery(text=text)).items
            assert [i.provider_sid for i in found] == [call.sid], text
        assert search_interactions(s, InteractionQuery(text="completed_in_ivr")).items == []


def test_whisper_of_an_unknown_call_says_the_account_is_unknown(
    settings: Settings, db: Database, make_app: MakeApp
) -> None:
    app = make_app(settings)
    resp = signed_request(
        WsgiTransport(app),
        settings.webhook_auth_token,
        "POST",
        "http://localhost/voice/whisper?call=CA00000000000000000000000000000000",
        {"CallSid": "CA" + "1" * 32},
    )
    assert resp.status == 200
    assert "Лицевой счёт не определён." in resp.text
    unsigned = app.test_client().post("/voice/whisper?call=CA1")
    assert unsigned.status_code == 403


def test_whisper_text_and_masking() -> None:
    text = whisper_text(
        {"account_number": "0012", "reason": "error", "readings_count": 2, "credit": "10.50"}
    )
    assert "Лицевой счёт: 0 0 1 2." in text
    assert "Причина: техническая ошибка в голосовом меню." in text
    assert "переплату 10,50 руб." in text
    assert "Передано показаний: 2." in text
    assert mask_account("5500123456") == "***56"
    assert mask_account(None) == "-"


def test_render_of_whisper_dial_and_taskrouter_enqueue() -> None:
    xml = render(
        [
            Dial(OPERATOR, action="/voice/step", whisper_url="http://h/voice/whisper?call=CA1"),
            Enqueue("operators", context={"account_number": ACCOUNT}, workflow_sid=WORKFLOW),
        ]
    )
    assert f'<Number method="POST" url="http://h/voice/whisper?call=CA1">{OPERATOR}</Number>' in xml
    assert f'<Enqueue workflowSid="{WORKFLOW}"><Task>' in xml
    assert json.dumps({"account_number": ACCOUNT}) in xml
    assert ">operators<" not in xml


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OPERATOR_ROUTING": "pigeon"}, "OPERATOR_ROUTING"),
        ({"OPERATOR_ROUTING": "taskrouter"}, "TASKROUTER_WORKFLOW_SID"),
        ({"TASKROUTER_WORKFLOW_SID": "WW123"}, "TASKROUTER_WORKFLOW_SID"),
        ({"OPERATOR_ROUTING": "dial", "OPERATOR_PHONE": "12"}, "OPERATOR_PHONE"),
    ],
)
def test_operator_routing_settings_are_validated(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable


def test_operator_routing_settings_are_read() -> None:
    settings = load_settings(
        {"OPERATOR_ROUTING": "TaskRouter", "TASKROUTER_WORKFLOW_SID": WORKFLOW}
    )
    assert (settings.operator_routing, settings.taskrouter_workflow_sid) == (
        "taskrouter",
        WORKFLOW,
    )
    assert load_settings({"OPERATOR_ROUTING": "dial"}).operator_routing == "dial"


def signed_post(app: Flask, settings: Settings, path: str, params: dict[str, str]) -> Any:
    return signed_request(
        WsgiTransport(app), settings.webhook_auth_token, "POST", f"http://localhost{path}", params
    )


def test_fallback_follows_the_routing(settings: Settings, make_app: MakeApp) -> None:
    sid = "CA" + "2" * 32
    routed = settings.with_overrides(
        operator_routing="taskrouter", taskrouter_workflow_sid=WORKFLOW
    )
    resp = signed_post(make_app(routed), routed, "/voice/fallback", {"CallSid": sid})
    assert f'<Enqueue workflowSid="{WORKFLOW}"><Task>' in resp.text
    assert '"reason": "fallback"' in resp.text
    dialled = settings.with_overrides(operator_routing="dial", operator_phone=OPERATOR)
    resp = signed_post(make_app(dialled), dialled, "/voice/fallback", {"CallSid": sid})
    assert f'url="http://localhost/voice/whisper?call={sid}">{OPERATOR}</Number>' in resp.text
    assert "<Enqueue" not in resp.text


def test_database_outage_dials_the_operator_and_the_whisper_still_answers(
    settings: Settings, make_app: MakeApp
) -> None:
    dialled = settings.with_overrides(operator_routing="dial", operator_phone=OPERATOR)
    app = make_app(dialled)
    services = services_of(app)
    services.db.dispose()
    services.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    with Simulator(app, dialled.webhook_auth_token, dialled.public_base_url) as sim:
        call = sim.call(from_=KNOWN_CALLER, to="+78001234567")
        assert call.heard("Извините, сервис временно недоступен. Соединяю с оператором.")
        assert call.ended
    whispers = entries(call, "whisper")
    assert [w.text for w in whispers] == [
        "Звонок с голосовой линии. Лицевой счёт не определён. Причина: запрос оператора."
    ]


def test_error_escalation_is_routed_with_the_reason_error() -> None:
    from ivr.action_context import ActionContext, ActionResult
    from ivr.engine import Engine
    from ivr.errors import ActionFailed
    from ivr.events import Handoff, Input, Start
    from ivr.operator_routing import OperatorRouting
    from ivr.schema import FlowSet

    from .test_engine_core import FLOWS, NOW, Recorder, new_session, send

    def broken(ctx: ActionContext) -> ActionResult:
        raise ActionFailed("CRM said no")

    routing = OperatorRouting(mode="dial", number=OPERATOR, base_url="https://ivr.example")
    actions = Recorder().actions() | {"check_account_number": broken}
    engine = Engine(FlowSet.model_validate(FLOWS), actions, lambda: NOW, operator=routing)
    session = new_session()
    send(engine, session, Start("main"))
    send(engine, session, Input(digits="1"))
    out = send(engine, session, Input(digits="123#"))
    dial = out.verbs[-1]
    assert isinstance(dial, Dial)
    assert dial.number == OPERATOR
    assert dial.whisper_url == f"https://ivr.example/voice/whisper?call={session.call_sid}"
    (handoff,) = [e for e in out.effects if isinstance(e, Handoff)]
    assert handoff.context["reason"] == "error"
    assert handoff.context["last_step"] is not None


def test_a_caller_who_hangs_up_in_the_menu_gets_an_outcome_and_a_final_summary(
    settings: Settings, db: Database, make_app: MakeApp, customer: int
) -> None:
    app = make_app(settings)
    with Simulator(
        app,
        settings.webhook_auth_token,
        settings.public_base_url,
        status_callback_path="/voice/status",
    ) as sim:
        call = sim.call(from_=KNOWN_CALLER, to="+78001234567")
        call.press("1")
        call.hangup()
    interaction = interaction_of(db, call.sid)
    assert interaction.status == "completed"
    assert interaction.outcome == "hung_up_in_ivr"
    assert "Итог: абонент положил трубку в голосовом меню (hung_up_in_ivr)." in interaction.summary
    assert f"Лицевой счёт {ACCOUNT}." in interaction.summary
    assert "hotline:main_menu" in interaction.summary
    with db.transaction() as s:
        found = search_interactions(s, InteractionQuery(text="положил трубку")).items
        assert [i.provider_sid for i in found] == [call.sid]


def test_a_call_that_ends_in_the_flow_keeps_its_outcome_when_the_status_arrives(
    settings: Settings, db: Database, make_app: MakeApp, customer: int
) -> None:
    app = make_app(settings)
    call = balance_then_operator(app, settings, status_callback_path="/voice/status")
    interaction = interaction_of(db, call.sid)
    assert interaction.status == "completed"
    assert interaction.outcome == "transferred_queue"
    assert "Итог: передан оператору (transferred_queue)." in interaction.summary
