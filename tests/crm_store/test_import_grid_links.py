"""Consumer import: the optional grid link columns ``feeder`` and ``substation``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_store.db import Database
from crm_store.importer import (
    COLUMNS,
    GRID_COLUMNS,
    HEADERS,
    ImportFileError,
    import_consumers,
    read_rows,
)
from crm_store.models import Account

TODAY = date(2026, 11, 29)
BASE = ",".join(COLUMNS)
IVANOV = (
    '10-0123-4567,Иванов Иван Иванович,+79031234567,"г. Москва, ул. Ленина, д. 1, кв. 2",'
    "Europe/Moscow,SN-0001,6,общая,,,,"
)
PETROV = '1001234568,Петров Пётр Петрович,,"г. Тверь, ул. Советская, д. 5",,SN-0003,6,общая,,,,'


def write(tmp_path: Path, header: str, *rows: str, name: str = "consumers.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def grid(db: Database) -> dict[str, tuple[str | None, str | None]]:
    with db.transaction() as s:
        return {a.number: (a.feeder, a.substation) for a in s.scalars(select(Account))}


def test_the_accepted_headers() -> None:
    assert GRID_COLUMNS == ("feeder", "substation")
    assert [",".join(h) for h in HEADERS] == [
        BASE,
        BASE + ",feeder",
        BASE + ",feeder,substation",
    ]


def test_both_columns_are_stored_as_given_trimmed(db: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + ",feeder,substation",
        IVANOV + ",  Ф-12 , ПС 110 кВ Северная ",
        PETROV + ",,ТП-245",
    )
    report = import_consumers(db, path, today=TODAY)
    assert (report.rows_created, report.errors, report.warnings) == (2, [], [])
    assert grid(db) == {
        "1001234567": ("Ф-12", "ПС 110 кВ Северная"),
        "1001234568": (None, "ТП-245"),
    }


def test_a_file_without_the_columns_keeps_what_is_stored(db: Database, tmp_path: Path) -> None:
    import_consumers(
        db, write(tmp_path, BASE + ",feeder,substation", IVANOV + ",Ф-12,ПС Северная"), today=TODAY
    )
    plain = import_consumers(db, write(tmp_path, BASE, IVANOV, name="plain.csv"), today=TODAY)
    assert (plain.rows_updated, plain.rows_unchanged) == (0, 1)
    feeder_only = write(tmp_path, BASE + ",feeder", IVANOV + ",Ф-7", name="feeder.csv")
    moved = import_consumers(db, feeder_only, today=TODAY)
    assert (moved.rows_updated, moved.rows_unchanged) == (1, 0)
    assert grid(db) == {"1001234567": ("Ф-7", "ПС Северная")}  # the substation is kept
    again = import_consumers(db, feeder_only, today=TODAY)
    assert (again.rows_updated, again.rows_unchanged) == (0, 1)


def test_an_empty_cell_clears_and_counts_as_an_update(db: Database, tmp_path: Path) -> None:
    header = BASE + ",feeder,substation"
    import_consumers(db, write(tmp_path, header, IVANOV + ",Ф-12,ПС Северная"), today=TODAY)
    cleared = import_consumers(
        db, write(tmp_path, header, IVANOV + ",,ПС Северная", name="b.csv"), today=TODAY
    )
    assert (cleared.rows_updated, cleared.rows_unchanged) == (1, 0)
    assert grid(db) == {"1001234567": (None, "ПС Северная")}
    # A row without the trailing cells at all: empty cells of present columns.
    short = import_consumers(db, write(tmp_path, header, IVANOV, name="c.csv"), today=TODAY)
    assert short.rows_updated == 1
    assert grid(db) == {"1001234567": (None, None)}


def test_rows_of_one_account_agree_on_the_grid_link(db: Database, tmp_path: Path) -> None:
    second_meter = IVANOV.replace("SN-0001", "SN-0002")
    header = BASE + ",feeder,substation"
    # An empty cell in another row of the account means "the same as the other rows".
    path = write(tmp_path, header, IVANOV + ",,", second_meter + ",Ф-12,ПС Северная")
    report = import_consumers(db, path, today=TODAY)
    assert report.errors == []
    assert grid(db) == {"1001234567": ("Ф-12", "ПС Северная")}
    conflict = write(
        tmp_path,
        header,
        IVANOV + ",Ф-12,",
        second_meter.replace("SN-0002", "SN-0009") + ",Ф-13,",
        name="conflict.csv",
    )
    refused = import_consumers(db, conflict, today=TODAY)
    assert [str(e) for e in refused.errors] == [
        (
            "строка 3, столбец feeder: лицевой счёт 10-0123-4567 уже указан в строке 2 с другим "
            "значением: «Ф-13»"
        )
    ]


def test_repeated_rows_are_duplicates_and_a_different_feeder_is_not(
    db: Database, tmp_path: Path
) -> None:
    header = BASE + ",feeder"
    path = write(tmp_path, header, IVANOV + ",Ф-12", IVANOV + ",Ф-12", IVANOV + ",Ф-14")
    report = import_consumers(db, path, today=TODAY)
    assert [str(d) for d in report.duplicates] == ["строка 3: повторяет строку 2, пропущена"]
    assert [e.column for e in report.errors] == ["feeder"]
    assert report.rows_created == 1


def test_a_too_long_value_loses_the_cell_not_the_row(db: Database, tmp_path: Path) -> None:
    header = BASE + ",feeder,substation"
    import_consumers(db, write(tmp_path, header, IVANOV + ",Ф-12,ПС Северная"), today=TODAY)
    long = "Ф" * 101
    report = import_consumers(
        db, write(tmp_path, header, IVANOV + f",{long},ПС Южная", name="b.csv"), today=TODAY
    )
    assert [str(w) for w in report.warnings] == [
        "строка 2, столбец feeder: слишком длинное значение (больше 100 символов)"
    ]
    assert report.rows_updated == 1
    assert grid(db) == {"1001234567": ("Ф-12", "ПС Южная")}


def test_values_beyond_the_header_are_a_row_error(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, BASE + ",feeder", IVANOV + ",Ф-12,ПС Северная", PETROV + ",Ф-1,,")
    report = import_consumers(db, path, today=TODAY)
    assert [str(e) for e in report.errors] == ["строка 2: лишние значения: 14 вместо 13"]
    assert grid(db) == {"1001234568": ("Ф-1", None)}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (BASE + ",substation", "после debt_due_date допустимы только feeder или feeder,substation"),
        (BASE + ",substation,feeder", "после debt_due_date допустимы только feeder"),
        (BASE + ",feeder,substation,region", "лишние столбцы: region"),
        ("feeder," + BASE, "столбцы в другом порядке"),
        (BASE.replace("phone,", "") + ",feeder", "нет столбцов: phone"),
    ],
)
def test_other_headers_are_refused(tmp_path: Path, header: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message) as caught:
        read_rows(write(tmp_path, header, IVANOV))
    assert "необязательные столбцы: feeder или feeder,substation" in str(caught.value)


def test_dry_run_reads_the_columns_and_writes_nothing(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, BASE + ",feeder,substation", IVANOV + ",Ф-12,ПС Северная")
    report = import_consumers(db, path, today=TODAY, dry_run=True)
    assert (report.rows_valid, report.errors) == (1, [])
    assert grid(db) == {}
