"""CLI groups ``import`` (consumer files) and ``demo`` (demo data).

``contactcenter import consumers FILE [--format csv|xlsx] [--dry-run]`` prints the import
report and exits 0 whenever the file could be read (rejected rows are part of the report);
it exits 1 with a clear message for a missing file, a wrong header or an unreadable format.

``contactcenter demo seed --consumers N [--seed S] [--if-empty]`` fills the database with
deterministic demo data (bulk inserts, not audited) and prints the fixed demo consumers.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import cast

import click


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
    from contactcenter.cli_support import settings_or_exit
    from crm_store.db import Database
    from crm_store.importer import FileFormat, ImportFileError, import_consumers

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
def demo_seed_command(count: int, seed: int, as_of: object, if_empty: bool) -> None:
    """Build deterministic demo data: same --consumers, --seed and --as-of give the same data."""
    from datetime import UTC, datetime

    from contactcenter.cli_support import settings_or_exit
    from crm_store.db import Database
    from crm_store.demo import DemoSeedError, seed_demo

    settings = settings_or_exit()
    day: date = as_of.date() if isinstance(as_of, datetime) else datetime.now(UTC).date()
    db = Database(settings.database_url)
    try:
        result = seed_demo(db, consumers=count, seed=seed, as_of=day, if_empty=if_empty)
    except DemoSeedError as exc:
        click.echo(f"demo seed failed: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    for line in result.lines():
        click.echo(line)
