"""SMS templates (segment counting is tested with :mod:`telephony.sms`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from campaigns.errors import TemplateError
from campaigns.sms import (
    format_money,
    render,
    render_preview,
    template_fields,
)
from telephony.sms import Encoding


def test_money_and_dates_are_written_the_russian_way() -> None:
    assert format_money(Decimal("1234.56")) == "1 234,56 руб."
    assert format_money(Decimal("1234567.5")) == "1 234 567,50 руб."
    assert format_money(Decimal("0.005")) == "0,01 руб."
    assert format_money(Decimal(-10)) == "-10,00 руб."
    with pytest.raises(TypeError):
        format_money(12.5)  # type: ignore[arg-type]


def test_render_a_debt_reminder() -> None:
    template = "{supplier}: долг {amount} по ЛС {account}. Оплатите до {due_date}."
    text = render(
        template,
        {
            "supplier": "ЭнергоСбыт",
            "amount": Decimal("1234.56"),
            "account": "000-1234-5678",
            "due_date": dt.date(2026, 12, 25),
        },
    )
    assert text == "ЭнергоСбыт: долг 1 234,56 руб. по ЛС 000-1234-5678. Оплатите до 25.12.2026."
    shown = render_preview(template, {"supplier": "Э", "amount": Decimal(1), "account": "1",
                                      "due_date": dt.date(2026, 1, 1)})  # fmt: skip
    assert shown.encoding is Encoding.UCS2
    assert shown.segments == 1
    assert shown.per_segment == 70


def test_template_errors_are_clear() -> None:
    with pytest.raises(TemplateError, match=r"no value for \{amount\}"):
        render("Долг {amount}", {})
    with pytest.raises(TemplateError, match="plain name"):
        template_fields("{account.__class__}")
    with pytest.raises(TemplateError, match="plain name"):
        template_fields("{0}")
    with pytest.raises(TemplateError, match="format"):
        template_fields("{amount:>10}")
    with pytest.raises(TemplateError, match="malformed"):
        template_fields("Долг {amount")
    with pytest.raises(TypeError, match="Decimal"):
        render("{amount}", {"amount": 1.5})
    assert template_fields("{a} {b} {a}") == ["a", "b"]
    assert render("{{literal}} {a}", {"a": 1}) == "{literal} 1"
