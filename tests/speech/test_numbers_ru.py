"""Russian number and yes/no understanding: the phrase table, properties, grammar words, CLI."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from num2words import num2words
from text_to_num import text2num

from speech.errors import UnknownLanguageError
from speech.lang import available_languages, get_pack, language_code
from speech.numbers import grammar_words, parse_digits, parse_number, parse_yes_no

DATA = Path(__file__).parent / "data"

Row = tuple[str, str, str, str]


def load_table(name: str) -> list[Row]:
    """Rows (kind, text, expected, category) of a tab-separated phrase table in data/."""
    rows: list[Row] = []
    for number, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4 or fields[0] not in {"d", "n", "y"}:
            raise ValueError(f"{name}:{number}: expected kind<TAB>text<TAB>expected<TAB>category")
        kind, text, expected, category = fields
        rows.append((kind, text, expected, category))
    return rows


def check_row(row: Row, lang: str) -> None:
    """Assert that the parser gives the row's expected value ("-" is None)."""
    kind, text, expected, _ = row
    if kind == "d":
        assert parse_digits(text, lang) == (None if expected == "-" else expected)
    elif kind == "n":
        got = parse_number(text, lang)
        want = None if expected == "-" else Decimal(expected)
        assert got == want, f"{text!r}: {got} != {want}"
    else:
        answers = {"yes": True, "no": False, "-": None}
        assert parse_yes_no(text, lang) is answers[expected]


TABLE = load_table("numbers_ru.tsv")


def test_table_is_large_and_covers_every_kind_of_phrase() -> None:
    assert len(TABLE) >= 200
    categories = {row[3] for row in TABLE}
    assert {"digit", "mixed", "group", "compound", "decimal", "variant", "filler"} <= categories
    assert {"correction", "asr", "none", "yes", "no", "unsure", "noise"} <= categories


@pytest.mark.parametrize(
    "row", TABLE, ids=[f"{i}-{row[0]}-{row[3]}" for i, row in enumerate(TABLE, 1)]
)
def test_phrase_table(row: Row) -> None:
    check_row(row, "ru")


# --- the examples of the specification, spelled out ---------------------------------------


def test_specified_examples() -> None:
    assert parse_digits("ноль ноль сорок пять") == "0045"
    assert parse_digits("семь семь ноль ноль один один два два три три") == "7700112233"
    assert parse_digits("сто двадцать три четыреста пятьдесят шесть") == "123456"
    assert parse_number("двенадцать тысяч триста сорок пять") == Decimal(12345)
    assert parse_number("сто двадцать целых пять десятых") == Decimal("120.5")
    assert parse_number("сто двадцать запятая пять") == Decimal("120.5")
    assert parse_number("сто двадцать точка пять") == Decimal("120.5")
    assert parse_digits("три… нет, четыре") == "4"
    assert parse_yes_no("всё верно") is True
    assert parse_yes_no("не верно") is False
    assert parse_yes_no("не знаю") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("тыща", "1000"),
        ("тыща двести", "1200"),
        ("тыщу двести", "1200"),
        ("тысяча двести", "1200"),
        ("две тыщи", "2000"),
        ("пять тыщ", "5000"),
        ("триста тыщ", "300000"),
        ("двенадцать тыщ триста сорок пять", "12345"),
        ("полторы тыщи", "1500"),
        ("полторы тысячи", "1500"),
        ("полторы", "1.5"),
        ("миллион двести тысяч", "1200000"),
        ("ну тыща э двести пять", "1205"),
    ],
)
def test_colloquial_numbers(text: str, value: str) -> None:
    """Spoken forms («тыща», «тыщ», «полторы», a multiplier without a count) are understood."""
    assert parse_number(text) == Decimal(value)
    if text != "полторы":
        assert parse_digits(text) == str(Decimal(value))


def test_colloquial_thousand_is_in_the_number_grammar() -> None:
    words = grammar_words("number")
    for word in ["тыща", "тыщи", "тыщ", "полторы"]:
        assert word in words


def test_number_is_exact_decimal() -> None:
    value = parse_number("ноль целых одна десятая")
    assert isinstance(value, Decimal)
    assert str(value) == "0.1"


# --- properties ----------------------------------------------------------------------------

_DIGIT_WORDS = {
    "0": ["ноль", "нуль"],
    "1": ["один", "одна"],
    "2": ["два", "две"],
    "3": ["три"],
    "4": ["четыре"],
    "5": ["пять"],
    "6": ["шесть"],
    "7": ["семь"],
    "8": ["восемь"],
    "9": ["девять"],
}
_FILLERS = ["э", "ну", "так", "вот", "значит", "эм", "[unk]"]


@st.composite
def spoken_digits(draw: st.DrawFn) -> tuple[str, str]:
    """A digit string and a digit-by-digit reading of it, with variants and fillers."""
    digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=14))
    words: list[str] = []
    for digit in digits:
        if draw(st.booleans()) and draw(st.booleans()):
            words.append(draw(st.sampled_from(_FILLERS)))
        words.append(draw(st.sampled_from(_DIGIT_WORDS[digit])))
    return digits, " ".join(words)


@given(spoken_digits())
def test_digit_by_digit_round_trips(case: tuple[str, str]) -> None:
    digits, spoken = case
    assert parse_digits(spoken) == digits


@given(st.integers(min_value=0, max_value=999_999))
def test_num2words_integers_round_trip(value: int) -> None:
    spoken = num2words(value, lang="ru")
    assert parse_number(spoken) == Decimal(value)
    assert parse_digits(spoken) == str(value)


