"""Consumer import: the report for a file with good and bad rows, idempotence, formats."""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from crm_store import importer
from crm_store.cli_data import import_group
from crm_store.db import Database
from crm_store.importer import COLUMNS, ImportFileError, import_consumers, read_rows
from crm_store.ledger import add_charge, balance, record_payment
from crm_store.models import (
    Account,
    AccountPhone,
    AuditLog,
    Charge,
    Consumer,
    Meter,
    MeterReading,
    PhoneNumber,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "csv" / "consumers_mixed.csv"
TODAY = date(2026, 11, 29)

# A bad phone, zone, reading or debt loses that cell, not the account (issue 14).
EXPECTED_WARNINGS = [
    "Импортировано с предупреждениями: 9 (значения с ошибками не импортированы)",
    "  строка 4, столбец phone: неверный номер телефона: «12345»",
    "  строка 5, столбец phone: номер не российский (Казахстан): «+7 701 123 45 67»",
    "  строка 6, столбец last_readings: в показании есть буквы: «12З45»",
    "  строка 7, столбец last_readings: показание «1234567» длиннее разрядности счётчика (5 цифр)",
    "  строка 8, столбец last_readings: число показаний (2) не совпадает с числом тарифных зон (3)",
    (
        "  строка 9, столбец timezone: неизвестный часовой пояс «Europe/Mosow»; нужен пояс IANA "
        "России, например Europe/Moscow"
    ),
    "  строка 10, столбец last_reading_date: такой даты нет: «31.02.2026»",
    "  строка 11, столбец debt_rub: долг не может быть отрицательным: «-100»",
    (
        "  строка 12, столбец debt_rub: сумма «12,34,56» не распознана; пример правильной записи: "
        "1 234,56"
    ),
]
EXPECTED_REJECTIONS = [
    "Отклонено строк: 2",
    "  строка 13, столбец full_name: не заполнено обязательное поле",
    "  строка 14, столбец last_readings: счётчик SN-0001 уже есть в строке 2 с другими данными",
]
NO_ZONE = (
    "Лицевых счетов без часового пояса: 1 — окна обзвона для них соблюдаются во всех "
    "часовых поясах номера телефона"
)
REPORT_TAIL = [NO_ZONE, *EXPECTED_WARNINGS, *EXPECTED_REJECTIONS]

TABLES = (Consumer, Account, PhoneNumber, AccountPhone, Meter, MeterReading, Charge, AuditLog)


def _counts(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0 for m in TABLES}


def _run(db: Database, path: Path, **kwargs: object) -> list[str]:
    report = import_consumers(db, path, today=TODAY, **kwargs)  # type: ignore[arg-type]
    return report.lines()[1:]  # drop the "Файл: …" line (the path differs per test)


def test_report_lists_imported_and_rejected_rows(db: Database) -> None:
    lines = _run(db, FIXTURE)
    assert lines == [
        "Строк с данными: 15",
        "Импортировано строк: 13",
        "  новых: 13",
        "  обновлено: 0",
        "Без изменений (уже в базе): 0",
        *REPORT_TAIL,
    ]


def test_imported_rows_are_stored_normalised(db: Database) -> None:
    _run(db, FIXTURE)
    with db.transaction() as s:
        ivanov = s.scalars(select(Account).where(Account.number == "1001234567")).one()
        assert ivanov.number_raw == "10-0123-4567"
        assert ivanov.consumer.full_name == "Иванов Иван Иванович"
        assert ivanov.consumer.kind == "person"
        assert ivanov.timezone == "Europe/Moscow"
        assert [m.serial for m in ivanov.meters] == ["SN-0001", "SN-0002"]
        assert ivanov.meters[0].zones == ["день", "ночь"]
        assert ivanov.meters[0].capacity == 6
        assert [p.phone.e164 for p in ivanov.phone_links] == ["+79031234567"]
        readings = s.scalars(
            select(MeterReading)
            .where(MeterReading.meter_id == ivanov.meters[0].id)
            .order_by(MeterReading.zone)
        ).all()
        assert [(r.zone, r.value, r.source) for r in readings] == [
            ("день", 12345, "import"),
            ("ночь", 4567, "import"),
        ]
        assert readings[0].period == date(2026, 10, 1)
        # Local noon in Moscow (UTC+3) on 15.10.2026.
        assert readings[0].submitted_at == datetime.fromisoformat("2026-10-15T09:00:00+00:00")
        assert balance(s, ivanov.id, TODAY).debt == Decimal("1234.56")
        assert balance(s, ivanov.id, TODAY).earliest_unpaid_due == date(2026, 11, 10)

        org = s.scalars(select(Account).where(Account.number == "5500112233")).one()
        assert org.consumer.kind == "organization"
        assert org.meters[0].zones == ["пик", "полупик", "ночь"]
        assert balance(s, org.id, TODAY).debt == Decimal("15000.00")

        kim = s.scalars(select(Account).where(Account.number == "4100998877")).one()
        assert kim.timezone == "Asia/Kamchatka"
        assert balance(s, kim.id, TODAY).debt == Decimal("0.00")
    counts = _counts(db)
    assert counts["accounts"] == 12  # rows 2–12 and 15–16; rows 13–14 rejected
    assert counts["meters"] == 13
    assert counts["meter_readings"] == 10  # rows 6–8 and 10 lost their bad readings
    # One keyed charge per stated debt; zero debts are remembered as zero charges.
    assert counts["charges"] == 4
    with db.transaction() as s:
        keyed = {
            c.external_key: (c.source, c.amount, c.stated_balance)
            for c in s.scalars(select(Charge))
        }
    assert keyed == {
        f"import:1001234568:{TODAY.isoformat()}": ("import", Decimal("0.00"), Decimal("0.00")),
        "import:1001234567:2026-11-10": ("import", Decimal("1234.56"), Decimal("1234.56")),
        "import:5500112233:2026-11-10": ("import", Decimal("15000.00"), Decimal("15000.00")),
        f"import:4100998877:{TODAY.isoformat()}": ("import", Decimal("0.00"), Decimal("0.00")),
    }


def test_audit_log_records_import_as_actor(db: Database) -> None:
    _run(db, FIXTURE)
    with db.transaction() as s:
        actors = set(s.scalars(select(AuditLog.actor)))
        entities = set(s.scalars(select(AuditLog.entity)))
    assert actors == {"import"}
    assert {"consumer", "account", "meter", "meter_reading", "phone_number"} <= entities


def test_reimport_changes_nothing(db: Database) -> None:
    _run(db, FIXTURE)
    before = _counts(db)
    lines = _run(db, FIXTURE)
    assert _counts(db) == before  # including no new audit rows
    assert lines[:6] == [
        "Строк с данными: 15",
        "Импортировано строк: 0",
        "  новых: 0",
        "  обновлено: 0",
        "Без изменений (уже в базе): 13",
        NO_ZONE,
    ]


def test_changed_debt_and_reading_update_in_place(db: Database, tmp_path: Path) -> None:
    _run(db, FIXTURE)
    text = FIXTURE.read_text(encoding="utf-8")
    changed = tmp_path / "changed.csv"
    changed.write_text(
        text.replace('012345;004567,15.10.2026,"1 234,56"', '012346;004567,15.10.2026,"999,00"'),
        encoding="utf-8",
    )
    before = _counts(db)
    lines = _run(db, changed)
    assert lines[1:5] == [
        "Импортировано строк: 1",
        "  новых: 0",
        "  обновлено: 1",
        "Без изменений (уже в базе): 12",
    ]
    after = _counts(db)
    assert after["meter_readings"] == before["meter_readings"]  # corrected, not duplicated
    assert after["charges"] == before["charges"]  # the keyed charge is updated in place
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "1001234567")).one()
        assert balance(s, account.id, TODAY).debt == Decimal("999.00")
        values = set(s.scalars(select(MeterReading.value).where(MeterReading.zone == "день")))
        assert values == {12346}


