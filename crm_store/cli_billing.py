"""CLI commands ``import payments`` and ``import charges`` (billing files), in the ``import`` group.

::

    contactcenter import payments FILE [--format csv|xlsx] [--dry-run] [--timezone ZONE]
                                       [--problems-file PATH] [--batch-size N]
    contactcenter import charges FILE  (same options)

Each prints the import report (Russian) on stdout and a progress bar on stderr. Exit status:
0 when the whole file was read (rejected rows are part of the report), 1 with one line on
stderr when the file cannot be imported at all (missing, unreadable, not the right kind of
file: nothing was written), 1 after the report when the import stopped part-way (the report
says which batches landed; running the same file again completes it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from contactcenter.cli_support import settings_or_exit
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_batches import DEFAULT_BATCH_SIZE, BatchReport
from crm_store.import_charges import import_charges
from crm_store.import_files import FileFormat, ImportProgress
from crm_store.import_payments import import_payments
from crm_store.import_runs import create_run
from crm_store.models import SUPPLIER_TIMEZONE

Importer = Callable[..., BatchReport]


def _zone(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {value!r}") from None
    return value


def _options(command: Callable[..., None]) -> Callable[..., None]:
    """The options shared by the billing imports."""
    for decorator in reversed(
        (
            click.argument("file", type=click.Path(path_type=Path, dir_okay=False)),
            click.option(
                "--format",
                "file_format",
                type=click.Choice(["csv", "xlsx"]),
                default=None,
                help="File format (default: from the extension, else from the content).",
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Check every row against the database, write nothing.",
            ),
            click.option(
                "--timezone",
                default=SUPPLIER_TIMEZONE,
                show_default=True,
                callback=_zone,
                help="Zone of dates and times written without an offset.",
            ),
            click.option(
                "--problems-file",
                type=click.Path(path_type=Path, dir_okay=False, writable=True),
                default=None,
                help="Write every problem row to this CSV (the report lists the first 100).",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1, max=50_000),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
                help="Rows per transaction.",
            ),
        )
    ):
        command = decorator(command)
    return command


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[ImportProgress], None]]:
    """A ``click.progressbar`` on stderr fed by the importer's progress callback."""
    bar: Any = None
    shown = 0

    def update(progress: ImportProgress) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(
                length=max(progress.total, progress.done, 1), label=label, file=sys.stderr
            )
            bar.__enter__()
        step = max(progress.done - shown, 0)
        shown += step
        bar.update(step)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _run(kind: str, importer: Importer, file: Path, options: dict[str, Any]) -> None:
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        run_id = None
        if not options["dry_run"]:
            with db.transaction() as session:
                run_id = create_run(session, kind, str(file), actor="cli").id
        with _progress_bar(f"Импорт {file.name}") as progress:
            report = importer(
                db,
                file,
                file_format=cast("FileFormat | None", options["file_format"]),
                dry_run=options["dry_run"],
                timezone=options["timezone"],
                problems_file=options["problems_file"],
                batch_size=options["batch_size"],
                run_id=run_id,
                progress=progress,
            )
    except ImportFileError as exc:
        click.echo(f"Импорт невозможен: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    for line in report.lines():
        click.echo(line)
    if report.aborted:
        sys.exit(1)


@click.command(name="payments")
@_options
def import_payments_command(file: Path, **options: Any) -> None:
    """Import a payments registry from FILE (bank / payment agent; CSV or XLSX)."""
    _run("payments", import_payments, file, options)


@click.command(name="charges")
@_options
def import_charges_command(file: Path, **options: Any) -> None:
    """Import monthly accruals or balance snapshots from FILE (CSV or XLSX)."""
    _run("charges", import_charges, file, options)
