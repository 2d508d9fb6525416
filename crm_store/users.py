"""Users, roles, regions, passwords, API tokens and console sessions' epochs.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile); hashes of the older ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` format still verify
and are replaced by an argon2id hash at the next successful login
(:func:`authenticate_password`). API tokens are 256-bit random strings shown once and stored as
their SHA-256 (a token has full entropy, so a fast hash is enough and allows an indexed lookup).

``User.session_epoch`` moves on when the password changes or the user is disabled: console
sessions remember the epoch they began in and end when it is no longer current.

Every change made here through an admin or the user (create, roles, regions, enable/disable,
password, API token) writes an audit row (entity ``user``, :func:`crm_store.audit.record`)
attributed to the current actor (``acting_as``); the snapshot never holds a hash, only
when the password or token last changed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from crm_store import audit
from crm_store.db import mark_session
from crm_store.errors import Conflict, InvalidInput, NotFound
from crm_store.models import ROLE_NAMES, Account, Role, User, utcnow

PBKDF2_ITERATIONS = 600_000
TOKEN_PREFIX = "cc_"  # noqa: S105  (a public marker of our tokens, not a secret)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
MAX_REGIONS = 200
_USERNAME = re.compile(r"[a-z][a-z0-9_.\-]{1,63}")
_HASHER = PasswordHasher()
AUDIT_ENTITY = "user"

#: The :func:`crm_store.db.mark_session` mark of a transaction that changed a user (roles,
#: regions, activity, password or API token): cached token checks must be redone.
USERS_CHANGED = "users_changed"


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both answers take as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (self-describing PHC string)."""
    return _HASHER.hash(password)


def _verify_pbkdf2(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches the stored hash (argon2id, or the older PBKDF2)."""
    if not stored:
        return False
    if stored.startswith("pbkdf2_sha256$"):
        return _verify_pbkdf2(password, stored)
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    """True when ``stored`` is not an argon2id hash with the current parameters."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def hash_token(token: str) -> str:
    """The stored form of an API token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_roles(roles: Iterable[str]) -> list[str]:
    names = sorted(set(roles))
    if not names:
        raise InvalidInput(f"at least one role is required ({', '.join(ROLE_NAMES)})")
    unknown = [r for r in names if r not in ROLE_NAMES]
    if unknown:
        raise InvalidInput(
            f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLE_NAMES)}"
        )
    return names


def check_regions(regions: Iterable[str] | None) -> list[str] | None:
    """``regions`` cleaned (stripped, unique, sorted); ``None`` (all regions) stays ``None``.

    An empty list is refused: a user of no region would see nothing (use ``None`` for all).
    """
    if regions is None:
        return None
    cleaned = sorted({r.strip() for r in regions if r and r.strip()})
    if not cleaned:
        raise InvalidInput("choose at least one region, or all regions")
    if len(cleaned) > MAX_REGIONS or any(len(r) > 200 for r in cleaned):
        raise InvalidInput(f"at most {MAX_REGIONS} regions of up to 200 characters each")
    return cleaned


def check_password(password: str) -> str:
    """``password`` when it is acceptable, else :class:`InvalidInput` saying why."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def get_or_create_role(session: Session, name: str) -> Role:
    """The :class:`Role` called ``name`` (one of ``ROLE_NAMES``), created on first use."""
    _check_roles([name])
    role = session.scalars(select(Role).where(Role.name == name)).one_or_none()
    if role is None:
        role = Role(name=name)
        session.add(role)
        session.flush()
    return role


def get_user(session: Session, username: str) -> User:
    """The user called ``username`` or raise :class:`NotFound`."""
    user = session.scalars(
        select(User).where(User.username == username).options(selectinload(User.roles))
    ).one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def get_user_by_id(session: Session, user_id: int) -> User | None:
    """The user with ``user_id`` (roles loaded), or None."""
    return session.scalars(
        select(User).where(User.id == user_id).options(selectinload(User.roles))
    ).one_or_none()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def user_snapshot(user: User) -> dict[str, Any]:
    """What the audit log records of a user: no hash, only when secrets last changed."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "roles": user.role_names,
        "regions": list(user.regions) if user.regions is not None else None,
        "active": user.active,
        "password_changed_at": _iso(user.password_changed_at),
        "api_token_issued_at": _iso(user.api_token_issued_at),
    }


def _audited(session: Session, user: User, change: Callable[[], None]) -> None:
    """Apply ``change`` to ``user`` and audit it (one ``update`` row when anything changed)."""
    before = user_snapshot(user)
    change()
    session.flush()
    mark_session(session, USERS_CHANGED)
    after = user_snapshot(user)
    if after != before:
        audit.record(session, AUDIT_ENTITY, str(user.id), "update", before, after)


def create_user(
    session: Session,
    username: str,
    *,
    roles: Iterable[str],
    password: str | None = None,
    display_name: str = "",
    regions: Iterable[str] | None = None,
) -> User:
    """Create a user with ``roles`` and ``regions`` (``None``: all); the password (optional)
    is stored hashed. Audited.

    Raises :class:`InvalidInput` for a bad name, role, region list or password and
    :class:`Conflict` when the name is taken.
    """
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            "username must be 2-64 characters: a latin letter, then letters, digits, '.', '_' "
            "or '-'"
        )
    role_names = _check_roles(roles)
    region_list = check_regions(regions)
    if password is not None:
        check_password(password)
    if len(display_name.strip()) > 200:
        raise InvalidInput("display name must have at most 200 characters")
    if session.scalars(select(User.id).where(User.username == name)).first() is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(
        username=name,
        display_name=display_name.strip(),
        password_hash=hash_password(password) if password is not None else None,
        password_changed_at=utcnow() if password is not None else None,
        active=True,
        regions=region_list,
        session_epoch=0,
    )
    user.roles = [get_or_create_role(session, r) for r in role_names]
    session.add(user)
    session.flush()
    audit.record(session, AUDIT_ENTITY, str(user.id), "insert", None, user_snapshot(user))
    return user


def update_user(
    session: Session,
    username: str,
    *,
    roles: Iterable[str],
    regions: Iterable[str] | None,
    display_name: str,
) -> User:
    """Set a user's roles, regions (``None``: all) and display name. Audited (one row, when
    anything changed). A user's scope is re-read on every console request and API call, so
    the change applies at once."""
    user = get_user(session, username)
    role_names = _check_roles(roles)
    region_list = check_regions(regions)
    if len(display_name.strip()) > 200:
        raise InvalidInput("display name must have at most 200 characters")

    def change() -> None:
        if role_names != user.role_names:
            user.roles = [get_or_create_role(session, r) for r in role_names]
        if region_list != user.regions:
            user.regions = region_list
        user.display_name = display_name.strip()

    _audited(session, user, change)
    return user


def issue_api_token(session: Session, username: str) -> str:
    """Issue a new API token for the user (replacing the old one) and return it. Audited.

    The token is returned only here; only its hash is stored; the old token stops working
    in every process once this commits (:mod:`crm_store.token_cache`).
    """
    user = get_user(session, username)
    if not user.active:
        raise InvalidInput(f"user {username!r} is deactivated")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def change() -> None:
        user.api_token_hash = hash_token(token)
        user.api_token_issued_at = utcnow()

    _audited(session, user, change)
    return token


def authenticate_token(session: Session, token: str) -> User | None:
    """The active user holding ``token``, or None (one query: the user with their roles)."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    return (
        session.scalars(
            select(User)
            .where(User.api_token_hash == hash_token(token), User.active.is_(True))
            .options(joinedload(User.roles))
        )
        .unique()
        .one_or_none()
    )


