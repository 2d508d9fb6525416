"""The developer tools' commands: ``contactcenter simulate`` and ``contactcenter demo``.

``simulate call`` places one simulated inbound call through the real webhooks and prints its
transcript (``--coverage-file`` or ``CC_FLOW_COVERAGE`` records the steps it visited);
``simulate coverage`` reports which flow steps and branches the recorded calls visited (see
:mod:`devtools.flow_coverage`).

``demo seed --consumers N [--seed S] [--if-empty | --reset]`` fills the database with deterministic
demo data (bulk inserts, not audited) and prints the fixed demo consumers
(:mod:`devtools.demo`).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from redis import Redis

from contactcenter.cli_support import settings_or_exit
from contactcenter.config import ConfigError
from crm_store.db import Database
from crm_store.migrate import schema_problem
from devtools.demo import DemoSeedError, seed_demo
from devtools.demo.users import DEMO_PASSWORD, seed_demo_users
from devtools.flow_coverage import (
    DEFAULT_DATA,
    ENV_VAR,
    FORMATS,
    CoverageError,
    CoverageRecorder,
    build_report,
    render,
)
from devtools.script import (
    CAPTURE_MODES,
    Script,
    ScriptError,
    Step,
    check_keys,
    crm_changes,
    load_script,
    run_script,
)
from devtools.simulator import Simulator, SimulatorError
from webhooks import create_app, services_of


@click.group("simulate")
def simulate() -> None:
    """Simulate calls (a local Twilio sandbox calls our webhooks)."""


def _collect(kind: str) -> Any:
    """A click callback that keeps --press/--say/--say-text/--wait in command-line order."""

    def callback(ctx: click.Context, _param: click.Parameter, values: Any) -> Any:
        steps: list[Step] = ctx.meta.setdefault("simulate.steps", [])
        if kind == "wait":
            if values:
                steps.append(Step("wait", where="--wait"))
            return values
        for value in values or ():
            if kind == "say":
                steps.append(Step("say", Path(value), where=f"--say {value}"))
            else:
                if kind == "press":
                    try:
                        check_keys(value, "--press")
                    except ScriptError as exc:
                        raise click.BadParameter(str(exc)) from None
                steps.append(Step(kind, value, where=f"--{kind.replace('_', '-')} {value}"))
        return values

    return callback


@simulate.command("call")
@click.option("--from", "from_", help="Caller number (E.164 or Russian notation).")
@click.option("--to", "to", help="Called number (our hotline).")
@click.option(
    "--press", multiple=True, callback=_collect("press"), help="DTMF keys, e.g. 1 or 7700112233#."
)
@click.option("--say", multiple=True, callback=_collect("say"), help="A WAV file the caller says.")
@click.option(
    "--say-text", multiple=True, callback=_collect("say_text"), help="Words for a speech Gather."
)
@click.option(
    "--wait", is_flag=True, callback=_collect("wait"), help="Stay silent once (timeout path)."
)
@click.option(
    "--script", "script_path", type=click.Path(dir_okay=False), help="A script YAML file."
)
@click.option("--capture", type=click.Choice(CAPTURE_MODES), help="Expected voice capture mode.")
@click.option("--realtime", is_flag=True, help="Let prompts and pauses take real time.")
@click.option("--url", help="Base URL of a running server instead of the in-process app.")
@click.option("--verbose", is_flag=True, help="Also print every webhook request.")
@click.option(
    "--coverage-file",
    help=f"Record the visited steps to this coverage data file or directory/ (default ${ENV_VAR}).",
)
@click.pass_context
def call_command(
    ctx: click.Context,
    from_: str | None,
    to: str | None,
    press: tuple[str, ...],
    say: tuple[str, ...],
    say_text: tuple[str, ...],
    wait: bool,
    script_path: str | None,
    capture: str | None,
    realtime: bool,
    url: str | None,
    verbose: bool,
    coverage_file: str | None,
) -> None:
    """Place a simulated inbound call and print its transcript.

    Inputs are played in command-line order after the script's steps; the caller hangs
    up after the last one. Exits 1 when an expectation fails, 2 on bad input.
    """
    settings = settings_or_exit()
    try:
        script = load_script(script_path) if script_path else Script()
    except ScriptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    steps = tuple(script.steps) + tuple(ctx.meta.get("simulate.steps", []))
    script = Script(
        from_=from_ or script.from_,
        to=to or script.to,
        capture=capture or script.capture,
        steps=steps,
        reading_window=script.reading_window,
    )
    if script.reading_window is not None and not url:
        first, last = script.reading_window
        settings = settings.with_overrides(
            reading_window_start_day=first, reading_window_end_day=last
        )
    try:
        token = settings.webhook_auth_token
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    try:
        recorder = CoverageRecorder(coverage_file) if coverage_file else None
    except CoverageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    db = None
    if url:
        # The running server validates signatures against its PUBLIC_BASE_URL: use that URL.
        # Its flow file is assumed to be ours (FLOWS_FILE) for the coverage data; its Redis
        # (REDIS_URL) is shared with its sandbox provider, which records the call there.
        sim = Simulator(
            url,
            token,
            status_callback_path="/voice/status",
            realtime=realtime,
            coverage=recorder,
            flows_file=settings.flows_file,
            redis=Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2),
        )
    else:
        # --capture forces one capture mode on every voice step; without it the flow's own
        # modes apply (menus stream, collect steps use their `capture`).
        config = {"SPEECH_CAPTURE": script.capture} if script.capture else {}
        problem = schema_problem(settings.database_url)
        if problem is not None:
            click.echo(f"error: {problem}", err=True)
            sys.exit(2)
        try:
            app = create_app(settings, config=config)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(2)
        db = services_of(app).db
        # The simulator is the app's telephony provider: the media-stream route's
        # update_call redirects the simulated call; recordings are fetched from it.
        sim = Simulator.for_app(app, realtime=realtime, coverage=recorder)
    started = datetime.now(UTC)
    try:
        try:
            with sim:
                result = run_script(sim, script, db=db, since=started)
        except SimulatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(result.call.transcript_text(verbose=verbose))
        if db is not None:
            changes = crm_changes(db, started)
            click.echo("CRM changes: " + ("; ".join(changes) if changes else "none"))
        for check in result.checks:
            mark = "ok  " if check.ok else "FAIL"
            click.echo(
                f"{mark} {check.description}" + (f" — {check.detail}" if check.detail else "")
            )
        if not result.ok:
            sys.exit(1)
    finally:
        if db is not None:
            db.dispose()  # the app's pooled connections


@simulate.command("coverage")
@click.option(
    "--data",
    "data",
    help=f"Coverage data file or directory (default ${ENV_VAR}, else {DEFAULT_DATA}).",
)
@click.option("--flows", "flows_file", help="The flow file (default FLOWS_FILE).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit 1 when the total coverage is below this percentage.",
)
def coverage_command(
    data: str | None, flows_file: str | None, fmt: str, fail_under: float | None
) -> None:
    """Which steps and branches of each flow the recorded simulated calls visited.

    Total coverage is (steps visited + branches taken) / (steps + branches). Unvisited steps
    and untaken branches are listed with their line in the flow file. Exits 1 under
    --fail-under, 2 on bad input.
    """
    if flows_file is None:
        flows_file = settings_or_exit().flows_file
    source = data or os.environ.get(ENV_VAR, "").strip() or DEFAULT_DATA
    try:
        report = build_report(flows_file, source)
    except CoverageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(render(report, fmt), nl=False)
    if fail_under is not None and report.percent < fail_under:
        click.echo(
            f"flow coverage {report.percent:.1f}% is below --fail-under {fail_under:g}%", err=True
        )
        sys.exit(1)


@click.group(name="demo")
def demo_group() -> None:
    """Demo data for development and the simulator."""


@demo_group.command(name="seed")
@click.option(
    "--consumers",
    "count",
    type=click.IntRange(min=0, max=5_000_000),
    required=True,
    help="Number of random consumers (the fixed demo consumers come on top).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date the data is built around (default: today, UTC).",
)
@click.option("--if-empty", is_flag=True, help="Do nothing if consumers already exist.")
@click.option(
    "--reset",
    is_flag=True,
    help="Delete the existing consumers, accounts and everything referring to them first.",
)
def demo_seed_command(count: int, seed: int, as_of: object, if_empty: bool, reset: bool) -> None:
    """Build deterministic demo data: same --consumers, --seed and --as-of give the same data."""
    settings = settings_or_exit()
    day: date = as_of.date() if isinstance(as_of, datetime) else datetime.now(UTC).date()
    db = Database(settings.database_url)
    try:
        result = seed_demo(
            db, consumers=count, seed=seed, as_of=day, if_empty=if_empty, reset=reset
        )
    except DemoSeedError as exc:
        click.echo(f"demo seed failed: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    for line in result.lines():
        click.echo(line)


@demo_group.command(name="users")
def demo_users_command() -> None:
    """Create the demo console users (one per role; sandbox only) and print how to log in."""
    settings = settings_or_exit()
    problem = schema_problem(settings.database_url)
    if problem is not None:
        click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    db = Database(settings.database_url)
    try:
        created = seed_demo_users(db, settings)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    click.echo(f"console users (sandbox only), password {DEMO_PASSWORD!r}:")
    for user, new in created:
        regions = ", ".join(user.regions) if user.regions else "all regions"
        state = "created" if new else "exists, unchanged"
        click.echo(f"  {user.username:<16} {'+'.join(user.roles):<11} {regions:<14} {state}")
