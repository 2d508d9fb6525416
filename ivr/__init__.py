"""IVR: flow schema, loader and validator, engine, TwiML rendering, actions.

Flow language (``call_flows.yaml``)::

    from ivr import load_flows, check_flows, flow_json_schema, FlowError

    flows = load_flows("call_flows.yaml")     # FlowSet, or raises FlowError(.issues)
    for issue in check_flows("broken.yaml"):  # [FlowIssue(file, line, column, message)]
        print(issue)                          # broken.yaml:12:9: ...
"""

from __future__ import annotations

from ivr.loader import FlowError, FlowIssue
from ivr.schema import FlowSet, flow_json_schema
from ivr.validate import check_flows, load_flows, load_flows_text

__all__ = [
    "FlowError",
    "FlowIssue",
    "FlowSet",
    "check_flows",
    "flow_json_schema",
    "load_flows",
    "load_flows_text",
]
