"""The batch driver of the billing imports (payments, charges): stream, parse, write in batches.

:func:`run_batches` opens the file (:func:`~crm_store.import_files.open_table`), finds its
header, parses every row as it is read (a rejected row is a located problem, never an
exception) and writes the parsed rows in batches of ``batch_size``, **one transaction per
batch**: a batch lands whole or not at all, and what it did is added to the report only after
its commit. A database error stops the import at that batch (the report says which batches
landed; the imports are idempotent, so running the file again completes it). Memory stays
flat whatever the file's size: one batch of rows is held, and the report keeps counts plus
the first problem rows (:class:`~crm_store.import_files.ProblemLog`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Date, Numeric, Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_files import (
    BatchResult,
    FileFormat,
    Header,
    ImportProgress,
    ProblemLog,
    ProgressFn,
    RowError,
    Shape,
    find_header,
    is_total_row,
    open_table,
)
from crm_store.import_files import Table as FileTable
from crm_store.import_runs import advance_run, finish_run, start_run
from crm_store.models import Base, UTCDateTime

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")

#: Rows per transaction: large enough to amortise a commit, small enough to redo cheaply.
DEFAULT_BATCH_SIZE = 5000
#: Problem rows listed in a report per kind (all of them go to ``problems_file`` if given).
DEFAULT_LISTED = 100

ERROR = "error"
DUPLICATE = "duplicate"


@dataclass
class Tally:
    """What one batch did: counts, sums and problem rows; merged into the report on commit."""

    counts: Counter[str] = field(default_factory=Counter)
    amounts: dict[str, Decimal] = field(default_factory=dict)
    problems: list[tuple[str, RowError]] = field(default_factory=list)

    def add(self, name: str, amount: Decimal | None = None) -> None:
        """Count one row under ``name`` (and add ``amount`` to that name's sum)."""
        self.counts[name] += 1
        if amount is not None:
            self.amounts[name] = self.amounts.get(name, Decimal("0.00")) + amount

    def add_many(self, name: str, count: int, amount: Decimal | None = None) -> None:
        """Count ``count`` rows under ``name`` at once (with their total ``amount``)."""
        self.counts[name] += count
        if amount is not None:
            self.amounts[name] = self.amounts.get(name, Decimal("0.00")) + amount

    def problem(self, kind: str, row: int, column: str, reason: str) -> None:
        """Record a problem row of ``kind`` (``error``, ``duplicate``, …)."""
        self.problems.append((kind, RowError(row, column, reason)))


@dataclass
class BatchReport:
    """The report of a batch import; subclasses say what their counts mean."""

    kind: str
    source: str
    dry_run: bool = False
    run_id: int | None = None
    #: The file layout found (``Shape.name``).
    shape: str = ""
    rows_read: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    amounts: dict[str, Decimal] = field(default_factory=dict)
    batches: list[BatchResult] = field(default_factory=list)
    #: Why the import stopped before the end of the file (``None``: it read everything).
    aborted: str | None = None
    problems: ProblemLog = field(default_factory=ProblemLog)

    @property
    def rows_rejected(self) -> int:
        """Rows not imported because of an error (bad cell, conflict)."""
        return self.problems.row_count(ERROR)

    @property
    def errors(self) -> list[RowError]:
        """The first rejected rows' problems (at most ``problems.limit``)."""
        return self.problems.rows(ERROR)

    @property
    def batches_committed(self) -> int:
        """Batches whose transaction committed."""
        return sum(1 for b in self.batches if b.committed)

    def merge(self, tally: Tally) -> None:
        """Add a committed batch's tally."""
        self.counts.update(tally.counts)
        for name, amount in tally.amounts.items():
            self.amounts[name] = self.amounts.get(name, Decimal("0.00")) + amount
        for kind, problem in tally.problems:
            self.problems.add(kind, problem)

    def amount(self, name: str) -> Decimal:
        """The sum recorded under ``name`` (0.00 when none)."""
        return self.amounts.get(name, Decimal("0.00"))

    def head_lines(self) -> list[str]:
        """The report's first lines: file, dry run, rows read."""
        out = [f"Файл: {self.source}"]
        if self.run_id is not None:
            out.append(f"Импорт №{self.run_id}")
        if self.dry_run:
            out.append("Проверка без записи (--dry-run): база данных не изменена.")
        if self.shape:
            out.append(f"Вид файла: {self.shape}")
        out.append(f"Строк с данными: {self.rows_read}")
        return out

    def tail_lines(self) -> list[str]:
        """Duplicates, rejected rows, batches and, if it stopped early, why."""
        out = self.problems.lines(DUPLICATE, "Повторы строк в файле (пропущены)")
        out.append(f"Отклонено строк: {self.rows_rejected}")
        out.extend(self.problems.lines(ERROR, "Отклонено строк")[1:])
        failed = [b for b in self.batches if not b.committed]
        committed = [b for b in self.batches if b.committed]
        if committed:
            verb = "проверено" if self.dry_run else "записано"
            out.append(
                f"Пакетов {verb}: {len(committed)} "
                f"(строки {committed[0].first_row}–{committed[-1].last_row})"
            )
        out.extend(str(b) for b in failed)
        if self.aborted:
            out.append(f"Импорт остановлен: {self.aborted}")
            out.append(
                "Записанные пакеты остаются; загрузите файл ещё раз после исправления — "
                "уже загруженные строки не повторятся."
            )
        return out

    def lines(self) -> list[str]:
        """The report as printable Russian lines (subclasses add their counts)."""
        return self.head_lines() + self.tail_lines()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (what :class:`~crm_store.models.ImportRun` stores)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "dry_run": self.dry_run,
            "shape": self.shape,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "counts": dict(self.counts),
            "amounts": {name: str(amount) for name, amount in self.amounts.items()},
            "batches": [
                {
                    "number": b.number,
                    "first_row": b.first_row,
                    "last_row": b.last_row,
                    "rows": b.rows,
                    "committed": b.committed,
                    "error": b.error,
                }
                for b in self.batches
            ],
            "aborted": self.aborted,
            "problems": self.problems.as_dict(),
        }


