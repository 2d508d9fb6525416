"""The campaign report as a table people download: CSV (UTF-8 with a BOM, so spreadsheet
programs read the Cyrillic) and XLSX (openpyxl), in Russian.

:func:`report_sections` lays the :class:`~campaigns.report.CampaignReport` out as titled
sections of (label, value) rows — the same rows the console's report page shows — and both
files are written from them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font

from campaigns.report import CampaignReport

Cell = str | int | float | Decimal

#: Russian names of campaign and attempt vocabularies shown in the report.
STATUS_LABELS = {
    "draft": "черновик",
    "planned": "запланирована",
    "running": "идёт",
    "paused": "приостановлена",
    "cancelled": "отменена",
    "completed": "завершена",
}
SKIP_LABELS = {
    "outside_window": "вне разрешённого времени",
    "cap_reached": "превышен лимит контактов",
    "opted_out": "отказ от контактов",
    "no_consent": "нет согласия",
    "invalid_number": "неверный номер",
    "unknown_timezone": "неизвестный часовой пояс",
    "paid": "оплатил",
    "unknown": "причина не указана",
}
OUTCOME_LABELS = {
    "answered": "ответил",
    "busy": "занято",
    "no_answer": "нет ответа",
    "failed": "ошибка",
    "machine": "автоответчик",
    "machine_message": "сообщение на автоответчик",
    "delivered": "доставлено",
    "undelivered": "не доставлено",
    "sent_unconfirmed": "отправлено, доставка не подтверждена",
    "sent": "отправлено",
    "opted_out": "отказ",
    "skipped": "пропущено",
    "intent": "готовится",
    "dialing": "набор",
    "in_progress": "идёт",
    "completed": "завершено",
}


@dataclass(frozen=True)
class Section:
    """A titled block of (label, value) rows."""

    title: str
    rows: list[tuple[str, Cell]]


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def report_sections(report: CampaignReport) -> list[Section]:
    """The report as titled sections of (label, value) rows."""
    summary = Section(
        "Кампания",
        [
            ("Номер", report.campaign_id),
            ("Название", report.name),
            ("Статус", STATUS_LABELS.get(report.status, report.status)),
            ("Целей", report.targets),
            ("Контрольная группа", report.control_group),
            ("Попыток", report.attempts),
            ("Звонков", report.calls_placed),
            ("SMS отправлено", report.sms_sent),
            ("Достигнуто", report.reached),
            ("Ответили на звонок", report.calls_answered),
            ("Автоответчик", report.answered_by_machine),
            ("SMS доставлено", report.sms_delivered),
            ("Разговор с абонентом", report.right_party_contacts),
            ("Отказались от контактов", report.opt_outs),
        ],
    )
    payments = Section(
        f"Оплаты за {report.attribution_days} дн.",
        [
            ("Оплатили после контакта", f"{report.contacted.payers} из {report.contacted.targets}"),
            ("Сумма после контакта, руб.", report.contacted.paid),
            ("Доля оплативших: кампания", _percent(report.treatment.pay_rate)),
            (
                "Доля оплативших: контрольная группа",
                _percent(report.control.pay_rate if report.control.targets else None),
            ),
            ("Прирост к контрольной группе", _percent(report.uplift)),
            ("Платежей с запуска", report.since_launch.payments),
            ("Плательщиков с запуска", report.since_launch.payers),
            ("Сумма с запуска, руб.", report.since_launch.paid),
            ("Остановлено как оплатившие", report.since_launch.skipped_as_paid),
        ],
    )
    skipped = Section(
        "Пропущено по причинам",
        [(SKIP_LABELS.get(k, k), v) for k, v in report.skipped_by_reason.items()],
    )
    outcomes = Section(
        "Попытки по итогам",
        [(OUTCOME_LABELS.get(k, k), v) for k, v in report.outcomes.items()],
    )
    cost = Section(
        "Расходы",
        [
            ("Сегментов SMS", report.sms_segments),
            ("Минут разговора", report.call_minutes),
            ("Стоимость, руб.", report.cost),
        ],
    )
    return [summary, payments, skipped, outcomes, cost]


#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _plain(value: Cell) -> str:
    """A cell as CSV text; text a spreadsheet would run as a formula gets a leading ``'``."""
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def report_csv(report: CampaignReport) -> bytes:
    """The report as CSV: section, label, value (UTF-8 with a BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["Раздел", "Показатель", "Значение"])
    for section in report_sections(report):
        for label, value in section.rows:
            writer.writerow([section.title, label, _plain(value)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def report_xlsx(report: CampaignReport) -> bytes:
    """The report as an XLSX workbook (one sheet, a bold title per section)."""
    book = Workbook()
    sheet = book.active
    sheet.title = f"Кампания {report.campaign_id}"[:31]
    bold = Font(bold=True)
    for section in report_sections(report):
        sheet.append([section.title])
        sheet.cell(row=sheet.max_row, column=1).font = bold
        for label, value in section.rows:
            cell: Cell = float(value) if isinstance(value, Decimal) else value
            sheet.append([label, cell])
            for written in sheet[sheet.max_row]:
                if isinstance(written.value, str):
                    written.data_type = "s"  # stored text is never a formula
        sheet.append([])
    sheet.column_dimensions["A"].width = 42
    sheet.column_dimensions["B"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