@given(st.integers(min_value=1, max_value=999_999))
def test_agrees_with_text2num_on_compound_numerals(value: int) -> None:
    spoken = num2words(value, lang="ru")
    assert parse_number(spoken) == Decimal(text2num(spoken, "ru"))


@given(st.lists(st.integers(min_value=100, max_value=999), min_size=1, max_size=4))
def test_groups_of_hundreds_concatenate(groups: list[int]) -> None:
    spoken = " ".join(num2words(group, lang="ru") for group in groups)
    assert parse_digits(spoken) == "".join(str(group) for group in groups)


@given(
    st.integers(min_value=0, max_value=99_999),
    st.text(alphabet="0123456789", min_size=1, max_size=3),
    st.sampled_from(["запятая", "точка", "целых"]),
)
def test_decimals_with_a_marker(whole: int, fraction: str, marker: str) -> None:
    spoken_fraction = " ".join(_DIGIT_WORDS[digit][0] for digit in fraction)
    spoken = f"{num2words(whole, lang='ru')} {marker} {spoken_fraction}"
    assert parse_number(spoken) == Decimal(f"{whole}.{fraction}")


@given(spoken_digits(), st.sampled_from("0123456789"))
def test_correcting_the_last_digit(case: tuple[str, str], digit: str) -> None:
    digits, spoken = case
    corrected = f"{spoken}, нет, {_DIGIT_WORDS[digit][0]}"
    assert parse_digits(corrected) == digits[:-1] + digit


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_text_gives_a_result_never_an_exception(text: str) -> None:
    digits = parse_digits(text)
    assert digits is None or digits.isdigit()
    number = parse_number(text)
    assert number is None or number >= 0
    assert parse_yes_no(text) in (True, False, None)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(grammar_words("number")), max_size=12))
def test_any_sequence_of_grammar_words_is_understood(words: list[str]) -> None:
    text = " ".join(words)
    digits = parse_digits(text)
    assert digits is None or digits.isdigit()
    number = parse_number(text)
    assert number is None or number >= 0


# --- grammar words and language packs ------------------------------------------------------


def test_digit_grammar_has_every_form_people_use() -> None:
    words = grammar_words("digits")
    for word in ["ноль", "нуль", "одна", "две", "одну", "сорок", "сто", "двести", "тысяча"]:
        assert word in words
    for word in ["тысячи", "тысяч", "нет", "э", "ну", "и"]:
        assert word in words
    assert "запятая" not in words
    assert len(words) == len(set(words))


def test_every_numeral_word_of_the_grammar_is_a_number() -> None:
    pack = get_pack("ru")
    for word in grammar_words("digits"):
        understood = parse_digits(word)
        if word in pack.numeral_words():
            assert understood is not None, word
            assert understood.isdigit(), word
        else:
            assert understood is None, word


def test_number_grammar_adds_decimal_words() -> None:
    digits = set(grammar_words("digits"))
    number = grammar_words("number")
    assert digits <= set(number)
    for word in ["целых", "запятая", "точка", "десятых", "сотых", "полторы"]:
        assert word in number


def test_yes_no_grammar_covers_the_answers() -> None:
    words = grammar_words("yes_no")
    for word in ["да", "нет", "верно", "неверно", "правильно", "неправильно", "не", "знаю"]:
        assert word in words
    for word in words:
        assert parse_yes_no(word) in (True, False, None)
    assert "ноль" not in words


def test_grammar_words_reject_unknown_kind_and_language() -> None:
    with pytest.raises(ValueError, match="unknown grammar kind"):
        grammar_words("menu")
    with pytest.raises(UnknownLanguageError, match="unsupported language 'de'"):
        grammar_words("digits", "de")
    with pytest.raises(UnknownLanguageError):
        parse_digits("eins", "de")


def test_language_tags() -> None:
    assert available_languages() == ["en", "ru"]
    assert language_code("ru-RU") == "ru"
    assert language_code(" RU_ru ") == "ru"
    assert parse_digits("ноль пять", "ru-RU") == "05"
    assert get_pack("ru").normalize("Всё ЕЩЁ") == "все еще"


# --- CLI -----------------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, dict[str, object], str]:
    from contactcenter.cli import main  # deferred: the CLI's imports must not hide the tables

    result = CliRunner().invoke(main, ["speech", "parse", *args])
    values = {}
    for line in result.output.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in {"digits", "number", "yes_no"}:
            values[key] = json.loads(value)
    return result.exit_code, values, result.output


def test_cli_parse_prints_digits_number_and_answer() -> None:
    code, values, output = _cli("--lang", "ru", "ноль ноль сорок пять")
    assert code == 0, output
    assert values == {"digits": "0045", "number": "45", "yes_no": None}


def test_cli_parse_joins_unquoted_words_and_defaults_to_russian() -> None:
    code, values, _ = _cli("сто", "двадцать", "целых", "пять", "десятых")
    assert code == 0
    assert values == {"digits": "1205", "number": "120.5", "yes_no": None}
    code, values, _ = _cli("всё", "верно")
    assert values == {"digits": None, "number": None, "yes_no": True}


def test_cli_parse_rejects_unknown_language_and_missing_text() -> None:
    code, _, output = _cli("--lang", "de", "eins")
    assert code == 2
    assert "unsupported language 'de'" in output
    assert "Traceback" not in output
    code, _, output = _cli("--lang", "ru")
    assert code == 2
    assert "Missing argument" in output


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("kind", ["digits", "number", "yes_no"])
def test_pack_tables_are_written_in_normalised_form(kind: str, lang: str) -> None:
    pack = get_pack(lang)
    for word in grammar_words(kind, lang):
        assert word == pack.normalize(word), word
        assert word.split() == [word], word
