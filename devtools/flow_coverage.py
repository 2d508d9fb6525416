"""Flow coverage: which IVR steps and branches simulated calls visited.

Recording: a :class:`~devtools.simulator.Simulator` with a :class:`CoverageRecorder` (given
explicitly, or built from the ``CC_FLOW_COVERAGE`` environment variable) appends, after every
caller action, the steps the app reported in ``X-IVR-Step`` since the last write, as one JSON
line::

    {"v": 1, "call": "CA…", "part": 0, "steps": ["hotline:greet", "hotline:identify"],
     "flows": "/abs/call_flows.yaml", "at": "2026-11-29T12:00:00+00:00"}

The target is a file, or a directory (an existing one, or a path ending with ``/``) that gets
one ``flow-coverage-<host>-<pid>.jsonl`` per process. Writes are appended under an exclusive
``flock``, so parallel test workers can share one file.

Reporting: :func:`load_runs` merges the parts of each call in order, :func:`analyse` replays
each call's step sequence over the step graph of :mod:`ivr.graph` and counts the steps visited
and the branches taken (a branch is a step's edge to one target; edges of a step that lead to
the same target, e.g. a menu option and a ``no_match`` escalation both going to the operator,
cannot be told apart from the step list and count as one branch). Returning from a subflow
credits the calling ``subflow`` step's ``next`` / ``branches`` edge. :func:`render` prints the
report as text, Markdown or JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr import FlowError, load_flows
from ivr.graph import resolve_edge, step_edges
from ivr.loader import SourceMap, parse_yaml, read_source
from ivr.schema import FlowSet, ReturnStep, SubflowStep

ENV_VAR = "CC_FLOW_COVERAGE"
#: Where ``contactcenter simulate coverage`` looks when neither --data nor the variable is set.
DEFAULT_DATA = "var/flow-coverage"
FORMAT_VERSION = 1
FILE_PREFIX = "flow-coverage-"
FORMATS = ("text", "json", "markdown")


class CoverageError(Exception):
    """Coverage data cannot be written or read, or the flow file is invalid."""


# --------------------------------------------------------------------------- recording


def _is_dir_target(target: Path, raw: str) -> bool:
    return target.is_dir() or raw.endswith(("/", os.sep))


class CoverageRecorder:
    """Appends visited steps of simulated calls to a JSON-lines coverage data file."""

    def __init__(self, target: str | Path) -> None:
        raw = str(target)
        if not raw.strip():
            raise CoverageError("the coverage data path is empty")
        self.target = Path(raw).expanduser().absolute()
        self.per_process = _is_dir_target(self.target, raw)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CoverageRecorder | None:
        """A recorder for ``CC_FLOW_COVERAGE``, or None when it is unset or empty."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_VAR, "").strip()
        return cls(raw) if raw else None

    @property
    def path(self) -> Path:
        """The file this process writes to (per process in directory mode; pid after fork)."""
        if self.per_process:
            return self.target / f"{FILE_PREFIX}{socket.gethostname()}-{os.getpid()}.jsonl"
        return self.target

    def record(
        self, call_sid: str, part: int, steps: Sequence[str], *, flows_file: str | None
    ) -> None:
        """Append ``steps`` (``flow:step`` names) as part ``part`` of the call ``call_sid``."""
        line = {
            "v": FORMAT_VERSION,
            "call": call_sid,
            "part": part,
            "steps": list(steps),
            "flows": os.path.realpath(flows_file) if flows_file else None,
            "at": datetime.now(UTC).isoformat(),
        }
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CoverageError(f"cannot write coverage data {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
        except OSError as exc:
            raise CoverageError(f"cannot write coverage data {path}: {exc.strerror}") from None
        finally:
            os.close(fd)  # closing releases the lock

    def clear(self) -> None:
        """Remove earlier data: the file, or this recorder's files in the directory."""
        if self.per_process:
            for old in self.target.glob(f"{FILE_PREFIX}*.jsonl"):
                old.unlink(missing_ok=True)
        else:
            self.target.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class CallRun:
    """The steps one call visited, in order, and the flow file it ran (when known)."""

    call: str
    steps: tuple[str, ...]
    flows: str | None = None


def _data_files(data: Path) -> list[Path]:
    if data.is_dir():
        return sorted(data.glob("*.jsonl"))
    if data.is_file():
        return [data]
    raise CoverageError(f"no coverage data at {data}")


def _parse_line(text: str, where: str) -> tuple[str, int, list[str], str | None]:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoverageError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(item, dict) or item.get("v") != FORMAT_VERSION:
        raise CoverageError(f"{where}: not a version {FORMAT_VERSION} coverage record")
    call, part, steps, flows = (
        item.get("call"),
        item.get("part"),
        item.get("steps"),
        item.get("flows"),
    )
    if (
        not isinstance(call, str)
        or not isinstance(part, int)
        or not isinstance(steps, list)
        or not all(isinstance(s, str) for s in steps)
        or not (flows is None or isinstance(flows, str))
    ):
        raise CoverageError(f"{where}: a record needs call, part, steps (strings) and flows")
    return call, part, steps, flows


def load_runs(data: str | Path) -> list[CallRun]:
    """Every call in a coverage data file or directory (``*.jsonl``), parts merged in order."""
    parts: dict[str, dict[int, list[str]]] = {}
    flows_of: dict[str, str | None] = {}
    for path in _data_files(Path(data)):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CoverageError(f"cannot read coverage data {path}: {exc}") from None
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            call, part, steps, flows = _parse_line(text, f"{path}:{number}")
            parts.setdefault(call, {}).setdefault(part, steps)
            flows_of.setdefault(call, flows)
    return [
        CallRun(
            call, tuple(s for _, chunk in sorted(by_part.items()) for s in chunk), flows_of[call]
        )
        for call, by_part in parts.items()
    ]


# --------------------------------------------------------------------------- analysis


@dataclass
class StepCoverage:
    """One step of a flow and how often calls entered it."""

    flow: str
    step: str
    type: str
    line: int
    visits: int = 0


@dataclass
class BranchCoverage:
    """A step's edges to one target (``flow:step``) and how often calls took them."""

    flow: str
    step: str
    target: str
    labels: tuple[str, ...]
    kinds: tuple[str, ...]
    line: int
    taken: int = 0

    @property
    def description(self) -> str:
        """``step → target [labels]`` for listings."""
        target = (
            self.target.split(":", 1)[1] if self.target.startswith(f"{self.flow}:") else self.target
        )
        labels = ", ".join(label for label in self.labels if label)
        return f"{self.step} → {target}" + (f" [{labels}]" if labels else "")


def _percent(done: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * done / total


@dataclass
class FlowCoverage:
    """Coverage of one flow."""

    name: str
    line: int
    steps: list[StepCoverage]
    branches: list[BranchCoverage]

    @property
    def steps_visited(self) -> int:
        """How many of the flow's steps some call entered."""
        return sum(1 for s in self.steps if s.visits)

    @property
    def branches_taken(self) -> int:
        """How many of the flow's branches some call took."""
        return sum(1 for b in self.branches if b.taken)

    @property
    def percent(self) -> float:
        """Steps visited plus branches taken over steps plus branches, in percent."""
        return _percent(
            self.steps_visited + self.branches_taken, len(self.steps) + len(self.branches)
        )


@dataclass
class CoverageReport:
    """Coverage of every flow of a flow file by a set of calls."""

    flows_file: str
    calls: int
    flows: list[FlowCoverage]
    skipped_calls: int = 0
    """Calls recorded against another flow file (not counted)."""
    unknown_steps: Counter[str] = field(default_factory=Counter)
    """Reported step names that the flow file does not have (stale data, pseudo-steps)."""
    other_transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Moves between steps that are no edge of the graph (error escalations, restarts)."""

    @property
    def steps_visited(self) -> int:
        """Steps visited in all flows."""
        return sum(f.steps_visited for f in self.flows)

    @property
    def steps_total(self) -> int:
        """Steps in all flows."""
        return sum(len(f.steps) for f in self.flows)

    @property
    def branches_taken(self) -> int:
        """Branches taken in all flows."""
        return sum(f.branches_taken for f in self.flows)

    @property
    def branches_total(self) -> int:
        """Branches in all flows."""
        return sum(len(f.branches) for f in self.flows)

    @property
    def percent(self) -> float:
        """Total coverage: (steps visited + branches taken) / (steps + branches)."""
        return _percent(
            self.steps_visited + self.branches_taken, self.steps_total + self.branches_total
        )

    def flow(self, name: str) -> FlowCoverage:
        """The coverage of flow ``name`` (KeyError when the file has no such flow)."""
        for found in self.flows:
            if found.name == name:
                return found
        raise KeyError(name)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def analyse(
    flowset: FlowSet, source: SourceMap, flows_file: str | Path, runs: Iterable[CallRun]
) -> CoverageReport:
    """Replay ``runs`` over ``flowset`` (an :class:`ivr.schema.FlowSet`; ``source`` is its
    :class:`ivr.loader.SourceMap` for line numbers). Runs recorded against another flow file
    are skipped; runs without a flow file are counted."""
    steps: dict[tuple[str, str], StepCoverage] = {}
    branches: dict[tuple[str, str], dict[str, BranchCoverage]] = {}
    call_edges: dict[tuple[str, str], str] = {}
    flows: list[FlowCoverage] = []
    for flow_name, flow in flowset.flows.items():
        base = ("flows", flow_name)
        cover = FlowCoverage(flow_name, source.key_position(base)[0], [], [])
        for step_name, step in flow.steps.items():
            step_path = (*base, "steps", step_name)
            step_line = source.key_position(step_path)[0]
            node = StepCoverage(flow_name, step_name, step.type, step_line)
            steps[(flow_name, step_name)] = node
            cover.steps.append(node)
            grouped: dict[str, BranchCoverage] = {}
            for edge in step_edges(step, flowset.defaults):
                target = ":".join(resolve_edge(flowset, edge, flow_name))
                line = (
                    source.value_position((*step_path, *edge.path))[0]
                    if edge.path is not None
                    else step_line
                )
                if edge.kind == "call":
                    call_edges[(flow_name, step_name)] = target
                found = grouped.get(target)
                if found is None:
                    grouped[target] = BranchCoverage(
                        flow_name, step_name, target, (edge.label,), (edge.kind,), line
                    )
                else:
                    found.labels += (edge.label,)
                    found.kinds += (edge.kind,)
                    found.line = min(found.line, line)
            branches[(flow_name, step_name)] = grouped
            cover.branches.extend(grouped.values())
        flows.append(cover)

    report = CoverageReport(str(flows_file), 0, flows)
    for run in runs:
        if run.flows is not None and not _same_file(run.flows, str(flows_file)):
            report.skipped_calls += 1
            continue
        report.calls += 1
        stack: list[tuple[str, str]] = []
        prev: tuple[str, str] | None = None
        for name in run.steps:
            flow_name, _, step_name = name.partition(":")
            current = (flow_name, step_name)
            visited = steps.get(current)
            if visited is None:
                report.unknown_steps[name] += 1
                prev = None
                continue
            visited.visits += 1
            if prev is not None:
                source_step = flowset.flows[prev[0]].steps[prev[1]]
                origin = prev
                if isinstance(source_step, SubflowStep) and call_edges.get(prev) == name:
                    stack.append(prev)
                elif isinstance(source_step, ReturnStep) and stack:
                    origin = stack.pop()
                branch = branches[origin].get(name)
                if branch is not None:
                    branch.taken += 1
                elif origin != current:
                    report.other_transitions[(":".join(origin), name)] += 1
            prev = current
    return report


def build_report(flows_file: str | Path, data: str | Path) -> CoverageReport:
    """Load and validate ``flows_file``, read the coverage ``data`` and analyse it."""
    try:
        flowset = load_flows(flows_file)
    except FlowError as exc:
        raise CoverageError(f"invalid flow file:\n{exc}") from None
    text, _issues = read_source(flows_file)
    _data, source, _problems = parse_yaml(text or "", str(flows_file))
    return analyse(flowset, source, flows_file, load_runs(data))


# --------------------------------------------------------------------------- rendering


def _unvisited(flow: FlowCoverage) -> list[StepCoverage]:
    return [s for s in flow.steps if not s.visits]


def _untaken(flow: FlowCoverage) -> list[BranchCoverage]:
    return sorted((b for b in flow.branches if not b.taken), key=lambda b: b.line)


def _display(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return path


def _ratio(done: int, total: int) -> str:
    return f"{done}/{total} {_percent(done, total):3.0f}%"


def render_text(report: CoverageReport) -> str:
    """A plain-text report: a table per flow, then what was missed with file:line."""
    name = _display(report.flows_file)
    lines = [f"Flow coverage of {name}: {report.calls} call(s)"]
    if report.skipped_calls:
        lines.append(f"({report.skipped_calls} call(s) recorded against another flow file skipped)")
    width = max([len(f.name) for f in report.flows] + [5])
    lines.append(f"{'flow':<{width}}  {'steps':>13}  {'branches':>13}  {'cover':>5}")
    for flow in report.flows:
        lines.append(
            f"{flow.name:<{width}}  {_ratio(flow.steps_visited, len(flow.steps)):>13}  "
            f"{_ratio(flow.branches_taken, len(flow.branches)):>13}  {flow.percent:4.0f}%"
        )
    lines.append(
        f"{'TOTAL':<{width}}  {_ratio(report.steps_visited, report.steps_total):>13}  "
        f"{_ratio(report.branches_taken, report.branches_total):>13}  {report.percent:4.0f}%"
    )
    for flow in report.flows:
        missed_steps, missed_branches = _unvisited(flow), _untaken(flow)
        if missed_steps:
            lines.append(f"\n{flow.name}: unvisited steps")
            lines.extend(f"  {name}:{s.line}  {s.step} ({s.type})" for s in missed_steps)
        if missed_branches:
            lines.append(f"\n{flow.name}: untaken branches")
            lines.extend(f"  {name}:{b.line}  {b.description}" for b in missed_branches)
    if report.unknown_steps:
        lines.append("\nsteps not in the flow file: " + _counted(report.unknown_steps))
    if report.other_transitions:
        moves = Counter({f"{a} → {b}": n for (a, b), n in report.other_transitions.items()})
        lines.append("moves that are no edge of the graph: " + _counted(moves))
    return "\n".join(lines) + "\n"


def _counted(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} ×{count}" for key, count in sorted(counter.items()))


def render_markdown(report: CoverageReport) -> str:
    """A Markdown report (a table, then per-flow lists of what was missed)."""
    name = _display(report.flows_file)
    lines = [
        f"## Flow coverage of `{name}` ({report.calls} calls)",
        "",
        "| flow | steps | branches | cover |",
        "|---|---:|---:|---:|",
    ]
    for flow in report.flows:
        lines.append(
            f"| {flow.name} | {_ratio(flow.steps_visited, len(flow.steps))} "
            f"| {_ratio(flow.branches_taken, len(flow.branches))} | {flow.percent:.0f}% |"
        )
    lines.append(
        f"| **total** | {_ratio(report.steps_visited, report.steps_total)} "
        f"| {_ratio(report.branches_taken, report.branches_total)} | **{report.percent:.0f}%** |"
    )
    for flow in report.flows:
        missed_steps, missed_branches = _unvisited(flow), _untaken(flow)
        if not missed_steps and not missed_branches:
            continue
        lines += ["", f"### {flow.name}", ""]
        lines.extend(f"- unvisited step `{s.step}` ({s.type}), line {s.line}" for s in missed_steps)
        lines.extend(f"- untaken branch `{b.description}`, line {b.line}" for b in missed_branches)
    if report.skipped_calls:
        lines += ["", f"{report.skipped_calls} call(s) recorded against another flow file skipped."]
    if report.unknown_steps:
        lines += ["", "Steps not in the flow file: " + _counted(report.unknown_steps)]
    return "\n".join(lines) + "\n"


def report_dict(report: CoverageReport) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "flows_file": report.flows_file,
        "calls": report.calls,
        "skipped_calls": report.skipped_calls,
        "percent": round(report.percent, 2),
        "steps": {"visited": report.steps_visited, "total": report.steps_total},
        "branches": {"taken": report.branches_taken, "total": report.branches_total},
        "flows": [
            {
                "name": flow.name,
                "line": flow.line,
                "percent": round(flow.percent, 2),
                "steps": [
                    {"step": s.step, "type": s.type, "line": s.line, "visits": s.visits}
                    for s in flow.steps
                ],
                "branches": [
                    {
                        "step": b.step,
                        "target": b.target,
                        "labels": list(b.labels),
                        "kinds": list(b.kinds),
                        "line": b.line,
                        "taken": b.taken,
                    }
                    for b in flow.branches
                ],
            }
            for flow in report.flows
        ],
        "unknown_steps": dict(sorted(report.unknown_steps.items())),
        "other_transitions": [
            {"from": a, "to": b, "count": n}
            for (a, b), n in sorted(report.other_transitions.items())
        ],
    }


def render(report: CoverageReport, fmt: str = "text") -> str:
    """Render ``report`` as ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return json.dumps(report_dict(report), ensure_ascii=False, indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "text":
        return render_text(report)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = [
    "DEFAULT_DATA",
    "ENV_VAR",
    "FORMATS",
    "BranchCoverage",
    "CallRun",
    "CoverageError",
    "CoverageRecorder",
    "CoverageReport",
    "FlowCoverage",
    "StepCoverage",
    "analyse",
    "build_report",
    "load_runs",
    "render",
    "report_dict",
]
