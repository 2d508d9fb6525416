"""The console's own forms, checked server-side with messages (Russian) next to each field.

Plain functions over :class:`~contactcenter.services.Services` and form values, so they are
tested without HTTP: the password change (:func:`change_own_password`), the users admin
form (:func:`parse_user_form`) and the audit page's filters (:func:`parse_audit_filters`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contactcenter.services import Services
from crm_store.audit import AuditFilter, acting_as
from crm_store.models import ROLE_NAMES
from crm_store.users import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    get_user,
    set_password,
    verify_password,
)

#: Role names as the console shows them.
ROLE_LABELS: dict[str, str] = {
    "admin": "Администратор",
    "supervisor": "Супервизор",
    "operator": "Оператор",
    "auditor": "Аудитор",
    "developer": "Разработчик",
}
_USERNAME = re.compile(r"[a-z][a-z0-9_.\-]{1,63}")
#: The password fields' names (the forms' ``name`` attributes).
OLD_FIELD, NEW_FIELD, CONFIRM_FIELD = "old_password", "new_password", "confirm_password"


@dataclass(frozen=True)
class PasswordOutcome:
    """``errors`` by field (empty: the password was changed; ``epoch``: the new epoch)."""

    errors: dict[str, str]
    epoch: int = 0


def new_password_errors(new: str, confirm: str, *, field_name: str = NEW_FIELD) -> dict[str, str]:
    """Messages about a new password and its confirmation (empty: acceptable)."""
    errors: dict[str, str] = {}
    if len(new) < MIN_PASSWORD_LENGTH:
        errors[field_name] = f"Пароль должен содержать не менее {MIN_PASSWORD_LENGTH} символов."
    elif len(new) > MAX_PASSWORD_LENGTH:
        errors[field_name] = f"Пароль должен содержать не более {MAX_PASSWORD_LENGTH} символов."
    elif new.strip() != new:
        errors[field_name] = "Пароль не должен начинаться или заканчиваться пробелом."
    if new != confirm:
        errors[CONFIRM_FIELD] = "Пароли не совпадают."
    return errors


def change_own_password(
    services: Services, username: str, *, actor: str, old: str, new: str, confirm: str
) -> PasswordOutcome:
    """The user's own password change: the current password must be right, the new one
    acceptable, confirmed and different. Ends the user's other sessions (epoch). Audited."""
    errors = new_password_errors(new, confirm)
    if not old:
        errors[OLD_FIELD] = "Введите текущий пароль."
    with acting_as(actor), services.db.transaction() as session:
        user = get_user(session, username)
        if old and not verify_password(old, user.password_hash):
            errors[OLD_FIELD] = "Текущий пароль указан неверно."
        elif old and new == old and NEW_FIELD not in errors:
            errors[NEW_FIELD] = "Новый пароль должен отличаться от текущего."
        if errors:
            return PasswordOutcome(errors)
        user = set_password(session, username, new)
        return PasswordOutcome({}, user.session_epoch)


@dataclass
class UserForm:
    """The users admin form's values (``regions``: None for all regions)."""

    username: str = ""
    display_name: str = ""
    roles: list[str] = field(default_factory=list)
    regions: list[str] | None = None
    password: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def parse_user_form(
    form: dict[str, list[str]],
    known_regions: Iterable[str],
    *,
    creating: bool,
) -> UserForm:
    """Read and check the users admin form (``form``: field → its values).

    Fields: ``username`` and ``password`` (+ ``confirm_password``; both optional: a user
    without a password uses only the API) when ``creating``; ``display_name``; ``roles``
    (several); ``regions_mode`` (``all`` or ``list``) and ``regions`` (several, from
    ``known_regions``).
    """

    def one(name: str) -> str:
        values = form.get(name) or [""]
        return values[0]

    result = UserForm()
    errors = result.errors
    if creating:
        result.username = one("username").strip().lower()
        if not _USERNAME.fullmatch(result.username):
            errors["username"] = (
                "Имя пользователя: от 2 до 64 символов, латинская буква в начале, затем "
                "латинские буквы, цифры, «.», «_» или «-»."
            )
        result.password = one("password")
        if result.password or one("confirm_password"):
            errors.update(
                new_password_errors(result.password, one("confirm_password"), field_name="password")
            )
    result.display_name = one("display_name").strip()
    if len(result.display_name) > 200:
        errors["display_name"] = "Не более 200 символов."
    result.roles = sorted({r for r in form.get("roles", []) if r})
    if not result.roles:
        errors["roles"] = "Выберите хотя бы одну роль."
    elif any(r not in ROLE_NAMES for r in result.roles):
        errors["roles"] = "Неизвестная роль."
    mode = one("regions_mode") or "all"
    if mode == "all":
        result.regions = None
    elif mode == "list":
        allowed = set(known_regions)
        chosen = sorted({r for r in form.get("regions", []) if r})
        result.regions = chosen
        if not chosen:
            errors["regions"] = "Выберите хотя бы один регион или «все регионы»."
        elif any(r not in allowed for r in chosen):
            errors["regions"] = "Такого региона нет среди лицевых счетов."
    else:
        errors["regions"] = "Выберите «все регионы» или список регионов."
    return result


#: Audited objects as the audit page names them.
ENTITY_LABELS: dict[str, str] = {
    "consumer": "Потребитель",
    "account": "Лицевой счёт",
    "phone_number": "Телефон",
    "account_phone": "Телефон счёта",
    "meter": "Счётчик",
    "meter_reading": "Показание",
    "consent": "Согласие",
    "do_not_contact": "Запрет контактов",
    "user": "Пользователь",
    "campaign": "Кампания",
    "case": "Обращение",
    "interaction": "Контакт",
    "flow": "Сценарий",
}
_ENTITY = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass
class AuditQuery:
    """The audit page's filters: what the form shows (``values``), what the query gets
    (``filters``, ``before_id``), and messages by field."""

    values: dict[str, str]
    filters: AuditFilter
    before_id: int | None
    errors: dict[str, str]


def _day(raw: str, name: str, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Дата в формате ГГГГ-ММ-ДД."
        return None


def parse_audit_filters(args: Mapping[str, str], zone: ZoneInfo) -> AuditQuery:
    """Read the audit page's query string: ``actor``, ``entity``, ``entity_id``, ``date_from``
    and ``date_to`` (days in ``zone``, both inclusive), ``before`` (paging)."""
    names = ("actor", "entity", "entity_id", "date_from", "date_to")
    values = {name: (args.get(name) or "").strip() for name in names}
    errors: dict[str, str] = {}
    if len(values["actor"]) > 128:
        errors["actor"] = "Не более 128 символов."
    if values["entity"] and not _ENTITY.fullmatch(values["entity"]):
        errors["entity"] = "Неизвестный тип объекта."
    if len(values["entity_id"]) > 64:
        errors["entity_id"] = "Не более 64 символов."
    first = _day(values["date_from"], "date_from", errors)
    last = _day(values["date_to"], "date_to", errors)
    if first and last and last < first:
        errors["date_to"] = "Конец периода раньше его начала."
    before_raw = (args.get("before") or "").strip()
    before_id = int(before_raw) if before_raw.isdigit() and len(before_raw) < 19 else None
    if errors:
        return AuditQuery(values, AuditFilter(), None, errors)
    since = datetime.combine(first, time(0), tzinfo=zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone) if last else None
    filters = AuditFilter(
        actor=values["actor"] or None,
        entity=values["entity"] or None,
        entity_id=values["entity_id"] or None,
        since=since,
        until=until,
    )
    return AuditQuery(values, filters, before_id, errors)
