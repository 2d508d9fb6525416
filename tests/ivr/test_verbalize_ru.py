"""Russian verbalisation tables: money, numbers, dates, digits, times, phones, templates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from ivr.errors import PromptTemplateError, RenderError
from ivr.validate import iter_templates, known_variables, load_flows
from ivr.verbalize import (
    ACCUSATIVE_VERBS,
    missing_accusative,
    parse_template,
    plain_text,
    plural,
    render_field,
    render_template,
    say_address,
    say_date,
    say_digits,
    say_money,
    say_number,
    say_phone,
    say_time,
    template_fields,
)

MONEY = [
    ("1234.56", "одна тысяча двести тридцать четыре рубля пятьдесят шесть копеек"),
    ("1", "один рубль"),
    ("2", "два рубля"),
    ("3", "три рубля"),
    ("4", "четыре рубля"),
    ("5", "пять рублей"),
    ("11", "одиннадцать рублей"),
    ("12", "двенадцать рублей"),
    ("14", "четырнадцать рублей"),
    ("21", "двадцать один рубль"),
    ("22", "двадцать два рубля"),
    ("25", "двадцать пять рублей"),
    ("100", "сто рублей"),
    ("101", "сто один рубль"),
    ("111", "сто одиннадцать рублей"),
    ("1000", "одна тысяча рублей"),
    ("2000", "две тысячи рублей"),
    ("5000", "пять тысяч рублей"),
    ("21000", "двадцать одна тысяча рублей"),
    ("1000000", "один миллион рублей"),
    ("2500000", "два миллиона пятьсот тысяч рублей"),
    ("0", "ноль рублей"),
    ("0.00", "ноль рублей"),
    ("5.00", "пять рублей"),
    ("0.01", "одна копейка"),
    ("0.02", "две копейки"),
    ("0.05", "пять копеек"),
    ("0.11", "одиннадцать копеек"),
    ("0.21", "двадцать одна копейка"),
    ("0.5", "пятьдесят копеек"),
    ("1.01", "один рубль одна копейка"),
    ("2.02", "два рубля две копейки"),
    ("21.21", "двадцать один рубль двадцать одна копейка"),
    ("1001.02", "одна тысяча один рубль две копейки"),
    ("12.345", "двенадцать рублей тридцать пять копеек"),
    ("-150", "минус сто пятьдесят рублей"),
]


@pytest.mark.parametrize(("amount", "words"), MONEY)
def test_money(amount: str, words: str) -> None:
    assert say_money(Decimal(amount)) == words


def test_money_accepts_int_and_str() -> None:
    assert say_money(2) == "два рубля"
    assert say_money("1 234,56") == say_money(Decimal("1234.56"))


@pytest.mark.parametrize("bad", ["abc", "", "NaN", True, None, [1]])
def test_money_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(RenderError):
        say_money(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "form"),
    [
        (0, "рублей"),
        (1, "рубль"),
        (2, "рубля"),
        (4, "рубля"),
        (5, "рублей"),
        (11, "рублей"),
        (12, "рублей"),
        (14, "рублей"),
        (21, "рубль"),
        (22, "рубля"),
        (111, "рублей"),
        (101, "рубль"),
        (1004, "рубля"),
        (-1, "рубль"),
    ],
)
def test_plural(n: int, form: str) -> None:
    assert plural(n, "рубль", "рубля", "рублей") == form


@pytest.mark.parametrize(
    ("value", "gender", "words"),
    [
        (1, "m", "один"),
        (1, "f", "одна"),
        (1, "n", "одно"),
        (2, "f", "две"),
        (21, "f", "двадцать одна"),
        (12345, "m", "двенадцать тысяч триста сорок пять"),
        (0, "m", "ноль"),
        (-3, "m", "минус три"),
        (Decimal("12.5"), "m", "двенадцать целых пять десятых"),
        ("7", "m", "семь"),
    ],
)
def test_numbers(value: int | Decimal | str, gender: str, words: str) -> None:
    assert say_number(value, gender) == words  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "kwargs", "words"),
    [
        (date(2026, 3, 15), {"today": date(2026, 1, 10)}, "пятнадцатое марта"),
        (date(2026, 3, 15), {"case": "gen", "today": date(2026, 1, 10)}, "пятнадцатого марта"),
        (date(2026, 1, 1), {"year": False}, "первое января"),
        (date(2026, 2, 23), {"year": False, "case": "gen"}, "двадцать третьего февраля"),
        (date(2026, 5, 31), {"year": False}, "тридцать первое мая"),
        (
            date(2026, 12, 25),
            {"case": "gen", "today": date(2025, 12, 1)},
            "двадцать пятого декабря две тысячи двадцать шестого года",
        ),
        (
            date(2026, 12, 25),
            {"year": True},
            "двадцать пятое декабря две тысячи двадцать шестого года",
        ),
        (date(2000, 6, 2), {"year": True}, "второе июня двухтысячного года"),
        (date(2026, 9, 10), {}, "десятое сентября две тысячи двадцать шестого года"),
        (datetime(2026, 7, 4, 10, 0, tzinfo=UTC), {"year": False}, "четвёртое июля"),
        ("2026-10-20", {"year": False, "case": "gen"}, "двадцатого октября"),
    ],
)
def test_dates(day: date | str, kwargs: dict[str, object], words: str) -> None:
    assert say_date(day, **kwargs).replace("ё", "е") == words.replace("ё", "е")  # type: ignore[arg-type]


def test_date_month_names() -> None:
    months = [say_date(date(2026, m, 1), year=False).split()[1] for m in range(1, 13)]
    assert months == [
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ]


def test_bad_date() -> None:
    with pytest.raises(RenderError):
        say_date("15.03.2026")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("7700112233", "семь семь ноль ноль один один два два три три"),
        ("0045", "ноль ноль четыре пять"),
        (123, "один два три"),
        ("000-0000", "ноль ноль ноль, ноль ноль ноль ноль"),
        ("РА07-12345", "эр а ноль семь, один два три четыре пять"),
        # meter serials with Latin letters, as Russian speakers read them
        ("AB123", "а бэ один два три"),
        ("ce-6803", "цэ е, шесть восемь ноль три"),
        ("WXYZ9", "дубль-вэ икс игрек зэт девять"),
        ("GHJQ", "гэ аш жи ку"),
    ],
)
def test_digits(value: str | int, words: str) -> None:
    assert say_digits(value) == words


def test_digits_never_leave_a_bare_latin_letter() -> None:
    """Every Latin letter has a Russian name: a ru-RU voice never has to guess one."""
    for code in range(ord("A"), ord("Z") + 1):
        spoken = say_digits(f"{chr(code)}1")
        assert not any("a" <= c.lower() <= "z" for c in spoken), spoken


def test_empty_digits() -> None:
    with pytest.raises(RenderError):
        say_digits(" ")


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (time(8, 0), "восемь часов"),
        (time(1, 0), "один час"),
        (time(2, 0), "два часа"),
        (time(21, 1), "двадцать один час одна минута"),
        (time(22, 30), "двадцать два часа тридцать минут"),
        (time(9, 2), "девять часов две минуты"),
        ("17:45", "семнадцать часов сорок пять минут"),
    ],
)
def test_times(moment: time | str, words: str) -> None:
    assert say_time(moment) == words


def test_phone() -> None:
    assert say_phone("+78002200220") == "восемь, восемь ноль ноль, два два ноль, ноль два, два ноль"
    assert say_phone("+4930123456") == "четыре девять три, ноль один два, три четыре пять, шесть"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.5"), "1234,50"),
        (Decimal(100), "100"),
        (Decimal("0.01"), "0,01"),
        (date(2026, 3, 25), "25.03.2026"),
        (time(9, 5), "09:05"),
        (True, "да"),
        ("7700", "7700"),
    ],
)
def test_plain(value: object, text: str) -> None:
    assert plain_text(value) == text


# ------------------------------------------------------------------------------ templates


def test_render_template() -> None:
    text = render_template(
        "Долг {debt:money}, оплатить до {due:date:gen}. Счёт {acc:digits}. {{скобки}} {n:number:f}",
        {"debt": Decimal("12.5"), "due": date(2026, 3, 25), "acc": "0701", "n": 2},
        today=date(2026, 1, 1),
    )
    assert text == (
        "Долг двенадцать рублей пятьдесят копеек, оплатить до двадцать пятого марта. "
        "Счёт ноль семь ноль один. {скобки} две"
    )


def test_render_default_format_speaks_values() -> None:
    assert render_template("{a} {b} {c}", {"a": 5, "b": True, "c": "текст"}) == "пять да текст"


def test_render_missing_variable() -> None:
    with pytest.raises(RenderError, match="'debt' is not set"):
        render_template("{debt:money}", {})
    with pytest.raises(RenderError, match="'debt'"):
        render_template("{debt:money}", {"debt": "много"})


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{debt", "unclosed"),
        ("debt}", "unmatched"),
        ("{1abc}", "invalid variable name"),
        ("{a:upper}", "unknown format"),
        ("{a:date:fem}", "unknown option"),
        ("{a:date:gen,nom}", "conflicting"),
        ("{a:number:m,f}", "conflicting"),
        ("{a:b:c:d}", "too many"),
        ("{}", "invalid variable name"),
    ],
)
def test_template_errors(template: str, error: str) -> None:
    with pytest.raises(PromptTemplateError, match=error):
        parse_template(template)


def test_template_fields() -> None:
    fields = template_fields("Сумма {debt:money}, дата {due:date:gen,year} и {x}")
    assert [(f.name, f.format, sorted(f.options), f.position) for f in fields] == [
        ("debt", "money", [], 6),
        ("due", "date", ["gen", "year"], 25),
        ("x", None, [], 47),
    ]


# ------------------------------------------------------------------------------ shipped prompts

_SAMPLES: dict[str, object] = {
    "text": "улица Ленина, дом пять",
    "digits": "0701234567",
    "money": Decimal("1234.56"),
    "number": 2,
    "date": date(2026, 3, 25),
    "time": time(8, 0),
    "bool": True,
    "phone": "+78002200220",
    "id": "1024",
}


def test_every_shipped_template_renders() -> None:
    flowset = load_flows(Path(__file__).resolve().parents[2] / "call_flows.yaml")
    kinds = known_variables(flowset)
    values = {name: _SAMPLES[kind or "text"] for name, kind in kinds.items()}
    values.update(flowset.defaults.variables)
    rendered = 0
    for path, template in iter_templates(flowset):
        text = render_template(template, values, today=date(2026, 1, 15))
        assert "{" not in text, path
        spoken = "sms" not in path and ".args." not in path
        if spoken:  # values are verbalised, never read out as raw digits
            for raw in ("1234", "0701234567", "2026", "+7800"):
                assert raw not in text, (path, text)
        rendered += 1
    assert rendered > 60


# --- case agreement: the accusative after verbs ---------------------------------------------

_SHIPPED_FLOWS = [Path(__file__).resolve().parents[2] / "call_flows.yaml"]


@pytest.mark.parametrize(
    ("template", "value", "spoken"),
    [
        ("составит {x:money:acc}", Decimal(91000), "составит девяносто одну тысячу рублей"),
        ("составит {x:money:acc}", Decimal("1.01"), "составит один рубль одну копейку"),
        (
            "составит {x:money:acc}",
            Decimal("2001.21"),
            "составит две тысячи один рубль двадцать одну копейку",
        ),
        ("ввели: {x:reading:acc}", 21001, "ввели: двадцать одну тысячу один"),
        ("ввели {x:number:f,acc}", 1, "ввели одну"),
        ("долг: {x:money}", Decimal(91000), "долг: девяносто одна тысяча рублей"),
        ("{x:money:acc}", Decimal(5000), "пять тысяч рублей"),
    ],
)
def test_accusative_option(template: str, value: Decimal | int, spoken: str) -> None:
    assert render_template(template, {"x": value}) == spoken


def test_shipped_templates_agree_in_case_after_verbs() -> None:
    """Every money/number/reading field after a verb that governs the accusative has ``acc``,
    and renders «одну тысячу», never «одна тысяча», for the values that change in that case."""
    checked = 0
    for flows_file in _SHIPPED_FLOWS:
        flowset = load_flows(flows_file)
        for path, template in iter_templates(flowset):
            parts = parse_template(template)
            for index, part in enumerate(parts):
                if isinstance(part, str) or part.format not in {"money", "number", "reading"}:
                    continue
                before = parts[index - 1] if index else ""
                words = str(before).replace(":", " ").split()
                if not words or words[-1].lower() not in ACCUSATIVE_VERBS:
                    continue
                assert "acc" in part.options, (flows_file.name, path, template)
                for value, wrong in ((Decimal("91001.01"), "одна"), (Decimal(1000), "тысяча")):
                    spoken = render_field(part, value)
                    assert wrong not in spoken.split(), (path, spoken)
                checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    ("template", "missing"),
    [
        ("Задолженность составит {x:money}.", ["x"]),
        ("Задолженность составит {x:money:acc}.", []),
        ("Вы ввели: {x:reading}", ["x"]),
        ("Оплатите {x:money} до {d:date}", ["x"]),
        ("Долг: {x:money}", []),
        ("Составит {x:digits}", []),
        ("{x:money}", []),
    ],
)
def test_missing_accusative_finds_fields_after_governing_verbs(
    template: str, missing: list[str]
) -> None:
    assert [f.name for f in missing_accusative(template)] == missing


@pytest.mark.parametrize(
    ("written", "said"),
    [
        (
            "г. Москва, ул. Ленина, д. 1, кв. 2",
            "город Москва, улица Ленина, дом 1, квартира 2",
        ),
        (
            "Тверская область, г. Ржев, ул. Заречная, д. 7",
            "Тверская область, город Ржев, улица Заречная, дом 7",
        ),
        ("д. Ивановка, д.12", "деревня Ивановка, дом 12"),
        (
            "г. Владивосток, ул. Светланская, д. 10/2, корп. 3, кв. 5",
            "город Владивосток, улица Светланская, дом 10 дробь 2, корпус 3, квартира 5",
        ),
        (
            "пгт Кольцово, мкр. Северный, к. 2",
            "посёлок городского типа Кольцово, микрорайон Северный, корпус 2",
        ),
        ("пр-т Ленина, 50", "проспект Ленина, 50"),
        ("Москва, Ленина ул., 5а", "Москва, Ленина улица, 5а"),
        ("Садовая, дом 15", "Садовая, дом 15"),  # nothing abbreviated: as written
        ("Гагарина  д  3", "Гагарина д 3"),  # no dot: not taken for an abbreviation
    ],
)
def test_addresses_are_said_without_abbreviations(written: str, said: str) -> None:
    assert say_address(written) == said
    assert render_template("Ваш адрес: {a:address}.", {"a": written}) == f"Ваш адрес: {said}."
    assert render_template("{a}", {"a": written}) == written  # SMS: as written
