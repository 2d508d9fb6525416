"""Validation of flow files before anything runs: every problem at once, as ``FILE:LINE:COL``.

Stages (each runs even when an earlier one found problems, as far as it can):

1. YAML syntax and duplicate keys (:mod:`ivr.loader`).
2. The schema (:mod:`ivr.schema`), errors mapped back to YAML positions.
3. Cross-references (:mod:`ivr.flow_checks`), on every step that passed the schema: unknown
   targets, flows and start steps; unreachable steps; steps with no way out (no path to
   ``hangup``, ``transfer`` or ``return``); unknown actions, arguments and outcomes, outcomes
   without a branch; menus with a key or keyword used twice; prompt templates (syntax,
   formats, unknown variables, formats that do not fit the variable); unknown prompt
   references; subflow branches on outcomes the called flow never returns.

Variables known to a flow file: :data:`ivr.schema.CONTEXT_VARIABLES`, ``defaults.variables``,
every flow's ``params``, every ``collect.into``, the variables of every action the file calls
(:mod:`ivr.action_names`), ``recording_url``/``recording_duration`` when a ``record`` step
exists, and ``intent``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ivr.action_names import VarKind
from ivr.errors import FlowError, FlowIssue
from ivr.flow_checks import FlowChecker
from ivr.loader import SourceMap, format_path, parse_yaml, read_source, schema_issues
from ivr.schema import Defaults, Flow, FlowSet, Prompts, Step

__all__ = [
    "check_flows",
    "check_text",
    "iter_templates",
    "known_variables",
    "load_flows",
    "load_flows_text",
    "validate_flowset",
]

_STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
_PROMPTS_ADAPTER: TypeAdapter[tuple[Any, ...]] = TypeAdapter(Prompts)


def load_flows(path: str | Path) -> FlowSet:
    """Load and fully validate a flow file; raises :class:`~ivr.errors.FlowError` listing every
    problem (each a :class:`~ivr.errors.FlowIssue` with file, line, column and message)."""
    text, issues = read_source(path)
    if text is None:
        raise FlowError(issues)
    return load_flows_text(text, str(path))


def load_flows_text(text: str, filename: str = "<string>") -> FlowSet:
    """:func:`load_flows` for text already in memory."""
    flowset, issues = check_text(text, filename)
    if issues or flowset is None:
        raise FlowError(issues)
    return flowset


def check_flows(path: str | Path) -> list[FlowIssue]:
    """Every problem of a flow file, sorted by position (empty when the file is valid)."""
    text, issues = read_source(path)
    if text is None:
        return issues
    return check_text(text, str(path))[1]


def check_text(text: str, filename: str = "<string>") -> tuple[FlowSet | None, list[FlowIssue]]:
    """Validate flow-file text; returns the :class:`FlowSet` (``None`` when the schema failed)
    and every problem found, sorted by position."""
    data, source, issues = parse_yaml(text, filename)
    if data is None and issues:
        return None, sorted(set(issues))
    if not isinstance(data, dict):
        issues.append(
            FlowIssue(filename, 1, 1, "the top level must be a mapping (version, defaults, flows)")
        )
        return None, sorted(set(issues))
    flowset: FlowSet | None = None
    broken: set[tuple[str, str]] = set()
    try:
        flowset = FlowSet.model_validate(data)
        partial = flowset
    except ValidationError as exc:
        issues.extend(schema_issues(exc, data, source, filename))
        partial, broken = _partial_flowset(data)
    issues.extend(validate_flowset(partial, source, filename, broken))
    unique = sorted(set(issues))
    return (flowset if not unique else None), unique


def _partial_flowset(data: dict[str, Any]) -> tuple[FlowSet, set[tuple[str, str]]]:
    """The parts of a document that pass the schema, for graph checks after schema errors.

    Returns the partial flow set and the ``(flow, step)`` names that exist but are broken
    (``(flow, "*")`` for a flow that is broken as a whole); targets to them are not reported.
    """
    broken: set[tuple[str, str]] = set()
    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError:
        defaults = Defaults()
    prompts: dict[str, Any] = {}
    raw_prompts = data.get("prompts")
    if isinstance(raw_prompts, dict):
        for name, raw in raw_prompts.items():
            try:
                prompts[str(name)] = _PROMPTS_ADAPTER.validate_python(raw)
            except ValidationError:
                broken.add(("prompts", str(name)))
    flows: dict[str, Flow] = {}
    raw_flows = data.get("flows")
    if isinstance(raw_flows, dict):
        for flow_name, raw_flow in raw_flows.items():
            name = str(flow_name)
            if not isinstance(raw_flow, dict) or not isinstance(raw_flow.get("steps"), dict):
                broken.add((name, "*"))
                continue
            steps: dict[str, Step] = {}
            for step_name, raw_step in raw_flow["steps"].items():
                try:
                    steps[str(step_name)] = _STEP_ADAPTER.validate_python(raw_step)
                except ValidationError:
                    broken.add((name, str(step_name)))
            start = raw_flow.get("start")
            params = raw_flow.get("params")
            flows[name] = Flow.model_construct(
                description=str(raw_flow.get("description") or ""),
                start=start if isinstance(start, str) else "",
                params=tuple(str(p) for p in params) if isinstance(params, list) else (),
                steps=steps,
            )
            if not isinstance(start, str):
                broken.add((name, ""))
    partial = FlowSet.model_construct(version=1, defaults=defaults, prompts=prompts, flows=flows)
    return partial, broken


def validate_flowset(
    flowset: FlowSet,
    source: SourceMap | None = None,
    filename: str = "<flows>",
    broken: set[tuple[str, str]] | None = None,
) -> list[FlowIssue]:
    """Graph, action and variable checks of a schema-valid :class:`FlowSet`.

    ``source`` maps paths to positions (without it every issue is at 1:1); ``broken`` names
    steps that exist in the document but failed the schema.
    """
    checker = FlowChecker(flowset, source or SourceMap(), filename, set(broken or ()))
    return sorted(set(checker.run()))


def iter_templates(flowset: FlowSet) -> Iterator[tuple[str, str]]:
    """Every template text of a flow set (prompt texts, SMS texts, string action arguments)
    with its dotted path, e.g. ``flows.hotline.steps.say_debt.prompts[0]``."""
    checker = FlowChecker(flowset, SourceMap(), "<flows>", set())
    for path, text in checker.templates():
        yield format_path(path), text


def known_variables(flowset: FlowSet) -> dict[str, VarKind | None]:
    """Every variable the flows of ``flowset`` may read, with its kind when known."""
    return FlowChecker(flowset, SourceMap(), "<flows>", set()).known_variables()
