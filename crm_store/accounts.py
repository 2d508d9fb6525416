"""Account lookups: by account number, by IVR code, by phone; linking phones to accounts.

There is no national account-number format (domain.md §2.1), so normalisation is driven by
:class:`AccountNumberRules`: the same rules must be used when storing (import) and when
looking up (IVR, operators), which is why both go through :func:`normalize_account_number`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.phones import InvalidPhoneError, normalize_phone
from crm_store.errors import InvalidAccountNumber, InvalidInput, NotFound
from crm_store.models import Account, AccountPhone, PhoneNumber

# Latin letters that look exactly like Cyrillic ones (account numbers such as «РА07-12345»
# are often typed with Latin P and A).
_LOOKALIKES = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")


@dataclass(frozen=True)
class AccountNumberRules:
    """How a raw account number becomes the stored, unique, normalised form.

    ``remove`` holds the characters dropped (spaces of any kind are always dropped);
    leading zeros are always kept, because suppliers print them as part of the number.
    ``pattern`` is the regular expression the normalised number must match entirely.
    """

    uppercase: bool = True
    remove: str = "-./№#_"
    fold_lookalikes: bool = False
    pattern: str = r"[0-9A-ZА-ЯЁ]{4,32}"

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"invalid account number pattern {self.pattern!r}: {exc}") from None


DEFAULT_RULES = AccountNumberRules()


def normalize_account_number(raw: str, rules: AccountNumberRules = DEFAULT_RULES) -> str:
    """Normalise ``raw`` (``"ра07-12345 "`` → ``"РА0712345"``) or raise InvalidAccountNumber.

    The message of the error is in Russian, ready to show to an operator or import user.
    """
    text = "".join(ch for ch in (raw or "") if not ch.isspace() and ch not in rules.remove)
    if rules.uppercase:
        text = text.upper()
    if rules.fold_lookalikes:
        text = text.translate(_LOOKALIKES)
    if not text:
        raise InvalidAccountNumber("номер лицевого счёта пуст")
    if not re.fullmatch(rules.pattern, text):
        raise InvalidAccountNumber(f"«{raw.strip()}» не похож на номер лицевого счёта")
    return text


def get_account(session: Session, account_id: int) -> Account:
    """The account with ``account_id``, or raise :class:`NotFound`."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    return account


def find_account_by_number(
    session: Session, raw: str, rules: AccountNumberRules = DEFAULT_RULES
) -> Account | None:
    """The account whose normalised number matches ``raw`` (None when malformed or absent)."""
    try:
        number = normalize_account_number(raw, rules)
    except InvalidAccountNumber:
        return None
    return session.scalars(select(Account).where(Account.number == number)).one_or_none()


def normalize_ivr_code(raw: str) -> str:
    """Digits of an IVR code (spaces and dashes dropped) or raise :class:`InvalidInput`."""
    code = "".join(ch for ch in (raw or "") if not ch.isspace() and ch != "-")
    if not code or not (code.isascii() and code.isdigit()):
        raise InvalidInput("код из квитанции должен состоять только из цифр")
    return code


def find_account_by_ivr_code(session: Session, raw: str) -> Account | None:
    """The account with the IVR code printed on the bill (None when malformed or absent)."""
    try:
        code = normalize_ivr_code(raw)
    except InvalidInput:
        return None
    return session.scalars(select(Account).where(Account.ivr_code == code)).one_or_none()


def accounts_for_phone(
    session: Session, phone: str, *, include_closed: bool = False
) -> list[Account]:
    """Accounts linked to ``phone`` (any notation), oldest first; [] for an invalid phone."""
    try:
        e164 = normalize_phone(phone, require_russian=False)
    except InvalidPhoneError:
        return []
    stmt = (
        select(Account)
        .join(AccountPhone, AccountPhone.account_id == Account.id)
        .join(PhoneNumber, PhoneNumber.id == AccountPhone.phone_id)
        .where(PhoneNumber.e164 == e164)
        .order_by(Account.id)
    )
    if not include_closed:
        stmt = stmt.where(Account.status != "closed")
    return list(session.scalars(stmt))


def phones_for_account(session: Session, account_id: int) -> list[PhoneNumber]:
    """Phone numbers linked to an account, verified ones first."""
    stmt = (
        select(PhoneNumber)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .where(AccountPhone.account_id == account_id)
        .order_by(PhoneNumber.verified.desc(), PhoneNumber.id)
    )
    return list(session.scalars(stmt))


def get_or_create_phone(
    session: Session, phone: str, *, source: str = "ivr", verified: bool = False
) -> PhoneNumber:
    """The :class:`PhoneNumber` row for ``phone`` (any Russian notation), created if missing.

    An existing row is marked verified when ``verified`` is true; it is never un-verified.
    Raises :class:`InvalidInput` for a number that is not a valid Russian phone.
    """
    try:
        e164 = normalize_phone(phone)
    except InvalidPhoneError as exc:
        raise InvalidInput(f"некорректный номер телефона: {exc}") from None
    row = session.scalars(select(PhoneNumber).where(PhoneNumber.e164 == e164)).one_or_none()
    if row is None:
        row = PhoneNumber(e164=e164, source=source, verified=verified)
        session.add(row)
        session.flush()
    elif verified and not row.verified:
        row.verified = True
    return row


def link_phone(
    session: Session,
    account_id: int,
    phone: str,
    *,
    source: str = "ivr",
    verified: bool = False,
) -> PhoneNumber:
    """Link ``phone`` to the account (idempotent) and return the phone row."""
    get_account(session, account_id)
    row = get_or_create_phone(session, phone, source=source, verified=verified)
    if session.get(AccountPhone, (account_id, row.id)) is None:
        session.add(AccountPhone(account_id=account_id, phone_id=row.id))
        session.flush()
    return row
