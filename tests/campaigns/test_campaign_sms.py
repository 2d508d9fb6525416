"""SMS templates and segment counting (GSM-7 160/153, UCS-2 70/67)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from campaigns.sms import (
    Encoding,
    TemplateError,
    count_segments,
    format_money,
    preview,
    render,
    render_preview,
    template_fields,
)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.GSM7, 0, 1),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters take two septets
        ("€" * 81, Encoding.GSM7, 162, 2),
        ("я" * 70, Encoding.UCS2, 70, 1),
        ("я" * 71, Encoding.UCS2, 71, 2),
        ("я" * 134, Encoding.UCS2, 134, 2),
        ("я" * 135, Encoding.UCS2, 135, 3),
        ("a" * 159 + "я", Encoding.UCS2, 160, 3),  # one Cyrillic letter switches everything
        ("😀" * 35, Encoding.UCS2, 70, 1),  # outside the BMP: two code units each
    ],
)
def test_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    assert count_segments(text) == (encoding, units, segments)


def test_extension_char_is_not_split_across_parts() -> None:
    # 152 septets then '€' (2 septets) does not fit in a 153-septet part.
    text = "a" * 152 + "€" + "a" * 10
    assert count_segments(text) == (Encoding.GSM7, 164, 2)
    text = "a" * 152 + "€" + "a" * 152
    assert count_segments(text)[2] == 3


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "я" * 66 + "😀" + "я" * 66  # 66 units + 2 would exceed 67 in the first part
    enc, units, segments = count_segments(text)
    assert (enc, units) == (Encoding.UCS2, 134)
    assert segments == 3


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


def test_preview_reports_parts() -> None:
    shown = preview("я" * 100)
    assert (shown.segments, shown.per_segment, shown.characters) == (2, 67, 100)