def authenticate_password(session: Session, username: str, password: str) -> User | None:
    """The active user when ``password`` is right, else None.

    A right password stored with an older scheme (PBKDF2) or older argon2 parameters is
    re-hashed on the spot (not audited: the password itself did not change). An unknown
    user costs a hash verification too, so the answer's timing does not tell who exists.
    """
    try:
        user = get_user(session, username.strip().lower())
    except NotFound:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, user.password_hash or _dummy_hash()):
        return None
    if not user.active or user.password_hash is None:
        return None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.flush()
    return user


def record_login(session: Session, user: User) -> None:
    """Note a successful console login (``last_login_at``; not audited)."""
    user.last_login_at = utcnow()
    session.flush()


def set_password(session: Session, username: str, password: str) -> User:
    """Set a user's password (an admin's reset, or the user's own change after checking the
    old one): hashed with argon2id; the user's console sessions end. Audited."""
    check_password(password)
    user = get_user(session, username)

    def change() -> None:
        user.password_hash = hash_password(password)
        user.password_changed_at = utcnow()
        user.session_epoch += 1

    _audited(session, user, change)
    return user


def change_password(session: Session, username: str, old: str, new: str) -> User:
    """The user's own password change: :class:`InvalidInput` when ``old`` is wrong or ``new``
    is unacceptable (or the same as the old). Ends the user's console sessions. Audited."""
    user = get_user(session, username)
    if not verify_password(old, user.password_hash):
        raise InvalidInput("the current password is wrong")
    check_password(new)
    if new == old:
        raise InvalidInput("the new password must differ from the current one")
    return set_password(session, username, new)


def set_active(session: Session, username: str, active: bool) -> User:
    """Activate or deactivate a user. Deactivating revokes the API token and ends the
    user's console sessions. Audited."""
    user = get_user(session, username)

    def change() -> None:
        if user.active and not active:
            user.session_epoch += 1
            user.api_token_hash = None
            user.api_token_issued_at = None
        user.active = active

    _audited(session, user, change)
    return user


def session_user(session: Session, user_id: int, epoch: int) -> User | None:
    """The user of a console session begun in ``epoch``, if it may go on: the user exists,
    is active and the epoch is still current."""
    user = get_user_by_id(session, user_id)
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return user


def list_users(session: Session) -> list[User]:
    """All users with their roles, by username."""
    return list(
        session.scalars(select(User).options(selectinload(User.roles)).order_by(User.username))
    )


def known_regions(session: Session) -> list[str]:
    """The regions present in accounts (non-empty ``Account.region`` values), sorted."""
    return list(
        session.scalars(
            select(Account.region).where(Account.region != "").distinct().order_by(Account.region)
        )
    )
