"""Demo console users for the sandbox: one per role, with a known password.

:func:`seed_demo_users` creates (when missing) the users of :data:`DEMO_USERS`, all with
:data:`DEMO_PASSWORD`, so a developer can log into the console right after ``make run``
(``contactcenter demo users`` prints them). It refuses to run with ``TELEPHONY=twilio``: a
production system never gets users with a published password. Existing users are left as
they are (a changed password stays changed).
"""

from __future__ import annotations

from dataclasses import dataclass

from contactcenter.config import ConfigError, Settings
from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.errors import NotFound
from crm_store.users import create_user, get_user

#: The password of every demo user (sandbox only; printed by ``contactcenter demo users``).
DEMO_PASSWORD = "demo-console"  # noqa: S105  (published on purpose: sandbox only)


@dataclass(frozen=True)
class DemoUser:
    """A demo console user: name, roles, regions (``None``: all), display name."""

    username: str
    roles: tuple[str, ...]
    regions: tuple[str, ...] | None
    display_name: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("demo.admin", ("admin",), None, "Администратор (демо)"),
    DemoUser("demo.supervisor", ("supervisor",), None, "Супервизор (демо)"),
    DemoUser("demo.moscow", ("supervisor",), ("Москва",), "Супервизор Москвы (демо)"),
    DemoUser("demo.operator", ("operator",), ("Москва",), "Оператор Москвы (демо)"),
    DemoUser("demo.auditor", ("auditor",), None, "Аудитор (демо)"),
    DemoUser("demo.developer", ("developer",), None, "Разработчик (демо)"),
)


def seed_demo_users(db: Database, settings: Settings) -> list[tuple[DemoUser, bool]]:
    """Create the missing demo users; each user with True when it was created now.

    Raises :class:`ConfigError` with ``TELEPHONY=twilio``.
    """
    if settings.telephony == "twilio":
        raise ConfigError("TELEPHONY", "demo users with a known password are for the sandbox only")
    done: list[tuple[DemoUser, bool]] = []
    with acting_as("demo"), db.transaction() as session:
        for user in DEMO_USERS:
            try:
                get_user(session, user.username)
                done.append((user, False))
            except NotFound:
                create_user(
                    session,
                    user.username,
                    roles=user.roles,
                    regions=user.regions,
                    password=DEMO_PASSWORD,
                    display_name=user.display_name,
                )
                done.append((user, True))
    return done
