"""``contactcenter import outages FILE``: planned and emergency outages from CSV or XLSX.

Prints the import report (:class:`~crm_store.outage_import.OutageImportReport`) and exits 0
whenever the file could be read (rejected rows are part of the report); exits 1 with one line
for a file that cannot be read or is not an outages file, or when the database fails (then
nothing was written). Added to the ``import`` group by :mod:`crm_store.cli_data`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import click
from sqlalchemy.exc import SQLAlchemyError

from contactcenter.cli_support import settings_or_exit
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_files import FileFormat
from crm_store.outage_import import import_outages


@click.command(name="outages")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "xlsx"]),
    default=None,
    help="File format (default: from the extension, else from the content).",
)
@click.option("--dry-run", is_flag=True, help="Validate and print the report without writing.")
def import_outages_command(file: Path, file_format: str | None, dry_run: bool) -> None:
    """Import planned and emergency outages from FILE (format: docs/import.md)."""
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        report = import_outages(
            db, file, file_format=cast("FileFormat | None", file_format), dry_run=dry_run
        )
    except ImportFileError as exc:
        click.echo(f"Импорт невозможен: {exc}", err=True)
        sys.exit(1)
    except SQLAlchemyError as exc:
        first = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        click.echo(f"Ошибка базы данных, ничего не записано: {first}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    for line in report.lines():
        click.echo(line)
