"""``contactcenter simulate``: run a simulated inbound call through the real webhooks.

``simulate coverage`` (which flow steps the fixture calls visited) waits for the IVR
engine's step reporting and is not implemented yet.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from telephony.script import (
    CAPTURE_MODES,
    Script,
    ScriptError,
    Step,
    crm_changes,
    load_script,
    run_script,
)
from telephony.simulator import Simulator, SimulatorError


@click.group("simulate")
def simulate() -> None:
    """Simulate calls (a local Twilio sandbox calls our webhooks)."""


def _collect(kind: str) -> Any:
    """A click callback that keeps --press/--say/--say-text/--wait in command-line order."""

    def callback(ctx: click.Context, _param: click.Parameter, values: Any) -> Any:
        steps: list[Step] = ctx.meta.setdefault("telephony.steps", [])
        if kind == "wait":
            if values:
                steps.append(Step("wait", where="--wait"))
            return values
        for value in values or ():
            if kind == "say":
                steps.append(Step("say", Path(value), where=f"--say {value}"))
            else:
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
) -> None:
    """Place a simulated inbound call and print its transcript.

    Inputs are played in command-line order after the script's steps; the caller hangs
    up after the last one. Exits 1 when an expectation fails, 2 on bad input.
    """
    from contactcenter.cli import settings_or_exit
    from contactcenter.config import ConfigError

    settings = settings_or_exit()
    try:
        script = load_script(script_path) if script_path else Script()
    except ScriptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    steps = tuple(script.steps) + tuple(ctx.meta.get("telephony.steps", []))
    script = Script(
        from_=from_ or script.from_,
        to=to or script.to,
        capture=capture or script.capture,
        steps=steps,
    )
    try:
        token = settings.webhook_auth_token
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    db = None
    if url:
        # The running server validates signatures against its PUBLIC_BASE_URL: use that URL.
        sim = Simulator(url, token, status_callback_path="/voice/status", realtime=realtime)
    else:
        from webhooks import create_app

        try:
            app = create_app(settings, config={"SPEECH_CAPTURE": script.capture or "record"})
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(2)
        from webhooks import services_of

        db = services_of(app).db
        sim = Simulator(
            app,
            token,
            settings.public_base_url,
            status_callback_path="/voice/status",
            realtime=realtime,
        )
    from datetime import UTC, datetime

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
