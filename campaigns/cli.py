"""``contactcenter campaign …``: the supervisors' commands."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import OperationalError

from campaigns import service
from campaigns.audience import UNKNOWN_TIMEZONE_LABEL
from campaigns.definition import flow_names_in, load_definition
from campaigns.errors import CampaignError, DefinitionError
from campaigns.report import build_report
from campaigns.service import CampaignStatus
from campaigns.sms import link_variables
from contactcenter.cli_support import settings_or_exit
from contactcenter.services import Services, install_services

STATE_ORDER = (
    "pending",
    "scheduled",
    "in_progress",
    "retry",
    "done",
    "skipped",
    "failed",
    "cancelled",
)


@contextmanager
def _services() -> Iterator[Services]:
    services = Services(settings_or_exit())
    install_services(services)
    try:
        yield services
    finally:
        services.db.dispose()


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into a message and an exit status, never a traceback."""
    try:
        yield
    except CampaignError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except RedisConnectionError as exc:
        click.echo(f"error: Redis is not reachable ({exc})", err=True)
        sys.exit(3)
    except OperationalError as exc:
        click.echo(f"error: the database is not reachable ({exc.orig})", err=True)
        sys.exit(3)


@click.group("campaign")
def campaign() -> None:
    """Outbound campaigns: create, preview, launch, pause, resume, cancel, status, report."""


@campaign.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--created-by", default="cli", show_default=True, help="Author recorded on it.")
def create_cmd(file: str, created_by: str) -> None:
    """Validate a campaign YAML FILE and store it as a draft; prints its id."""
    with _services() as services, _errors():
        try:
            definition = load_definition(
                file,
                flow_names=flow_names_in(services.settings.flows_file),
                link_variables=link_variables(services.settings),
            )
        except DefinitionError as exc:
            click.echo(f"{file}: invalid campaign definition", err=True)
            for issue in exc.issues:
                click.echo(f"  {issue}", err=True)
            sys.exit(2)
        campaign_id = service.create_campaign(services, definition, created_by=created_by)
        click.echo(f"campaign {campaign_id} created (draft): {definition.name}")


@campaign.command("list")
def list_cmd() -> None:
    """The newest campaigns."""
    with _services() as services, _errors():
        for row in service.list_campaigns(services):
            click.echo(f"{row['id']:>6}  {row['status']:<10} {row['channel']:<15} {row['name']}")


@campaign.command("preview")
@click.argument("campaign_id", type=int)
@click.option("--sample", default=10, show_default=True, type=click.IntRange(0, 100))
def preview_cmd(campaign_id: int, sample: int) -> None:
    """Audience size, a sample and the split by time zone, before launch."""
    with _services() as services, _errors():
        shown = service.preview(services, campaign_id, sample_size=sample)
        click.echo(f"audience: {shown.count} accounts ({shown.without_phone} without a phone)")
        click.echo("by time zone:")
        for zone, count in shown.by_timezone.items():
            click.echo(f"  {zone:<22} {count}")
        if shown.sample:
            click.echo("sample:")
        for row in shown.sample:
            phone = "-" if not row.phone else row.phone[:5] + "***" + row.phone[-4:]
            zone = row.timezone or UNKNOWN_TIMEZONE_LABEL
            click.echo(f"  {row.account_number:<16} {phone:<14} {zone:<22} {row.debt} руб.")


def _simple(action: str) -> click.Command:
    @click.argument("campaign_id", type=int)
    def command(campaign_id: int) -> None:
        with _services() as services, _errors():
            status = getattr(service, action)(services, campaign_id)
            click.echo(f"campaign {campaign_id}: {status}")

    command.__doc__ = {
        "pause": "Stop dialing (calls in progress finish; queued jobs give their target back).",
        "resume": "Continue a paused campaign.",
        "cancel": "End a campaign for good (targets not yet contacted are cancelled).",
    }[action]
    return campaign.command(action)(command)


pause_cmd = _simple("pause")
resume_cmd = _simple("resume")
cancel_cmd = _simple("cancel")


@campaign.command("launch")
@click.argument("campaign_id", type=int)
def launch_cmd(campaign_id: int) -> None:
    """Plan the targets (idempotent) and start the dispatcher (needs `contactcenter worker`)."""
    with _services() as services, _errors():
        result = service.launch(services, campaign_id)
        click.echo(
            f"campaign {campaign_id} running: {result.inserted} targets planned"
            f" ({result.control_group} in the control group, {result.invalid_number} without"
            f" a valid number)"
        )
        if result.scanned == 0:
            click.echo(
                f"warning: campaign {campaign_id} has 0 targets: its audience selects no"
                f" account, nothing will be sent (see `contactcenter campaign preview"
                f" {campaign_id}`)",
                err=True,
            )


