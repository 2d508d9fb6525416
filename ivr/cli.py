"""``contactcenter flows``: check, publish the schema of, and draw call flows;
``contactcenter recordings purge``: the call recordings' retention (run it daily, e.g. cron)."""

from __future__ import annotations

import json
import sys

import click

from contactcenter.cli_support import settings_or_exit
from contactcenter.services import Services
from ivr.errors import FlowError
from ivr.graph import render_dot, render_mermaid
from ivr.recordings import purge_expired_recordings
from ivr.schema import flow_json_schema
from ivr.validate import check_flows, load_flows


def _flows_file(file: str | None) -> str:
    if file is not None:
        return file
    return settings_or_exit().flows_file


@click.group("flows")
def flows() -> None:
    """Check, describe and draw the IVR call flows (call_flows.yaml)."""


@flows.command("check")
@click.argument("file", required=False)
def check(file: str | None) -> None:
    """Validate FILE (default: FLOWS_FILE); print every problem as FILE:LINE:COL: message."""
    path = _flows_file(file)
    issues = check_flows(path)
    for issue in issues:
        click.echo(str(issue), err=True)
    if issues:
        noun = "problem" if len(issues) == 1 else "problems"
        click.echo(f"{path}: {len(issues)} {noun}", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK")


@flows.command("schema")
@click.option("--indent", default=2, show_default=True, type=click.IntRange(0, 8))
def schema(indent: int) -> None:
    """Print the JSON Schema of flow files (for editors)."""
    click.echo(json.dumps(flow_json_schema(), ensure_ascii=False, indent=indent or None))


@flows.command("graph")
@click.argument("file", required=False)
@click.option("--flow", "flow_name", default=None, help="Flow to draw (default: the first one).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
@click.option(
    "--implicit/--no-implicit",
    default=False,
    help="Also draw the operator command and default escalations of input steps.",
)
def graph(file: str | None, flow_name: str | None, fmt: str, implicit: bool) -> None:
    """Print a Mermaid or Graphviz drawing of one flow of FILE (default: FLOWS_FILE)."""
    path = _flows_file(file)
    try:
        flowset = load_flows(path)
    except FlowError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        click.echo(f"{path}: invalid, fix it first (contactcenter flows check)", err=True)
        sys.exit(1)
    name = flow_name or next(iter(flowset.flows))
    if name not in flowset.flows:
        click.echo(
            f"no flow {name!r} in {path}; flows: {', '.join(flowset.flows)}",
            err=True,
        )
        sys.exit(2)
    render = render_mermaid if fmt == "mermaid" else render_dot
    click.echo(render(flowset, name, implicit=implicit), nl=False)


@click.group("recordings")
def recordings() -> None:
    """Whole-call recordings of the hotline."""


@recordings.command("purge")
def purge() -> None:
    """Delete recordings older than RECORDING_RETENTION_DAYS (files; rows marked deleted)."""
    settings = settings_or_exit()
    services = Services(settings)
    try:
        deleted = purge_expired_recordings(services)
    finally:
        services.db.dispose()
    click.echo(
        f"deleted {deleted} call recording(s) older than {settings.recording_retention_days} days"
    )
