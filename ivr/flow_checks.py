"""Cross-reference checks of a schema-valid flow set, each problem at its YAML position.

:class:`FlowChecker` runs on every step that passed the schema (:mod:`ivr.validate` builds a
partial flow set when some did not) and reports:

- graph: unknown targets, flows and start steps; a missing operator target; unreachable
  steps; steps with no way out (no path to ``hangup``, ``transfer`` or ``return``);
- actions: unknown actions, arguments and outcomes, outcomes without a branch, validators
  that are not declared as such (:mod:`ivr.action_names`);
- menus: a key or keyword used twice; subflow branches on outcomes the called flow never
  returns;
- voice: ``barge_in`` on a step that cannot honour it (keypad-only input, ``capture:
  record``, no recognizer grammar);
- variables: prompt templates (syntax, formats, unknown variables, formats that do not fit
  the variable), unknown prompt references, ``collect.into`` overwriting the call context or
  a constant, constants dialled by a transfer that are not E.164, a number after a verb
  that takes the accusative without the ``acc`` option (case agreement).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from contactcenter.phones import InvalidPhoneError, normalize_phone
from ivr.action_names import ACTION_SPECS, VarKind, variable_kinds
from ivr.errors import FlowIssue, PromptTemplateError
from ivr.expressions import variable_tokens
from ivr.graph import TERMINAL_STEP_TYPES, resolve_edge, step_edges
from ivr.loader import Path_, SourceMap, format_path
from ivr.schema import (
    CONTEXT_VARIABLES,
    ActionStep,
    BranchStep,
    CollectStep,
    FlowSet,
    MenuStep,
    PromptRef,
    RecordStep,
    ReturnStep,
    SmsStep,
    Step,
    SubflowStep,
    TransferStep,
)
from ivr.verbalize import missing_accusative, template_fields
from ivr.voice_policy import step_grammar

__all__ = ["RECORD_VARIABLES", "FlowChecker"]

#: Variables a ``record`` step sets.
RECORD_VARIABLES = frozenset({"recording_url", "recording_duration"})

_COLLECT_KINDS: Mapping[str, VarKind] = {
    "digits": "digits",
    "account_number": "digits",
    "number": "number",
    "meter_reading": "number",
    "yes_no": "bool",
    "date": "date",
}

#: Which template formats fit a variable of each kind.
_FORMATS_FOR_KIND: Mapping[VarKind, frozenset[str]] = {
    "text": frozenset({"text", "plain", "address"}),
    "digits": frozenset({"text", "plain", "digits", "number", "reading"}),
    "money": frozenset({"text", "plain", "money", "number"}),
    "number": frozenset({"text", "plain", "number", "reading", "digits", "money"}),
    "date": frozenset({"text", "plain", "date"}),
    "time": frozenset({"text", "plain", "time"}),
    "bool": frozenset({"text", "plain", "yes_no"}),
    "phone": frozenset({"text", "plain", "phone", "digits"}),
    "id": frozenset({"text", "plain", "digits", "number"}),
}


@dataclass
class FlowChecker:
    """The checks of one flow set; :meth:`run` returns every issue found (unsorted).

    ``source`` maps document paths to positions; ``broken`` names the ``(flow, step)`` that
    exist in the document but failed the schema (``(flow, "*")``: the whole flow, ``(flow,
    "")``: its start), so targets to them are not reported twice.
    """

    flowset: FlowSet
    source: SourceMap
    filename: str
    broken: set[tuple[str, str]]
    issues: list[FlowIssue] = field(default_factory=list)

    # -- helpers --------------------------------------------------------------------------

    def at(
        self, path: Path_, message: str, *, key: bool = False, offset: int | None = None
    ) -> None:
        """Report ``message`` at the value (or key) at ``path``; ``offset`` points inside a
        string value (a template field, an expression token)."""
        if key:
            line, column = self.source.key_position(path)
        elif offset is None:
            line, column = self.source.value_position(path)
        else:
            line, column = self.source.text_position(path, offset)
        self.issues.append(FlowIssue(self.filename, line, column, message))

    def step_path(self, flow: str, step: str) -> Path_:
        """The document path of step ``step`` of flow ``flow``."""
        return ("flows", flow, "steps", step)

    def exists(self, flow: str, step: str) -> bool:
        """Whether the step exists (a broken one counts: its own error is reported)."""
        found = self.flowset.flows.get(flow)
        if found is not None and step in found.steps:
            return True
        return (flow, step) in self.broken or (flow, "*") in self.broken

    def flow_exists(self, flow: str) -> bool:
        """Whether the flow exists (a broken one counts)."""
        return flow in self.flowset.flows or (flow, "*") in self.broken

    def steps(self) -> Iterator[tuple[str, str, Step]]:
        """Every ``(flow name, step name, step)`` that passed the schema."""
        return self.flowset.iter_steps()

    # -- checks ---------------------------------------------------------------------------

    def run(self) -> list[FlowIssue]:
        """Run every check; the issues found, unsorted."""
        self.check_starts()
        self.check_targets()
        self.check_operator_target()
        self.check_actions()
        self.check_menus()
        self.check_barge_in()
        self.check_subflows()
        self.check_variables()
        self.check_into_names()
        self.check_reachability()
        self.check_way_out()
        return self.issues

    def check_starts(self) -> None:
        """Every flow's start step exists."""
        for name, flow in self.flowset.flows.items():
            if (name, "") in self.broken or self.exists(name, flow.start):
                continue
            self.at(
                ("flows", name, "start"),
                f"flow {name!r}: start step {flow.start!r} does not exist"
                + _suggest(flow.start, flow.steps),
            )

    def check_targets(self) -> None:
        """Every written target names an existing flow and step."""
        for flow_name, step_name, step in self.steps():
            for edge in step_edges(step, self.flowset.defaults):
                if edge.path is None:
                    continue  # implicit edges from defaults are checked once, below
                path = (*self.step_path(flow_name, step_name), *edge.path)
                if edge.kind == "call" and isinstance(step, SubflowStep):
                    if not self.flow_exists(step.flow):
                        self.at(
                            path,
                            f"step {flow_name}.{step_name}: unknown flow {step.flow!r}"
                            + _suggest(step.flow, self.flowset.flows),
                        )
                    continue
                flow, target = resolve_edge(self.flowset, edge, flow_name)
                if not self.flow_exists(flow):
                    self.at(
                        path,
                        f"step {flow_name}.{step_name}: unknown flow {flow!r} in target "
                        f"{edge.target!r}" + _suggest(flow, self.flowset.flows),
                    )
                elif not self.exists(flow, target):
                    known = self.flowset.flows[flow].steps if flow in self.flowset.flows else {}
                    self.at(
                        path,
                        f"step {flow_name}.{step_name}: unknown step {edge.target!r}"
                        + ("" if flow == flow_name else f" in flow {flow!r}")
                        + _suggest(target, known),
                    )

    def check_operator_target(self) -> None:
        """``defaults.operator_target`` exists where input steps use it."""
        target = self.flowset.defaults.operator_target
        reported: set[str] = set()
        for flow_name, step_name, step in self.steps():
            implicit = [e for e in step_edges(step, self.flowset.defaults) if e.path is None]
            if not implicit:
                continue
            flow, name = resolve_edge(self.flowset, implicit[0], flow_name)
            if self.exists(flow, name):
                continue
            where = "" if ":" in target else f" in flow {flow_name!r}"
            message = f"operator target {target!r} does not exist{where}"
            if message in reported:
                continue
            reported.add(message)
            message += (
                " (used by the universal operator command and default escalations, e.g. of "
                f"step {flow_name}.{step_name})"
            )
            if self.source.has(("defaults", "operator_target")):
                self.at(("defaults", "operator_target"), message)
            else:
                self.at(self.step_path(flow_name, step_name), message, key=True)

    def check_actions(self) -> None:
        """Actions, validators and record actions are declared and fit their use."""
        for flow_name, step_name, step in self.steps():
            base = self.step_path(flow_name, step_name)
            if isinstance(step, ActionStep):
                self.check_action_step(flow_name, step_name, step, base)
            elif isinstance(step, CollectStep) and step.validate_with is not None:
                spec = ACTION_SPECS.get(step.validate_with)
                if spec is None:
                    self.at(
                        (*base, "validate"),
                        f"step {flow_name}.{step_name}: unknown action {step.validate_with!r}"
                        + _suggest(step.validate_with, _validators()),
                    )
                elif not spec.validator:
                    self.at(
                        (*base, "validate"),
                        f"step {flow_name}.{step_name}: action {spec.name!r} is not a validator "
                        f"(validators: {', '.join(sorted(_validators())) or 'none'})",
                    )
            elif isinstance(step, RecordStep) and step.action not in ACTION_SPECS:
                self.at(
                    (*base, "action"),
                    f"step {flow_name}.{step_name}: unknown action {step.action!r}"
                    + _suggest(step.action, ACTION_SPECS),
                )

    def check_action_step(self, flow: str, name: str, step: ActionStep, base: Path_) -> None:
        """An ``action`` step's arguments and branches fit the action's declaration."""
        spec = ACTION_SPECS.get(step.name)
        where = f"step {flow}.{name}"
        if spec is None:
            self.at(
                (*base, "name"),
                f"{where}: unknown action {step.name!r}" + _suggest(step.name, ACTION_SPECS),
            )
            return
        for arg in step.args:
            if arg not in spec.args:
                known = ", ".join(spec.args) or "none"
                self.at(
                    (*base, "args", arg),
                    f"{where}: action {spec.name!r} has no argument {arg!r} (arguments: {known})",
                    key=True,
                )
        missing = [a for a, s in spec.args.items() if s.required and a not in step.args]
        if missing:
            self.at(
                (*base, "args") if self.source.has((*base, "args")) else (*base, "name"),
                f"{where}: action {spec.name!r} needs argument(s) {', '.join(missing)}",
            )
        for outcome in step.branches:
            if outcome not in spec.outcomes:
                self.at(
                    (*base, "branches", outcome),
                    f"{where}: action {spec.name!r} has no outcome {outcome!r} "
                    f"(outcomes: {', '.join(spec.outcomes)})",
                    key=True,
                )
        uncovered = [o for o in spec.outcomes if o not in step.branches]
        if uncovered and step.default is None:
            self.at(
                (*base, "branches") if self.source.has((*base, "branches")) else (*base, "name"),
                f"{where}: outcome(s) {', '.join(uncovered)} of action {spec.name!r} have no "
                "branch and there is no default",
            )

    def check_menus(self) -> None:
        """No menu uses a key or a keyword twice; keypad menus give every option a key."""
        for flow_name, step_name, step in self.steps():
            if not isinstance(step, MenuStep):
                continue
            base = self.step_path(flow_name, step_name)
            keys: dict[str, int] = {}
            words: dict[str, int] = {}
            for i, option in enumerate(step.options):
                option_path = (*base, "options", i)
                if option.key is None and step.input == "dtmf":
                    self.at(
                        option_path,
                        f"step {flow_name}.{step_name}: option without a key in a keypad-only "
                        "menu can never be chosen (add a key or set input: both)",
                    )
                if option.key is not None:
                    if option.key in keys:
                        first = self.source.value_position((*base, "options", keys[option.key]))
                        self.at(
                            (*option_path, "key"),
                            f"step {flow_name}.{step_name}: key {option.key!r} is used twice in "
                            f"this menu (first at line {first[0]})",
                        )
                    else:
                        keys[option.key] = i
                for j, word in enumerate(option.keywords):
                    normal = " ".join(word.lower().split())
                    if normal in words and words[normal] != i:
                        self.at(
                            (*option_path, "keywords", j),
                            f"step {flow_name}.{step_name}: keyword {word!r} selects two options",
                        )
                    words.setdefault(normal, i)

    def check_barge_in(self) -> None:
        """``barge_in: true`` only on steps whose prompt speech can interrupt: speech input,
        stream capture, a recognizer grammar (``defaults.barge_in`` skips the others)."""
        for flow_name, step_name, step in self.steps():
            if not isinstance(step, MenuStep | CollectStep) or step.barge_in is not True:
                continue
            where = (*self.step_path(flow_name, step_name), "barge_in")
            label = f"step {flow_name}.{step_name}: barge_in"
            if step.input == "dtmf":
                self.at(
                    where,
                    f"{label} needs speech input (input: speech or both); keys interrupt "
                    "keypad prompts anyway",
                )
            elif isinstance(step, CollectStep) and step.capture == "record":
                self.at(
                    where,
                    f"{label} needs capture: stream (a <Record> capture plays its prompts in "
                    "full before it listens)",
                )
            elif step_grammar(self.flowset, step) is None:
                what = (
                    f"{step.value} values"
                    if isinstance(step, CollectStep)
                    else "a menu without keywords"
                )
                self.at(
                    where,
                    f"{label} has no effect: {what} cannot be answered by voice",
                )

    def check_subflows(self) -> None:
        """Subflow branches name outcomes the called flow returns."""
        outcomes: dict[str, set[str]] = {}
        for flow_name, _, step in self.steps():
            if isinstance(step, ReturnStep) and step.outcome is not None:
                outcomes.setdefault(flow_name, set()).add(step.outcome)
        for flow_name, step_name, step in self.steps():
            if not isinstance(step, SubflowStep) or step.flow not in self.flowset.flows:
                continue
            returned = outcomes.get(step.flow, set())
            for outcome in step.branches:
                if outcome not in returned:
                    known = ", ".join(sorted(returned)) or "none"
                    self.at(
                        (*self.step_path(flow_name, step_name), "branches", outcome),
                        f"step {flow_name}.{step_name}: flow {step.flow!r} never returns "
                        f"outcome {outcome!r} (its outcomes: {known})",
                        key=True,
                    )

    # -- variables ------------------------------------------------------------------------

    def known_variables(self) -> dict[str, VarKind | None]:
        """Every variable a flow of this file may read, with its kind when known."""
        kinds = variable_kinds()
        known: dict[str, VarKind | None] = {name: None for name in CONTEXT_VARIABLES}
        known["caller_phone"] = "phone"
        known["called_phone"] = "phone"
        for name, value in self.flowset.defaults.variables.items():
            known[name] = _kind_of_constant(value)
        for flow in self.flowset.flows.values():
            for param in flow.params:
                known.setdefault(param, kinds.get(param))
        has_record = False
        for _, _, step in self.steps():
            if isinstance(step, CollectStep):
                kind = _COLLECT_KINDS[step.value]
                if step.into in known and known[step.into] not in (None, kind):
                    known[step.into] = None  # set with different kinds: do not check formats
                else:
                    known[step.into] = kind
            names: list[str] = []
            if isinstance(step, ActionStep):
                names.append(step.name)
            elif isinstance(step, CollectStep) and step.validate_with is not None:
                names.append(step.validate_with)
            elif isinstance(step, RecordStep):
                names.append(step.action)
                has_record = True
            for action in names:
                spec = ACTION_SPECS.get(action)
                if spec is not None:
                    for variable in spec.variables():
                        known.setdefault(variable, kinds.get(variable))
        if has_record:
            known.setdefault("recording_url", "text")
            known.setdefault("recording_duration", "number")
        return known

    def check_variables(self) -> None:
        """Templates, conditions, transfer context and numbers read known variables; prompt
        references name existing prompts."""
        known = self.known_variables()
        for path, text in self.templates():
            try:
                fields = template_fields(text)
            except PromptTemplateError as exc:
                message = f"{_where(path)}: invalid template: {exc.message}"
                self.at(path, message, offset=exc.position)
                continue
            for item in fields:
                self.check_variable(path, item.name, known, item.format, offset=item.position)
            for item in missing_accusative(text):
                self.at(
                    path,
                    f"{_where(path)}: {{{item.name}:{item.format}}} follows a verb that takes "
                    f"the accusative: add the 'acc' option (составит одну тысячу, not одна)",
                    offset=item.position,
                )
        for flow_name, step_name, step in self.steps():
            base = self.step_path(flow_name, step_name)
            if isinstance(step, BranchStep):
                for i, condition in enumerate(step.conditions):
                    for name, position in sorted(_variable_positions(condition.when)):
                        self.check_variable(
                            (*base, "conditions", i, "when"), name, known, None, offset=position
                        )
            elif isinstance(step, TransferStep):
                if self.source.has((*base, "context")):  # the default names optional ones
                    for i, name in enumerate(step.context):
                        self.check_variable((*base, "context", i), name, known, None)
                if step.number is not None and step.number.startswith("{"):
                    name = step.number[1:-1]
                    if name in self.flowset.defaults.variables:
                        self.check_constant_phone(name)
                    else:
                        self.check_variable((*base, "number"), name, known, "phone")
            elif isinstance(step, SmsStep) and step.to.startswith("{"):
                self.check_variable((*base, "to"), step.to[1:-1], known, "phone")
        for path, ref in self.prompt_refs():
            if (
                ref.prompt not in self.flowset.prompts
                and ("prompts", ref.prompt) not in self.broken
            ):
                self.at(
                    path,
                    f"{_where(path)}: unknown prompt {ref.prompt!r}"
                    + _suggest(ref.prompt, self.flowset.prompts),
                )

    def check_constant_phone(self, name: str) -> None:
        """A ``defaults.variables`` constant used as a number to dial must be E.164."""
        value = self.flowset.defaults.variables.get(name)
        if value is None:
            return
        try:
            valid = normalize_phone(str(value), require_russian=False) == value
        except InvalidPhoneError:
            valid = False
        if not valid:
            self.at(
                ("defaults", "variables", name),
                f"defaults.variables.{name}: {value!r} is dialled by a transfer step, so it must "
                "be a valid E.164 number (+7XXXXXXXXXX)",
            )

    def check_into_names(self) -> None:
        """``collect.into`` must not overwrite what the engine or the file provides."""
        constants = self.flowset.defaults.variables
        for flow_name, step_name, step in self.steps():
            if not isinstance(step, CollectStep):
                continue
            if step.into in CONTEXT_VARIABLES or step.into in constants:
                what = "a call context variable" if step.into in CONTEXT_VARIABLES else "a constant"
                self.at(
                    (*self.step_path(flow_name, step_name), "into"),
                    f"step {flow_name}.{step_name}: into {step.into!r} would overwrite {what}",
                )

    def check_variable(
        self,
        path: Path_,
        name: str,
        known: Mapping[str, VarKind | None],
        fmt: str | None,
        offset: int = 0,
    ) -> None:
        """``name`` is known and fits the template format ``fmt`` (if any)."""
        if name not in known:
            self.at(
                path,
                f"{_where(path)}: unknown variable {name!r}" + _suggest(name, known),
                offset=offset,
            )
            return
        kind = known[name]
        if fmt is not None and kind is not None and fmt not in _FORMATS_FOR_KIND[kind]:
            self.at(
                path,
                offset=offset,
                message=f"{_where(path)}: format {fmt!r} does not fit variable {name!r} ({kind}); "
                f"use one of {', '.join(sorted(_FORMATS_FOR_KIND[kind]))}",
            )

    def prompt_lists(self) -> Iterator[tuple[Path_, tuple[Any, ...]]]:
        """Every prompt list of the file with its path."""
        defaults = self.flowset.defaults
        for i, prompts in enumerate(defaults.no_input_prompts):
            yield ("defaults", "no_input_prompts", i), prompts
        for i, prompts in enumerate(defaults.no_match_prompts):
            yield ("defaults", "no_match_prompts", i), prompts
        for name, prompts in self.flowset.prompts.items():
            yield ("prompts", name), prompts
        for flow_name, step_name, step in self.steps():
            base = self.step_path(flow_name, step_name)
            for attr in ("prompts", "confirm_prompts"):
                value = getattr(step, attr, None)
                if value is not None:
                    yield (*base, attr), value
            for handler_name in ("no_input", "no_match"):
                handler = getattr(step, handler_name, None)
                if handler is not None:
                    for i, prompts in enumerate(handler.reprompts):
                        yield (*base, handler_name, "reprompts", i), prompts

    def templates(self) -> Iterator[tuple[Path_, str]]:
        """Every template text with its path: prompt texts, SMS texts, string action args."""
        for path, prompts in self.prompt_lists():
            for i, item in enumerate(prompts):
                if isinstance(item, str):
                    yield _item_path(path, i, self.source), item
        for flow_name, step_name, step in self.steps():
            base = self.step_path(flow_name, step_name)
            if isinstance(step, SmsStep):
                yield (*base, "template"), step.template
            elif isinstance(step, ActionStep):
                for arg, value in step.args.items():
                    if isinstance(value, str):
                        yield (*base, "args", arg), value

    def prompt_refs(self) -> Iterator[tuple[Path_, PromptRef]]:
        """Every ``{prompt: NAME}`` reference with its path."""
        for path, prompts in self.prompt_lists():
            for i, item in enumerate(prompts):
                if isinstance(item, PromptRef):
                    yield _item_path(path, i, self.source), item

    # -- graph ----------------------------------------------------------------------------

    def successors(self, flow_name: str, step: Step) -> list[tuple[str, str]]:
        """The existing steps ``step`` leads to."""
        out: list[tuple[str, str]] = []
        for edge in step_edges(step, self.flowset.defaults):
            target = resolve_edge(self.flowset, edge, flow_name)
            if target[0] in self.flowset.flows and target[1] in self.flowset.flows[target[0]].steps:
                out.append(target)
        return out

    def check_reachability(self) -> None:
        """Every step is reachable from the start of its flow."""
        seen: set[tuple[str, str]] = set()
        queue: deque[tuple[str, str]] = deque()
        for name, flow in self.flowset.flows.items():
            if flow.start in flow.steps:
                queue.append((name, flow.start))
            if (name, "") in self.broken or flow.start not in flow.steps:
                queue.extend((name, step) for step in flow.steps)  # start unknown: assume all
        has_broken_steps = {flow for flow, step in self.broken if step not in ("", "*")}
        while queue:
            node = queue.popleft()
            if node in seen:
                continue
            seen.add(node)
            queue.extend(self.successors(node[0], self.flowset.step(*node)))
        for flow_name, step_name, _ in self.steps():
            if (flow_name, step_name) in seen or flow_name in has_broken_steps:
                continue  # a broken step might have led here; its own error is reported
            self.at(
                self.step_path(flow_name, step_name),
                f"step {flow_name}.{step_name} is unreachable from the start of flow {flow_name!r}",
                key=True,
            )

    def check_way_out(self) -> None:
        """Every step has a path to a ``hangup``, ``transfer`` or ``return``."""
        predecessors: dict[tuple[str, str], list[tuple[str, str]]] = {}
        good: deque[tuple[str, str]] = deque()
        for flow_name, step_name, step in self.steps():
            node = (flow_name, step_name)
            if isinstance(step, TERMINAL_STEP_TYPES):
                good.append(node)
            for edge in step_edges(step, self.flowset.defaults):
                target = resolve_edge(self.flowset, edge, flow_name)
                if not self.exists(*target) or target[0] not in self.flowset.flows:
                    good.append(node)  # leads to a broken or unknown step: reported elsewhere
                    continue
                if target[1] not in self.flowset.flows[target[0]].steps:
                    good.append(node)
                    continue
                predecessors.setdefault(target, []).append(node)
        escapes: set[tuple[str, str]] = set()
        while good:
            node = good.popleft()
            if node in escapes:
                continue
            escapes.add(node)
            good.extend(predecessors.get(node, ()))
        for flow_name, step_name, step in self.steps():
            if (flow_name, step_name) in escapes:
                continue
            self.at(
                self.step_path(flow_name, step_name),
                f"step {flow_name}.{step_name} ({step.type}) has no way out: no path from it "
                "reaches a hangup, transfer or return",
                key=True,
            )


def _variable_positions(expression: str) -> set[tuple[str, int]]:
    """``(name, offset)`` of every variable token of a (valid) expression."""
    return set(variable_tokens(expression))


def _item_path(path: Path_, index: int, source: SourceMap) -> Path_:
    """The path of the ``index``-th item of a prompt, which may be written without a list."""
    if source.has((*path, index)) or not source.has(path):
        return (*path, index)
    return path


def _where(path: Path_) -> str:
    return format_path(path)


def _validators() -> list[str]:
    return [name for name, spec in ACTION_SPECS.items() if spec.validator]


def _kind_of_constant(value: Any) -> VarKind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str) and value.startswith("+") and value[1:].isdigit():
        return "phone"
    if isinstance(value, str):
        return "text"
    return "number"


def _suggest(name: str, known: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
