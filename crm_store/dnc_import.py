"""Bulk import of a do-not-contact list: CSV, XLSX or a plain list of numbers.

One number a row, in any Russian notation (``+7 916 123-45-67``, ``8 (916) 1234567``); an
optional second column is the reason of that row (otherwise the import's reason applies). A
first row without digits is a header: then the columns are found by name (``phone`` /
``телефон`` / ``номер`` …, ``reason`` / ``причина`` / ``комментарий`` …) and other columns are
ignored. Files are read by :mod:`crm_store.import_files` like every data file: text in UTF-8,
UTF-16 or cp1251 separated by ``;``, ``,``, a tab or ``|``, or the first sheet of an XLSX book.

Bad rows are reported with the row number a spreadsheet shows (the header is row 1) and the
good rows are kept; a number repeated in the file is reported once as a duplicate; a number
already on the list for the channel is left as it is, so importing a file twice changes
nothing. Rows are written in batches, each in its own transaction; every new entry is audited
with the importing actor and its reason (:mod:`crm_store.contact_lists`). A file that is not
a list at all (missing, empty, binary, no phone column) raises :class:`ImportFileError` with
one clear line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_store.audit import MAX_REASON_LENGTH
from crm_store.consent import add_do_not_contact, dnc_phone
from crm_store.contact_lists import (
    MANUAL_DNC_SOURCE,
    audited_change,
    check_actor,
    check_reason,
)
from crm_store.db import Database
from crm_store.errors import ImportFileError, InvalidInput
from crm_store.import_files import FileFormat, header_key, open_table
from crm_store.models import DNC_CHANNELS, DoNotContact

__all__ = [
    "BATCH_SIZE",
    "DncFileFormat",
    "DncImportReport",
    "DncRow",
    "DncRowProblem",
    "import_dnc",
    "read_dnc_rows",
]

DncFileFormat = FileFormat
BATCH_SIZE = 1000
PHONE_HEADERS = frozenset({"phone", "телефон", "номер", "номер телефона", "msisdn", "tel"})
REASON_HEADERS = frozenset({"reason", "причина", "комментарий", "comment", "основание"})
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class DncRow:
    """One data row: its sheet row number, the number and the reason as written."""

    number: int
    phone: str
    reason: str


@dataclass(frozen=True)
class DncRowProblem:
    """A rejected or repeated row: sheet row number and why (plain Russian)."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"строка {self.row}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"row": self.row, "reason": self.reason}


