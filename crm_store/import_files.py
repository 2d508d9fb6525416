"""Reading billing data files: format, encoding, the table, its header, cell values, reports.

Shared by the consumer import (:mod:`crm_store.importer`), the payments registry import
(:mod:`crm_store.import_payments`) and the charges import (:mod:`crm_store.import_charges`).

* :func:`open_table` streams a CSV or XLSX file as ``(row number, cells)`` without loading it:
  CSV in UTF-8 (with or without BOM), UTF-16 with BOM or cp1251, the encoding decided by one
  pass over the bytes before any row is read (so a file is refused before anything is
  written); the delimiter (``;``, ``,``, tab or ``|``) from its first lines. XLSX is read
  from its first sheet in openpyxl's read-only mode. Row numbers are those a spreadsheet
  shows (the header is usually row 1).
* :class:`Column` and :func:`find_header` match header names as people and billing systems
  write them (case, ``ё``, punctuation, ``№``, a trailing ``руб.`` are ignored), looking for
  the header among the first :data:`HEADER_SEARCH_ROWS` rows (registries often start with a
  title line).
* :func:`parse_amount`, :func:`parse_date`, :func:`parse_moment`, :func:`parse_period`: money
  as :class:`~decimal.Decimal` straight from the text (never a float: an XLSX number cell is
  rendered with ``repr``, the shortest text that reads back as the same number), dates and
  times in Russian and ISO notations.
* :class:`ProblemLog` keeps the counts of problem rows and the first ones of each kind, and
  can write all of them to a CSV file, so a million-row report stays small.

Problems with the file as a whole raise :class:`~crm_store.errors.ImportFileError` with one
line of plain Russian.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from crm_store.errors import ImportFileError

FileFormat = Literal["csv", "xlsx"]

#: How many leading rows may precede the header (a registry's title, its date …).
HEADER_SEARCH_ROWS = 20
_SNIFF_CHUNK = 1 << 20
_DELIMITERS = (";", ",", "\t", "|")
_XLSX_MAGIC = b"PK\x03\x04"


class CellError(ValueError):
    """A single cell failed validation; the message is the reason shown to the user."""


@dataclass(frozen=True)
class RowError:
    """A problem of one row: spreadsheet row number, column (or ``"*"``) and reason."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"строка {self.row}" + ("" if self.column == "*" else f", столбец {self.column}")
        return f"{where}: {self.reason}"


# --------------------------------------------------------------------------- the file


def check_path(path: Path) -> None:
    """Raise :class:`ImportFileError` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise ImportFileError(f"файл не найден: {path}")
    if not path.is_file():
        raise ImportFileError(f"это не файл: {path}")


def detect_format(path: Path) -> FileFormat:
    """Guess the format from the extension, then from the first bytes (XLSX is a ZIP)."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return "xlsx"
    if suffix in (".csv", ".txt"):
        return "csv"
    with path.open("rb") as fh:
        head = fh.read(4)
    return "xlsx" if head.startswith(_XLSX_MAGIC) else "csv"


