"""Outage import from CSV or XLSX (``contactcenter import outages FILE``).

The file is read by :mod:`crm_store.import_files` (UTF-8, UTF-16 or cp1251; ``;``, ``,``,
tab or ``|``; XLSX's first sheet; title lines before the header skipped). Its header names
the columns of :data:`COLUMNS` in any order, in English (``starts_at``) or Russian
(«Начало»); other columns are ignored. ``kind``, ``starts_at`` and ``expected_end_at`` are
required, and a place column (``settlement``, ``street``, ``feeder`` or ``substation``): a
file without them is not an outages file and is refused as a whole
(:class:`~crm_store.errors.ImportFileError`, one line).

Each row is checked by :func:`crm_store.outages.parse_outage`; a bad row is reported with its
spreadsheet row number, column and reason and skipped. The good rows are stored in one
transaction (all of them, or none when the database fails), idempotently by ``external_id``:
a file imported twice changes nothing. The format is documented in ``docs/import.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from crm_store.db import Database
from crm_store.errors import ImportFileError, InvalidOutage
from crm_store.import_files import (
    Column,
    FileFormat,
    RowError,
    Shape,
    cells_of,
    find_header,
    is_total_row,
    open_table,
)
from crm_store.outages import OutageInput, parse_outage, upsert_outage

__all__ = ["COLUMNS", "OutageImportReport", "import_outages", "read_outage_rows"]

#: The columns of an outages file: key (as :func:`~crm_store.outages.parse_outage` takes
#: it), title and other accepted header names.
COLUMNS: tuple[Column, ...] = (
    Column("external_id", "Номер отключения", ("id", "номер", "идентификатор"), False),
    Column("kind", "Вид", ("вид отключения", "тип", "тип отключения")),
    Column("settlement", "Населённый пункт", ("нас пункт", "город", "населенный пункт"), False),
    Column("street", "Улица", (), False),
    Column("houses", "Дома", ("номера домов", "дом"), False),
    Column("feeder", "Фидер", ("номер фидера",), False),
    Column("substation", "Подстанция", ("пс", "тп", "номер тп", "рп"), False),
    Column("starts_at", "Начало", ("дата начала", "начало отключения")),
    Column(
        "expected_end_at",
        "Окончание",
        ("ожидаемое окончание", "дата окончания", "окончание отключения", "конец"),
    ),
    Column("timezone", "Часовой пояс", (), False),
    Column("reason", "Причина", ("причина отключения",), False),
)
SHAPE = Shape("отключения", COLUMNS)
#: An outages file names its places by at least one of these columns.
_PLACES = ("settlement", "street", "feeder", "substation")


@dataclass(frozen=True)
class _Row:
    number: int
    cells: dict[str, str]


@dataclass
class OutageImportReport:
    """What an outage import did; ``errors`` lists every rejected row's problems."""

    source: str
    dry_run: bool = False
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    #: Imported rows worth a look (an outage already over: it is never announced).
    warnings: list[RowError] = field(default_factory=list)
    #: Rows repeating an earlier row of the file (same outage, same values): skipped.
    duplicates: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> list[int]:
        """Distinct numbers of the rejected rows, ascending."""
        return sorted({e.row for e in self.errors})

    def lines(self) -> list[str]:
        """The report as printable Russian lines."""
        out = [f"Файл: {self.source}"]
        if self.dry_run:
            out.append("Проверка без записи (--dry-run): база данных не изменена.")
        out.append(f"Строк с данными: {self.rows_read}")
        if self.dry_run:
            out.append(f"Строк можно импортировать: {self.valid}")
        else:
            out.append(f"Новых отключений: {self.created}")
            out.append(f"Обновлено: {self.updated}")
            out.append(f"Без изменений (уже в базе): {self.unchanged}")
        if self.warnings:
            out.append(f"Предупреждения: {len(self.warnings)}")
            out.extend(f"  {warning}" for warning in self.warnings)
        if self.duplicates:
            out.append(f"Повторы строк в файле (пропущены): {len(self.duplicates)}")
            out.extend(f"  {duplicate}" for duplicate in self.duplicates)
        out.append(f"Отклонено строк: {len(self.rejected_rows)}")
        out.extend(f"  {error}" for error in self.errors)
        return out


def read_outage_rows(path: Path, file_format: FileFormat | None = None) -> list[_Row]:
    """The data rows of an outages file after its header (blank and «Итого» rows skipped)."""
    with open_table(path, file_format) as table:
        rows = table.rows()
        header = find_header(rows, [SHAPE])
        if not any(name in header.index for name in _PLACES):
            raise ImportFileError(
                f"неверная строка заголовка: в строке {header.row} нет ни одного столбца места: "
                "«Населённый пункт», «Улица», «Фидер» или «Подстанция»"
            )
        out: list[_Row] = []
        for number, cells in rows:
            if not any(cells) or is_total_row(cells):
                continue
            out.append(_Row(number, cells_of(cells, header.index)))
    return out


def _check(rows: list[_Row], report: OutageImportReport, now: datetime) -> list[OutageInput]:
    seen: dict[str, tuple[int, OutageInput]] = {}
    valid: list[OutageInput] = []
    for row in rows:
        try:
            outage = parse_outage({k: v for k, v in row.cells.items() if v != ""})
        except InvalidOutage as exc:
            report.errors.extend(RowError(row.number, col, why) for col, why in exc.problems)
            continue
        earlier = seen.get(outage.external_id)
        if earlier is not None:
            first, before = earlier
            if before == outage:
                report.duplicates.append(
                    RowError(row.number, "*", f"повторяет строку {first}, пропущена")
                )
            else:
                report.errors.append(
                    RowError(
                        row.number,
                        "external_id",
                        f"то же отключение, что в строке {first}, но с другими значениями",
                    )
                )
            continue
        seen[outage.external_id] = (row.number, outage)
        if outage.expected_end_at <= now:
            report.warnings.append(
                RowError(
                    row.number, "expected_end_at", "отключение уже закончилось: не объявляется"
                )
            )
        valid.append(outage)
    return valid


def import_outages(
    db: Database,
    path: Path,
    *,
    file_format: FileFormat | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> OutageImportReport:
    """Import the outages of ``path`` (see the module); the report lists every problem.

    Raises :class:`~crm_store.errors.ImportFileError` when the file as a whole cannot be
    read or is not an outages file.
    """
    rows = read_outage_rows(path, file_format)
    report = OutageImportReport(source=str(path), dry_run=dry_run, rows_read=len(rows))
    valid = _check(rows, report, now or datetime.now(UTC))
    report.valid = len(valid)
    if dry_run or not valid:
        return report
    with db.transaction() as session:
        for outage in valid:
            _row, result = upsert_outage(session, outage, source="import")
            if result == "created":
                report.created += 1
            elif result == "updated":
                report.updated += 1
            else:
                report.unchanged += 1
    return report
