"""Row validation of the consumer import (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_store.accounts import normalize_account_number
from crm_store.importer import (
    COLUMNS,
    ImportValidation,
    RawRow,
    check_rows,
    consumer_kind,
    parse_date,
    parse_money,
    parse_zones,
    validate_rows,
)

TODAY = date(2026, 11, 29)
GOOD = {
    "account_number": "1001234567",
    "full_name": "Иванов Иван Иванович",
    "phone": "+79031234567",
    "address": "г. Москва, ул. Ленина, д. 1",
    "timezone": "Europe/Moscow",
    "meter_serial": "SN-1",
    "meter_capacity": "6",
    "meter_zones": "день;ночь",
    "last_readings": "000123;000045",
    "last_reading_date": "2026-10-15",
    "debt_rub": "100",
    "debt_due_date": "2026-11-10",
}


def _validate(*rows: dict[str, str]) -> tuple[list[object], list[str]]:
    raw = [RawRow(n, {**GOOD, **row}) for n, row in enumerate(rows, start=2)]
    good, errors = validate_rows(raw, normalize_account=normalize_account_number, today=TODAY)
    return list(good), [str(e) for e in errors]


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),
        ("1234.5", "1234.50"),
        ("0", "0.00"),
        ("15000", "15000.00"),
        ("99,9 ₽", "99.90"),
    ],
)
def test_money_notations(text: str, amount: str) -> None:
    assert parse_money(text) == Decimal(amount)


@pytest.mark.parametrize("text", ["-1", "12,34,56", "1.234,56", "abc", "1,234"])
def test_bad_money(text: str) -> None:
    with pytest.raises(ValueError, match=r"сумма|долг"):
        parse_money(text)


@given(st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False))
def test_money_round_trips_in_russian_notation(amount: Decimal) -> None:
    whole, _, cents = f"{amount:,.2f}".partition(".")
    assert parse_money(whole.replace(",", " ") + "," + cents) == amount


def test_dates() -> None:
    assert parse_date("2026-10-15") == date(2026, 10, 15)
    assert parse_date("15.10.2026") == date(2026, 10, 15)
    for bad in ("31.02.2026", "2026-13-01", "15/10/2026", "15.10.26"):
        with pytest.raises(ValueError, match="дат"):
            parse_date(bad)


def test_zones() -> None:
    assert parse_zones("День; Ночь") == ("день", "ночь")
    assert parse_zones("пик;полупик;ночь") == ("пик", "полупик", "ночь")
    assert parse_zones("общая") == ("общая",)
    for bad in ("день;день", "пик;полупик;ночь;день", "день;", "общая;ночь", "T1;T1", "Т4"):
        with pytest.raises(ValueError, match="зон"):
            parse_zones(bad)


@pytest.mark.parametrize(
    ("text", "zones"),
    [
        # Billing-export zone numbers, Cyrillic or Latin T, any case, by the zone count.
        ("T1", ("общая",)),
        ("Т1", ("общая",)),
        ("t1", ("общая",)),
        ("т1", ("общая",)),
        ("T1;T2", ("день", "ночь")),
        ("Т1; т2", ("день", "ночь")),
        ("T1/T2", ("день", "ночь")),
        ("T2;T1", ("ночь", "день")),  # order kept: readings follow it
        ("T1;T2;T3", ("пик", "ночь", "полупик")),
        ("Т1,Т2,Т3", ("пик", "ночь", "полупик")),
        ("день/ночь", ("день", "ночь")),
        ("День / Ночь", ("день", "ночь")),
        ("однотарифный", ("общая",)),
        ("Двухтарифный", ("день", "ночь")),
        ("трёхтарифный", ("пик", "ночь", "полупик")),
        ("трехтарифный", ("пик", "ночь", "полупик")),
    ],
)
def test_zones_as_billing_systems_export_them(text: str, zones: tuple[str, ...]) -> None:
    assert parse_zones(text) == zones


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("T2", "у однотарифного счётчика нет зоны Т2: «T2»"),
        ("T1;T3", "у двухтарифного счётчика нет зоны Т3: «T1;T3»"),
        ("T1;день", "тарифная зона повторяется: «T1;день»"),
        ("четырёхтарифный", "неизвестная тарифная зона «четырёхтарифный»"),
        ("T1;X2", "неизвестная тарифная зона «x2»"),
    ],
)
def test_unknown_zone_label_is_a_located_error(text: str, reason: str) -> None:
    good, errors = _validate({"meter_zones": text, "last_readings": "", "last_reading_date": ""})
    assert good == []
    assert len(errors) == 1
    assert errors[0].startswith(f"строка 2, столбец meter_zones: {reason}")


def test_single_zone_meter_written_t1_keeps_its_account() -> None:
    good, errors = _validate({"meter_zones": "T1", "last_readings": "000123"})
    assert errors == []
    assert [(r.meter_zones, r.last_readings) for r in good] == [  # type: ignore[attr-defined]
        (("общая",), (123,))
    ]


@pytest.mark.parametrize(
    "phone", ["8 903 123-45-67", "+7 (903) 123-45-67", "9031234567", "7-903-123-45-67"]
)
def test_common_phone_notations(phone: str) -> None:
    good, errors = _validate({"phone": phone})
    assert errors == []
    assert good[0].phone == "+79031234567"  # type: ignore[attr-defined]


def test_a_row_reports_every_problem_it_has() -> None:
    _, errors = _validate(
        {"meter_capacity": "шесть", "timezone": "Asia/Almaty", "debt_rub": "", "phone": "+380"}
    )
    assert errors == [
        "строка 2, столбец phone: неверный номер телефона: «+380»",
        (
            "строка 2, столбец timezone: неизвестный часовой пояс «Asia/Almaty»; нужен пояс IANA "
            "России, например Europe/Moscow"
        ),
        (
            "строка 2, столбец meter_capacity: разрядность счётчика должна быть целым числом, "
            "а не «шесть»"
        ),
        "строка 2, столбец debt_rub: указан срок оплаты, но не указана сумма долга",
    ]


def test_required_values_and_paired_columns() -> None:
    _, errors = _validate(
        {"account_number": "", "last_reading_date": "", "debt_due_date": "", "debt_rub": "5"}
    )
    assert errors == [
        "строка 2, столбец account_number: не заполнено обязательное поле",
        "строка 2, столбец last_reading_date: указаны показания, но не указана их дата",
        "строка 2, столбец debt_due_date: указан долг, но не указан срок оплаты",
    ]


def _check(*rows: dict[str, str]) -> ImportValidation:
    raw = [RawRow(n, {**GOOD, **row}) for n, row in enumerate(rows, start=2)]
    return check_rows(raw, normalize_account=normalize_account_number, today=TODAY)


def test_reading_rules() -> None:
    result = _check(
        {"meter_capacity": "5", "meter_zones": "общая", "last_readings": "12.5"},
        {"meter_serial": "SN-2", "last_reading_date": "2027-01-01"},
        {"meter_serial": "SN-3", "meter_capacity": "12"},
    )
    # Bad readings lose the readings (a warning); a bad meter loses the row.
    assert [str(w) for w in result.warnings] == [
        "строка 2, столбец last_readings: показание должно быть целым числом без знаков: «12.5»",
        "строка 3, столбец last_reading_date: дата показаний в будущем: «2027-01-01»",
    ]
    assert [(r.number, r.last_readings, r.last_reading_date) for r in result.good] == [
        (2, None, None),
        (3, None, None),
    ]
    assert [str(e) for e in result.errors] == [
        "строка 4, столбец meter_capacity: разрядность счётчика 12 вне допустимых пределов 4–9",
    ]


@pytest.mark.parametrize(
    ("cells", "column", "kept"),
    [
        ({"phone": "12345"}, "phone", {"phone": None}),
        ({"phone": "+7 701 123 45 67"}, "phone", {"phone": None}),
        ({"phone": "+44 20 7946 0958"}, "phone", {"phone": None}),
        ({"timezone": "Europe/Mosow"}, "timezone", {"timezone": None}),
        ({"debt_rub": "-5"}, "debt_rub", {"debt_rub": None, "debt_due_date": None}),
        ({"last_readings": "1;2;3"}, "last_readings", {"last_readings": None}),
    ],
)
def test_a_bad_soft_cell_is_a_warning_not_a_rejection(
    cells: dict[str, str], column: str, kept: dict[str, object]
) -> None:
    result = _check(cells)
    assert result.errors == []
    assert [(w.row, w.column) for w in result.warnings] == [(2, column)]
    (row,) = result.good
    for name, value in kept.items():
        assert getattr(row, name) == value
    assert row.account_normalized == "1001234567"
    assert row.meter_zones == ("день", "ночь")


def test_a_rejected_row_lists_its_soft_problems_as_errors() -> None:
    result = _check({"meter_serial": "", "phone": "12345"})
    assert result.good == []
    assert result.warnings == []
    assert [(e.row, e.column) for e in result.errors] == [(2, "phone"), (2, "meter_serial")]


def test_duplicate_rows_are_reported_not_imported_twice() -> None:
    result = _check({}, {"meter_serial": "SN-2"}, {"phone": "8 903 123-45-67"}, {})
    assert [r.number for r in result.good] == [2, 3]
    assert [str(d) for d in result.duplicates] == [
        "строка 4: повторяет строку 2, пропущена",
        "строка 5: повторяет строку 2, пропущена",
    ]
    assert result.errors == []


def test_rows_of_one_account_must_agree() -> None:
    good, errors = _validate(
        {},
        {"meter_serial": "SN-2", "phone": "", "debt_rub": "", "debt_due_date": ""},
        {"meter_serial": "SN-3", "full_name": "Петров Пётр Петрович"},
        {"account_number": "2002", "meter_serial": "SN-1"},
        {},
    )
    assert len(good) == 2  # rows 2 and 3; the exact repeat in row 6 is a duplicate
    assert errors == [
        (
            "строка 4, столбец full_name: лицевой счёт 1001234567 уже указан в строке 2 с другим "
            "значением: «Петров Пётр Петрович»"
        ),
        (
            "строка 5, столбец meter_serial: счётчик SN-1 уже указан в строке 2 для другого "
            "лицевого счёта"
        ),
    ]


def test_invalid_account_number() -> None:
    _, errors = _validate({"account_number": "№ 12"})
    assert len(errors) == 1
    assert errors[0].startswith("строка 2, столбец account_number: ")


def test_consumer_kind() -> None:
    assert consumer_kind("ООО «Ромашка»") == "organization"
    assert consumer_kind("ТСЖ «Ленина 5»") == "organization"
    assert consumer_kind("Ооржак Айдын Олегович") == "person"


def test_columns_are_the_documented_ones() -> None:
    assert ",".join(COLUMNS) == (
        "account_number,full_name,phone,address,timezone,meter_serial,meter_capacity,"
        "meter_zones,last_readings,last_reading_date,debt_rub,debt_due_date"
    )
