"""Users, roles, passwords and API tokens.

Passwords are stored as ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (hashlib.pbkdf2_hmac);
API tokens are 256-bit random strings shown once and stored as their SHA-256 (a token has
full entropy, so a fast hash is enough and allows an indexed lookup).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from crm_store.errors import Conflict, InvalidInput, NotFound
from crm_store.models import ROLE_NAMES, Role, User

PBKDF2_ITERATIONS = 600_000
TOKEN_PREFIX = "cc_"  # noqa: S105  (a public marker of our tokens, not a secret)
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"[a-z][a-z0-9_.\-]{1,63}")


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash of ``password`` in the self-describing stored format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison)."""
    if not stored:
        return False
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


def create_user(
    session: Session,
    username: str,
    *,
    roles: Iterable[str],
    password: str | None = None,
    display_name: str = "",
) -> User:
    """Create a user with ``roles``; the password (optional) is stored hashed.

    Raises :class:`InvalidInput` for a bad name, role or too-short password and
    :class:`Conflict` when the name is taken.
    """
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            "username must be 2-64 characters: a latin letter, then letters, digits, '.', '_' "
            "or '-'"
        )
    role_names = _check_roles(roles)
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalars(select(User.id).where(User.username == name)).first() is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(
        username=name,
        display_name=display_name.strip(),
        password_hash=hash_password(password) if password is not None else None,
        active=True,
    )
    user.roles = [get_or_create_role(session, r) for r in role_names]
    session.add(user)
    session.flush()
    return user


def issue_api_token(session: Session, username: str) -> str:
    """Issue a new API token for the user (replacing the old one) and return it.

    The token is returned only here; only its hash is stored.
    """
    user = get_user(session, username)
    if not user.active:
        raise InvalidInput(f"user {username!r} is deactivated")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    session.flush()
    return token


def authenticate_token(session: Session, token: str) -> User | None:
    """The active user holding ``token``, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    return session.scalars(
        select(User)
        .where(User.api_token_hash == hash_token(token), User.active.is_(True))
        .options(selectinload(User.roles))
    ).one_or_none()


def authenticate_password(session: Session, username: str, password: str) -> User | None:
    """The active user when ``password`` is right, else None."""
    try:
        user = get_user(session, username.strip().lower())
    except NotFound:
        return None
    if not user.active or not verify_password(password, user.password_hash):
        return None
    return user


def set_active(session: Session, username: str, active: bool) -> User:
    """Activate or deactivate a user; deactivating also revokes the API token."""
    user = get_user(session, username)
    user.active = active
    if not active:
        user.api_token_hash = None
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """All users with their roles, by username."""
    return list(
        session.scalars(select(User).options(selectinload(User.roles)).order_by(User.username))
    )