def _ivanov(s: Session) -> Account:
    return s.scalars(select(Account).where(Account.number == "1001234567")).one()


def test_reimport_after_payments_does_not_rebill(db: Database) -> None:
    _run(db, FIXTURE)
    with db.transaction() as s:
        record_payment(s, _ivanov(s).id, amount="1000.00", paid_on=TODAY, channel="sbp")
        record_payment(
            s,
            s.scalars(select(Account).where(Account.number == "4100998877")).one().id,
            amount="50.00",
            paid_on=TODAY,
            channel="card",
        )
    before = _counts(db)
    lines = _run(db, FIXTURE)
    assert _counts(db) == before
    assert lines[1:5] == [
        "Импортировано строк: 0",
        "  новых: 0",
        "  обновлено: 0",
        "Без изменений (уже в базе): 13",
    ]
    with db.transaction() as s:
        assert balance(s, _ivanov(s).id, TODAY).debt == Decimal("234.56")
        kim = s.scalars(select(Account).where(Account.number == "4100998877")).one()
        assert balance(s, kim.id, TODAY).credit == Decimal("50.00")


def test_newer_statement_moves_the_keyed_charge(db: Database, tmp_path: Path) -> None:
    _run(db, FIXTURE)
    with db.transaction() as s:
        record_payment(s, _ivanov(s).id, amount="234.56", paid_on=TODAY, channel="sbp")
    newer = tmp_path / "newer.csv"
    newer.write_text(
        FIXTURE.read_text(encoding="utf-8").replace('"1 234,56"', '"1 500,00"'),
        encoding="utf-8",
    )
    _run(db, newer)
    _run(db, newer)  # the same newer file again: nothing more
    with db.transaction() as s:
        ivanov = _ivanov(s)
        assert balance(s, ivanov.id, TODAY).debt == Decimal("1500.00")
        (charge,) = s.scalars(select(Charge).where(Charge.account_id == ivanov.id))
        assert charge.external_key == "import:1001234567:2026-11-10"
        assert charge.amount == Decimal("1734.56")
        assert charge.stated_balance == Decimal("1500.00")


