"""IVR: flow schema, loader and validator, engine, TwiML rendering, actions.

Flow language (``call_flows.yaml``)::

    from ivr import load_flows, check_flows, flow_json_schema, FlowError

    flows = load_flows("call_flows.yaml")     # FlowSet, or raises FlowError(.issues)
    for issue in check_flows("broken.yaml"):  # [FlowIssue(file, line, column, message)]
        print(issue)                          # broken.yaml:12:9: ...

Engine (pure: no Flask, Redis or database inside; see ``ivr.engine``)::

    from ivr import Engine, Start, Input, CallSession, render_twiml

    engine = Engine(flows, actions, clock, base_url="https://ivr.example")
    outcome = engine.handle(session, Input(digits="1"))  # verbs, steps, effects
    xml = render_twiml(outcome.verbs)

At run time the webhooks use ``ivr.runtime.VoiceRuntime`` (Redis sessions, the CRM
actions of ``ivr.actions``, the IVR path in the CRM, SMS via RQ).
"""

from __future__ import annotations

from ivr.engine import (
    ActionContext,
    ActionFailed,
    ActionResult,
    Engine,
    Input,
    Outcome,
    Recording,
    Start,
    TransferEnded,
)
from ivr.loader import FlowError, FlowIssue
from ivr.schema import FlowSet, flow_json_schema
from ivr.session import CallSession, SessionStore
from ivr.twiml import render as render_twiml
from ivr.validate import check_flows, load_flows, load_flows_text

__all__ = [
    "ActionContext",
    "ActionFailed",
    "ActionResult",
    "CallSession",
    "Engine",
    "FlowError",
    "FlowIssue",
    "FlowSet",
    "Input",
    "Outcome",
    "Recording",
    "SessionStore",
    "Start",
    "TransferEnded",
    "check_flows",
    "flow_json_schema",
    "load_flows",
    "load_flows_text",
    "render_twiml",
]
