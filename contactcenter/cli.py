"""The ``contactcenter`` command line, grouped by area.

Each area owns its commands in its own package (``crm_store.cli``, ``ivr.cli`` …);
this module only assembles them and holds ``serve`` and ``worker``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from contactcenter.config import ConfigError, Settings, load_settings

# (module, attribute) of every area's click group or command, added to the main group.
AREA_COMMANDS: list[tuple[str, str]] = [("speech.cli", "speech"), ("ivr.cli", "flows")]
AREA_COMMANDS += [("crm_store.cli", "db_group"), ("crm_store.cli", "users_group")]
AREA_COMMANDS.append(("speech.models_cli", "models_group"))
AREA_COMMANDS += [("crm_store.cli_data", "import_group"), ("crm_store.cli_data", "demo_group")]
AREA_COMMANDS.append(("telephony.cli", "simulate"))
AREA_COMMANDS += [("campaigns.cli", "campaign"), ("campaigns.cli", "worker")]


def settings_or_exit() -> Settings:
    """Load settings, or print the offending variable and exit with status 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="contactcenter")
def main() -> None:
    """Contact-center and IVR backend for electricity retailers."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--debug/--no-debug", default=False)
def serve(host: str, port: int, debug: bool) -> None:
    """Run the web app (webhooks, media streams, API) on HOST:PORT."""
    settings = settings_or_exit()
    from werkzeug.serving import run_simple

    from webhooks import create_app

    try:
        app = create_app(settings)
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"serving on http://{host}:{port}  (health: http://{host}:{port}/healthz)")
    run_simple(host, port, app, threaded=True, use_reloader=debug, use_debugger=debug)


def _register_areas(group: click.Group) -> None:
    for module_name, attr in AREA_COMMANDS:
        module = importlib.import_module(module_name)
        command: Any = getattr(module, attr)
        group.add_command(command)


_register_areas(main)