def test_debt_is_reconciled_against_billing_charges(db: Database) -> None:
    """Charges from billing count: the keyed import charge only holds the difference."""
    _run(db, FIXTURE)
    with db.transaction() as s:
        org = s.scalars(select(Account).where(Account.number == "5500112233")).one()
        org_id = org.id
        s.execute(delete(Charge).where(Charge.account_id == org_id))
        add_charge(
            s,
            org_id,
            period=date(2026, 10, 1),
            amount="9000.00",
            due_date=date(2026, 11, 10),
            external_key="bill-2026-10-5500112233",
        )
    _run(db, FIXTURE)
    with db.transaction() as s:
        assert balance(s, org_id, TODAY).debt == Decimal("15000.00")
        amounts = {
            c.source: c.amount for c in s.scalars(select(Charge).where(Charge.account_id == org_id))
        }
        assert amounts == {"billing": Decimal("9000.00"), "import": Decimal("6000.00")}


def test_dry_run_validates_without_writing(db: Database) -> None:
    report = import_consumers(db, FIXTURE, today=TODAY, dry_run=True)
    assert report.rows_valid == 13
    assert report.rows_imported == 13
    assert report.warned_rows == list(range(4, 13))
    assert report.rejected_rows == [13, 14]
    assert "Проверка без записи (--dry-run): база данных не изменена." in report.lines()
    assert all(count == 0 for count in _counts(db).values())


def _write_xlsx(path: Path, rows: list[list[object]]) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def test_xlsx_gives_the_same_report(db: Database, tmp_path: Path) -> None:
    with FIXTURE.open(encoding="utf-8", newline="") as fh:
        table: list[list[object]] = [list(r) for r in csv.reader(fh)]
    # Typed cells as Excel keeps them: numbers and dates, not text.
    for row in table[1:]:
        row[6] = int(str(row[6]))  # meter_capacity
        if row[0] == "5500112233":
            row[10] = 15000.0  # debt as a number
            row[11] = datetime(2026, 11, 10, tzinfo=None)  # noqa: DTZ001 - Excel dates are naive
            row[9] = datetime(2026, 10, 25, tzinfo=None)  # noqa: DTZ001 - same
    path = tmp_path / "consumers.xlsx"
    _write_xlsx(path, table)
    assert _run(db, path) == [
        "Строк с данными: 15",
        "Импортировано строк: 13",
        "  новых: 13",
        "  обновлено: 0",
        "Без изменений (уже в базе): 0",
        *REPORT_TAIL,
    ]
    with db.transaction() as s:
        org = s.scalars(select(Account).where(Account.number == "5500112233")).one()
        assert balance(s, org.id, TODAY).debt == Decimal("15000.00")


