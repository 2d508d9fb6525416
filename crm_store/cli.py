"""CLI groups ``db`` (migrations) and ``users`` (console and API users).

::

    contactcenter db upgrade [REVISION]     migrate DATABASE_URL (default: head)
    contactcenter db downgrade REVISION     e.g. base
    contactcenter db check                  exit 1 when the models drift from the migrations
    contactcenter db current                print the current revision
    contactcenter users create NAME --role operator [--role supervisor] [--password-stdin]
    contactcenter users token NAME          issue an API token (printed once)
    contactcenter users list
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import click
from alembic.util import CommandError
from redis import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from contactcenter.cli_support import settings_or_exit
from crm_store import migrate
from crm_store.db import Database
from crm_store.errors import Conflict, InvalidInput, MigrationDriftError, NotFound
from crm_store.models import ROLE_NAMES
from crm_store.user_cache import watch_user_changes
from crm_store.users import create_user, issue_api_token, list_users

_T = TypeVar("_T")


def _database_url() -> str:
    return settings_or_exit().database_url


def _run(action: Callable[[], _T]) -> _T:
    """Run a database action; turn expected failures into a message and exit status 1."""
    try:
        return action()
    except CommandError as exc:
        click.echo(f"migration error: {exc}", err=True)
    except SQLAlchemyError as exc:
        click.echo(f"database error: {exc.__class__.__name__}: {exc}".splitlines()[0], err=True)
    sys.exit(1)


@click.group(name="db")
def db_group() -> None:
    """Database schema migrations (Alembic) on DATABASE_URL."""


@db_group.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    url = _database_url()
    _run(lambda: migrate.upgrade(url, revision))
    click.echo(f"database at revision {_run(lambda: migrate.current(url))}")


@db_group.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (``base`` drops every table)."""
    url = _database_url()
    _run(lambda: migrate.downgrade(url, revision))
    click.echo(f"database at revision {_run(lambda: migrate.current(url)) or 'base'}")


@db_group.command()
def check() -> None:
    """Fail (exit 1) when the ORM models and the migrated schema differ."""
    url = _database_url()
    try:
        _run(lambda: migrate.check(url))
    except MigrationDriftError as exc:
        click.echo(f"schema drift: {exc}", err=True)
        sys.exit(1)
    click.echo("no drift: the models match the migrations")


@db_group.command()
def current() -> None:
    """Print the revision the database is at (``none`` when never migrated)."""
    url = _database_url()
    revision = _run(lambda: migrate.current(url))
    head = migrate.head()
    suffix = " (head)" if revision == head else f" (head is {head})"
    click.echo(f"{revision or 'none'}{suffix}")


@contextmanager
def _transaction() -> Iterator[Session]:
    settings = settings_or_exit()
    db = Database(settings.database_url)
    # A token issued here must retire the old one in the running servers' token caches.
    watch_user_changes(db, lambda: Redis.from_url(settings.redis_url, socket_timeout=5))
    try:
        with db.transaction() as session:
            yield session
    finally:
        db.dispose()


@click.group(name="users")
def users_group() -> None:
    """Users of the console and the API, their roles and API tokens."""


@users_group.command(name="create")
@click.argument("username")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLE_NAMES),
    help="Role of the user (repeat for several).",
)
@click.option("--display-name", default="", help="Name shown in the console.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def create_user_command(
    username: str, roles: tuple[str, ...], display_name: str, password_stdin: bool
) -> None:
    """Create USERNAME with the given roles."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            click.echo("error: no password on stdin", err=True)
            sys.exit(1)

    def work() -> str:
        with _transaction() as session:
            user = create_user(
                session, username, roles=roles, password=password, display_name=display_name
            )
            return f"created user {user.username} ({', '.join(user.role_names)})"

    try:
        click.echo(_run(work))
    except (InvalidInput, Conflict) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@users_group.command(name="token")
@click.argument("username")
def token_command(username: str) -> None:
    """Issue a new API token for USERNAME (replaces the old one; shown only once)."""

    def work() -> str:
        with _transaction() as session:
            return issue_api_token(session, username.strip().lower())

    try:
        token = _run(work)
    except (NotFound, InvalidInput) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(token)
    click.echo("Store this token now: it is not shown again.", err=True)


@users_group.command(name="list")
def list_command() -> None:
    """List users with their roles and whether they hold an API token."""

    def work() -> list[str]:
        with _transaction() as session:
            return [
                f"{u.username}\t{','.join(u.role_names)}\t"
                f"{'active' if u.active else 'inactive'}\t"
                f"{'token' if u.api_token_hash else '-'}\t{u.display_name}"
                for u in list_users(session)
            ]

    lines = _run(work)
    if not lines:
        click.echo("no users")
    for line in lines:
        click.echo(line)