#: Parse one data row (cells by position, not stripped) into an item, or record its problems
#: and give None.
ParseFn = Callable[[int, list[str], Tally], ItemT | None]
#: Write one batch of parsed items in ``session`` (inside the batch's transaction).
ApplyFn = Callable[[Session, list[ItemT], Tally], None]


@dataclass
class BatchImport(Generic[ItemT]):
    """What a billing import plugs into :func:`run_batches`."""

    shapes: Sequence[Shape]
    #: Called once with the header found; returns the row parser for that layout.
    parser: Callable[[Header], ParseFn[ItemT]]
    apply: ApplyFn[ItemT]


def run_batches(
    db: Database,
    path: Path,
    plan: BatchImport[ItemT],
    report: BatchReport,
    *,
    file_format: FileFormat | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
    run_id: int | None = None,
) -> None:
    """Stream ``path`` through ``plan`` in batches, filling ``report`` (see the module doc).

    Raises :class:`ImportFileError` when the file cannot be opened or has no usable header
    (nothing was written then); a problem found later stops the import with
    ``report.aborted`` set.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report.run_id = run_id
    try:
        with open_table(path, file_format, strip=False) as table:
            rows = table.rows()
            header = find_header(rows, plan.shapes)
            report.shape = header.shape.name
            if run_id is not None:
                with db.transaction() as session:
                    start_run(session, run_id)
            _stream(db, table, rows, plan, plan.parser(header), report, batch_size, progress)
    except ImportFileError as exc:
        if run_id is not None:
            _finish(db, run_id, report, str(exc))
        raise
    finally:
        report.problems.close()
    if run_id is not None:
        _finish(db, run_id, report, report.aborted)


def _finish(db: Database, run_id: int, report: BatchReport, error: str | None) -> None:
    with db.transaction() as session:
        finish_run(session, run_id, summary=report.as_dict(), error=error)


def _stream(
    db: Database,
    table: FileTable,
    rows: Any,
    plan: BatchImport[ItemT],
    parse: ParseFn[ItemT],
    report: BatchReport,
    batch_size: int,
    progress: ProgressFn | None,
) -> None:
    batch: list[ItemT] = []
    pending = Tally()  # problems of the rows read since the last batch was written
    first_row = last_row = 0

    def flush() -> bool:
        nonlocal batch, pending, first_row
        ok = _write_batch(db, plan, batch, pending, report, first_row, last_row)
        batch, pending, first_row = [], Tally(), 0
        if progress is not None:
            progress(
                ImportProgress(
                    report.rows_read, table.position(), table.total, report.batches_committed
                )
            )
        return ok

    try:
        for number, cells in rows:
            if not any(cells):
                continue
            if not cells[0][:1].isdigit() and (not "".join(cells).strip() or is_total_row(cells)):
                continue  # a row of spaces, or a registry's "Итого" line
            report.rows_read += 1
            first_row = first_row or number
            last_row = number
            item = parse(number, cells, pending)
            if item is not None:
                batch.append(item)
            if len(batch) >= batch_size and not flush():
                return
    except ImportFileError as exc:
        report.merge(pending)
        report.aborted = str(exc)
        return
    if first_row:
        flush()


def _write_batch(
    db: Database,
    plan: BatchImport[ItemT],
    batch: list[ItemT],
    pending: Tally,
    report: BatchReport,
    first_row: int,
    last_row: int,
) -> bool:
    """Apply one batch in its own transaction; ``False`` when it failed (import stops)."""
    number = len(report.batches) + 1
    tally = Tally()
    session = db.session()
    try:
        with acting_as("import"):
            session.begin()
            plan.apply(session, batch, tally)
            if report.run_id is not None and not report.dry_run:
                advance_run(session, report.run_id, len(batch))
            if report.dry_run:
                session.rollback()
            else:
                session.commit()
    except (SQLAlchemyError, ValueError) as exc:
        session.rollback()
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["?"])[0]
        log.warning("import batch %s of %s failed: %s", number, report.source, reason)
        report.batches.append(
            BatchResult(number, first_row, last_row, len(batch), False, f"ошибка базы: {reason}")
        )
        report.merge(pending)
        report.aborted = f"пакет {number} (строки {first_row}–{last_row}) не записан: {reason}"
        return False
    finally:
        session.close()
    report.batches.append(BatchResult(number, first_row, last_row, len(batch), True))
    tally.problems = sorted(pending.problems + tally.problems, key=lambda p: p[1].row)
    report.merge(tally)
    return True


# --------------------------------------------------------------------------- bare statements

#: Values per ``IN (…)`` list of the raw lookups (under SQLite's and psycopg's limits).
IN_LIST = 900


class BulkInsert:
    """``INSERT … ON CONFLICT (key) DO NOTHING`` of many rows by the driver's ``executemany``.

    The hot path of the billing imports: rows are tuples in ``columns`` order, converted by
    each column type's own bind processor (so the stored text of dates and times is exactly
    what the ORM would write), except that money goes to SQLite as its decimal text (the
    column's affinity stores the same number; no Python float on the way). ``constants``
    are columns with one value for every row (converted once). :meth:`insert` returns the
    rows inserted (rows refused by the unique ``key`` count zero).
    """

    def __init__(
        self,
        session: Session,
        model: type[Base],
        columns: Sequence[str],
        key: str,
        constants: dict[str, Any] | None = None,
    ) -> None:
        table = cast(Table, model.__table__)
        dialect = session.get_bind().dialect
        sqlite = dialect.name == "sqlite"
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def processor(name: str) -> Callable[[Any], Any] | None:
            column_type = table.c[name].type
            if sqlite and isinstance(column_type, Numeric):
                return _decimal_text
            own = column_type.dialect_impl(dialect).bind_processor(dialect)
            if (
                sqlite
                and isinstance(column_type, UTCDateTime)
                and own is not None
                and own(_SAMPLE_MOMENT) == _sqlite_utc_text(_SAMPLE_MOMENT)
            ):
                return _sqlite_utc_text  # the type's own text, several times faster
            if sqlite and isinstance(column_type, Date) and own is not None:
                return _memo(own)
            return own

        fixed = dict(constants or {})
        names = [*columns, *fixed]
        self.sql = (  # our own table and column names only
            f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
            f"VALUES ({', '.join([mark] * len(names))}) ON CONFLICT ({key}) DO NOTHING"
        )
        self.converters = {name: processor(name) for name in columns}
        self.steps = [(i, f) for i, name in enumerate(columns) if (f := self.converters[name])]
        tail = []
        for name, value in fixed.items():
            process = processor(name)
            tail.append(process(value) if process is not None and value is not None else value)
        self.tail = tuple(tail)

    def converter(self, name: str) -> Callable[[Any], Any]:
        """The driver conversion of column ``name`` (identity when the driver takes the value
        as is), for callers that build driver rows themselves; never call it with ``None``."""
        return self.converters[name] or _same

    def insert(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert ``rows`` (Python values in ``columns`` order); how many were inserted."""
        if not rows:
            return 0
        steps = self.steps
        values: list[tuple[Any, ...]] = []
        append = values.append
        for row in rows:
            cells = list(row)
            for i, process in steps:
                value = cells[i]
                if value is not None:
                    cells[i] = process(value)
            append(tuple(cells))
        return self.insert_converted(session, values)

    def insert_converted(
        self, session: Session, rows: Sequence[tuple[Any, ...]], *, complete: bool = False
    ) -> int:
        """Insert rows already converted for the driver (see :meth:`converter`); with
        ``complete`` the rows already end with :attr:`tail` (the converted constants)."""
        if not rows:
            return 0
        tail = self.tail
        values = list(rows) if complete or not tail else [(*row, *tail) for row in rows]
        result = session.connection().exec_driver_sql(self.sql, values)
        return int(result.rowcount)


def _decimal_text(value: Any) -> str:
    return str(value)


def _same(value: Any) -> Any:
    return value


_SAMPLE_MOMENT = datetime(2026, 3, 4, 5, 6, 7, 8009, tzinfo=timezone(timedelta(hours=3)))


def _sqlite_utc_text(value: datetime) -> str:
    """An aware moment as SQLAlchemy's SQLite DATETIME stores it, in UTC."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: use a tz-aware UTC datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _memo(process: Callable[[Any], Any], size: int = 4096) -> Callable[[Any], Any]:
    """``process`` with its results remembered (for columns with few distinct values)."""
    seen: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        out = seen.get(value)
        if out is None:
            out = process(value)
            if len(seen) < size:
                seen[value] = out
        return out

    return remembered


def select_in(
    session: Session, sql: str, values: Sequence[Any], *, extra: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` whose ``{in}`` placeholder is bound to ``values`` (in chunks).

    ``sql`` is a driver-level statement of this project (``?`` placeholders, turned into the
    driver's own); ``extra`` are bound after each chunk. Values come back as the driver
    gives them (SQLite: dates as text, money as numbers): convert with care.
    """
    dialect = session.get_bind().dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    connection = session.connection()
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), IN_LIST):
        chunk = list(values[start : start + IN_LIST])
        statement = sql.replace("{in}", ", ".join(["?"] * len(chunk)))
        if mark != "?":
            statement = statement.replace("?", mark)
        found.extend(tuple(row) for row in connection.exec_driver_sql(statement, (*chunk, *extra)))
    return found