def _status_line(st: CampaignStatus) -> str:
    parts = [f"{k}={st.targets[k]}" for k in STATE_ORDER if st.targets.get(k)]
    return f"campaign {st.campaign_id} [{st.status}] " + " ".join(parts)


@campaign.command("status")
@click.argument("campaign_id", type=int)
@click.option("--watch", is_flag=True, help="Live progress bar until the campaign ends.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.2, 60))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(campaign_id: int, watch: bool, interval: float, as_json: bool) -> None:
    """Targets by state, attempts by status, and an ETA from the pacing."""
    with _services() as services, _errors():
        st = service.status(services, campaign_id)
        if as_json:
            click.echo(json.dumps(st.as_dict(), ensure_ascii=False, indent=2))
            return
        if not watch:
            click.echo(_status_line(st))
            click.echo("attempts: " + " ".join(f"{k}={v}" for k, v in sorted(st.attempts.items())))
            if st.eta_s is not None:
                click.echo(f"eta: {st.eta_s / 60:.1f} min at the configured pace")
            return
        _watch(services, campaign_id, interval)


def _watch_lines(services: Services, campaign_id: int, interval: float) -> None:
    """``--watch`` when stdout is not a terminal (a pipe, a log): a status line per refresh."""
    try:
        while True:
            st = service.status(services, campaign_id)
            eta = "" if st.eta_s is None else f" eta {st.eta_s / 60:.1f}m"
            click.echo(f"{_status_line(st)} ({st.finished}/{st.total}){eta}")
            sys.stdout.flush()
            if st.status not in ("running", "paused", "draft", "planned"):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _watch(services: Services, campaign_id: int, interval: float) -> None:
    if not sys.stdout.isatty():
        _watch_lines(services, campaign_id, interval)
        return
    st = service.status(services, campaign_id)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[states]}  eta {task.fields[eta]}"),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(
            f"campaign {campaign_id}", total=max(st.total, 1), states="", eta="-"
        )
        try:
            while True:
                st = service.status(services, campaign_id)
                states = " ".join(f"{k}={st.targets[k]}" for k in STATE_ORDER if st.targets.get(k))
                eta = "-" if st.eta_s is None else f"{st.eta_s / 60:.1f}m"
                progress.update(
                    task,
                    total=max(st.total, 1),
                    completed=st.finished,
                    states=f"[{st.status}] {states}",
                    eta=eta,
                )
                if st.status not in ("running", "paused", "draft", "planned"):
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


@campaign.command("report")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def report_cmd(campaign_id: int, as_json: bool) -> None:
    """Reach, right-party contacts, opt-outs, skips, payments within N days, cost."""
    with _services() as services, _errors():
        try:
            rep = build_report(services, campaign_id)
        except LookupError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        if as_json:
            click.echo(json.dumps(rep.as_dict(), ensure_ascii=False, indent=2))
            return
        lines = [
            f"campaign {rep.campaign_id} «{rep.name}» [{rep.status}]",
            f"targets: {rep.targets} (+{rep.control_group} in the control group)",
            f"attempts: {rep.attempts}  calls placed: {rep.calls_placed}  SMS sent: {rep.sms_sent}",
            (
                f"reached: {rep.reached}  answered: {rep.calls_answered}"
                f"  machines: {rep.answered_by_machine}  SMS delivered: {rep.sms_delivered}"
            ),
            f"right-party contacts: {rep.right_party_contacts}  opt-outs: {rep.opt_outs}",
            "skipped: "
            + (", ".join(f"{k}={v}" for k, v in rep.skipped_by_reason.items()) or "none"),
            (
                f"paid within {rep.attribution_days} days of first contact:"
                f" {rep.contacted.payers}/{rep.contacted.targets} ({rep.contacted.paid} руб.)"
            ),
            f"pay rate: campaign {rep.treatment.pay_rate:.1%}"
            + (
                f" vs control {rep.control.pay_rate:.1%} (uplift {rep.uplift:+.1%})"
                if rep.uplift is not None
                else " (no control group)"
            ),
            (
                f"paid since launch (all channels, imported registries included):"
                f" {rep.since_launch.payments} payments by {rep.since_launch.payers} targets,"
                f" {rep.since_launch.paid} руб.;"
                f" stopped as paid: {rep.since_launch.skipped_as_paid}"
            ),
            (
                f"cost: {rep.sms_segments} SMS segments, {rep.call_minutes} call minutes,"
                f" {rep.cost} billed"
            ),
        ]
        click.echo("\n".join(lines))
