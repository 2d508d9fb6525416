"""Consumer import from CSV or XLSX: read, validate row by row, upsert atomically.

The file has a header row with exactly :data:`COLUMNS` (in this order), optionally
followed by the grid link columns ``feeder`` or ``feeder,substation`` (:data:`GRID_COLUMNS`),
and one row per meter; an account with two meters has two rows. A grid cell is stored as
given (trimmed); an empty one clears the stored value, an absent column keeps it. Reading
is tolerant of what spreadsheets produce in Russia (UTF-8 with or without BOM, cp1251,
``,`` or ``;`` delimiter, decimal comma and thousands spaces in money, ``DD.MM.YYYY``
dates, tariff zones as billing systems export them: ``Т1;Т2``, ``день/ночь``,
``двухтарифный``); validation is strict and every problem is reported with the row number a
spreadsheet user sees (the header is row 1), the column and a reason in plain Russian. A bad
value in a soft cell (phone, time zone, readings, debt, grid link: :data:`SOFT_GROUPS`)
loses that cell with a warning, not the account; a row is rejected only when its account or
meter cannot be stored; exact repeats of a row are reported as duplicates. The mapping is
documented in ``docs/import.md``.

Public entry points: :func:`read_rows` (file → raw rows), :func:`check_rows` (raw rows →
valid rows, errors, warnings, duplicates) and :func:`import_consumers` (the whole import,
writing through the CRM models with a SAVEPOINT per row). Problems with the file as a whole raise
:class:`ImportFileError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from contactcenter.phones import InvalidPhoneError, parse_phone
from crm_store.accounts import link_phone, normalize_account_number, phones_for_account
from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_files import (
    CellError,
    FileFormat,
    RowError,
    detect_format,
    open_table,
    parse_amount,
    parse_date,
)
from crm_store.import_payments import kept_payments_exist, match_kept_payments
from crm_store.ledger import balance, charge_by_key, put_keyed_charge, to_money
from crm_store.models import (
    METER_MAX_CAPACITY,
    METER_MIN_CAPACITY,
    Account,
    Consumer,
    Meter,
    MeterReading,
)

COLUMNS: tuple[str, ...] = (
    "account_number",
    "full_name",
    "phone",
    "address",
    "timezone",
    "meter_serial",
    "meter_capacity",
    "meter_zones",
    "last_readings",
    "last_reading_date",
    "debt_rub",
    "debt_due_date",
)
#: Optional columns after :data:`COLUMNS`, in this order: ``feeder`` alone, or both.
GRID_COLUMNS: tuple[str, ...] = ("feeder", "substation")
#: The headers a consumer file may have.
HEADERS: tuple[tuple[str, ...], ...] = tuple(
    COLUMNS + GRID_COLUMNS[:count] for count in range(len(GRID_COLUMNS) + 1)
)
_ALL_COLUMNS = COLUMNS + GRID_COLUMNS

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "GRID_COLUMNS",
    "HEADERS",
    "RUSSIAN_TIMEZONES",
    "SOFT_GROUPS",
    "FileFormat",
    "ImportFileError",
    "ImportReport",
    "ImportRow",
    "ImportValidation",
    "RawRow",
    "RowError",
    "check_rows",
    "consumer_kind",
    "debt_key",
    "detect_format",
    "import_consumers",
    "parse_date",
    "parse_money",
    "parse_zones",
    "read_rows",
    "reading_timestamp",
    "validate_rows",
]

_T = TypeVar("_T")

# The 26 Russian zones of IANA zone1970.tab (domain.md §2.5), Kaliningrad to Kamchatka.
RUSSIAN_TIMEZONES: frozenset[str] = frozenset(
    {
        "Europe/Kaliningrad",
        "Europe/Moscow",
        "Europe/Kirov",
        "Europe/Volgograd",
        "Europe/Samara",
        "Europe/Astrakhan",
        "Europe/Saratov",
        "Europe/Ulyanovsk",
        "Asia/Yekaterinburg",
        "Asia/Omsk",
        "Asia/Novosibirsk",
        "Asia/Barnaul",
        "Asia/Tomsk",
        "Asia/Novokuznetsk",
        "Asia/Krasnoyarsk",
        "Asia/Irkutsk",
        "Asia/Chita",
        "Asia/Yakutsk",
        "Asia/Khandyga",
        "Asia/Vladivostok",
        "Asia/Ust-Nera",
        "Asia/Magadan",
        "Asia/Sakhalin",
        "Asia/Srednekolymsk",
        "Asia/Kamchatka",
        "Asia/Anadyr",
    }
)

# Tariff-zone labels printed on Russian bills (domain.md §2.2); a meter has 1–3 of them.
SINGLE_ZONE_LABELS: frozenset[str] = frozenset({"общая", "сутки"})
MULTI_ZONE_LABELS: frozenset[str] = frozenset({"день", "ночь", "пик", "полупик"})
#: Billing-export zone numbers (``Т1``…``Т3``, Cyrillic or Latin T) by the meter's zone count:
#: one zone is общая; two are Т1 день, Т2 ночь; three are Т1 пик, Т2 ночь, Т3 полупик.
NUMBERED_ZONES: dict[int, tuple[str, ...]] = {
    1: ("общая",),
    2: ("день", "ночь"),
    3: ("пик", "ночь", "полупик"),
}
#: Whole-meter tariff names in billing exports, as the zones they stand for.
TARIFF_NAMES: dict[str, tuple[str, ...]] = {
    "однотарифный": NUMBERED_ZONES[1],
    "двухтарифный": NUMBERED_ZONES[2],
    "трехтарифный": NUMBERED_ZONES[3],
}
_ZONE_NUMBER = re.compile(r"[tт]([1-3])")
_ZONE_SEPARATORS = re.compile(r"[;/,+]")
MIN_CAPACITY = METER_MIN_CAPACITY
MAX_CAPACITY = METER_MAX_CAPACITY
MAX_LENGTHS = {"account_number": 64, "full_name": 300, "address": 500, "meter_serial": 64}
GRID_MAX_LENGTH = 100
MAX_DEBT = Decimal(100000000)

# Account-level columns: every row of one account must agree on them (empty = same as before).
ACCOUNT_COLUMNS: tuple[str, ...] = (
    "full_name",
    "phone",
    "address",
    "timezone",
    "debt_rub",
    "debt_due_date",
    "feeder",
    "substation",
)
METER_COLUMNS: tuple[str, ...] = (
    "meter_capacity",
    "meter_zones",
    "last_readings",
    "last_reading_date",
)
#: Cells an account can exist without: a bad value loses its group of cells (reported as a
#: warning), not the row. Everything else (account number, name, address, meter) is required.
SOFT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("phone",),
    ("timezone",),
    ("last_readings", "last_reading_date"),
    ("debt_rub", "debt_due_date"),
    ("feeder",),
    ("substation",),
)
SOFT_COLUMNS: frozenset[str] = frozenset(c for group in SOFT_GROUPS for c in group)


@dataclass(frozen=True)
class RawRow:
    """One data row as read from the file: cell texts by column, and its sheet row number.

    The grid columns (:data:`GRID_COLUMNS`) are among the cells only when the file has them.
    """

    number: int
    cells: dict[str, str]


@dataclass(frozen=True)
class ImportRow:
    """A validated row, with every value in its stored form."""

    number: int
    account_number: str
    account_normalized: str
    full_name: str
    phone: str | None
    address: str
    #: ``None``: the cell was empty (zone unknown; a stored zone is kept).
    timezone: str | None
    meter_serial: str
    meter_capacity: int
    meter_zones: tuple[str, ...]
    last_readings: tuple[int, ...] | None
    last_reading_date: date | None
    debt_rub: Decimal | None
    debt_due_date: date | None
    #: ``None``: the column is absent or the cell was dropped (the stored value is kept);
    #: ``""``: the cell is empty (the stored value is cleared); else the value to store.
    feeder: str | None = None
    substation: str | None = None


@dataclass
class ImportReport:
    """What an import did. ``rows_*`` count data rows; ``errors`` holds every rejected row."""

    source: str
    dry_run: bool = False
    rows_read: int = 0
    rows_created: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_valid: int = 0
    #: Imported accounts whose time zone is still unknown (empty ``timezone`` cells).
    accounts_without_timezone: int = 0
    #: Registry payments kept aside for unknown accounts, recorded now that they exist.
    payments_matched: int = 0
    errors: list[RowError] = field(default_factory=list)
    #: Bad cells of imported rows: the row was imported without that value.
    warnings: list[RowError] = field(default_factory=list)
    #: Exact repeats of an earlier row of the same file (not imported again).
    duplicates: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> list[int]:
        """Distinct numbers of the rejected rows, ascending."""
        return sorted({e.row for e in self.errors})

    @property
    def warned_rows(self) -> list[int]:
        """Distinct numbers of the imported rows that lost a cell, ascending."""
        return sorted({w.row for w in self.warnings})

    @property
    def rows_imported(self) -> int:
        """Rows written (new or changed) — or, in a dry run, rows that would be imported."""
        if self.dry_run:
            return self.rows_valid
        return self.rows_created + self.rows_updated

    def lines(self) -> list[str]:
        """The report as printable Russian lines."""
        out = [f"Файл: {self.source}"]
        if self.dry_run:
            out.append("Проверка без записи (--dry-run): база данных не изменена.")
        out.append(f"Строк с данными: {self.rows_read}")
        if self.dry_run:
            out.append(f"Строк можно импортировать: {self.rows_valid}")
        else:
            out.append(f"Импортировано строк: {self.rows_imported}")
            out.append(f"  новых: {self.rows_created}")
            out.append(f"  обновлено: {self.rows_updated}")
            out.append(f"Без изменений (уже в базе): {self.rows_unchanged}")
        if self.payments_matched:
            out.append(
                f"Зачислено отложенных платежей (лицевые счета появились): {self.payments_matched}"
            )
        if self.accounts_without_timezone:
            out.append(
                f"Лицевых счетов без часового пояса: {self.accounts_without_timezone} — "
                "окна обзвона для них соблюдаются во всех часовых поясах номера телефона"
            )
        if self.warnings:
            out.append(
                f"Импортировано с предупреждениями: {len(self.warned_rows)} "
                "(значения с ошибками не импортированы)"
            )
            out.extend(f"  {warning}" for warning in self.warnings)
        if self.duplicates:
            out.append(f"Повторы строк в файле (пропущены): {len(self.duplicates)}")
            out.extend(f"  {duplicate}" for duplicate in self.duplicates)
        out.append(f"Отклонено строк: {len(self.rejected_rows)}")
        out.extend(f"  {error}" for error in self.errors)
        return out


# --------------------------------------------------------------------------- reading


def read_rows(path: Path, file_format: FileFormat | None = None) -> list[RawRow]:
    """Read ``path`` into raw rows after checking the header.

    Blank rows are skipped. Raises :class:`ImportFileError` for a missing or unreadable
    file, or a header that is not one of :data:`HEADERS`.
    """
    with open_table(path, file_format) as table:
        return _rows_from_table(table.rows())


def _rows_from_table(table: Iterator[tuple[int, list[str]]]) -> list[RawRow]:
    first = next(table, None)
    if first is None:
        raise ImportFileError("файл пуст: нет строки заголовка")
    header = [cell.lower() for cell in first[1]]
    while header and header[-1] == "":
        header.pop()
    columns = tuple(header)
    if columns not in HEADERS:
        raise ImportFileError(_header_problem(header))
    rows: list[RawRow] = []
    for index, cells in table:
        if not any(cells):
            continue
        extra = cells[len(columns) :]
        if any(extra):
            width = len(cells)
            while width > len(columns) and not cells[width - 1]:
                width -= 1
            reason = f"лишние значения: {width} вместо {len(columns)}"
            rows.append(RawRow(index, {"*": reason}))
            continue
        padded = cells + [""] * (len(columns) - len(cells))
        rows.append(RawRow(index, dict(zip(columns, padded, strict=False))))
    return rows


def _header_problem(header: list[str]) -> str:
    expected = ",".join(COLUMNS)
    optional = ",".join(GRID_COLUMNS)
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in _ALL_COLUMNS]
    detail: list[str] = []
    if missing:
        detail.append("нет столбцов: " + ", ".join(missing))
    if unknown:
        detail.append("лишние столбцы: " + ", ".join(c or "(пусто)" for c in unknown))
    if not detail:
        if tuple(header[: len(COLUMNS)]) == COLUMNS:
            detail.append(f"после {COLUMNS[-1]} допустимы только feeder или {optional}")
        else:
            detail.append("столбцы в другом порядке")
    return (
        "неверная строка заголовка ("
        + "; ".join(detail)
        + f").\nОжидается ровно: {expected}\n"
        + f"и, если нужно, в конце необязательные столбцы: feeder или {optional}"
    )


# --------------------------------------------------------------------------- validation


def parse_money(text: str) -> Decimal:
    """Parse roubles as typed in Russia (``1 234,56``, ``1234.56``); reject negatives."""
    amount = parse_amount(text)
    if amount < 0:
        raise CellError(f"долг не может быть отрицательным: «{text}»")
    if amount >= MAX_DEBT:
        raise CellError(f"слишком большая сумма долга: «{text}»")
    return amount


_LETTERS = re.compile(r"[^\W\d_]")


def _parse_phone(text: str) -> str:
    try:
        number = parse_phone(text, require_russian=False)
    except InvalidPhoneError:
        raise CellError(f"неверный номер телефона: «{text}»") from None
    region = phonenumbers.region_code_for_number(number)
    if region != "RU":
        country = "Казахстан" if region == "KZ" else (region or "неизвестная страна")
        raise CellError(f"номер не российский ({country}): «{text}»")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_timezone(text: str) -> str:
    if text in RUSSIAN_TIMEZONES:
        return text
    for zone in RUSSIAN_TIMEZONES:
        if zone.lower() == text.lower():
            return zone
    raise CellError(
        f"неизвестный часовой пояс «{text}»; нужен пояс IANA России, например Europe/Moscow"
    )


def _parse_capacity(text: str) -> int:
    if not text.isdigit():
        raise CellError(f"разрядность счётчика должна быть целым числом, а не «{text}»")
    capacity = int(text)
    if not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise CellError(
            f"разрядность счётчика {capacity} вне допустимых пределов {MIN_CAPACITY}–{MAX_CAPACITY}"
        )
    return capacity


def parse_zones(text: str) -> tuple[str, ...]:
    """Parse a meter's zone labels into the stored vocabulary (1–3, known labels, no repeats).

    Accepts the bill labels (``день;ночь``, ``пик;полупик;ночь``, ``общая``), billing-export
    zone numbers ``Т1``…``Т3`` (Cyrillic or Latin T, any case; mapped by the zone count through
    :data:`NUMBERED_ZONES`), tariff names (:data:`TARIFF_NAMES`) and ``;``, ``/``, ``,`` or
    ``+`` as separators. The order is kept: readings are matched to zones by position.
    """
    folded = text.strip().lower().replace("ё", "е")
    if folded in TARIFF_NAMES:
        return TARIFF_NAMES[folded]
    labels = tuple("".join(part.split()) for part in _ZONE_SEPARATORS.split(text.strip().lower()))
    labels = tuple(_numbered_zone(label, len(labels), text) for label in labels)
    if any(not label for label in labels):
        raise CellError(f"пустая тарифная зона в «{text}»")
    if len(labels) > 3:
        raise CellError(f"у счётчика не бывает больше трёх тарифных зон: «{text}»")
    if len(set(labels)) != len(labels):
        raise CellError(f"тарифная зона повторяется: «{text}»")
    allowed = SINGLE_ZONE_LABELS if len(labels) == 1 else MULTI_ZONE_LABELS
    if len(labels) == 1 and labels[0] in MULTI_ZONE_LABELS:
        allowed = SINGLE_ZONE_LABELS | MULTI_ZONE_LABELS
    for label in labels:
        if label not in allowed:
            names = ", ".join(sorted(allowed))
            numbered = "Т1" if len(labels) == 1 else f"Т1–Т{len(labels)}"
            raise CellError(
                f"неизвестная тарифная зона «{label}»; допустимы: {names}, {numbered} "
                "или однотарифный/двухтарифный/трёхтарифный"
            )
    return labels


def _numbered_zone(label: str, count: int, text: str) -> str:
    """``т2`` (of a meter with ``count`` zones) → its stored label; other labels unchanged."""
    match = _ZONE_NUMBER.fullmatch(label)
    if match is None:
        return label
    number = int(match.group(1))
    if count > 3:
        return label  # reported as too many zones
    if number > count:
        kind = "однотарифного" if count == 1 else "двухтарифного"
        raise CellError(f"у {kind} счётчика нет зоны Т{number}: «{text}»")
    return NUMBERED_ZONES[count][number - 1]


def _parse_readings(
    text: str, zones: tuple[str, ...] | None, capacity: int | None
) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(";")]
    values: list[int] = []
    for part in parts:
        if not part:
            raise CellError(f"пустое показание в «{text}»")
        if _LETTERS.search(part):
            raise CellError(f"в показании есть буквы: «{part}»")
        if not part.isdigit():
            raise CellError(f"показание должно быть целым числом без знаков: «{part}»")
        if capacity is not None and len(part.lstrip("0") or "0") > capacity:
            raise CellError(f"показание «{part}» длиннее разрядности счётчика ({capacity} цифр)")
        values.append(int(part))
    if zones is not None and len(values) != len(zones):
        raise CellError(
            f"число показаний ({len(values)}) не совпадает с числом тарифных зон ({len(zones)})"
        )
    return tuple(values)


@dataclass
class _Seen:
    row: int
    account_normalized: str
    account: dict[str, str]
    meter: dict[str, str]


@dataclass
class ImportValidation:
    """The outcome of :func:`check_rows`."""

    #: Rows to import (bad soft cells already dropped).
    good: list[ImportRow] = field(default_factory=list)
    #: Every problem of the rejected rows.
    errors: list[RowError] = field(default_factory=list)
    #: Bad soft cells (:data:`SOFT_GROUPS`) of rows imported without them.
    warnings: list[RowError] = field(default_factory=list)
    #: Rows repeating an earlier row of the file exactly (column ``*``, the earlier row).
    duplicates: list[RowError] = field(default_factory=list)


def check_rows(
    rows: Iterable[RawRow],
    *,
    normalize_account: Callable[[str], str],
    today: date,
) -> ImportValidation:
    """Validate raw rows into rows to import, rejected rows, warnings and duplicates.

    ``normalize_account`` turns a raw account number into its stored normalised form (it
    raises ``ValueError`` for an invalid one). ``today`` bounds the reading date. A bad value
    in a soft cell (phone, time zone, readings, debt) is dropped with a warning; a row is
    rejected only when its account or meter cannot be stored. Rows of one account must agree
    on the account columns; a meter repeated in the file must repeat the same data, and a row
    repeating an earlier one exactly is reported as a duplicate and not imported twice.
    """
    result = ImportValidation()
    accounts: dict[str, _Seen] = {}
    meters: dict[str, _Seen] = {}  # by meter serial
    for raw in rows:
        if "*" in raw.cells:
            result.errors.append(RowError(raw.number, "*", raw.cells["*"]))
            continue
        row_errors, row_warnings, parsed = _validate_one(raw, normalize_account, today)
        duplicate_of: int | None = None
        if parsed is not None:
            consistency, duplicate_of = _check_consistency(raw, parsed, accounts, meters)
            row_errors += consistency
        if row_errors or parsed is None:
            result.errors.extend(sorted(row_errors + row_warnings, key=_column_order))
            continue
        if duplicate_of is not None:
            result.duplicates.append(
                RowError(raw.number, "*", f"повторяет строку {duplicate_of}, пропущена")
            )
            continue
        result.warnings.extend(row_warnings)
        result.good.append(parsed)
    result.good = _spread_grid(result.good)
    return result


def _spread_grid(rows: list[ImportRow]) -> list[ImportRow]:
    """Rows of an account whose grid cell is empty take the value another of its rows gives
    (an empty cell of an account column means "same as the other rows"); when none gives
    one, the empty cells clear the stored value."""
    stated: dict[tuple[str, str], str] = {}
    for row in rows:
        for column in GRID_COLUMNS:
            value = getattr(row, column)
            if value:
                stated.setdefault((row.account_normalized, column), value)

    def filled(row: ImportRow, column: str) -> str | None:
        value: str | None = getattr(row, column)
        return stated.get((row.account_normalized, column), "") if value == "" else value

    out: list[ImportRow] = []
    for row in rows:
        feeder, substation = filled(row, "feeder"), filled(row, "substation")
        if (feeder, substation) != (row.feeder, row.substation):
            row = replace(row, feeder=feeder, substation=substation)
        out.append(row)
    return out


def validate_rows(
    rows: Iterable[RawRow],
    *,
    normalize_account: Callable[[str], str],
    today: date,
) -> tuple[list[ImportRow], list[RowError]]:
    """:func:`check_rows` reduced to the rows to import and the errors of rejected rows."""
    result = check_rows(rows, normalize_account=normalize_account, today=today)
    return result.good, result.errors


def _column_order(error: RowError) -> tuple[int, int]:
    return error.row, _ALL_COLUMNS.index(error.column) if error.column in _ALL_COLUMNS else -1


def _validate_one(
    raw: RawRow, normalize_account: Callable[[str], str], today: date
) -> tuple[list[RowError], list[RowError], ImportRow | None]:
    """Errors (row rejected), warnings (soft cells dropped) and the row, if it is kept."""
    cells = raw.cells
    errs: list[RowError] = []

    def fail(column: str, reason: str) -> None:
        errs.append(RowError(raw.number, column, reason))

    for column in (
        "account_number",
        "full_name",
        "address",
        "meter_serial",
        "meter_capacity",
        "meter_zones",
    ):  # ``timezone`` may be empty: the zone is unknown (stored as NULL)
        if not cells[column]:
            fail(column, "не заполнено обязательное поле")

    normalized = ""
    if cells["account_number"]:
        try:
            normalized = normalize_account(cells["account_number"])
        except ValueError as exc:
            fail("account_number", str(exc))

    def parse(column: str, func: Callable[[str], _T]) -> _T | None:
        if not cells[column]:
            return None
        try:
            return func(cells[column])
        except CellError as exc:
            fail(column, str(exc))
            return None

    phone = parse("phone", _parse_phone)
    timezone = parse("timezone", _parse_timezone)
    capacity = parse("meter_capacity", _parse_capacity)
    zones = parse("meter_zones", parse_zones)
    readings = parse(
        "last_readings",
        lambda text: _parse_readings(text, zones, capacity),
    )
    reading_date = parse("last_reading_date", parse_date)
    if reading_date is not None and reading_date > today:
        fail("last_reading_date", f"дата показаний в будущем: «{cells['last_reading_date']}»")
        reading_date = None
    if cells["last_readings"] and not cells["last_reading_date"]:
        fail("last_reading_date", "указаны показания, но не указана их дата")
    if cells["last_reading_date"] and not cells["last_readings"]:
        fail("last_readings", "указана дата показаний, но нет самих показаний")
    grid = {column: _grid_cell(column, cells, fail) for column in GRID_COLUMNS}
    debt = parse("debt_rub", parse_money)
    due = parse("debt_due_date", parse_date)
    if cells["debt_due_date"] and not cells["debt_rub"]:
        fail("debt_rub", "указан срок оплаты, но не указана сумма долга")
    if debt is not None and debt > 0 and not cells["debt_due_date"]:
        fail("debt_due_date", "указан долг, но не указан срок оплаты")
    for column, limit in MAX_LENGTHS.items():
        if len(cells[column]) > limit:
            fail(column, f"слишком длинное значение (больше {limit} символов)")

    hard = [e for e in errs if e.column not in SOFT_COLUMNS]
    if hard or capacity is None or zones is None:
        return errs, [], None
    dropped = {e.column for e in errs}
    for group in SOFT_GROUPS:
        if dropped.intersection(group):
            dropped.update(group)
    if "phone" in dropped:
        phone = None
    if "timezone" in dropped:
        timezone = None
    if "last_readings" in dropped:
        readings, reading_date = None, None
    if "debt_rub" in dropped:
        debt, due = None, None
    for column in GRID_COLUMNS:
        if column in dropped:
            grid[column] = None
    return (
        [],
        errs,
        ImportRow(
            number=raw.number,
            account_number=cells["account_number"],
            account_normalized=normalized,
            full_name=" ".join(cells["full_name"].split()),
            phone=phone,
            address=" ".join(cells["address"].split()),
            timezone=timezone,
            meter_serial=cells["meter_serial"],
            meter_capacity=capacity,
            meter_zones=zones,
            last_readings=readings,
            last_reading_date=reading_date,
            debt_rub=debt,
            debt_due_date=due,
            feeder=grid["feeder"],
            substation=grid["substation"],
        ),
    )


def _grid_cell(column: str, cells: dict[str, str], fail: Callable[[str, str], None]) -> str | None:
    """The stored form of a grid cell: None when the file has no such column, "" for an
    empty cell (clears), else the trimmed text (too long: reported, None)."""
    if column not in cells:
        return None
    value = cells[column].strip()
    if len(value) > GRID_MAX_LENGTH:
        fail(column, f"слишком длинное значение (больше {GRID_MAX_LENGTH} символов)")
        return None
    return value


def _row_values(row: ImportRow) -> tuple[dict[str, str], dict[str, str]]:
    account = {
        "full_name": row.full_name,
        "phone": row.phone or "",
        "address": row.address,
        "timezone": row.timezone or "",
        "debt_rub": "" if row.debt_rub is None else str(row.debt_rub),
        "debt_due_date": "" if row.debt_due_date is None else row.debt_due_date.isoformat(),
        "feeder": row.feeder or "",
        "substation": row.substation or "",
    }
    meter = {
        "meter_capacity": str(row.meter_capacity),
        "meter_zones": ";".join(row.meter_zones),
        "last_readings": ";".join(str(v) for v in row.last_readings or ()),
        "last_reading_date": ""
        if row.last_reading_date is None
        else row.last_reading_date.isoformat(),
    }
    return account, meter


def _check_consistency(
    raw: RawRow,
    row: ImportRow,
    accounts: dict[str, _Seen],
    meters: dict[str, _Seen],
) -> tuple[list[RowError], int | None]:
    """Conflicts with earlier rows, and the earlier row this one repeats exactly (if any)."""
    account, meter = _row_values(row)
    errs: list[RowError] = []
    seen = accounts.get(row.account_normalized)
    if seen is not None:
        for column in ACCOUNT_COLUMNS:
            value, before = account[column], seen.account[column]
            if value and before and value != before:
                errs.append(
                    RowError(
                        raw.number,
                        column,
                        f"лицевой счёт {row.account_number} уже указан в строке {seen.row} "
                        f"с другим значением: «{raw.cells.get(column, '')}»",
                    )
                )
    seen_meter = meters.get(row.meter_serial)
    if seen_meter is not None and seen_meter.account_normalized != row.account_normalized:
        errs.append(
            RowError(
                raw.number,
                "meter_serial",
                f"счётчик {row.meter_serial} уже указан в строке {seen_meter.row} "
                "для другого лицевого счёта",
            )
        )
    elif seen_meter is not None:
        changed = [c for c in METER_COLUMNS if meter[c] != seen_meter.meter[c]]
        if changed:
            errs.append(
                RowError(
                    raw.number,
                    changed[0],
                    f"счётчик {row.meter_serial} уже есть в строке {seen_meter.row} "
                    "с другими данными",
                )
            )
    if errs:
        return errs, None
    if seen_meter is not None and seen_meter.account == account:
        return errs, seen_meter.row  # same account, meter and values: a repeated row
    if seen is None:
        accounts[row.account_normalized] = _Seen(
            raw.number, row.account_normalized, dict(account), meter
        )
    else:
        for column in ACCOUNT_COLUMNS:
            seen.account[column] = seen.account[column] or account[column]
    meters.setdefault(row.meter_serial, _Seen(raw.number, row.account_normalized, account, meter))
    return errs, None


# --------------------------------------------------------------------------- writing

_ORGANIZATION = re.compile(r"^(ООО|АО|ПАО|ЗАО|ОАО|НАО|МУП|ГУП|ФГУП|ТСЖ|ТСН|ЖСК|СНТ|ГБУ|МБУ|МКУ)\b")
RowOutcome = Literal["created", "updated", "unchanged"]


def consumer_kind(full_name: str) -> str:
    """``organization`` for names starting with a legal form (ООО, АО, ТСЖ …), else ``person``."""
    return "organization" if _ORGANIZATION.match(full_name.upper()) else "person"


def reading_timestamp(day: date, timezone: str) -> datetime:
    """The instant an imported reading is dated: local noon of ``day``, in UTC.

    Callers pass ``Account.local_timezone`` (the supplier's Moscow clock for an unknown zone).
    """
    return datetime.combine(day, time(12, 0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def import_consumers(
    db: Database,
    path: Path,
    *,
    file_format: FileFormat | None = None,
    dry_run: bool = False,
    today: date | None = None,
    normalize_account: Callable[[str], str] | None = None,
) -> ImportReport:
    """Import consumers, accounts, phones, meters, last readings and debts from ``path``.

    Every valid row is written in its own SAVEPOINT, so a row that fails in the database is
    reported and skipped without undoing the others; all audited changes are attributed to
    the actor ``import``. Rows are upserted by account number + meter serial, the last
    readings are stored once per meter, zone and date (source ``import``), and the account
    debt stated in ``debt_rub`` is kept as one charge keyed by account and due date (see
    :func:`_reconcile_debt`), so importing the same file again changes nothing, even after
    payments arrived. ``dry_run`` validates without writing.
    Raises :class:`ImportFileError` when the file as a whole cannot be read.
    """
    raw_rows = read_rows(path, file_format)
    day = today or datetime.now(UTC).date()
    checked = check_rows(
        raw_rows, normalize_account=normalize_account or normalize_account_number, today=day
    )
    good = checked.good
    report = ImportReport(
        source=str(path),
        dry_run=dry_run,
        rows_read=len(raw_rows),
        rows_valid=len(good),
        errors=checked.errors,
        warnings=checked.warnings,
        duplicates=checked.duplicates,
    )
    if dry_run:
        # Without the database: accounts none of whose rows gives a zone in the file.
        in_file: dict[str, bool] = {}
        for row in good:
            in_file[row.account_normalized] = (
                in_file.get(row.account_normalized, False) or row.timezone is not None
            )
        report.accounts_without_timezone = sum(not known for known in in_file.values())
        return report
    zone_known: dict[str, bool] = {}
    with acting_as("import"), db.transaction() as session:
        matching = kept_payments_exist(session)
        for row in good:
            try:
                with session.begin_nested():
                    outcome, has_zone = _apply_row(session, row, day)
                    matched = 0
                    if matching and row.account_normalized not in zone_known:
                        matched = _match_payments(session, row.account_normalized)
                report.payments_matched += matched
            except (SQLAlchemyError, ValueError) as exc:
                # A constraint or model validator refused the row: report it, keep going.
                logger.warning("import row %s failed in the database: %s", row.number, exc)
                reason = (str(getattr(exc, "orig", None) or exc).splitlines() or ["?"])[0]
                report.errors.extend(w for w in report.warnings if w.row == row.number)
                report.warnings = [w for w in report.warnings if w.row != row.number]
                report.errors.append(
                    RowError(row.number, "*", f"строку не удалось записать в базу: {reason}")
                )
                continue
            zone_known[row.account_normalized] = has_zone
            if outcome == "created":
                report.rows_created += 1
            elif outcome == "updated":
                report.rows_updated += 1
            else:
                report.rows_unchanged += 1
    report.accounts_without_timezone = sum(not known for known in zone_known.values())
    report.errors.sort(key=_column_order)
    logger.info(
        "import of %s: %d rows, %d created, %d updated, %d unchanged, %d with warnings, "
        "%d duplicates, %d rejected",
        path,
        report.rows_read,
        report.rows_created,
        report.rows_updated,
        report.rows_unchanged,
        len(report.warned_rows),
        len(report.duplicates),
        len(report.rejected_rows),
    )
    return report


def _match_payments(session: Session, number: str) -> int:
    """Record on the imported account the registry payments kept aside for its number."""
    account = session.scalars(select(Account).where(Account.number == number)).one()
    return match_kept_payments(session, account)


def _set(obj: object, name: str, value: object) -> bool:
    """Assign only when the value differs (so unchanged rows produce no audit entries)."""
    if getattr(obj, name) == value:
        return False
    setattr(obj, name, value)
    return True


def _apply_row(session: Session, row: ImportRow, today: date) -> tuple[RowOutcome, bool]:
    """Upsert one row; returns the outcome and whether the account's zone is known after it."""
    created = False
    changed = False
    account = session.scalars(
        select(Account).where(Account.number == row.account_normalized)
    ).one_or_none()
    if account is None:
        consumer = Consumer(kind=consumer_kind(row.full_name), full_name=row.full_name)
        account = Account(
            consumer=consumer,
            number_raw=row.account_number,
            number=row.account_normalized,
            service_address=row.address,
            timezone=row.timezone,
            feeder=row.feeder or None,
            substation=row.substation or None,
        )
        session.add(account)
        created = True
    else:
        changed |= _set(account.consumer, "full_name", row.full_name)
        changed |= _set(account, "number_raw", row.account_number)
        changed |= _set(account, "service_address", row.address)
        if row.timezone is not None:  # an empty cell never erases a known zone
            changed |= _set(account, "timezone", row.timezone)
        for column in GRID_COLUMNS:
            value = getattr(row, column)
            if value is not None:  # an absent column keeps the stored value, "" clears it
                changed |= _set(account, column, value or None)
    session.flush()

    if row.phone is not None:
        changed |= _link_phone(session, account, row.phone)

    meter = session.scalars(
        select(Meter).where(Meter.account_id == account.id, Meter.serial == row.meter_serial)
    ).one_or_none()
    if meter is None:
        meter = Meter(
            account=account,
            serial=row.meter_serial,
            capacity=row.meter_capacity,
            zones=list(row.meter_zones),
        )
        session.add(meter)
        session.flush()
        created = True
    else:
        changed |= _set(meter, "capacity", row.meter_capacity)
        changed |= _set(meter, "zones", list(row.meter_zones))

    if row.last_readings is not None and row.last_reading_date is not None:
        readings = dict(zip(row.meter_zones, row.last_readings, strict=True))
        changed |= _store_readings(
            session, meter, readings, row.last_reading_date, account.local_timezone
        )
    if row.debt_rub is not None:
        changed |= _reconcile_debt(
            session, account, row.debt_rub, row.debt_due_date or today, today
        )
    session.flush()
    has_zone = account.timezone is not None
    if created:
        return "created", has_zone
    return ("updated" if changed else "unchanged"), has_zone


def _link_phone(session: Session, account: Account, e164: str) -> bool:
    if any(p.e164 == e164 for p in phones_for_account(session, account.id)):
        return False
    link_phone(session, account.id, e164, source="import")
    return True


def _store_readings(
    session: Session, meter: Meter, readings: dict[str, int], day: date, timezone: str
) -> bool:
    at = reading_timestamp(day, timezone)
    existing = {
        r.zone: r
        for r in session.scalars(
            select(MeterReading).where(
                MeterReading.meter_id == meter.id,
                MeterReading.source == "import",
                MeterReading.submitted_at == at,
            )
        )
    }
    changed = False
    period = day.replace(day=1)
    for zone, value in readings.items():
        known = session.scalar(
            select(MeterReading.id).where(
                MeterReading.meter_id == meter.id,
                MeterReading.zone == zone,
                MeterReading.period == period,
                MeterReading.value == value,
            )
        )
        if known is not None:  # the same value is already stored for the period (any source)
            continue
        reading = existing.get(zone)
        if reading is None:
            session.add(
                MeterReading(
                    meter_id=meter.id,
                    zone=zone,
                    value=value,
                    period=period,
                    source="import",
                    submitted_at=at,
                )
            )
            changed = True
        else:
            changed |= _set(reading, "value", value)
    return changed


def debt_key(account_number: str, due: date) -> str:
    """The ``Charge.external_key`` of the debt an import states for an account and due date."""
    return f"import:{account_number}:{due.isoformat()}"


def _reconcile_debt(
    session: Session, account: Account, debt: Decimal, due: date, today: date
) -> bool:
    """Record the debt the file states for ``due`` as one keyed charge (see :func:`debt_key`).

    The first time a (account, due date) statement is seen, the keyed charge gets the
    difference that brings the account's net balance (charges − payments) to ``debt``; it
    may be negative (a credit) or zero (nothing to bill, but the statement is remembered).
    The charge keeps the stated value in ``stated_balance``, so importing the same statement
    again changes nothing even after payments arrived. A different value for the same due
    date (a newer file) is taken as the balance as of now: the keyed charge moves by the
    difference, so the net balance equals the new value again. The charge is billed to the
    month before ``due`` (never later than the current month, so
    :func:`crm_store.ledger.balance` counts it on the next import as well).
    """
    key = debt_key(account.number, due)
    session.flush()
    existing = charge_by_key(session, key)
    stated = existing.stated_balance if existing is not None else None
    if stated is not None and to_money(stated) == debt:
        return False
    state = balance(session, account.id, today)
    difference = debt - (state.debt - state.credit)
    amount = difference if existing is None else to_money(existing.amount) + difference
    period = (due.replace(day=1) - timedelta(days=1)).replace(day=1)
    _charge, changed = put_keyed_charge(
        session,
        account.id,
        external_key=key,
        period=min(period, today.replace(day=1)),
        amount=amount,
        due_date=due,
        source="import",
        stated_balance=debt,
    )
    return changed
