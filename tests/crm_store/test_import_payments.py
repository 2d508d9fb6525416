"""Payments registry import: report, ledger at once, idempotence, conflicts, kept-aside
payments matched later, XLSX, batches that land or not, progress, runs and the CLI."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from crm_store import import_batches
from crm_store.cli_data import import_group
from crm_store.db import Database
from crm_store.errors import ImportFileError
from crm_store.import_files import ImportProgress
from crm_store.import_payments import channel_of, import_payments, match_kept_payments
from crm_store.import_runs import create_run
from crm_store.importer import COLUMNS, import_consumers
from crm_store.ledger import add_charge, balance
from crm_store.models import (
    Account,
    Consumer,
    ImportRun,
    Payment,
    UnmatchedPayment,
)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 2)
HEADER = "Лицевой счёт;ФИО;Сумма, руб.;Дата платежа;№ платежа;Агент"
REGISTRY = [
    "Реестр платежей ПАО Сбербанк за 01.12.2026",
    HEADER,
    "5500112233;Иванов И.И.;1\u00a0234,56;01.12.2026 10:15:00;SB-1;ПАО Сбербанк",
    "55-0011-2233;Иванов И.И.;100.00;01.12.2026;SB-2;СБП",
    "7700000001;Петров П.П.;500,00;01.12.2026 11:00;SB-3;Почта России",
    "abc;;x;32.12.2026;;",
    "5500112233;Иванов И.И.;1\u00a0234,56;01.12.2026 10:15:00;SB-1;ПАО Сбербанк",
    "5500112233;Иванов И.И.;-5,00;01.12.2026;SB-4;",
    "5500112233;Иванов И.И.;5,00;03.12.2026;SB-5;",
    "Итого;;2 134,56;;;",
]


def _account(db: Database, number: str, *, debt: Decimal | None = None) -> int:
    with db.transaction() as s:
        account = Account(
            consumer=Consumer(full_name="Иванов Иван Иванович"),
            number_raw=number,
            number=number,
            timezone="Europe/Moscow",
        )
        s.add(account)
        s.flush()
        if debt is not None:
            add_charge(
                s, account.id, period=date(2026, 10, 1), amount=debt, due_date=date(2026, 11, 10)
            )
        return int(account.id)


def _write(path: Path, lines: list[str], encoding: str = "cp1251") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Payment)) or 0),
            int(s.scalar(select(func.count()).select_from(UnmatchedPayment)) or 0),
        )


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return _write(tmp_path / "registry.csv", REGISTRY)


def test_registry_report_and_the_ledger_at_once(db: Database, registry: Path) -> None:
    account_id = _account(db, "5500112233", debt=Decimal("2000.00"))
    report = import_payments(db, registry, now=NOW)
    assert report.lines() == [
        f"Файл: {registry}",
        "Вид файла: реестр платежей",
        "Строк с данными: 7",
        "Записано платежей: 2 на сумму 1334.56 руб.",
        "Уже были загружены (без изменений): 0",
        (
            "Отложено — лицевой счёт не найден: 1 на сумму 500.00 руб. (сохранены и будут "
            "зачислены, когда счёт появится)"
        ),
        "  строка 5: лицевой счёт 7700000001 не найден: платёж SB-3 на 500.00 руб. отложен",
        "Повторы строк в файле (пропущены): 1",
        "  строка 7: повторяет строку 3, пропущена",
        "Отклонено строк: 3",
        "  строка 6, столбец Лицевой счёт: «abc» не похож на номер лицевого счёта",
        (
            "  строка 6, столбец Сумма, руб.: сумма «x» не распознана; пример правильной записи: "
            "1 234,56"
        ),
        "  строка 6, столбец Дата платежа: такой даты или времени нет: «32.12.2026»",
        "  строка 6, столбец № платежа: не указан номер платежа",
        (
            "  строка 8, столбец Сумма, руб.: отрицательная сумма (возврат, сторно) "
            "не загружается: «-5,00»"
        ),
        "  строка 9, столбец Дата платежа: дата платежа в будущем: «03.12.2026»",
        "Пакетов записано: 1 (строки 3–9)",
    ]
    with db.transaction() as s:
        state = balance(s, account_id, TODAY)
        assert state.debt == Decimal("665.44")
        assert (state.last_payment_on, state.last_payment_amount) == (
            date(2026, 12, 1),
            Decimal("1334.56"),
        )
        stored = {p.external_id: p for p in s.scalars(select(Payment))}
        assert stored["SB-1"].paid_at == datetime(2026, 12, 1, 7, 15, tzinfo=UTC)
        assert (stored["SB-1"].channel, stored["SB-1"].agent) == ("bank", "ПАО Сбербанк")
        assert (stored["SB-2"].channel, stored["SB-2"].paid_at) == ("sbp", None)
        kept = s.scalars(select(UnmatchedPayment)).one()
        assert (kept.account_number, kept.amount, kept.channel, kept.source_row) == (
            "7700000001",
            Decimal("500.00"),
            "cash",
            5,
        )


def test_a_registry_imported_twice_changes_nothing(db: Database, registry: Path) -> None:
    _account(db, "5500112233")
    import_payments(db, registry, now=NOW)
    before = _counts(db)
    again = import_payments(db, registry, now=NOW)
    assert _counts(db) == before == (2, 1)
    assert (again.recorded, again.unchanged, again.kept_aside) == (0, 2, 0)
    assert "  из них отложены ещё раньше: 1" in again.lines()


def test_the_same_id_with_other_values_is_a_located_conflict(db: Database, tmp_path: Path) -> None:
    _account(db, "5500112233")
    _account(db, "5500112234")
    first = _write(tmp_path / "a.csv", [HEADER, "5500112233;;100,00;01.12.2026;X-1;"])
    import_payments(db, first, now=NOW)
    second = _write(
        tmp_path / "b.csv",
        [
            HEADER,
            "5500112233;;150,00;01.12.2026;X-1;",
            "5500112234;;100,00;01.12.2026;X-1;",
            "5500112233;;1,00;01.12.2026;X-2;",
            "5500112233;;2,00;01.12.2026;X-2;",
        ],
    )
    report = import_payments(db, second, now=NOW)
    assert [str(e) for e in report.errors] == [
        (
            "строка 2: платёж X-1 уже загружен с другими данными: лицевой счёт 5500112233, "
            "сумма 100.00, дата 01.12.2026"
        ),
        "строка 3: номер платежа X-1 уже есть в строке 2 с другим лицевым счётом, суммой или датой",
        "строка 5: номер платежа X-2 уже есть в строке 4 с другим лицевым счётом, суммой или датой",
    ]
    with db.transaction() as s:
        assert s.scalars(select(Payment.amount).where(Payment.external_id == "X-1")).one() == (
            Decimal("100.00")
        )


def test_kept_payment_is_recorded_when_a_consumer_import_creates_the_account(
    db: Database, registry: Path, tmp_path: Path
) -> None:
    import_payments(db, registry, now=NOW)
    assert _counts(db) == (0, 3)
    consumers = tmp_path / "consumers.csv"
    with consumers.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        account = ["7700000001", "Петров Пётр", "", "г. Киров, ул. Мира, 1", "Europe/Kirov"]
        writer.writerow([*account, "M-1", "6", "общая", "", "", "800,00", "10.11.2026"])
    report = import_consumers(db, consumers, today=TODAY)
    assert report.payments_matched == 1
    assert "Зачислено отложенных платежей (лицевые счета появились): 1" in report.lines()
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "7700000001")).one()
        assert balance(s, account.id, TODAY).debt == Decimal("300.00")
        kept = s.scalars(
            select(UnmatchedPayment).where(UnmatchedPayment.external_id == "SB-3")
        ).one()
        assert kept.matched_at is not None
        payment = s.get(Payment, kept.payment_id)
        assert payment is not None
        assert (payment.amount, payment.agent, payment.channel) == (
            Decimal("500.00"),
            "Почта России",
            "cash",
        )
    # the registry again: nothing new, the matched payment is "already imported"
    again = import_payments(db, registry, now=NOW)
    assert (again.recorded, again.unchanged) == (0, 1)
    assert _counts(db) == (1, 3)


def test_registry_run_again_matches_payments_kept_for_a_new_account(
    db: Database, registry: Path
) -> None:
    import_payments(db, registry, now=NOW)
    account_id = _account(db, "5500112233")  # created by another path than an import
    report = import_payments(db, registry, now=NOW)
    assert (report.recorded, report.counts["matched"]) == (2, 2)
    with db.transaction() as s:
        assert balance(s, account_id, TODAY).credit == Decimal("1334.56")
        matched = s.scalars(
            select(UnmatchedPayment.payment_id).where(UnmatchedPayment.matched_at.is_not(None))
        ).all()
        assert len(matched) == 2
        assert None not in matched
        # nothing left to match for this account
        account = s.get(Account, account_id)
        assert account is not None
        assert match_kept_payments(s, account) == 0


def test_english_headers_separate_time_column_and_utf8(db: Database, tmp_path: Path) -> None:
    account_id = _account(db, "5500112233")
    path = _write(
        tmp_path / "r.csv",
        [
            "account,amount,payment date,time,payment id,channel",
            "5500112233,250.5,2026-12-01,23:30,T-1,card",
            "5500112233,1,2026-12-01,25:00,T-2,card",
        ],
        encoding="utf-8",
    )
    report = import_payments(db, path, now=NOW)
    assert [str(e) for e in report.errors] == [
        "строка 3, столбец time: такого времени нет: «25:00»"
    ]
    with db.transaction() as s:
        payment = s.scalars(select(Payment).where(Payment.account_id == account_id)).one()
        assert (payment.amount, payment.channel) == (Decimal("250.50"), "card")
        assert payment.paid_at == datetime(2026, 12, 1, 20, 30, tzinfo=UTC)


def test_xlsx_registry_with_number_and_date_cells(db: Database, tmp_path: Path) -> None:
    account_id = _account(db, "5500112233")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Номер платежа", "Лицевой счёт", "Сумма", "Дата оплаты", "Банк"])
    sheet.append([1001, 5500112233, 1234.56, datetime(2026, 12, 1, 10, 15), "ВТБ"])  # noqa: DTZ001
    sheet.append([1002, 5500112233, 12.345, datetime(2026, 12, 1), "ВТБ"])  # noqa: DTZ001
    sheet.append([1003, 5500112233, 99.9, "01.12.2026", "ВТБ"])
    path = tmp_path / "registry.xlsx"
    book.save(path)
    report = import_payments(db, path, now=NOW)
    assert [str(e) for e in report.errors] == [
        "строка 3, столбец Сумма: сумма «12.345» не распознана; пример правильной записи: 1 234,56"
    ]
    with db.transaction() as s:
        amounts = sorted(
            s.scalars(select(Payment.amount).where(Payment.account_id == account_id)).all()
        )
        assert amounts == [Decimal("99.90"), Decimal("1234.56")]


@pytest.mark.parametrize(
    ("agent", "channel"),
    [
        ("ПАО Сбербанк", "bank"),
        ("СБП", "sbp"),
        ("Оплата по QR-коду", "sbp"),
        ("Эквайринг карт", "card"),
        ("Почта России", "cash"),
        ("Касса офиса", "cash"),
        ("Личный кабинет", "web"),
        ("web", "web"),
        ("", "bank"),
    ],
)
def test_channel_of_agent(agent: str, channel: str) -> None:
    assert channel_of(agent) == channel


def test_files_that_are_not_registries_are_refused(db: Database, tmp_path: Path) -> None:
    wrong = _write(tmp_path / "w.csv", ["account;amount", "1;2"])
    with pytest.raises(ImportFileError, match="нет столбцов: «Дата платежа», «Номер платежа»"):
        import_payments(db, wrong, now=NOW)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x00\x01\x02\x03" * 10)
    with pytest.raises(ImportFileError, match="двоичные данные"):
        import_payments(db, binary, now=NOW)
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFileError, match="файл пуст"):
        import_payments(db, empty, now=NOW)
    assert _counts(db) == (0, 0)


def _many(tmp_path: Path, count: int) -> Path:
    lines = [HEADER] + [
        f"5500112233;;{n},00;01.12.2026 10:{n % 60:02d}:00;M-{n};" for n in range(1, count + 1)
    ]
    return _write(tmp_path / "many.csv", lines)


def test_batches_progress_and_the_run(db: Database, tmp_path: Path) -> None:
    _account(db, "5500112233")
    path = _many(tmp_path, 7)
    with db.transaction() as s:
        run_id = create_run(s, "payments", str(path)).id
    seen: list[ImportProgress] = []
    report = import_payments(db, path, now=NOW, batch_size=3, progress=seen.append, run_id=run_id)
    assert [(b.first_row, b.last_row, b.rows, b.committed) for b in report.batches] == [
        (2, 4, 3, True),
        (5, 7, 3, True),
        (8, 8, 1, True),
    ]
    assert [p.batches_committed for p in seen] == [1, 2, 3]
    assert [p.rows_read for p in seen] == [3, 6, 7]
    assert seen[-1].done == seen[-1].total == path.stat().st_size
    assert "Пакетов записано: 3 (строки 2–8)" in report.lines()
    with db.transaction() as s:
        run = s.get(ImportRun, run_id)
        assert run is not None
        assert (run.status, run.rows_done, run.batches_committed) == ("completed", 7, 3)
        assert run.summary["counts"]["recorded"] == 7
        assert run.summary["amounts"]["recorded"] == "28.00"


def test_a_failing_batch_is_not_half_applied_and_a_rerun_completes(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = _account(db, "5500112233")
    path = _many(tmp_path, 7)
    real = import_batches.BulkInsert.insert_converted
    calls = {"n": 0}

    def flaky(self: Any, session: Any, rows: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            real(self, session, rows[:1], **kw)  # part of the batch is written, then it fails
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return real(self, session, rows, **kw)

    monkeypatch.setattr(import_batches.BulkInsert, "insert_converted", flaky)
    with db.transaction() as s:
        run_id = create_run(s, "payments", str(path)).id
    report = import_payments(db, path, now=NOW, batch_size=3, run_id=run_id)
    assert report.aborted == "пакет 2 (строки 5–7) не записан: disk I/O error"
    assert report.lines()[-4:] == [
        "Пакетов записано: 1 (строки 2–4)",
        "пакет 2 (строки 5–7): НЕ записан — ошибка базы: disk I/O error",
        "Импорт остановлен: пакет 2 (строки 5–7) не записан: disk I/O error",
        (
            "Записанные пакеты остаются; загрузите файл ещё раз после исправления — уже "
            "загруженные строки не повторятся."
        ),
    ]
    with db.transaction() as s:
        assert s.scalars(select(Payment.external_id).order_by(Payment.id)).all() == [
            "M-1",
            "M-2",
            "M-3",
        ]
        run = s.get(ImportRun, run_id)
        assert run is not None
        assert (run.status, run.batches_committed, run.rows_done) == ("failed", 1, 3)
        assert run.error == report.aborted
    monkeypatch.setattr(import_batches.BulkInsert, "insert_converted", real)
    again = import_payments(db, path, now=NOW, batch_size=3)
    assert (again.recorded, again.unchanged, again.aborted) == (4, 3, None)
    with db.transaction() as s:
        assert balance(s, account_id, TODAY).paid == Decimal("28.00")


def test_dry_run_checks_against_the_database_and_writes_nothing(
    db: Database, registry: Path
) -> None:
    _account(db, "5500112233")
    report = import_payments(db, registry, now=NOW, dry_run=True)
    assert (report.recorded, report.kept_aside) == (2, 1)
    assert report.lines()[:4] == [
        f"Файл: {registry}",
        "Проверка без записи (--dry-run): база данных не изменена.",
        "Вид файла: реестр платежей",
        "Строк с данными: 7",
    ]
    assert "Можно записать платежей: 2 на сумму 1334.56 руб." in report.lines()
    assert _counts(db) == (0, 0)


def test_report_lists_the_first_problems_and_the_file_has_all(db: Database, tmp_path: Path) -> None:
    lines = [HEADER] + [f"55001122{n:02d};;x;01.12.2026;B-{n};" for n in range(10)]
    path = _write(tmp_path / "bad.csv", lines)
    problems = tmp_path / "problems.csv"
    report = import_payments(db, path, now=NOW, listed=3, problems_file=problems)
    assert report.rows_rejected == 10
    assert len(report.errors) == 3
    assert report.lines()[-2] == f"  … и ещё 7 замечаний (все — в файле {problems})"
    with problems.open(encoding="utf-8-sig") as fh:
        assert len(list(csv.reader(fh, delimiter=";"))) == 11


def test_cli_imports_payments_with_a_run(
    db: Database, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    _account(db, "5500112233")
    copy = tmp_path / "copy.csv"
    shutil.copy(registry, copy)
    runner = CliRunner()
    result = runner.invoke(import_group, ["payments", str(copy), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Проверка без записи" in result.output
    assert _counts(db) == (0, 0)
    result = runner.invoke(import_group, ["payments", str(copy)])
    assert result.exit_code == 0, result.output
    # the CLI reads the real clock: the registry's December 2026 dates are in its past
    assert "Импорт №" in result.output
    assert "строка 5: лицевой счёт 7700000001 не найден" in result.output
    with db.transaction() as s:
        run = s.scalars(select(ImportRun)).one()
        assert (run.kind, run.status, run.actor) == ("payments", "completed", "cli")
    result = runner.invoke(import_group, ["payments", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1
    assert "Импорт невозможен: файл не найден" in result.output
    result = runner.invoke(import_group, ["payments", str(copy), "--timezone", "Mars/Base"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
