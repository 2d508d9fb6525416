"""Account numbers, IVR codes, phone links and model-level validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError

from crm_store.accounts import (
    AccountNumberRules,
    accounts_for_phone,
    find_account_by_ivr_code,
    find_account_by_number,
    get_account,
    link_phone,
    normalize_account_number,
    phones_for_account,
)
from crm_store.db import Database
from crm_store.errors import InvalidAccountNumber, InvalidInput, NotFound
from crm_store.models import Account, Consumer, Meter, PhoneNumber


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("РА07-12345", "РА0712345"),
        ("ра07 12345", "РА0712345"),
        ("000-0000-0000", "00000000000"),
        (" 0012345 ", "0012345"),  # leading zeros kept as printed
        ("№ 82955422", "82955422"),
        ("12.34.56", "123456"),
    ],
)
def test_normalize_account_number(raw: str, expected: str) -> None:
    assert normalize_account_number(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", "12", "АБВ!123", "1" * 33])
def test_normalize_rejects_garbage_with_a_russian_message(raw: str) -> None:
    with pytest.raises(InvalidAccountNumber) as exc:
        normalize_account_number(raw)
    assert "счёт" in str(exc.value) or "счета" in str(exc.value)


def test_configurable_rules() -> None:
    digits_only = AccountNumberRules(pattern=r"\d{9}")
    assert normalize_account_number("111-138-551", digits_only) == "111138551"
    with pytest.raises(InvalidAccountNumber):
        normalize_account_number("11113855", digits_only)
    folding = AccountNumberRules(fold_lookalikes=True)
    assert normalize_account_number("PA07-12345", folding) == "РА0712345"  # Latin → Cyrillic
    keep_case = AccountNumberRules(uppercase=False, pattern=r"[0-9a-zA-Zа-яА-Я]{4,32}")
    assert normalize_account_number("ра07-12345", keep_case) == "ра0712345"
    with pytest.raises(ValueError, match="pattern"):
        AccountNumberRules(pattern="[")


def test_lookups(db: Database, account: Account) -> None:
    with db.transaction() as s:
        acc = get_account(s, account.id)
        acc.ivr_code = "4455"
    with db.transaction() as s:
        found = find_account_by_number(s, "ра07-12345")
        assert found is not None
        assert found.id == account.id
        assert find_account_by_number(s, "РА07-99999") is None
        assert find_account_by_number(s, "??") is None
        by_code = find_account_by_ivr_code(s, "44 55")
        assert by_code is not None
        assert by_code.id == account.id
        assert find_account_by_ivr_code(s, "44a55") is None
        with pytest.raises(NotFound):
            get_account(s, 999_999)


def test_phone_links_many_to_many(db: Database, account: Account) -> None:
    with db.transaction() as s:
        other = Account(
            consumer_id=account.consumer_id,
            number_raw="2",
            number="0002",
            timezone="Asia/Kamchatka",
        )
        s.add(other)
        s.flush()
        p1 = link_phone(s, account.id, "8 (903) 123-45-67", source="import")
        link_phone(s, account.id, "+79031234567", verified=True)  # idempotent, now verified
        p2 = link_phone(s, other.id, "+7 903 123 45 67")
        link_phone(s, other.id, "+79161112233")
        assert p1.id == p2.id
        assert p1.verified
        other_id = other.id
    with db.transaction() as s:
        assert [a.id for a in accounts_for_phone(s, "89031234567")] == [account.id, other_id]
        assert [p.e164 for p in phones_for_account(s, other_id)] == ["+79031234567", "+79161112233"]
        closed = s.get(Account, other_id)
        assert closed is not None
        closed.status = "closed"
        s.flush()
        assert [a.id for a in accounts_for_phone(s, "89031234567")] == [account.id]
        assert len(accounts_for_phone(s, "89031234567", include_closed=True)) == 2
        assert accounts_for_phone(s, "not a phone") == []
        with pytest.raises(InvalidInput, match="телефона"):
            link_phone(s, account.id, "+77011234567")  # Kazakhstan is not Russian


def test_model_validation() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Account(number_raw="1", number="1", timezone="Europe/Atlantis")
    with pytest.raises(ValueError, match="time zone"):
        Account(number_raw="1", number="1", timezone="Etc/Unknown")
    with pytest.raises(ValueError, match="digits"):
        Account(number_raw="1", number="1", ivr_code="12a")
    with pytest.raises(ValueError, match=r"E\.164"):
        PhoneNumber(e164="89031234567")
    with pytest.raises(ValueError, match="capacity"):
        Meter(serial="x", capacity=3, zones=["день"])
    with pytest.raises(ValueError, match="zones"):
        Meter(serial="x", capacity=5, zones=["день", "день"])
    assert Meter(serial="x", capacity=5, zones=[" пик", "ночь "]).zones == ["пик", "ночь"]


def test_database_constraints_and_utc_round_trip(db: Database, account: Account) -> None:
    stamp = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with db.transaction() as s:
        s.add(Consumer(full_name="Тест", created_at=stamp, updated_at=stamp))
    with db.transaction() as s:
        row = s.scalars(select(Consumer).where(Consumer.full_name == "Тест")).one()
        assert row.created_at == stamp
        assert row.created_at.tzinfo is not None
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(
            Account(
                consumer_id=account.consumer_id,
                number_raw="x",
                number=account.number,
                timezone="Europe/Moscow",
            )
        )
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.add(Consumer(full_name="X", kind="robot"))
    naive = datetime(2026, 1, 1)  # noqa: DTZ001  (the error under test)
    with pytest.raises(StatementError, match="naive"), db.transaction() as s:
        s.add(Consumer(full_name="Y", created_at=naive))
