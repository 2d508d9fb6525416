"""``contactcenter flows``: check, publish the schema of, and draw call flows;
``contactcenter recordings``: fetch a stored call recording (``get``), apply the retention
now (``purge``; ``contactcenter worker`` also runs it daily at ``RECORDING_PURGE_AT``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from contactcenter.cli_support import settings_or_exit
from contactcenter.config import ConfigError, load_settings
from contactcenter.services import Services
from ivr.errors import FlowError, RecordingError, RecordingNotStored
from ivr.graph import render_dot, render_mermaid
from ivr.prompt_stream import barge_in_readiness
from ivr.recording_storage import LINK_EXPIRES_S
from ivr.recordings import purge_expired_recordings, read_recording, recording_link
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
    warning = _barge_in_warning(path)
    if warning:
        click.echo(f"{path}: warning: {warning}", err=True)
    click.echo(f"{path}: OK")


def _barge_in_warning(path: str) -> str | None:
    """What keeps the flows' barge-in steps from being served here (not an error: they
    fall back to prompts played by the provider); None when the settings are unusable."""
    try:
        return barge_in_readiness(load_flows(path), load_settings())
    except (ConfigError, FlowError):
        return None


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
    """Delete recordings older than RECORDING_RETENTION_DAYS (copies; rows marked deleted)."""
    settings = settings_or_exit()
    services = Services(settings)
    try:
        deleted = purge_expired_recordings(services)
    finally:
        services.db.dispose()
    click.echo(
        f"deleted {deleted} call recording(s) older than {settings.recording_retention_days} days"
    )


@recordings.command("get")
@click.argument("sid")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Write the WAV to this file ('-': standard output).",
)
@click.option(
    "--link",
    is_flag=True,
    help="Print where to fetch it instead: the file's path, or a presigned URL (s3).",
)
@click.option(
    "--expires",
    type=click.IntRange(60, 7 * 86400),
    default=LINK_EXPIRES_S,
    show_default=True,
    help="Seconds a presigned URL stays valid.",
)
def get(sid: str, out: Path | None, link: bool, expires: int) -> None:
    """Fetch our stored copy of recording SID (RE…), or of call SID's recording (CA…).

    Exits 1 when there is no stored copy (not downloaded yet, deleted by the retention job,
    or gone from the storage) or the storage fails, 2 on bad input.
    """
    if (out is not None) == link:
        raise click.UsageError("give either --out FILE or --link")
    settings = settings_or_exit()
    services = Services(settings)
    try:
        if out is None:
            click.echo(recording_link(services, sid.strip(), expires_s=expires))
            return
        data = read_recording(services, sid.strip())
    except RecordingNotStored as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RecordingError as exc:
        click.echo(f"storage error: {exc}", err=True)
        sys.exit(1)
    finally:
        services.db.dispose()
    if str(out) == "-":
        sys.stdout.buffer.write(data)
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        click.echo(f"error: cannot write {out}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"wrote {len(data)} bytes to {out}", err=True)