@dataclass
class DncImportReport:
    """What an import did."""

    source: str
    channel: str
    rows_read: int = 0
    added: int = 0
    already_listed: int = 0
    batches_total: int = 0
    batches_committed: int = 0
    errors: list[DncRowProblem] = field(default_factory=list)
    duplicates: list[DncRowProblem] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as printable Russian lines."""
        out = [
            f"Файл: {self.source}",
            f"Канал: {self.channel}",
            f"Строк с номерами: {self.rows_read}",
            f"Добавлено в стоп-лист: {self.added}",
            f"Уже были в стоп-листе: {self.already_listed}",
            f"Пакетов записано: {self.batches_committed} из {self.batches_total}",
        ]
        if self.duplicates:
            out.append(f"Повторы номеров в файле (пропущены): {len(self.duplicates)}")
            out.extend(f"  {d}" for d in self.duplicates)
        out.append(f"Отклонено строк: {len(self.errors)}")
        out.extend(f"  {e}" for e in self.errors)
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "channel": self.channel,
            "rows_read": self.rows_read,
            "added": self.added,
            "already_listed": self.already_listed,
            "batches_total": self.batches_total,
            "batches_committed": self.batches_committed,
            "duplicates": [d.as_dict() for d in self.duplicates],
            "errors": [e.as_dict() for e in self.errors],
        }


# ---------------------------------------------------------------------------- reading


def _columns(header: Sequence[str]) -> tuple[int, int | None]:
    names = [header_key(cell) for cell in header]
    phone = next((i for i, n in enumerate(names) if n in PHONE_HEADERS), None)
    if phone is None:
        raise ImportFileError(
            "в заголовке нет столбца с номером телефона (phone, телефон или номер); "
            "список без заголовка — номер в первом столбце"
        )
    reason = next((i for i, n in enumerate(names) if n in REASON_HEADERS), None)
    return phone, reason


def read_dnc_rows(path: Path, file_format: DncFileFormat | None = None) -> list[DncRow]:
    """The rows of a do-not-contact file; :class:`ImportFileError` when it is not one."""
    with open_table(path, file_format) as table:
        numbered = [(n, cells) for n, cells in table.rows() if any(cells)]
    if not numbered:
        raise ImportFileError("файл пуст: в нём нет ни одного номера")
    phone_col, reason_col = 0, 1
    first = numbered[0][1]
    if not _DIGIT.search(first[0] if first else ""):
        phone_col, found = _columns(first)
        reason_col = -1 if found is None else found
        numbered = numbered[1:]

    def cell(cells: list[str], index: int) -> str:
        return cells[index] if 0 <= index < len(cells) else ""

    return [DncRow(n, cell(cells, phone_col), cell(cells, reason_col)) for n, cells in numbered]


# ---------------------------------------------------------------------------- writing


def _checked_rows(
    rows: Sequence[DncRow], report: DncImportReport
) -> list[tuple[int, str, str | None]]:
    """(row, E.164, reason or None) of the good rows; problems go to the report."""
    good: list[tuple[int, str, str | None]] = []
    first_row: dict[str, int] = {}
    for row in rows:
        if not row.phone:
            report.errors.append(DncRowProblem(row.number, "нет номера телефона"))
            continue
        try:
            phone = dnc_phone(row.phone)
        except InvalidInput as exc:
            report.errors.append(DncRowProblem(row.number, str(exc)))
            continue
        if len(row.reason) > MAX_REASON_LENGTH:
            report.errors.append(
                DncRowProblem(row.number, f"причина длиннее {MAX_REASON_LENGTH} символов")
            )
            continue
        if phone in first_row:
            report.duplicates.append(
                DncRowProblem(row.number, f"номер {phone} уже был в строке {first_row[phone]}")
            )
            continue
        first_row[phone] = row.number
        good.append((row.number, phone, row.reason or None))
    return good


def import_dnc(
    db: Database,
    path: Path,
    *,
    actor: str,
    reason: str,
    channel: str = "any",
    file_format: DncFileFormat | None = None,
    batch_size: int = BATCH_SIZE,
    source: str | None = None,
) -> DncImportReport:
    """Import a do-not-contact list for ``channel``; ``reason`` applies to rows without one.

    ``source`` names the file in the report (default: the path's name)."""
    if channel not in DNC_CHANNELS:
        raise InvalidInput(f"неизвестный канал {channel!r}; допустимы: {', '.join(DNC_CHANNELS)}")
    actor = check_actor(actor)
    reason = check_reason(reason)
    report = DncImportReport(source=source or path.name, channel=channel)
    rows = read_dnc_rows(path, file_format)
    report.rows_read = len(rows)
    good = _checked_rows(rows, report)
    batches = [good[i : i + batch_size] for i in range(0, len(good), batch_size)]
    report.batches_total = len(batches)
    for batch in batches:
        added = 0
        with db.transaction() as session:
            listed = set(
                session.scalars(
                    select(DoNotContact.value).where(
                        DoNotContact.value.in_([phone for _, phone, _ in batch]),
                        DoNotContact.channel == channel,
                    )
                )
            )
            for _row, phone, row_reason in batch:
                if phone in listed:
                    continue
                with audited_change(session, actor, row_reason or reason):
                    add_do_not_contact(
                        session,
                        phone,
                        channel=channel,
                        reason=MANUAL_DNC_SOURCE,
                        created_by=actor,
                    )
                added += 1
        report.added += added
        report.already_listed += len(batch) - added
        report.batches_committed += 1
    return report
