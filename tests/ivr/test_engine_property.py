"""Property tests: any caller behaviour on the shipped flows yields valid TwiML, never a crash."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr import twiml
from ivr.action_context import ActionContext, ActionResult
from ivr.action_names import ACTION_SPECS, variable_kinds
from ivr.engine import Engine
from ivr.events import Event, Input, Recording, Start, TransferEnded
from ivr.schema import FlowSet
from ivr.session import CallSession
from ivr.validate import load_flows
from ivr.voice import prompt_renderer

FLOWS_FILE = Path(__file__).resolve().parents[2] / "call_flows.yaml"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SAMPLES: dict[str, Any] = {
    "text": "улица Ленина, дом пять",
    "digits": "7700112233",
    "money": Decimal("1234.56"),
    "number": 2,
    "date": date(2026, 12, 10),
    "time": time(8, 0),
    "bool": True,
    "phone": "+78002200220",
    "id": "42",
}
WAITING_VERBS = (twiml.Gather, twiml.Record, twiml.Enqueue, twiml.Dial, twiml.Hangup)


@cache
def shipped_flows() -> FlowSet:
    return load_flows(FLOWS_FILE)


def fake_actions(data: st.DataObject) -> dict[str, Any]:
    kinds = variable_kinds()

    def make(name: str) -> Any:
        spec = ACTION_SPECS[name]

        def act(ctx: ActionContext) -> ActionResult:
            outcome = data.draw(st.sampled_from(sorted(spec.outcomes)), label=f"{name} outcome")
            values = {v: SAMPLES[kinds.get(v, "text")] for v in spec.outcomes[outcome]}
            return ActionResult(outcome, values)

        return act

    return {name: make(name) for name in ACTION_SPECS}


#: Keys a caller plausibly presses, weighted towards menu choices and valid entries.
MEANINGFUL_KEYS = ["1", "1", "1", "2", "2", "3", "4", "9", "7700112233", "12345", "11", "0", "*"]

events = st.one_of(
    st.sampled_from(MEANINGFUL_KEYS).map(lambda keys: Input(digits=keys)),
    st.sampled_from(MEANINGFUL_KEYS).map(lambda keys: Input(digits=keys)),
    st.builds(Input, digits=st.text(alphabet="0123456789*#", max_size=12)),
    st.just(Input()),
    st.builds(
        Input,
        speech=st.sampled_from(
            ["да", "нет", "оператор", "повторить", "баланс", "показания", "двенадцать", "э-э"]
        ),
        confidence=st.floats(0, 1),
    ),
    st.builds(TransferEnded, status=st.sampled_from(["completed", "no-answer", "bridged", "busy"])),
    st.builds(Recording, url=st.just("https://rec/1"), duration=st.integers(0, 60)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    script=st.lists(events, max_size=25),
    flow=st.sampled_from(["hotline", "debt_reminder"]),
)
def test_any_caller_behaviour_gets_valid_twiml(
    data: st.DataObject, script: list[Event], flow: str
) -> None:
    engine = Engine(
        shipped_flows(),
        fake_actions(data),
        lambda: NOW,
        base_url="https://ivr.example",
        render_text=prompt_renderer(lambda: NOW),
    )
    session = CallSession(call_sid="CA" + "7" * 32, flow=flow, step="", caller="+79161234567")
    start_vars = {"account_number": "7700112233", "holder_name": "Иванов Иван"}
    outcome = engine.handle(session, Start(flow, start_vars if flow == "debt_reminder" else {}))
    for event in [None, *script]:
        if event is not None:
            outcome = engine.handle(session, event)
            session.version += 1
        assert outcome.verbs, "every answer says or does something"
        assert isinstance(outcome.verbs[-1], WAITING_VERBS), outcome.verbs
        assert not any(step.event == "error" for step in outcome.steps), outcome.steps
        document = twiml.render(outcome.verbs)
        assert document.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
        session.to_json()  # the session stays storable
        if session.ended:
            break
