"""Fuzzing the file importers (consumers, payments, charges, outages, do-not-contact):
random bytes, or a right header over rows of hostile cells, as CSV or XLSX → a report with
located problems or an :class:`ImportFileError` with one line, never another exception —
on SQLite and on PostgreSQL (which refuses NUL characters in text)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from crm_store.db import Database
from crm_store.dnc_import import import_dnc
from crm_store.errors import ImportFileError
from crm_store.import_charges import import_charges
from crm_store.import_payments import import_payments
from crm_store.importer import COLUMNS, import_consumers
from crm_store.outage_import import import_outages
from tests.abuse.strategies import HOSTILE, any_text, fuzz

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HEADERS = {
    "consumers": list(COLUMNS),
    "payments": ["Лицевой счёт", "Сумма", "Дата платежа", "№ платежа", "Агент"],
    "charges": ["Лицевой счёт", "Период", "Начислено", "Вид начисления"],
    "outages": [
        "external_id", "kind", "settlement", "street", "houses", "feeder", "substation",
        "starts_at", "expected_end_at", "reason",
    ],
    "dnc": ["phone", "reason"],
}  # fmt: skip
PLAUSIBLE = (
    "5500112233", "+79161234567", "89161234567", "1 234,56", "100.00", "-5", "0",
    "01.12.2026", "2026-11", "31.02.2026", "20.11.2026 10:00", "Europe/Moscow", "T1",
    "T1,T2", "12345", "6", "emergency", "planned", "г. Москва", "ул. Ленина", "1-15",
    "Иванов Иван Иванович", "ПАО Сбербанк", "Итого",
)  # fmt: skip


def _run(kind: str, db: Database, path: Path) -> Any:
    importers: dict[str, Callable[[], Any]] = {
        "consumers": lambda: import_consumers(db, path, today=date(2026, 11, 20)),
        "payments": lambda: import_payments(db, path, now=NOW),
        "charges": lambda: import_charges(db, path, now=NOW),
        "outages": lambda: import_outages(db, path, now=NOW),
        "dnc": lambda: import_dnc(db, path, actor="abuse", reason="fuzz"),
    }
    return importers[kind]()


def _check(kind: str, db: Database, path: Path) -> None:
    try:
        report = _run(kind, db, path)
    except ImportFileError as exc:
        message = str(exc)
        assert message.strip()
        assert "Traceback" not in message
    else:
        assert report is not None


cells = st.one_of(st.sampled_from(PLAUSIBLE), st.sampled_from(HOSTILE), any_text)


def _csv(rows: list[list[str]], delimiter: str) -> bytes:
    lines = [delimiter.join(cell.replace("\n", " ") for cell in row) for row in rows]
    return "\r\n".join(lines).encode("utf-8", "surrogatepass")


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        # openpyxl refuses control characters in cells, as Excel does
        sheet.append(["".join(c for c in cell if c >= " " or c == "\t") for cell in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


KINDS = sorted(HEADERS)


@pytest.mark.parametrize("kind", KINDS)
@fuzz(12)
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".xlsx", ".txt", ""]))
def test_random_bytes_are_refused_with_one_line(
    kind: str, db: Database, tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    _check(kind, db, path)


@pytest.mark.parametrize("kind", KINDS)
@fuzz(15)
@given(
    rows=st.lists(st.lists(cells, min_size=0, max_size=13), min_size=1, max_size=6),
    shape=st.sampled_from(["csv;", "csv,", "xlsx"]),
)
def test_hostile_rows_under_a_right_header_are_reported(
    kind: str, db: Database, tmp_path: Path, rows: list[list[str]], shape: str
) -> None:
    table = [HEADERS[kind], *rows]
    if shape == "xlsx":
        path = tmp_path / "hostile.xlsx"
        path.write_bytes(_xlsx(table))
    else:
        path = tmp_path / "hostile.csv"
        path.write_bytes(_csv(table, shape[-1]))
    _check(kind, db, path)
