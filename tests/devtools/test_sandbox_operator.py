"""The sandbox's ``<Dial><Number url>`` whisper and ``<Enqueue><Task>`` attributes (issue 14)."""

from __future__ import annotations

import pytest

from devtools.sandbox.twiml import CallBehaviour
from devtools.simulator import Simulator
from tests.twiml_testapp import PUBLIC, TOKEN, TwimlApp, make_twiml_app, twiml

WORKFLOW = "WW" + "cd" * 16


@pytest.fixture
def twiml_app() -> TwimlApp:
    """A signature-validating TwiML test app."""
    return make_twiml_app()


def _sim(app: TwimlApp, **kwargs: object) -> Simulator:
    return Simulator(app.app, TOKEN, PUBLIC, **kwargs)  # type: ignore[arg-type]


def test_answered_dial_fetches_the_number_url_and_notes_the_whisper(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Dial><Number url="/whisper?call=X">+74951112233</Number></Dial>'),
    )
    twiml_app.on("/whisper", twiml("<Say>Лицевой счёт: 1 2 3.</Say>"))
    call = _sim(twiml_app).call()
    (whisper,) = [e for e in call.transcript if e.kind == "whisper"]
    assert whisper.text == "Лицевой счёт: 1 2 3."
    assert whisper.data["to"] == "+74951112233"
    hit = twiml_app.hits("/whisper")[0]
    assert hit.form["ParentCallSid"] == call.sid
    assert hit.form["CallSid"] != call.sid
    assert hit.form["To"] == "+74951112233"
    assert not call.heard("Лицевой счёт")  # the caller does not hear the whisper


def test_unanswered_dial_does_not_fetch_the_whisper(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml('<Dial><Number url="/whisper">+74951112233</Number></Dial>'),
    )
    twiml_app.on("/whisper", twiml("<Say>x</Say>"))
    _sim(twiml_app, behaviour=CallBehaviour(dial_status="no-answer")).call()
    assert twiml_app.hits("/whisper") == []


def test_enqueue_notes_the_task_attributes_and_the_workflow(twiml_app: TwimlApp) -> None:
    twiml_app.on(
        "/voice/incoming",
        twiml(
            f'<Enqueue workflowSid="{WORKFLOW}"><Task>{{"account_number": "77"}}</Task></Enqueue>'
        ),
    )
    call = _sim(twiml_app).call()
    enqueue = next(e for e in call.transcript if e.kind == "enqueue")
    assert enqueue.data["workflow_sid"] == WORKFLOW
    assert enqueue.data["task"] == {"account_number": "77"}


def test_enqueue_with_a_bad_task_is_an_application_error(twiml_app: TwimlApp) -> None:
    twiml_app.on("/voice/incoming", twiml("<Enqueue>operators<Task>{not json</Task></Enqueue>"))
    call = _sim(twiml_app).call()
    assert not [e for e in call.transcript if e.kind == "enqueue"]
    assert any(e.kind == "error" for e in call.transcript), call.transcript_text()
