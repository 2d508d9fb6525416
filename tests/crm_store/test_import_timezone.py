"""Import: an empty or invalid ``timezone`` cell means "unknown" (NULL; invalid: a warning)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select

from crm_store.db import Database
from crm_store.importer import COLUMNS, import_consumers
from crm_store.models import Account, MeterReading

TODAY = date(2026, 11, 29)
NOTE = (
    "Лицевых счетов без часового пояса: {n} — окна обзвона для них соблюдаются во всех "
    "часовых поясах номера телефона"
)


def _write(tmp_path: Path, *rows: str, name: str = "zones.csv") -> Path:
    path = tmp_path / name
    path.write_text(",".join(COLUMNS) + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _row(account: str, zone: str, serial: str, readings: str = "", day: str = "") -> str:
    return (
        f"{account},Иванов Иван Иванович,+79031234567,г. Москва,{zone},{serial},6,общая,"
        f"{readings},{day},,"
    )


def _zones(db: Database) -> dict[str, str | None]:
    with db.session() as s:
        return {a.number: a.timezone for a in s.scalars(select(Account))}


def test_empty_zone_is_stored_as_null_and_noted_not_rejected(db: Database, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _row("1001", "", "SN-1", "000777", "2026-10-20"),
        _row("1002", "Asia/Kamchatka", "SN-2"),
        _row("1003", "Europe/Mosow", "SN-3"),
    )
    report = import_consumers(db, path, today=TODAY)
    assert report.rows_created == 3
    assert report.accounts_without_timezone == 2
    assert report.errors == []
    assert [(w.row, w.column) for w in report.warnings] == [(4, "timezone")]
    assert NOTE.format(n=2) in report.lines()
    assert _zones(db) == {"1001": None, "1002": "Asia/Kamchatka", "1003": None}
    with db.session() as s:
        reading = s.scalars(select(MeterReading)).one()
    # Unknown zone: the reading is dated at noon on the supplier's Moscow clock.
    assert reading.submitted_at == datetime(2026, 10, 20, 9, 0, tzinfo=UTC)

    again = import_consumers(db, path, today=TODAY)
    assert (again.rows_created, again.rows_updated, again.rows_unchanged) == (0, 0, 3)


def test_empty_cell_never_erases_a_known_zone(db: Database, tmp_path: Path) -> None:
    import_consumers(db, _write(tmp_path, _row("1001", "Asia/Omsk", "SN-1")), today=TODAY)
    report = import_consumers(
        db, _write(tmp_path, _row("1001", "", "SN-1"), name="b.csv"), today=TODAY
    )
    assert report.rows_unchanged == 1
    assert report.accounts_without_timezone == 0
    assert not any(line.startswith("Лицевых счетов без") for line in report.lines())
    assert _zones(db) == {"1001": "Asia/Omsk"}


def test_zone_given_on_another_row_of_the_account_counts(db: Database, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _row("1001", "", "SN-1"),
        _row("1001", "Asia/Yekaterinburg", "SN-2"),
        _row("1002", "", "SN-3"),
    )
    dry = import_consumers(db, path, today=TODAY, dry_run=True)
    assert dry.accounts_without_timezone == 1
    assert dry.errors == []
    report = import_consumers(db, path, today=TODAY)
    assert report.errors == []
    assert report.accounts_without_timezone == 1
    assert _zones(db) == {"1001": "Asia/Yekaterinburg", "1002": None}


def test_a_later_zone_fills_an_unknown_one(db: Database, tmp_path: Path) -> None:
    import_consumers(db, _write(tmp_path, _row("1001", "", "SN-1")), today=TODAY)
    report = import_consumers(
        db, _write(tmp_path, _row("1001", "asia/vladivostok", "SN-1"), name="b.csv"), today=TODAY
    )
    assert report.rows_updated == 1
    assert _zones(db) == {"1001": "Asia/Vladivostok"}
