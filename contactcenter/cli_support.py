"""What every area's command line shares: settings loaded or a clear exit."""

from __future__ import annotations

import sys

import click

from contactcenter.config import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    """Load settings, or print the offending variable and exit with status 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
