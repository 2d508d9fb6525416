"""Charges import: accruals (keys, recalculations, conflicts) and balance snapshots (the
balance as of the date equals the billing figure, idempotent, ordered), shapes, the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import func, select

from crm_store.cli_data import import_group
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_charges import import_charges, snapshot_key
from crm_store.import_payments import import_payments
from crm_store.ledger import balance, net_balances, record_payment
from crm_store.models import Account, Charge, Consumer, ImportRun

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 5)


def _account(db: Database, number: str) -> int:
    with db.transaction() as s:
        account = Account(
            consumer=Consumer(full_name="Иванов Иван Иванович"),
            number_raw=number,
            number=number,
            timezone="Europe/Moscow",
        )
        s.add(account)
        s.flush()
        return int(account.id)


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def _charges(db: Database) -> dict[str, tuple[Decimal, date, date, str]]:
    with db.transaction() as s:
        return {
            str(c.external_key): (c.amount, c.period, c.due_date, c.source)
            for c in s.scalars(select(Charge))
        }


ACCRUALS = [
    "Лицевой счёт;Период;Начислено;Вид начисления",
    "5500112233;2026-10;1 000,00;",
    "5500112233;11.2026;1200,50;Электроэнергия",
    "5500112233;ноябрь 2026;50;Пени",
    "7700000001;2026-11;10;",
    "5500112233;2027-01;10;",
    "5500112233;2026-11;x;ОДН",
]


def test_accruals_are_keyed_charges_due_on_the_tenth(db: Database, tmp_path: Path) -> None:
    account_id = _account(db, "5500112233")
    path = _write(tmp_path / "accruals.csv", ACCRUALS, "cp1251")
    report = import_charges(db, path, now=NOW)
    assert report.lines() == [
        f"Файл: {path}",
        "Вид файла: начисления",
        "Строк с данными: 6",
        "Начислений записано: 3 на сумму 2250.50 руб.",
        "  изменено (перерасчёт): 0",
        "Уже были загружены (без изменений): 0",
        "Отклонено строк: 3",
        "  строка 5: лицевой счёт 7700000001 не найден",
        "  строка 6, столбец Период: период в будущем: «2027-01»",
        (
            "  строка 7, столбец Начислено: сумма «x» не распознана; "
            "пример правильной записи: 1 234,56"
        ),
        "Пакетов записано: 1 (строки 2–7)",
    ]
    assert _charges(db) == {
        "accrual:5500112233:2026-10:основное": (
            Decimal("1000.00"),
            date(2026, 10, 1),
            date(2026, 11, 10),
            "billing",
        ),
        "accrual:5500112233:2026-11:электроэнергия": (
            Decimal("1200.50"),
            date(2026, 11, 1),
            date(2026, 12, 10),
            "billing",
        ),
        "accrual:5500112233:2026-11:пени": (
            Decimal("50.00"),
            date(2026, 11, 1),
            date(2026, 12, 10),
            "billing",
        ),
    }
    with db.transaction() as s:
        state = balance(s, account_id, TODAY)
        assert (state.debt, state.overdue, state.days_overdue) == (
            Decimal("2250.50"),
            Decimal("1000.00"),
            25,
        )
    again = import_charges(db, path, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert len(_charges(db)) == 3


def test_recalculation_updates_and_ids_bind_to_one_account(db: Database, tmp_path: Path) -> None:
    _account(db, "5500112233")
    _account(db, "5500112234")
    first = _write(
        tmp_path / "a.csv",
        ["account,period,amount,charge id,due date", "5500112233,2026-11,100.00,B-1,2026-12-15"],
    )
    import_charges(db, first, now=NOW)
    second = _write(
        tmp_path / "b.csv",
        [
            "account,period,amount,charge id,due date",
            "5500112233,2026-11,120.00,B-1,2026-12-15",
            "5500112234,2026-11,120.00,B-1,2026-12-15",
            "5500112233,2026-11,5,B-2,2026-10-01",
        ],
    )
    report = import_charges(db, second, now=NOW)
    assert report.updated == 1
    assert report.lines()[4:9] == [
        "  изменено (перерасчёт): 1",
        "  строка 2: перерасчёт charge:B-1: было 100.00, стало 120.00 (срок 15.12.2026)",
        "Уже были загружены (без изменений): 0",
        "Отклонено строк: 2",
        "  строка 3: строка 2 уже задаёт начисление B-1 с другими значениями",
    ]
    assert [str(e) for e in report.errors][1] == (
        "строка 4, столбец due date: срок оплаты раньше начала расчётного периода"
    )
    assert _charges(db)["charge:B-1"][0] == Decimal("120.00")
    third = _write(
        tmp_path / "c.csv",
        ["account,period,amount,charge id", "5500112234,2026-11,120.00,B-1"],
    )
    report = import_charges(db, third, now=NOW)
    assert [str(e) for e in report.errors] == [
        "строка 2: начисление charge:B-1 относится к другому лицевому счёту"
    ]


def test_snapshot_sets_the_balance_as_of_its_date(db: Database, tmp_path: Path) -> None:
    account_id = _account(db, "5500112233")
    import_charges(db, _write(tmp_path / "a.csv", ACCRUALS[:4]), now=NOW)
    with db.transaction() as s:
        record_payment(s, account_id, amount="200.00", paid_on=date(2026, 11, 20), channel="bank")
    snapshot = _write(
        tmp_path / "s.csv",
        ["Лицевой счёт;Задолженность;Дата", "5500112233;1 500,00;30.11.2026"],
    )
    report = import_charges(db, snapshot, now=NOW)
    assert report.lines()[1:5] == [
        "Вид файла: сальдо на дату",
        "Строк с данными: 1",
        "Сальдо применено: 1 (корректировки на сумму -550.50 руб.)",
        "  изменено сальдо на ту же дату: 0",
    ]
    key = snapshot_key("5500112233", date(2026, 11, 30))
    assert _charges(db)[key] == (
        Decimal("-550.50"),
        date(2026, 11, 1),
        date(2026, 11, 30),
        "adjustment",
    )
    with db.transaction() as s:
        assert balance(s, account_id, date(2026, 11, 30)).debt == Decimal("1500.00")
        # a payment after the snapshot counts on top of it
        record_payment(s, account_id, amount="300.00", paid_on=date(2026, 12, 1), channel="sbp")
    again = import_charges(db, snapshot, now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    with db.transaction() as s:
        assert balance(s, account_id, TODAY).debt == Decimal("1200.00")
    # a new figure for the same date moves the adjustment; a later date adds one
    changed = _write(
        tmp_path / "s2.csv",
        [
            "Лицевой счёт;Задолженность;Дата",
            "5500112233;1 400,00;30.11.2026",
            "5500112233;-50,00;04.12.2026",
        ],
    )
    report = import_charges(db, changed, now=NOW)
    assert (report.created, report.updated) == (1, 1)
    assert (
        "  строка 2: сальдо лицевого счёта 5500112233 на 30.11.2026: было 1500.00, стало "
        + ("1400.00")
        in report.lines()
    )
    with db.transaction() as s:
        assert balance(s, account_id, date(2026, 11, 30)).debt == Decimal("1400.00")
        state = balance(s, account_id, TODAY)
        assert (state.debt, state.credit) == (Decimal("0.00"), Decimal("50.00"))
    older = _write(
        tmp_path / "s3.csv",
        ["Лицевой счёт;Задолженность;Дата", "5500112233;999;01.11.2026"],
    )
    report = import_charges(db, older, now=NOW)
    assert [str(e) for e in report.errors] == [
        (
            "строка 2: на лицевой счёт 5500112233 уже загружено сальдо на более позднюю дату "
            "04.12.2026: сальдо на 01.11.2026 не применено"
        )
    ]


def test_snapshot_xlsx_with_numbers_and_dates(db: Database, tmp_path: Path) -> None:
    account_id = _account(db, "5500112233")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Account", "Balance", "As of"])
    sheet.append([5500112233, 1234.56, datetime(2026, 12, 1)])  # noqa: DTZ001
    sheet.append([5500112233, 10, datetime(2026, 12, 31)])  # noqa: DTZ001
    path = tmp_path / "snapshot.xlsx"
    book.save(path)
    report = import_charges(db, path, now=NOW)
    assert [str(e) for e in report.errors] == [
        "строка 3, столбец As of: дата сальдо в будущем: «2026-12-31»"
    ]
    with db.transaction() as s:
        assert balance(s, account_id, TODAY).debt == Decimal("1234.56")


def test_shape_comes_from_the_header(db: Database, tmp_path: Path) -> None:
    both = _write(tmp_path / "b.csv", ["Лицевой счёт;Период;Начислено;Сальдо;Дата", "1;2;3;4;5"])
    with pytest.raises(ImportFileError, match="подходит и «начисления» и «сальдо на дату»"):
        import_charges(db, both, now=NOW)
    payments = _write(
        tmp_path / "p.csv", ["Лицевой счёт;Сумма;Дата платежа;Номер платежа", "1;2;3;4"]
    )
    with pytest.raises(ImportFileError, match="нет столбцов"):
        import_charges(db, payments, now=NOW)
    with pytest.raises(ImportFileError, match="нет столбцов: «Сумма»"):
        import_payments(db, _write(tmp_path / "a.csv", ACCRUALS), now=NOW)


def test_net_balances_count_like_balance(db: Database, tmp_path: Path) -> None:
    first, second, third = (_account(db, n) for n in ("5500112233", "5500112234", "5500112235"))
    import_charges(db, _write(tmp_path / "a.csv", ACCRUALS[:4]), now=NOW)
    with db.transaction() as s:
        record_payment(s, first, amount="3000", paid_on=date(2026, 12, 1), channel="bank")
        record_payment(s, second, amount="10", paid_on=date(2026, 12, 1), channel="bank")
        days = {first: date(2026, 11, 15), second: TODAY, third: TODAY}
        nets = net_balances(s, {**days, first: TODAY})
        assert nets == {first: Decimal("-749.50"), second: Decimal("-10.00"), third: 0}
        for account_id, day in days.items():
            state = balance(s, account_id, day)
            assert net_balances(s, {account_id: day})[account_id] == state.debt - state.credit


def test_cli_imports_charges(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    _account(db, "5500112233")
    path = _write(tmp_path / "accruals.csv", ACCRUALS[:3])
    result = CliRunner().invoke(import_group, ["charges", str(path)])
    assert result.exit_code == 0, result.output
    assert "Начислений записано: 2 на сумму 2200.50 руб." in result.output
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Charge)) == 2
        run = s.scalars(select(ImportRun)).one()
        assert (run.kind, run.status, run.rows_done) == ("charges", "completed", 2)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = CliRunner().invoke(import_group, ["charges", str(empty)])
    assert result.exit_code == 1
    assert "Импорт невозможен: файл пуст" in result.output
