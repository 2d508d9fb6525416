"""The flows as the console shows them: each flow's graph and the flow file's validation.

:func:`flow_overview` validates the configured flow file as it is on disk now
(:func:`ivr.validate.check_text`: every problem as ``FILE:LINE:COL``) and describes each flow
of the running process (the flows it validated at start-up; when the file on disk is valid,
its flows, which are what a restart would run). :func:`render_svg` draws a flow's Graphviz
text (:func:`ivr.graph.render_dot`) as SVG with the ``dot`` program when it is installed;
without it the console shows the Mermaid text (:func:`ivr.graph.render_mermaid`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import FlowIssue
from ivr.graph import TERMINAL_STEP_TYPES, render_dot, render_mermaid
from ivr.loader import read_source
from ivr.schema import FlowSet
from ivr.validate import check_text

log = logging.getLogger(__name__)

#: How long ``dot`` may take to draw one flow.
DOT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FlowSummary:
    """One flow: its name, description, start, size and drawings."""

    name: str
    description: str
    start: str
    steps: int
    terminal_steps: int
    mermaid: str
    dot: str


@dataclass(frozen=True)
class FlowOverview:
    """The flow file's validation (``issues``, empty when valid) and its flows."""

    file: str
    issues: list[FlowIssue]
    flows: list[FlowSummary]
    from_file: bool
    """True when the flows are the file's (valid now), False when they are the ones the
    process validated at start-up (the file has problems now, or cannot be read)."""

    @property
    def valid(self) -> bool:
        """True when the file has no problems."""
        return not self.issues


def describe_flows(flowset: FlowSet) -> list[FlowSummary]:
    """Every flow of ``flowset`` in file order, with its Mermaid and Graphviz drawings."""
    summaries = []
    for name, flow in flowset.flows.items():
        summaries.append(
            FlowSummary(
                name=name,
                description=flow.description,
                start=flow.start,
                steps=len(flow.steps),
                terminal_steps=sum(isinstance(s, TERMINAL_STEP_TYPES) for s in flow.steps.values()),
                mermaid=render_mermaid(flowset, name),
                dot=render_dot(flowset, name),
            )
        )
    return summaries


def flow_overview(flows_file: str | Path, running: FlowSet) -> FlowOverview:
    """Validate ``flows_file`` now; describe its flows when valid, else ``running``'s."""
    text, issues = read_source(flows_file)
    flowset: FlowSet | None = None
    if text is not None:
        flowset, issues = check_text(text, str(flows_file))
    shown = flowset if flowset is not None and not issues else running
    return FlowOverview(
        file=str(flows_file),
        issues=list(issues),
        flows=describe_flows(shown),
        from_file=shown is flowset,
    )


def dot_available() -> bool:
    """True when Graphviz's ``dot`` is on the PATH."""
    return shutil.which("dot") is not None


def render_svg(dot_text: str, *, timeout_s: float = DOT_TIMEOUT_S) -> bytes | None:
    """``dot_text`` drawn as SVG by Graphviz, or None (no ``dot``, or it failed)."""
    program = shutil.which("dot")
    if program is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program, the text on stdin
            [program, "-Tsvg"],
            input=dot_text.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("dot could not draw a flow: %s", exc)
        return None
    if done.returncode != 0 or not done.stdout:
        log.warning("dot could not draw a flow: %s", done.stderr.decode(errors="replace")[:500])
        return None
    return done.stdout