def csv_encoding(path: Path) -> str:
    """The text encoding of a CSV file, from one pass over its bytes.

    UTF-16 when it starts with a UTF-16 byte-order mark; else UTF-8 (with or without BOM) if
    every byte decodes as such; else cp1251. Raises :class:`ImportFileError` for an empty
    file, a ZIP (an XLSX book) or binary data (NUL bytes), and bytes cp1251 does not have.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
        if not head:
            raise ImportFileError("файл пуст: нет строки заголовка")
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            fh.seek(0)
            wide = codecs.getincrementaldecoder("utf-16")()
            try:
                while chunk := fh.read(_SNIFF_CHUNK):
                    wide.decode(chunk)
                wide.decode(b"", final=True)
            except UnicodeDecodeError:
                raise ImportFileError(
                    "файл начинается как UTF-16, но не читается в этой кодировке (обрезан?)"
                ) from None
            return "utf-16"
        if head.startswith(_XLSX_MAGIC):
            raise ImportFileError(
                "файл не похож на текстовый CSV (это книга Excel); для Excel укажите --format xlsx"
            )
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        utf8 = True
        undefined_cp1251 = False
        while chunk := fh.read(_SNIFF_CHUNK):
            if b"\x00" in chunk:
                raise ImportFileError(
                    "файл не похож на текстовый CSV (двоичные данные); "
                    "для Excel укажите --format xlsx"
                )
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            undefined_cp1251 = undefined_cp1251 or b"\x98" in chunk
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        return "utf-8-sig"
    if undefined_cp1251:
        raise ImportFileError("кодировка файла не распознана: нужен UTF-8 или Windows-1251")
    return "cp1251"


def _sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter used most in the first lines (``;`` wins ties: Russian Excel's choice)."""
    counts = {d: sum(line.count(d) for line in lines) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ";"


class Table:
    """An open data file read row by row: ``(row number, cell texts)``, stripped by default.

    Use as a context manager (or call :meth:`close`). ``unit`` tells what :meth:`position`
    and ``total`` count: bytes of a CSV file, rows of an XLSX sheet (``total`` 0: unknown).
    """

    def __init__(
        self, path: Path, file_format: FileFormat | None = None, *, strip: bool = True
    ) -> None:
        check_path(path)
        self.path = path
        self.strip = strip
        self.format: FileFormat = file_format or detect_format(path)
        self.encoding = ""
        self.delimiter = ""
        self.unit: Literal["bytes", "rows"] = "bytes"
        self.total = 0
        self._binary: IO[bytes] | None = None
        self._closers: list[Callable[[], None]] = []
        self._row = 0
        try:
            self._rows = self._open_csv() if self.format == "csv" else self._open_xlsx()
        except OSError as exc:
            self.close()
            raise ImportFileError(
                f"не удалось прочитать файл {path}: {exc.strerror or exc}"
            ) from None
        except (UnicodeDecodeError, csv.Error) as exc:
            self.close()
            raise ImportFileError(f"файл не читается как CSV: {exc}") from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file (and the XLSX book)."""
        while self._closers:
            self._closers.pop()()

    def position(self) -> int:
        """How far reading got: bytes (CSV) or rows (XLSX)."""
        if self._binary is not None and not self._binary.closed:
            return self._binary.tell()
        return self._row

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Every row as ``(row number, cell texts)`` (see ``strip``)."""
        try:
            for number, cells in self._rows:
                self._row = number
                yield number, cells
        except csv.Error as exc:
            raise ImportFileError(
                f"файл не читается как CSV (строка {self._row + 1}): {exc}"
            ) from None
        except UnicodeDecodeError:
            raise ImportFileError(
                f"файл не читается в кодировке {self.encoding} (строка {self._row + 1})"
            ) from None
        except OSError as exc:
            raise ImportFileError(f"не удалось прочитать файл: {exc.strerror or exc}") from None

    def _open_csv(self) -> Iterator[tuple[int, list[str]]]:
        self.encoding = csv_encoding(self.path)
        self.total = self.path.stat().st_size
        binary = self.path.open("rb")
        self._binary = binary
        text = io.TextIOWrapper(binary, encoding=self.encoding, newline="")
        self._closers.append(text.close)
        head = list(itertools.islice(text, HEADER_SEARCH_ROWS))
        self.delimiter = _sniff_delimiter(head)
        reader = csv.reader(itertools.chain(head, text), delimiter=self.delimiter)
        if not self.strip:
            return enumerate(reader, start=1)
        return (
            (number, [cell.strip() for cell in cells])
            for number, cells in enumerate(reader, start=1)
        )

    def _open_xlsx(self) -> Iterator[tuple[int, list[str]]]:
        from openpyxl import load_workbook  # deferred: 0.2 s to import; only .xlsx files need it

        self.unit = "rows"
        fh = self.path.open("rb")
        self._closers.append(fh.close)
        try:
            workbook = load_workbook(fh, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise ImportFileError(f"файл не читается как XLSX: {exc}") from None
        self._closers.append(workbook.close)
        if not workbook.worksheets:
            raise ImportFileError("в книге XLSX нет листов")
        sheet = workbook.worksheets[0]
        self.total = int(getattr(sheet, "max_row", 0) or 0)
        return (
            (number, [cell_text(v).strip() for v in values])
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        )


def open_table(path: Path, file_format: FileFormat | None = None, *, strip: bool = True) -> Table:
    """Open ``path`` for reading row by row (see :class:`Table`).

    ``strip=False`` leaves the spaces around CSV cells (the caller strips the cells it
    uses: cheaper for wide registries); XLSX cells are always stripped.
    """
    return Table(path, file_format, strip=strip)


def cell_text(value: object) -> str:
    """Render an XLSX cell value as the text a user typed (money never through a float sum).

    A float is written with ``repr`` (the shortest decimal that reads back as the same
    binary number) and then as a plain decimal: 1234.56 → ``1234.56``, 1e-05 → ``0.00001``.
    A datetime at midnight is a date; otherwise ``YYYY-MM-DD HH:MM:SS``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        if value.time() == time(0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# --------------------------------------------------------------------------- the header

_HEADER_DROP = re.compile(r"[^\w]+")
_UNIT_WORDS = frozenset({"руб", "р", "рублей", "рубли", "коп", "rub", "rur"})


def header_key(text: str) -> str:
    """A header cell as compared: lower case, ``ё``→``е``, ``№``→``номер``, no punctuation,
    no trailing currency: ``"Сумма, руб."`` → ``"сумма"``, ``"№ платежа"`` → ``"номер платежа"``.
    """
    folded = text.strip().lower().replace("ё", "е").replace("№", " номер ")
    words = _HEADER_DROP.sub(" ", folded).replace("_", " ").split()
    while words and words[-1] in _UNIT_WORDS:
        words.pop()
    return " ".join(words)


@dataclass(frozen=True)
class Column:
    """A column an import understands: its key, the header names accepted, whether needed."""

    key: str
    title: str
    names: tuple[str, ...] = ()
    required: bool = True

    def matches(self, key: str) -> bool:
        """True when a header cell (as :func:`header_key`) names this column."""
        return key in self._keys

    @property
    def _keys(self) -> frozenset[str]:
        return frozenset(header_key(name) for name in (self.key, self.title, *self.names))


@dataclass(frozen=True)
class Shape:
    """One layout of a file: a name and its columns (a charges file has two shapes)."""

    name: str
    columns: tuple[Column, ...]

    def required(self) -> tuple[Column, ...]:
        """The columns a header must have."""
        return tuple(c for c in self.columns if c.required)


@dataclass(frozen=True)
class Header:
    """The header found: its row number, the shape it fits and each column's cell index."""

    row: int
    shape: Shape
    index: dict[str, int]
    #: Each column's header text as the file writes it (for the report's column names).
    titles: dict[str, str]


def _match(cells: Sequence[str], shape: Shape) -> tuple[dict[str, int], list[Column], str | None]:
    """Cell index by column key, the required columns missing, and an ambiguity if any."""
    keys = [header_key(cell) for cell in cells]
    index: dict[str, int] = {}
    for column in shape.columns:
        found = [i for i, key in enumerate(keys) if key and column.matches(key)]
        if len(found) > 1:
            names = ", ".join(f"«{cells[i]}»" for i in found)
            return index, [], f"столбец «{column.title}» указан несколько раз: {names}"
        if found:
            index[column.key] = found[0]
    taken: dict[int, str] = {}
    for key, i in index.items():
        if i in taken:
            return index, [], f"столбец «{cells[i]}» подходит и к «{taken[i]}», и к «{key}»"
        taken[i] = key
    missing = [c for c in shape.required() if c.key not in index]
    return index, missing, None


def find_header(rows: Iterator[tuple[int, list[str]]], shapes: Sequence[Shape]) -> Header:
    """Find the header among the first :data:`HEADER_SEARCH_ROWS` rows of ``rows``.

    The rows before it are consumed and ignored (a registry's title). A row that fits more
    than one shape, or none, raises :class:`ImportFileError` naming what is missing in the
    row that came closest.
    """
    best: tuple[int, int, list[str], Shape, list[Column]] | None = None
    seen = 0
    for number, row in rows:
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        seen += 1
        fits: list[tuple[Shape, dict[str, int]]] = []
        for shape in shapes:
            index, missing, ambiguity = _match(cells, shape)
            if ambiguity is not None:
                raise ImportFileError(f"неверная строка заголовка (строка {number}): {ambiguity}")
            if not missing:
                fits.append((shape, index))
            score = len(shape.required()) - len(missing)
            if best is None or score > best[1]:
                best = (number, score, cells, shape, missing)
        if len(fits) > 1:
            names = " и ".join(f"«{shape.name}»" for shape, _ in fits)
            raise ImportFileError(
                f"по заголовку (строка {number}) нельзя понять, что в файле: подходит и {names}"
            )
        if fits:
            shape, index = fits[0]
            return Header(number, shape, index, {key: cells[i] for key, i in index.items()})
        if seen >= HEADER_SEARCH_ROWS:
            break
    if best is None:
        raise ImportFileError("файл пуст: нет строки заголовка")
    number, score, _cells, shape, missing = best
    if score == 0:
        expected = " или ".join(", ".join(f"«{c.title}»" for c in s.required()) for s in shapes)
        raise ImportFileError(
            f"не найдена строка заголовка: файл не похож на нужный, ожидаются столбцы {expected}"
        )
    wanted = ", ".join(f"«{c.title}»" for c in missing)
    what = f" ({shape.name})" if len(shapes) > 1 else ""
    raise ImportFileError(
        f"неверная строка заголовка{what}: в строке {number} нет столбцов: {wanted}"
    )


def cells_of(cells: list[str], index: dict[str, int]) -> dict[str, str]:
    """The cells of one row by column key (missing trailing cells are empty)."""
    width = len(cells)
    return {key: (cells[i] if i < width else "") for key, i in index.items()}


def is_total_row(cells: Sequence[str]) -> bool:
    """True for a registry's summary line (``Итого``, ``Всего`` …) rather than a payment."""
    for cell in cells:
        if cell.strip():
            word = cell.lower().split()[0].rstrip(":.")
            return word in ("итого", "всего", "total")
    return False


# --------------------------------------------------------------------------- values

_MONEY = re.compile(r"[-+]?\d+(?:[.,]\d{1,2})?")
_MONEY_DROP = str.maketrans("", "", " \t\r\n\u00a0\u2007\u2009\u202f'")
_MONEY_SUFFIXES = ("₽", "руб.", "руб", "р.", "rub")
_CENT = Decimal("0.01")


def parse_amount(text: str) -> Decimal:
    """Roubles as typed in Russia: ``1 234,56``, ``1234.56``, ``-15``, ``99,9 ₽``.

    Spaces of any kind (also non-breaking) and apostrophes separate thousands; ``,`` or
    ``.`` separates at most two decimals, so ``1.234,56`` and ``1,234`` are refused as
    ambiguous. The text becomes a :class:`~decimal.Decimal` directly (never a float).
    Raises :class:`CellError` with a Russian reason.
    """
    compact = text.translate(_MONEY_DROP)
    if compact and not compact[-1].isdigit():
        lowered = compact.lower()
        for suffix in _MONEY_SUFFIXES:
            if lowered.endswith(suffix):
                compact = compact[: -len(suffix)]
                break
    if not _MONEY.fullmatch(compact):
        raise CellError(f"сумма «{text}» не распознана; пример правильной записи: 1 234,56")
    amount = Decimal(compact.replace(",", "."))
    return amount if compact[-3:-2] in (",", ".") else amount.quantize(_CENT)


_DATE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_RU = re.compile(r"\d{2}\.\d{2}\.\d{4}")
_XLSX_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` or ``DD.MM.YYYY``; raise :class:`CellError` with a Russian reason.

    An XLSX date-time cell (``YYYY-MM-DD HH:MM:SS``, see :func:`cell_text`) gives its date.
    """
    if _XLSX_MOMENT.fullmatch(text):
        text = text[:10]
    try:
        if _DATE_ISO.fullmatch(text):
            return date.fromisoformat(text)
        if _DATE_RU.fullmatch(text):
            day, month, year = (int(part) for part in text.split("."))
            return date(year, month, day)
    except ValueError:
        raise CellError(f"такой даты нет: «{text}»") from None
    raise CellError(f"дата «{text}» не распознана; нужен формат ГГГГ-ММ-ДД или ДД.ММ.ГГГГ")


_MOMENT_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?"
)
_MOMENT_RU = re.compile(
    r"(\d{1,2})[./](\d{1,2})[./](\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?")


def parse_moment(text: str, zone: tzinfo) -> tuple[date, datetime | None]:
    """A date with an optional time: ``(local date, aware moment or None)``.

    Accepts ``DD.MM.YYYY``, ``DD.MM.YY``, ``DD/MM/YYYY`` and ``YYYY-MM-DD``, each optionally
    followed by ``HH:MM`` or ``HH:MM:SS``; an ISO moment may carry ``Z`` or an offset. A
    time without an offset is read in ``zone``; the date is the local date there.
    """
    iso = _MOMENT_ISO.fullmatch(text)
    if iso is not None:
        year, month, day, hour, minute, second, offset = iso.groups()
    else:
        ru = _MOMENT_RU.fullmatch(text)
        if ru is None:
            raise CellError(
                f"дата «{text}» не распознана; нужен формат ДД.ММ.ГГГГ ЧЧ:ММ или ГГГГ-ММ-ДД"
            )
        day, month, year, hour, minute, second = ru.groups()
        offset = None
        if len(year) == 2:
            year = "20" + year
    try:
        day_value = date(int(year), int(month), int(day))
        if hour is None:
            return day_value, None
        moment = datetime.combine(day_value, time(int(hour), int(minute), int(second or 0)))
    except ValueError:
        raise CellError(f"такой даты или времени нет: «{text}»") from None
    if offset is not None:
        aware = datetime.fromisoformat(
            moment.isoformat() + ("+00:00" if offset == "Z" else _colon(offset))
        )
        return aware.astimezone(zone).date(), aware
    aware = moment.replace(tzinfo=zone)
    return day_value, aware


class MomentReader:
    """:func:`parse_moment` for a column of one file: dates are parsed once and cached.

    Registries repeat a few dates with many times; ``DATE HH:MM[:SS]`` takes a fast path,
    anything else (ISO ``T``, offsets, errors) goes through :func:`parse_moment`.
    """

    CACHE = 4096

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._days: dict[str, date] = {}

    def __call__(self, text: str) -> tuple[date, datetime | None]:
        """``(local date, aware moment or None)`` of ``text`` (see :func:`parse_moment`)."""
        head, _, tail = text.partition(" ")
        day = self._days.get(head)
        if day is None:
            try:
                day, moment = parse_moment(head, self.zone)
            except CellError:
                return parse_moment(text, self.zone)
            if moment is not None:
                return parse_moment(text, self.zone)
            if len(self._days) < self.CACHE:
                self._days[head] = day
        if not tail:
            return day, None
        if len(tail) == 8 and tail[2] == tail[5] == ":" and tail.replace(":", "").isdigit():
            hour, minute, second = tail[:2], tail[3:5], tail[6:]  # HH:MM:SS, the usual
        else:
            match = _TIME.fullmatch(tail.strip())
            if match is None:
                return parse_moment(text, self.zone)
            hour, minute, second = match.groups()
        try:
            moment = datetime(
                day.year,
                day.month,
                day.day,
                int(hour),
                int(minute),
                int(second or 0),
                tzinfo=self.zone,
            )
        except ValueError:
            raise CellError(f"такого времени нет: «{text}»") from None
        return day, moment


def _colon(offset: str) -> str:
    return offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"


def parse_time(text: str) -> time:
    """``HH:MM`` or ``HH:MM:SS`` (fractions ignored); raise :class:`CellError`."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise CellError(f"время «{text}» не распознано; нужен формат ЧЧ:ММ или ЧЧ:ММ:СС")
    hour, minute, second = match.groups()
    try:
        return time(int(hour), int(minute), int(second or 0))
    except ValueError:
        raise CellError(f"такого времени нет: «{text}»") from None


_PERIOD_YM = re.compile(r"(\d{4})[-./](\d{1,2})")
_PERIOD_MY = re.compile(r"(\d{1,2})[-./](\d{4})")
_MONTHS = {
    "январь": 1,
    "февраль": 2,
    "март": 3,
    "апрель": 4,
    "май": 5,
    "июнь": 6,
    "июль": 7,
    "август": 8,
    "сентябрь": 9,
    "октябрь": 10,
    "ноябрь": 11,
    "декабрь": 12,
}


def parse_period(text: str) -> date:
    """A billing month as its first day: ``2026-11``, ``11.2026``, ``ноябрь 2026`` or a date.

    A full date (``DD.MM.YYYY``, ``YYYY-MM-DD``) stands for its month.
    """
    folded = text.strip().lower().replace("ё", "е")
    for pattern, order in ((_PERIOD_YM, "ym"), (_PERIOD_MY, "my")):
        match = pattern.fullmatch(folded)
        if match is not None:
            first, second = (int(g) for g in match.groups())
            year, month = (first, second) if order == "ym" else (second, first)
            if not 1 <= month <= 12:
                raise CellError(f"такого месяца нет: «{text}»")
            return date(year, month, 1)
    parts = folded.split()
    if len(parts) == 2 and parts[0] in _MONTHS and parts[1].isdigit() and len(parts[1]) == 4:
        return date(int(parts[1]), _MONTHS[parts[0]], 1)
    try:
        return parse_date(folded).replace(day=1)
    except CellError:
        raise CellError(
            f"период «{text}» не распознан; нужен формат ГГГГ-ММ, ММ.ГГГГ или дата"
        ) from None


def next_month(day: date, *, plus_days: int = 0) -> date:
    """The first day of the month after ``day``, plus ``plus_days``."""
    first = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first + timedelta(days=plus_days)


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ImportProgress:
    """How far an import got: rows read, position in the file, batches committed.

    ``done`` and ``total`` count bytes for CSV, rows for XLSX (``total`` 0: unknown).
    """

    rows_read: int
    done: int
    total: int
    batches_committed: int


ProgressFn = Callable[[ImportProgress], None]


@dataclass
class BatchResult:
    """One batch of rows written in one transaction: its rows and whether it landed."""

    number: int
    first_row: int
    last_row: int
    rows: int
    committed: bool
    error: str | None = None

    def __str__(self) -> str:
        rows = f"строки {self.first_row}–{self.last_row}"
        if self.committed:
            return f"пакет {self.number} ({rows}): записан"
        return f"пакет {self.number} ({rows}): НЕ записан — {self.error}"


class ProblemLog:
    """Problem rows by kind: every count, the first ``limit`` of each kind, all in a CSV file.

    Kinds are short names (``error``, ``duplicate``, ``unmatched`` …). With ``csv_path`` every
    problem is also written to that file (columns kind, row, column, reason), so nothing is
    lost when the report lists only the first ones.
    """

    def __init__(self, limit: int = 100, csv_path: Path | None = None) -> None:
        self.limit = limit
        self.csv_path = csv_path
        self.counts: dict[str, int] = {}
        self.row_counts: dict[str, int] = {}
        self.listed: dict[str, list[RowError]] = {}
        self._last_row: dict[str, int] = {}
        self._file: IO[str] | None = None
        self._writer: Any = None

    def add(self, kind: str, problem: RowError) -> None:
        """Count ``problem`` under ``kind``; keep it if fewer than ``limit`` are kept."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._last_row.get(kind) != problem.row:  # problems arrive grouped by row
            self._last_row[kind] = problem.row
            self.row_counts[kind] = self.row_counts.get(kind, 0) + 1
        kept = self.listed.setdefault(kind, [])
        if len(kept) < self.limit:
            kept.append(problem)
        if self.csv_path is not None:
            if self._file is None:
                self._file = self.csv_path.open("w", encoding="utf-8-sig", newline="")
                self._writer = csv.writer(self._file, delimiter=";")
                self._writer.writerow(["вид", "строка", "столбец", "причина"])
            self._writer.writerow([kind, problem.row, problem.column, problem.reason])

    def close(self) -> None:
        """Close the CSV file (if any)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def count(self, kind: str) -> int:
        """How many problems of ``kind`` there were."""
        return self.counts.get(kind, 0)

    def row_count(self, kind: str) -> int:
        """How many rows had problems of ``kind`` (a row with three bad cells counts once)."""
        return self.row_counts.get(kind, 0)

    def rows(self, kind: str) -> list[RowError]:
        """The first problems of ``kind`` (at most ``limit``)."""
        return list(self.listed.get(kind, []))

    def lines(self, kind: str, title: str) -> list[str]:
        """``title: N`` and the listed problems, with a note when more were left out."""
        total = self.count(kind)
        if not total:
            return []
        out = [f"{title}: {total}"]
        kept = self.listed.get(kind, [])
        out.extend(f"  {problem}" for problem in kept)
        if total > len(kept):
            where = f" (все — в файле {self.csv_path})" if self.csv_path is not None else ""
            out.append(f"  … и ещё {total - len(kept)} замечаний{where}")
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-able: counts and the listed problems by kind."""
        return {
            "counts": dict(self.counts),
            "rows": dict(self.row_counts),
            "listed": {
                kind: [{"row": p.row, "column": p.column, "reason": p.reason} for p in kept]
                for kind, kept in self.listed.items()
            },
            "file": None if self.csv_path is None else str(self.csv_path),
        }
