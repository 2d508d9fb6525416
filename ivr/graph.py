"""The step graph of flows: outgoing edges of every step, and Mermaid / Graphviz renderings.

The validator uses :func:`step_edges` for targets, reachability and "no way out" checks;
``contactcenter flows graph`` uses :func:`render_mermaid` and :func:`render_dot`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ivr.schema import (
    ActionStep,
    BranchStep,
    CollectStep,
    Defaults,
    FlowSet,
    GotoStep,
    HangupStep,
    MenuStep,
    RecordStep,
    ReturnStep,
    SayStep,
    SmsStep,
    Step,
    SubflowStep,
    TransferStep,
    split_target,
)

__all__ = [
    "TERMINAL_STEP_TYPES",
    "Edge",
    "render_dot",
    "render_mermaid",
    "resolve_edge",
    "step_edges",
]

#: Steps that end the flow's own path: the call ends, leaves for people, or returns.
TERMINAL_STEP_TYPES = (HangupStep, TransferStep, ReturnStep)

#: Placeholder step name of a ``call`` edge: the called flow's start.
_START = "__start__"

EdgeKind = Literal["next", "option", "outcome", "condition", "escalation", "operator", "call"]


@dataclass(frozen=True)
class Edge:
    """An outgoing edge of a step."""

    target: str
    """``step`` or ``flow:step`` as written (resolve with :func:`ivr.schema.split_target`)."""
    label: str
    """Short description for drawings (a key, an outcome, a condition)."""
    kind: EdgeKind
    path: tuple[str | int, ...] | None
    """Where the target is written, relative to the step; ``None`` for implicit edges that come
    from ``defaults`` (universal operator command, default escalation)."""


def step_edges(step: Step, defaults: Defaults) -> list[Edge]:
    """Every edge leaving ``step``, explicit and implicit, in a stable order."""
    edges: list[Edge] = []
    if isinstance(step, SayStep | CollectStep | RecordStep | SmsStep):
        edges.append(Edge(step.next, "", "next", ("next",)))
    elif isinstance(step, MenuStep):
        for i, option in enumerate(step.options):
            label = option.key or (option.keywords[0] if option.keywords else "")
            edges.append(Edge(option.goto, label, "option", ("options", i, "goto")))
    elif isinstance(step, ActionStep):
        for outcome, target in step.branches.items():
            edges.append(Edge(target, outcome, "outcome", ("branches", outcome)))
        if step.default is not None:
            edges.append(Edge(step.default, "default", "outcome", ("default",)))
    elif isinstance(step, BranchStep):
        for i, condition in enumerate(step.conditions):
            edges.append(
                Edge(condition.goto, condition.when, "condition", ("conditions", i, "goto"))
            )
        edges.append(Edge(step.otherwise, "otherwise", "condition", ("otherwise",)))
    elif isinstance(step, GotoStep):
        edges.append(Edge(step.target, "", "next", ("target",)))
    elif isinstance(step, SubflowStep):
        edges.append(Edge(f"{step.flow}:{_START}", "call", "call", ("flow",)))
        edges.append(Edge(step.next, "", "next", ("next",)))
        for outcome, target in step.branches.items():
            edges.append(Edge(target, outcome, "outcome", ("branches", outcome)))
    elif isinstance(step, TransferStep) and step.on_failure is not None:
        edges.append(Edge(step.on_failure, "failure", "escalation", ("on_failure",)))
    if isinstance(step, MenuStep | CollectStep):
        for handler_name in ("no_input", "no_match"):
            handler = getattr(step, handler_name)
            if handler is not None and handler.then is not None:
                edges.append(Edge(handler.then, handler_name, "escalation", (handler_name, "then")))
            else:
                edges.append(Edge(defaults.operator_target, handler_name, "escalation", None))
        universal = defaults.universal
        if step.universal and (universal.operator_key or universal.operator_keywords):
            edges.append(Edge(defaults.operator_target, "оператор", "operator", None))
    return edges


def _resolve(flowset: FlowSet, edge: Edge, current_flow: str) -> tuple[str, str]:
    flow, step = split_target(edge.target, current_flow)
    if step == _START and flow in flowset.flows:
        step = flowset.flows[flow].start
    return flow, step


def resolve_edge(flowset: FlowSet, edge: Edge, current_flow: str) -> tuple[str, str]:
    """``(flow, step)`` an edge of a step of ``current_flow`` leads to (it may not exist)."""
    return _resolve(flowset, edge, current_flow)


def _node_id(flow: str, step: str) -> str:
    return f"{flow}__{step}"


def _collect(
    flowset: FlowSet, flow_name: str, implicit: bool
) -> tuple[list[tuple[str, str]], list[tuple[tuple[str, str], tuple[str, str], Edge]]]:
    """Nodes of ``flow_name`` plus foreign nodes its edges reach, and the edges."""
    flow = flowset.flows[flow_name]
    nodes: list[tuple[str, str]] = [(flow_name, name) for name in flow.steps]
    edges: list[tuple[tuple[str, str], tuple[str, str], Edge]] = []
    for name, step in flow.steps.items():
        seen: set[tuple[tuple[str, str], str]] = set()
        for edge in step_edges(step, flowset.defaults):
            if edge.path is None and not implicit:
                continue
            target = _resolve(flowset, edge, flow_name)
            if (target, edge.label) in seen:
                continue
            seen.add((target, edge.label))
            if target not in nodes:
                nodes.append(target)
            edges.append(((flow_name, name), target, edge))
    return nodes, edges


def _step_caption(flowset: FlowSet, flow: str, step: str) -> str:
    found = flowset.flows.get(flow)
    node = found.steps.get(step) if found is not None else None
    prefix = "" if found is not None and node is not None else "? "
    kind = node.type if node is not None else "missing"
    return f"{prefix}{flow}:{step} ({kind})"


def render_mermaid(flowset: FlowSet, flow_name: str, *, implicit: bool = False) -> str:
    """A Mermaid ``flowchart TD`` of one flow (steps of other flows it jumps to are shown too).

    ``implicit`` adds the edges that come from defaults (operator command, escalations).
    """
    nodes, edges = _collect(flowset, flow_name, implicit)
    lines = ["flowchart TD"]
    for flow, step in nodes:
        caption = _step_caption(flowset, flow, step) if flow != flow_name else None
        if caption is None:
            node = flowset.flows[flow].steps[step]
            caption = f"{step} ({node.type})"
        text = caption.replace('"', "'")
        shape = ("([", "])") if _is_terminal(flowset, flow, step) else ("[", "]")
        lines.append(f'    {_node_id(flow, step)}{shape[0]}"{text}"{shape[1]}')
    start = flowset.flows[flow_name].start
    lines.append(f"    START((start)) --> {_node_id(flow_name, start)}")
    for source, target, edge in edges:
        arrow = "-.->" if edge.kind in ("escalation", "operator", "call") else "-->"
        label = edge.label.replace('"', "'").replace("|", "/")
        label_part = f'|"{label}"|' if label else ""
        lines.append(f"    {_node_id(*source)} {arrow}{label_part} {_node_id(*target)}")
    return "\n".join(lines) + "\n"


def _is_terminal(flowset: FlowSet, flow: str, step: str) -> bool:
    found = flowset.flows.get(flow)
    node = found.steps.get(step) if found is not None else None
    return isinstance(node, TERMINAL_STEP_TYPES)


def _dot_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_dot(flowset: FlowSet, flow_name: str, *, implicit: bool = False) -> str:
    """A Graphviz ``digraph`` of one flow (see :func:`render_mermaid`)."""
    nodes, edges = _collect(flowset, flow_name, implicit)
    lines = [f"digraph {_dot_quote(flow_name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    lines.append('    "__start__" [shape=circle, label="start"];')
    for flow, step in nodes:
        if flow == flow_name:
            node = flowset.flows[flow].steps[step]
            caption = f"{step} ({node.type})"
        else:
            caption = _step_caption(flowset, flow, step)
        shape = ", shape=doubleoctagon" if _is_terminal(flowset, flow, step) else ""
        lines.append(
            f"    {_dot_quote(_node_id(flow, step))} [label={_dot_quote(caption)}{shape}];"
        )
    start = flowset.flows[flow_name].start
    lines.append(f'    "__start__" -> {_dot_quote(_node_id(flow_name, start))};')
    for source, target, edge in edges:
        attrs = [f"label={_dot_quote(edge.label)}"] if edge.label else []
        if edge.kind in ("escalation", "operator", "call"):
            attrs.append("style=dashed")
        attr_text = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(
            f"    {_dot_quote(_node_id(*source))} -> {_dot_quote(_node_id(*target))}{attr_text};"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