def test_cp1251_semicolon_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    # With ';' as the delimiter Excel quotes the ';'-separated zone and reading lists.
    lines = [
        ";".join(COLUMNS),
        (
            "РА07-12345;Ёлкина Татьяна Юрьевна;+7 (916) 765-43-21;г. Киров, ул. Ленина, д. 3;"
            'Europe/Kirov;NEVA-1;6;"день;ночь";"001000;000500";01.11.2026;1 234,56;10.12.2026'
        ),
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))
    report = import_consumers(db, path, today=TODAY)
    assert report.errors == []
    assert report.rows_created == 1
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "РА0712345")).one()
        assert account.consumer.full_name == "Ёлкина Татьяна Юрьевна"
        assert account.meters[0].zones == ["день", "ночь"]
        assert balance(s, account.id, TODAY).debt == Decimal("1234.56")


def test_utf8_bom_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + FIXTURE.read_bytes())
    assert _run(db, path)[5:] == REPORT_TAIL


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"account_number,full_name\n1,2\n", "нет столбцов: phone"),
        (",".join(reversed(COLUMNS)).encode() + b"\n", "столбцы в другом порядке"),
        (b"", "файл пуст"),
        (b"\x00\x01\x02PK", "двоичные данные"),
    ],
)
def test_unreadable_files_raise(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        read_rows(path)


def test_broken_xlsx_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ImportFileError, match="XLSX"):
        read_rows(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="файл не найден"):
        read_rows(tmp_path / "nope.csv")


