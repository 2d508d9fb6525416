"""CLI group ``import`` (consumer files; payments and charges: :mod:`crm_store.cli_billing`).

``contactcenter import consumers FILE [--format csv|xlsx] [--dry-run]`` prints the import
report and exits 0 whenever the file could be read (rejected rows are part of the report);
it exits 1 with a clear message for a missing file, a wrong header or an unreadable format.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import click

from contactcenter.cli_support import settings_or_exit
from crm_store.cli_billing import import_charges_command, import_payments_command
from crm_store.cli_outages import import_outages_command
from crm_store.db import Database
from crm_store.importer import FileFormat, ImportFileError, import_consumers


@click.group(name="import")
def import_group() -> None:
    """Import data files (CSV or XLSX) into the CRM store."""


@import_group.command(name="consumers")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "xlsx"]),
    default=None,
    help="File format (default: from the extension, else from the content).",
)
@click.option("--dry-run", is_flag=True, help="Validate and print the report without writing.")
def import_consumers_command(file: Path, file_format: str | None, dry_run: bool) -> None:
    """Import consumers, accounts, phones, meters, readings and debts from FILE."""
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        report = import_consumers(
            db, file, file_format=cast("FileFormat | None", file_format), dry_run=dry_run
        )
    except ImportFileError as exc:
        click.echo(f"Импорт невозможен: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    for line in report.lines():
        click.echo(line)


import_group.add_command(import_outages_command)
import_group.add_command(import_payments_command)
import_group.add_command(import_charges_command)
