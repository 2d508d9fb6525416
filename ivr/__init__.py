"""IVR: the flow language, its validation, the pure engine, TwiML, the voice runtime, actions.

The package surface is what other packages use of the flow files::

    from ivr import load_flows, FlowError

    flows = load_flows("call_flows.yaml")     # FlowSet, or raises FlowError(.issues)

Everything else is imported from its module:

- the flow language: :mod:`ivr.schema` (models), :mod:`ivr.expressions` (``branch``
  conditions), :mod:`ivr.loader` (YAML with positions), :mod:`ivr.validate` (``load_flows``,
  ``check_flows``: every problem as ``FILE:LINE:COL``) over :mod:`ivr.flow_checks`,
  :mod:`ivr.graph` (step edges, drawings), :mod:`ivr.action_names` (the actions a flow may
  call), :mod:`ivr.verbalize` (Russian prompt templates);
- the engine, pure (no Flask, Redis or database inside): :mod:`ivr.engine`
  (``Engine(flows, actions, clock).handle(session, event)``) with :mod:`ivr.events`,
  :mod:`ivr.action_context`, :mod:`ivr.voice_policy` and :mod:`ivr.input_values`;
  :mod:`ivr.twiml` renders its verbs; :mod:`ivr.session` keeps a call's state in Redis;
- :mod:`ivr.errors`: every exception of the package, with their tree.

At run time the webhooks use the voice runtime (Redis sessions, the CRM actions of
``ivr.actions``, the IVR path in the CRM, SMS via RQ).
"""

from __future__ import annotations

from ivr.errors import FlowError
from ivr.validate import load_flows

__all__ = ["FlowError", "load_flows"]
