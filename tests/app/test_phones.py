"""Phone numbers are normalised to E.164; Kazakhstan is not Russia."""

from __future__ import annotations

import pytest

from contactcenter.phones import (
    InvalidPhoneError,
    is_russian_mobile,
    mask_phone,
    normalize_phone,
    timezones_for_phone,
)


@pytest.mark.parametrize(
    "raw",
    [
        "8 903 123-45-67",
        "+7 (903) 123-45-67",
        "89031234567",
        "79031234567",
        "9031234567",
        "+7 903 123 45 67",
        "8(903)1234567",
    ],
)
def test_russian_notations(raw: str) -> None:
    assert normalize_phone(raw) == "+79031234567"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("abc", "not a phone number"),
        ("123", "number"),
        ("+7 701 123 45 67", "not a Russian number (KZ)"),
        ("+380 44 123 4567", "not a Russian number"),
        ("+7 903 123 45 6", "number"),
    ],
)
def test_rejected_numbers(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        normalize_phone(raw)


def test_kazakhstan_is_not_a_russian_mobile() -> None:
    assert normalize_phone("+7 701 123 45 67", require_russian=False) == "+77011234567"
    assert not is_russian_mobile("+77011234567")
    assert is_russian_mobile("+79031234567")
    assert not is_russian_mobile("+74951234567")


def test_crimea_numbers_are_russian() -> None:
    assert normalize_phone("+7 978 123 45 67") == "+79781234567"


def test_timezones_for_a_moscow_landline() -> None:
    assert timezones_for_phone("+74951234567") == ("Europe/Moscow",)
    assert timezones_for_phone("garbage") == ()


def test_mask() -> None:
    assert mask_phone("+79031234567") == "+7903***4567"
    assert "1234567" not in mask_phone("+79031234567")


def test_kaliningrad_landline_gets_the_russian_zone() -> None:
    assert timezones_for_phone("+74012123456") == ("Europe/Kaliningrad",)


def test_russian_mobiles_carry_no_kazakh_zones() -> None:
    zones = timezones_for_phone("+79031234567")
    assert zones
    assert not {"Asia/Almaty", "Asia/Aqtobe"} & set(zones)
    assert "Europe/Moscow" in zones
