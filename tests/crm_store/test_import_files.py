"""Reading billing files: encodings, delimiters, headers, money, dates, the bounded report."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from crm_store.errors import ImportFileError
from crm_store.import_files import (
    CellError,
    Column,
    MomentReader,
    ProblemLog,
    RowError,
    Shape,
    cell_text,
    find_header,
    header_key,
    open_table,
    parse_amount,
    parse_date,
    parse_moment,
    parse_period,
)

MOSCOW = ZoneInfo("Europe/Moscow")
SHAPE = Shape(
    "реестр",
    (
        Column("account", "Лицевой счёт", ("лицевой счет", "account")),
        Column("amount", "Сумма", ("amount",)),
        Column("agent", "Агент", ("agent",), required=False),
    ),
)
OTHER = Shape("сальдо", (Column("account", "Лицевой счёт", ("лицевой счет",)), Column("b", "Долг")))


def _rows(path: Path, **kw: object) -> list[tuple[int, list[str]]]:
    with open_table(path, **kw) as table:  # type: ignore[arg-type]
        return list(table.rows())


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("cp1251", b""), ("utf-16", b"")],
)
def test_encodings_are_recognised(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(prefix + "Лицевой счёт;Сумма\r\nРА-1;1 234,56\r\n".encode(encoding))
    assert _rows(path) == [(1, ["Лицевой счёт", "Сумма"]), (2, ["РА-1", "1 234,56"])]


@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"a{delimiter}b{delimiter}c\n1{delimiter}2{delimiter}3\n", encoding="utf-8")
    assert _rows(path)[1] == (2, ["1", "2", "3"])


def test_cells_are_stripped_unless_asked_not_to(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a;b\n 1 ; 2\n", encoding="utf-8")
    assert _rows(path)[1] == (2, ["1", "2"])
    assert _rows(path, strip=False)[1] == (2, [" 1 ", " 2"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "файл пуст"),
        (b"\x00\x01binary", "двоичные данные"),
        (b"PK\x03\x04zip", "книга Excel"),
        ("Сумма\n1\n".encode("cp1251") + b"\x98", "кодировка файла не распознана"),
        ("Сумма;Дата\n1;2\n".encode("utf-16")[:-1], "UTF-16"),
    ],
)
def test_files_that_are_not_text_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        _rows(path)


def test_missing_file_and_broken_xlsx(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="файл не найден"):
        open_table(tmp_path / "nope.csv")
    broken = tmp_path / "b.xlsx"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ImportFileError, match="XLSX"):
        open_table(broken)


def test_header_names_are_compared_loosely() -> None:
    assert header_key("  Лицевой  счёт ") == "лицевой счет"
    assert header_key("Сумма, руб.") == "сумма"
    assert header_key("№ платежа") == "номер платежа"
    assert header_key("payment_id") == "payment id"


def test_header_is_found_after_a_title_and_extra_columns_are_ignored() -> None:
    rows = iter(
        [
            (1, ["Реестр платежей за 01.12.2026", "", ""]),
            (2, ["", "", ""]),
            (3, ["ФИО", "Лицевой СЧЁТ", "Сумма, руб."]),
            (4, ["Иванов", "1", "2"]),
        ]
    )
    header = find_header(rows, [SHAPE])
    assert (header.row, header.index, header.titles["amount"]) == (
        3,
        {"account": 1, "amount": 2},
        "Сумма, руб.",
    )
    assert next(rows)[0] == 4  # the data rows follow


def test_header_problems_are_one_line() -> None:
    with pytest.raises(ImportFileError, match="в строке 1 нет столбцов: «Сумма»"):
        find_header(iter([(1, ["Лицевой счёт", "ФИО"])]), [SHAPE])
    with pytest.raises(ImportFileError, match="не найдена строка заголовка"):
        find_header(iter([(1, ["a", "b"]), (2, ["1", "2"])]), [SHAPE])
    with pytest.raises(ImportFileError, match="несколько раз"):
        find_header(iter([(1, ["Сумма", "Лицевой счёт", "amount"])]), [SHAPE])
    with pytest.raises(ImportFileError, match="нельзя понять"):
        find_header(iter([(1, ["Лицевой счёт", "Сумма", "Долг"])]), [SHAPE, OTHER])
    with pytest.raises(ImportFileError, match="файл пуст"):
        find_header(iter([]), [SHAPE])


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),
        ("1\u202f234.5", "1234.50"),
        ("1234", "1234.00"),
        ("-15,00", "-15.00"),
        ("99,9 ₽", "99.90"),
        ("100 руб.", "100.00"),
        ("0,01", "0.01"),
    ],
)
def test_amounts(text: str, amount: str) -> None:
    parsed = parse_amount(text)
    assert parsed == Decimal(amount)
    assert parsed.as_tuple().exponent == -2


@pytest.mark.parametrize("text", ["1.234,56", "1,234", "12,34,56", "abc", "", "1e3"])
def test_ambiguous_or_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(CellError, match="не распознана"):
        parse_amount(text)


def test_moments_in_russian_and_iso_notations() -> None:
    assert parse_moment("01.12.2026", MOSCOW) == (date(2026, 12, 1), None)
    assert parse_moment("1/12/26", MOSCOW) == (date(2026, 12, 1), None)
    day, moment = parse_moment("01.12.2026 10:15", MOSCOW)
    assert moment == datetime(2026, 12, 1, 7, 15, tzinfo=UTC)
    day, moment = parse_moment("2026-12-01T00:30:00+05:00", MOSCOW)
    assert (day, moment) == (date(2026, 11, 30), datetime(2026, 11, 30, 19, 30, tzinfo=UTC))
    assert parse_moment("2026-12-01 23:59:59Z", MOSCOW)[0] == date(2026, 12, 2)
    for bad in ("32.12.2026", "01.12.2026 25:00", "вчера", "2026-02-30"):
        with pytest.raises(CellError):
            parse_moment(bad, MOSCOW)


def test_moment_reader_agrees_with_parse_moment() -> None:
    reader = MomentReader(MOSCOW)
    for text in (
        "01.12.2026 10:15:30",
        "01.12.2026 10:15:30",
        "01.12.2026",
        "01.12.2026 9:05",
        "2026-12-01 10:15:00+03:00",
        "2026-12-01T10:15",
    ):
        assert reader(text) == parse_moment(text, MOSCOW), text
    with pytest.raises(CellError):
        reader("01.12.2026 24:61:00")


def test_dates_of_xlsx_date_time_cells() -> None:
    assert parse_date("2026-11-01 10:00:00") == date(2026, 11, 1)
    assert parse_date("01.11.2026") == date(2026, 11, 1)
    for bad in ("2026-11-01 10:00", "01.11.26", "2026-11-31"):
        with pytest.raises(CellError, match="дат"):
            parse_date(bad)


def test_periods() -> None:
    assert parse_period("2026-11") == date(2026, 11, 1)
    assert parse_period("11.2026") == date(2026, 11, 1)
    assert parse_period("Ноябрь 2026") == date(2026, 11, 1)
    assert parse_period("15.11.2026") == date(2026, 11, 1)
    for bad in ("2026-13", "ноябрь", "13.2026"):
        with pytest.raises(CellError):
            parse_period(bad)


def test_xlsx_cells_become_the_text_people_typed() -> None:
    assert cell_text(1234.56) == "1234.56"
    assert cell_text(0.1 + 0.2) == "0.30000000000000004"  # refused later: 2 decimals at most
    assert cell_text(1e-05) == "0.00001"
    assert cell_text(5500112233.0) == "5500112233"
    # openpyxl gives naive datetimes: the wall clock written in the cell
    assert cell_text(datetime(2026, 12, 1, 10, 15)) == "2026-12-01 10:15:00"  # noqa: DTZ001
    assert cell_text(datetime(2026, 12, 1)) == "2026-12-01"  # noqa: DTZ001
    assert cell_text(time(10, 15)) == "10:15:00"
    assert cell_text(Decimal("1E+2")) == "100"
    assert cell_text(None) == ""
    aware = datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=3)))
    assert cell_text(aware) == "2026-12-01 00:00:00+03:00"


def test_xlsx_rows_stream_from_the_first_sheet(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Лицевой счёт", "Сумма"])
    sheet.append([5500112233, 1234.5])
    path = tmp_path / "r.xlsx"
    book.save(path)
    with open_table(path) as table:
        assert table.unit == "rows"
        assert list(table.rows()) == [(1, ["Лицевой счёт", "Сумма"]), (2, ["5500112233", "1234.5"])]


def test_problem_log_keeps_counts_and_the_first_rows(tmp_path: Path) -> None:
    log = ProblemLog(limit=2, csv_path=tmp_path / "problems.csv")
    for row in range(2, 7):
        log.add("error", RowError(row, "Сумма", "плохо"))
        log.add("error", RowError(row, "Дата", "плохо"))
    log.close()
    assert (log.count("error"), log.row_count("error")) == (10, 5)
    assert [p.row for p in log.rows("error")] == [2, 2]
    assert log.lines("error", "Отклонено")[-1] == (
        f"  … и ещё 8 замечаний (все — в файле {tmp_path / 'problems.csv'})"
    )
    with (tmp_path / "problems.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    assert rows[0] == ["вид", "строка", "столбец", "причина"]
    assert len(rows) == 11