def test_cli_prints_report_and_exit_codes(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    path = tmp_path / "consumers.csv"
    shutil.copy(FIXTURE, path)
    runner = CliRunner()
    result = runner.invoke(import_group, ["consumers", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Строк можно импортировать: 13" in result.output
    assert _counts(db)["accounts"] == 0

    result = runner.invoke(import_group, ["consumers", str(path)])
    assert result.exit_code == 0, result.output
    assert "Отклонено строк: 2" in result.output
    assert "Импортировано с предупреждениями: 9" in result.output
    assert "строка 5, столбец phone: номер не российский (Казахстан)" in result.output

    result = runner.invoke(import_group, ["consumers", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1
    assert "Импорт невозможен: файл не найден" in result.output

    header_only = tmp_path / "wrong.csv"
    header_only.write_text("a,b,c\n", encoding="utf-8")
    result = runner.invoke(import_group, ["consumers", str(header_only)])
    assert result.exit_code == 1
    assert "неверная строка заголовка" in result.output
    assert "Traceback" not in result.output


def test_reading_already_known_from_another_channel_is_not_duplicated(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "one.csv"
    path.write_text(
        ",".join(COLUMNS) + "\n"
        "1001,Иванов Иван Иванович,+79031234567,г. Москва,Europe/Moscow,SN-1,6,общая,000777,"
        "2026-10-20,,\n",
        encoding="utf-8",
    )
    path_first = tmp_path / "first.csv"
    path_first.write_text(
        path.read_text(encoding="utf-8").replace("000777,2026-10-20", ","), encoding="utf-8"
    )
    assert import_consumers(db, path_first, today=TODAY).rows_created == 1
    with db.transaction() as s:
        meter = s.scalars(select(Meter)).one()
        s.add(
            MeterReading(
                meter_id=meter.id,
                zone="общая",
                value=777,
                period=date(2026, 10, 1),
                source="ivr_voice",
            )
        )
    report = import_consumers(db, path, today=TODAY)
    assert report.errors == []
    assert report.rows_unchanged == 1
    assert _counts(db)["meter_readings"] == 1


def test_a_row_failing_in_the_database_is_rolled_back_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importer._reconcile_debt

    def flaky(session: Any, account: Account, *args: Any) -> bool:
        if account.number == "5500112233":
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real(session, account, *args)

    monkeypatch.setattr(importer, "_reconcile_debt", flaky)
    report = import_consumers(db, FIXTURE, today=TODAY)
    assert report.rows_created == 12
    assert [str(e) for e in report.errors if e.row == 15] == [
        "строка 15: строку не удалось записать в базу: database is locked"
    ]
    with db.transaction() as s:
        numbers = set(s.scalars(select(Account.number)))
        assert "5500112233" not in numbers  # the failed row left nothing behind
        assert len(numbers) == 11
        assert s.scalar(select(func.count()).where(Meter.serial == "VL-7788")) == 0


def test_a_bad_cell_loses_the_cell_not_the_account(db: Database) -> None:
    report = import_consumers(db, FIXTURE, today=TODAY)
    assert report.warned_rows == list(range(4, 13))
    assert {(w.row, w.column) for w in report.warnings} >= {(4, "phone"), (5, "phone")}
    with db.transaction() as s:
        accounts = {a.number: a for a in s.scalars(select(Account))}
        # Invalid and foreign phones: the account is there (reachable by its number), phoneless.
        for number in ("1001234568", "1001234569"):
            assert accounts[number].phone_links == []
            assert [m.serial for m in accounts[number].meters]
        # The other cells of a warned row are kept.
        assert accounts["1001234569"].timezone == "Asia/Omsk"
        readings = s.scalars(
            select(MeterReading.value).where(
                MeterReading.meter_id == accounts["1001234569"].meters[0].id
            )
        ).all()
        assert readings == [200]
        # A misspelt time zone is unknown, not guessed; bad readings and debts are not stored.
        assert accounts["1001234573"].timezone is None
        assert [p.phone.e164 for p in accounts["1001234573"].phone_links] == ["+79165551237"]
        kuznetsov = accounts["1001234570"].meters[0]
        assert kuznetsov.zones == ["день", "ночь"]
        assert s.scalar(select(func.count()).where(MeterReading.meter_id == kuznetsov.id)) == 0
        for number in ("1001234575", "1001234576"):
            assert (
                s.scalar(select(func.count()).where(Charge.account_id == accounts[number].id)) == 0
            )
        # Rejected: no name (row 13) and a conflicting repeat of a meter (row 14).
        assert "1001234577" not in accounts


def _billing_export(rows: list[list[str]]) -> list[list[str]]:
    return [list(COLUMNS), *rows]


BILLING_ROWS = [
    # account, name, phone, address, tz, serial, capacity, zones, readings, date, debt, due
    [
        "2001",
        "Орлов Н. П.",
        "+79161112233",
        "г. Тула",
        "Europe/Moscow",
        "A-1",
        "6",
        "Т1",
        "000100",
        "2026-10-20",
        "",
        "",
    ],
    [
        "2002",
        "Белова А. А.",
        "+79161112234",
        "г. Тула",
        "Europe/Moscow",
        "A-2",
        "6",
        "t1;T2",
        "000100;000050",
        "2026-10-20",
        "",
        "",
    ],
    [
        "2003",
        "Зайцев К. К.",
        "+79161112235",
        "г. Тула",
        "Europe/Moscow",
        "A-3",
        "6",
        "T1;T2;T3",
        "000001;000002;000003",
        "2026-10-20",
        "",
        "",
    ],
    [
        "2004",
        "Лисина В. В.",
        "+79161112236",
        "г. Тула",
        "Europe/Moscow",
        "A-4",
        "6",
        "день/ночь",
        "",
        "",
        "",
        "",
    ],
    [
        "2005",
        "Мухин Г. Г.",
        "+79161112237",
        "г. Тула",
        "Europe/Moscow",
        "A-5",
        "6",
        "однотарифный",
        "",
        "",
        "",
        "",
    ],
    [
        "2006",
        "Ёжиков Д. Д.",
        "+79161112238",
        "г. Тула",
        "Europe/Moscow",
        "A-6",
        "6",
        "Двухтарифный",
        "",
        "",
        "",
        "",
    ],
    [
        "2007",
        "Щукин Е. Е.",
        "+79161112239",
        "г. Тула",
        "Europe/Moscow",
        "A-7",
        "6",
        "трёхтарифный",
        "",
        "",
        "",
        "",
    ],
    [
        "2008",
        "Уткин Ж. Ж.",
        "+79161112240",
        "г. Тула",
        "Europe/Moscow",
        "A-8",
        "6",
        "T5",
        "",
        "",
        "",
        "",
    ],
    # Foreign (Kazakh) phone: imported without it, with a warning.
    [
        "2009",
        "Серов З. З.",
        "+7 701 123 45 67",
        "г. Тула",
        "Europe/Moscow",
        "A-9",
        "6",
        "T1",
        "",
        "",
        "",
        "",
    ],
    # Exact repeats of rows 2 and 3 (the second only in phone notation).
    [
        "2001",
        "Орлов Н. П.",
        "+79161112233",
        "г. Тула",
        "Europe/Moscow",
        "A-1",
        "6",
        "Т1",
        "000100",
        "2026-10-20",
        "",
        "",
    ],
    [
        "2002",
        "Белова А. А.",
        "8 916 111-22-34",
        "г. Тула",
        "Europe/Moscow",
        "A-2",
        "6",
        "день;ночь",
        "000100;000050",
        "20.10.2026",
        "",
        "",
    ],
]
BILLING_ZONES = {
    "A-1": ["общая"],
    "A-2": ["день", "ночь"],
    "A-3": ["пик", "ночь", "полупик"],
    "A-4": ["день", "ночь"],
    "A-5": ["общая"],
    "A-6": ["день", "ночь"],
    "A-7": ["пик", "ночь", "полупик"],
    "A-9": ["общая"],
}
BILLING_REPORT = [
    "Строк с данными: 11",
    "Импортировано строк: 8",
    "  новых: 8",
    "  обновлено: 0",
    "Без изменений (уже в базе): 0",
    "Импортировано с предупреждениями: 1 (значения с ошибками не импортированы)",
    "  строка 10, столбец phone: номер не российский (Казахстан): «+7 701 123 45 67»",
    "Повторы строк в файле (пропущены): 2",
    "  строка 11: повторяет строку 2, пропущена",
    "  строка 12: повторяет строку 3, пропущена",
    "Отклонено строк: 1",
    (
        "  строка 9, столбец meter_zones: неизвестная тарифная зона «t5»; допустимы: общая, "
        "сутки, Т1 или однотарифный/двухтарифный/трёхтарифный"
    ),
]


def _check_billing_import(db: Database, path: Path) -> None:
    assert _run(db, path) == BILLING_REPORT
    with db.transaction() as s:
        zones = {m.serial: m.zones for m in s.scalars(select(Meter))}
        assert zones == BILLING_ZONES
        readings = {(r.meter.serial, r.zone): r.value for r in s.scalars(select(MeterReading))}
        assert readings == {
            ("A-1", "общая"): 100,
            ("A-2", "день"): 100,
            ("A-2", "ночь"): 50,
            ("A-3", "пик"): 1,
            ("A-3", "ночь"): 2,
            ("A-3", "полупик"): 3,
        }
        serov = s.scalars(select(Account).where(Account.number == "2009")).one()
        assert serov.phone_links == []
    again = _run(db, path)
    assert again[1:5] == [
        "Импортировано строк: 0",
        "  новых: 0",
        "  обновлено: 0",
        "Без изменений (уже в базе): 8",
    ]
    assert "Повторы строк в файле (пропущены): 2" in again


def test_billing_export_csv(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(_billing_export(BILLING_ROWS))
    _check_billing_import(db, path)


def test_billing_export_xlsx(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "billing.xlsx"
    _write_xlsx(path, [list(r) for r in _billing_export(BILLING_ROWS)])
    _check_billing_import(db, path)


def test_billing_export_dry_run_reports_duplicates(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(_billing_export(BILLING_ROWS))
    report = import_consumers(db, path, today=TODAY, dry_run=True)
    assert report.rows_valid == 8
    assert [(d.row, d.reason) for d in report.duplicates] == [
        (11, "повторяет строку 2, пропущена"),
        (12, "повторяет строку 3, пропущена"),
    ]
    assert report.rejected_rows == [9]
    assert all(count == 0 for count in _counts(db).values())
