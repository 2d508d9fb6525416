"""The outage import: good rows kept, bad rows located, wrong files refused, re-imports idle."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import select

from contactcenter.cli import main
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.models import Outage
from crm_store.outage_import import import_outages

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

HEADER = (
    "external_id;kind;settlement;street;houses;feeder;substation;starts_at;expected_end_at;reason"
)
ROWS = [
    (
        "G-1;emergency;г. Москва;ул. Ленина;1-15 нечётные;Ф-12;ПС Северная;"
        "20.11.2026 10:00;20.11.2026 16:00;повреждение кабеля"
    ),
    "G-2;плановое;г. Москва;ул. Садовая;;;;21.11.2026 10:00;21.11.2026 16:00;замена опор",
    "G-3;emergency;г. Москва;ул. Мира;15-1;;;20.11.2026 10:00;20.11.2026 16:00;",
    "G-4;какое-то;;;;Ф-7;;20.11.2026 25:00;20.11.2026 16:00;",
    "G-5;planned;пос. Южный;;;;;19.11.2026 10:00;19.11.2026 16:00;работы на подстанции",
]


def write(
    tmp_path: Path, lines: list[str], name: str = "outages.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def stored(db: Database) -> dict[str, Outage]:
    with db.transaction() as s:
        return {o.external_id: o for o in s.scalars(select(Outage))}


def test_good_rows_are_kept_bad_rows_located(db: Database, tmp_path: Path) -> None:
    report = import_outages(db, write(tmp_path, [HEADER, *ROWS]), now=NOW)
    assert (report.rows_read, report.created, report.updated, report.unchanged) == (5, 3, 0, 0)
    assert report.rejected_rows == [4, 5]
    errors = [str(e) for e in report.errors]
    assert "строка 4, столбец houses: начало диапазона больше конца: «15-1»" in errors
    assert any(e.startswith("строка 5, столбец kind: «какое-то»") for e in errors)
    assert any(
        e.startswith("строка 5, столбец starts_at: такой даты или времени нет") for e in errors
    )
    assert not any(e.startswith("строка 5, столбец settlement") for e in errors)  # Ф-7 is a place
    assert [str(w) for w in report.warnings] == [
        "строка 6, столбец expected_end_at: отключение уже закончилось: не объявляется"
    ]
    outages = stored(db)
    assert set(outages) == {"G-1", "G-2", "G-5"}
    g1 = outages["G-1"]
    assert (g1.kind, g1.source, g1.settlement_key, g1.street_type, g1.street_key) == (
        "emergency",
        "import",
        "москва",
        "ул",
        "ленина",
    )
    assert (g1.houses, g1.feeder, g1.substation, g1.reason) == (
        "1-15 нечётные",
        "Ф-12",
        "ПС Северная",
        "повреждение кабеля",
    )
    assert g1.starts_at == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert outages["G-2"].kind == "planned"
    lines = report.lines()
    assert "Новых отключений: 3" in lines
    assert "Отклонено строк: 2" in lines


def test_reimport_changes_nothing_and_a_new_end_updates(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, *ROWS])
    import_outages(db, path, now=NOW)
    before = {k: (o.updated_at, o.expected_end_at) for k, o in stored(db).items()}
    again = import_outages(db, path, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert {k: (o.updated_at, o.expected_end_at) for k, o in stored(db).items()} == before
    moved = ROWS[0].replace("20.11.2026 16:00", "20.11.2026 19:30")
    update = import_outages(db, write(tmp_path, [HEADER, moved], "later.csv"), now=NOW)
    assert (update.created, update.updated) == (0, 1)
    assert stored(db)["G-1"].expected_end_at == datetime(2026, 11, 20, 16, 30, tzinfo=UTC)


def test_outages_given_by_feeder_or_substation_alone(db: Database, tmp_path: Path) -> None:
    lines = [
        "Вид;Фидер;ТП;Начало;Окончание;Причина",
        "аварийное;Ф-12;;20.11.2026 10:00;20.11.2026 18:00;повреждение кабеля",
        "плановое;;ТП-245;21.11.2026 09:00;21.11.2026 17:00;ремонт трансформатора",
        "плановое;Ф-3;ПС Северная;21.11.2026 09:00;21.11.2026 17:00;",
        "аварийное;;;20.11.2026 10:00;20.11.2026 18:00;без места",
    ]
    path = write(tmp_path, lines)
    report = import_outages(db, path, now=NOW)
    assert (report.created, report.rejected_rows) == (3, [5])
    assert [str(e) for e in report.errors] == [
        (
            "строка 5, столбец settlement: не указано место: населённый пункт, улица, фидер или "
            "подстанция"
        )
    ]
    by_grid = {(o.feeder_key, o.substation_key): o for o in stored(db).values()}
    assert set(by_grid) == {("12", ""), ("", "245"), ("3", "северная")}
    assert by_grid[("12", "")].external_id.startswith("auto:")
    assert (by_grid[("12", "")].street_key, by_grid[("12", "")].settlement_key) == ("", "")
    again = import_outages(db, path, now=NOW)
    assert (again.created, again.unchanged) == (0, 3)


def test_rows_without_an_id_are_idempotent_too(db: Database, tmp_path: Path) -> None:
    lines = [
        "kind,settlement,street,houses,starts_at,expected_end_at",
        "emergency,г. Омск,ул. Мира,7,2026-11-20 10:00,2026-11-20 12:00",
    ]
    path = write(tmp_path, lines)
    assert import_outages(db, path, now=NOW).created == 1
    assert import_outages(db, path, now=NOW).unchanged == 1
    assert len(stored(db)) == 1


def test_repeated_rows_in_one_file(db: Database, tmp_path: Path) -> None:
    changed = ROWS[0].replace("повреждение кабеля", "другая причина")
    report = import_outages(db, write(tmp_path, [HEADER, ROWS[0], ROWS[0], changed]), now=NOW)
    assert [str(d) for d in report.duplicates] == ["строка 3: повторяет строку 2, пропущена"]
    assert [str(e) for e in report.errors] == [
        "строка 4, столбец external_id: то же отключение, что в строке 2, но с другими значениями"
    ]
    assert report.created == 1


def test_russian_headers_cp1251_and_a_title_line(db: Database, tmp_path: Path) -> None:
    lines = [
        "Реестр отключений сетевой компании на 20.11.2026",
        "Вид;Населённый пункт;Улица;Дома;Начало;Окончание;Причина;Примечание",
        "аварийное;Ржев;Заречная;2-20 чётные;20.11.2026 10:00;20.11.2026 18:00;авария на ТП;-",
    ]
    path = write(tmp_path, lines, encoding="cp1251")
    report = import_outages(db, path, now=NOW)
    assert (report.created, report.errors) == (1, [])
    (outage,) = stored(db).values()
    assert (outage.settlement_key, outage.street_key, outage.houses) == (
        "ржев",
        "заречная",
        "2-20 чётные",
    )


def test_xlsx_with_datetime_cells(db: Database, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "kind", "street", "starts_at", "expected_end_at", "timezone"])
    sheet.append(
        [
            101,
            "emergency",
            "ул. Ленина",
            datetime(2026, 11, 20, 10, 0),  # noqa: DTZ001 - a spreadsheet's local time
            datetime(2026, 11, 20, 16, 30),  # noqa: DTZ001
            "Asia/Omsk",
        ]
    )
    path = tmp_path / "outages.xlsx"
    book.save(path)
    report = import_outages(db, path, now=NOW)
    assert (report.created, report.errors) == (1, [])
    outage = stored(db)["101"]
    assert outage.starts_at == datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # Omsk is UTC+6
    assert outage.expected_end_at == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def test_dry_run_writes_nothing(db: Database, tmp_path: Path) -> None:
    report = import_outages(db, write(tmp_path, [HEADER, *ROWS]), dry_run=True, now=NOW)
    assert report.valid == 3
    assert stored(db) == {}
    assert "Строк можно импортировать: 3" in report.lines()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "account_number;amount;paid_at;payment_id\n10-0123;100,00;20.11.2026;P1\n",
            "не найдена строка заголовка",
        ),
        ("kind;street;starts_at\nemergency;Ленина;20.11.2026 10:00\n", "нет столбцов: «Окончание»"),
        (
            (
                "kind;houses;starts_at;expected_end_at\n"
                "emergency;1-15;20.11.2026 10:00;20.11.2026 12:00\n"
            ),
            "нет ни одного столбца места: «Населённый пункт», «Улица», «Фидер» или «Подстанция»",
        ),
        ("", "файл пуст"),
    ],
)
def test_a_file_that_is_not_an_outages_file_is_refused(
    db: Database, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "file.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError, match=message) as caught:
        import_outages(db, path, now=NOW)
    assert "\n" not in str(caught.value)
    assert stored(db) == {}


def test_binary_file_is_refused(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "outages.csv"
    path.write_bytes(b"kind\x00\x01\x02")
    with pytest.raises(ImportFileError, match="двоичные данные"):
        import_outages(db, path, now=NOW)


def test_cli_import_outages(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    runner = CliRunner()
    result = runner.invoke(main, ["import", "outages", str(write(tmp_path, [HEADER, *ROWS[:2]]))])
    assert result.exit_code == 0, result.output
    assert "Новых отключений: 2" in result.output
    bad = tmp_path / "payments.csv"
    bad.write_text("account_number;amount\n1;2\n", encoding="utf-8")
    refused = runner.invoke(main, ["import", "outages", str(bad)])
    assert refused.exit_code == 1
    assert "Импорт невозможен: не найдена строка заголовка" in refused.output
    assert "Traceback" not in refused.output
    missing = runner.invoke(main, ["import", "outages", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1
    assert "файл не найден" in missing.output
