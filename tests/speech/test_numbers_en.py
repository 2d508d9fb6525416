"""English number and yes/no understanding: the phrase table, properties, grammar words, CLI."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from num2words import num2words
from text2digits.text2digits import Text2Digits

from speech.lang import get_pack
from speech.numbers import grammar_words, parse_digits, parse_number, parse_yes_no

from .test_numbers_ru import Row, check_row, load_table

TABLE = load_table("numbers_en.tsv")


def test_table_is_large_and_covers_every_kind_of_phrase() -> None:
    assert len(TABLE) >= 200
    categories = {row[3] for row in TABLE}
    assert {"digit", "mixed", "group", "repeat", "compound", "decimal", "filler"} <= categories
    assert {"correction", "asr", "none", "yes", "no", "unsure", "noise"} <= categories


@pytest.mark.parametrize(
    "row", TABLE, ids=[f"{i}-{row[0]}-{row[3]}" for i, row in enumerate(TABLE, 1)]
)
def test_phrase_table(row: Row) -> None:
    check_row(row, "en")


def test_specified_examples() -> None:
    assert parse_digits("fifteen forty three", "en") == "1543"
    assert parse_number("fifteen forty three", "en") == Decimal(1543)
    assert parse_number("one hundred and twenty three", "en") == Decimal(123)
    assert parse_digits("oh five double five", "en") == "0555"
    assert parse_digits("triple seven", "en") == "777"
    assert parse_number("three point one four", "en") == Decimal("3.14")
    assert parse_yes_no("that's not right", "en") is False


# --- properties ----------------------------------------------------------------------------

_DIGIT_WORDS = {
    "0": ["zero", "oh", "o", "nought"],
    "1": ["one"],
    "2": ["two"],
    "3": ["three"],
    "4": ["four"],
    "5": ["five"],
    "6": ["six"],
    "7": ["seven"],
    "8": ["eight"],
    "9": ["nine"],
}
_FILLERS = ["uh", "um", "er", "well", "[unk]"]


@st.composite
def spoken_digits(draw: st.DrawFn) -> tuple[str, str]:
    """A digit string read digit by digit, with "oh", "double"/"triple" and fillers."""
    digits = draw(st.text(alphabet="0123456789", min_size=1, max_size=14))
    words: list[str] = []
    index = 0
    while index < len(digits):
        digit = digits[index]
        run = 1
        while index + run < len(digits) and digits[index + run] == digit and run < 3:
            run += 1
        if draw(st.booleans()) and draw(st.booleans()):
            words.append(draw(st.sampled_from(_FILLERS)))
        word = draw(st.sampled_from(_DIGIT_WORDS[digit]))
        if run >= 2 and draw(st.booleans()):
            words += [{2: "double", 3: "triple"}[run], word]
            index += run
        else:
            words.append(word)
            index += 1
    return digits, " ".join(words)


@given(spoken_digits())
def test_digit_by_digit_round_trips(case: tuple[str, str]) -> None:
    digits, spoken = case
    assert parse_digits(spoken, "en") == digits


@given(st.integers(min_value=0, max_value=999_999))
def test_num2words_integers_round_trip(value: int) -> None:
    spoken = num2words(value, lang="en")
    assert parse_number(spoken, "en") == Decimal(value)
    assert parse_digits(spoken, "en") == str(value)


@given(st.integers(min_value=1, max_value=999_999))
def test_agrees_with_text2digits_on_compound_numerals(value: int) -> None:
    spoken = num2words(value, lang="en").replace(",", "").replace("-", " ")
    assert parse_number(spoken, "en") == Decimal(Text2Digits().convert(spoken))


@given(st.integers(min_value=10, max_value=99), st.integers(min_value=10, max_value=99))
def test_years_said_in_pairs_concatenate(first: int, second: int) -> None:
    spoken = f"{num2words(first, lang='en')} {num2words(second, lang='en')}"
    assert parse_digits(spoken, "en") == f"{first}{second}"


@given(
    st.integers(min_value=0, max_value=99_999),
    st.text(alphabet="0123456789", min_size=1, max_size=3),
    st.sampled_from(["point", "dot"]),
)
def test_decimals_with_a_point(whole: int, fraction: str, marker: str) -> None:
    spoken_fraction = " ".join(_DIGIT_WORDS[digit][0] for digit in fraction)
    spoken = f"{num2words(whole, lang='en')} {marker} {spoken_fraction}"
    assert parse_number(spoken, "en") == Decimal(f"{whole}.{fraction}")


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_text_gives_a_result_never_an_exception(text: str) -> None:
    digits = parse_digits(text, "en")
    assert digits is None or digits.isdigit()
    number = parse_number(text, "en")
    assert number is None or number >= 0
    assert parse_yes_no(text, "en") in (True, False, None)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(grammar_words("number", "en")), max_size=12))
def test_any_sequence_of_grammar_words_is_understood(words: list[str]) -> None:
    text = " ".join(words)
    digits = parse_digits(text, "en")
    assert digits is None or digits.isdigit()
    number = parse_number(text, "en")
    assert number is None or number >= 0


# --- grammar words -------------------------------------------------------------------------


def test_digit_grammar_has_every_form_people_use() -> None:
    words = grammar_words("digits", "en")
    for word in ["zero", "oh", "double", "triple", "fifteen", "forty", "hundred", "thousand"]:
        assert word in words
    for word in ["and", "a", "no", "sorry", "um", "i", "mean"]:
        assert word in words
    assert "point" not in words
    assert len(words) == len(set(words))


def test_every_numeral_word_of_the_grammar_is_a_number() -> None:
    pack = get_pack("en")
    for word in pack.numeral_words():
        understood = parse_digits(word, "en")
        assert understood is not None, word
        assert understood.isdigit(), word


def test_number_and_yes_no_grammars() -> None:
    assert {"point", "dot", "tenths", "hundredths"} <= set(grammar_words("number", "en"))
    yes_no = grammar_words("yes_no", "en")
    for word in ["yes", "yeah", "no", "nope", "correct", "wrong", "not", "sure"]:
        assert word in yes_no


# --- CLI -----------------------------------------------------------------------------------


def test_cli_parse_english() -> None:
    from contactcenter.cli import main  # deferred: the CLI's imports must not hide the tables

    result = CliRunner().invoke(main, ["speech", "parse", "--lang", "en", "double oh seven"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    assert {key: json.loads(value) for key, value in lines.items()} == {
        "digits": "007",
        "number": "7",
        "yes_no": None,
    }
