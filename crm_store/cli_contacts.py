"""CLI groups ``dnc`` (the do-not-contact list) and ``consent`` (consents by purpose).

::

    contactcenter dnc list [--phone P] [--channel C] [--limit N] [--cursor C] [--json]
    contactcenter dnc add PHONE --reason TEXT [--channel any|voice|sms] [--by NAME]
    contactcenter dnc remove PHONE --reason TEXT [--channel C] [--by NAME]
    contactcenter dnc import FILE [--reason TEXT] [--channel C] [--format csv|xlsx] [--by NAME]
    contactcenter consent list [--value PHONE|EMAIL] [--purpose P] [--limit N] [--cursor C]
    contactcenter consent grant VALUE --purpose P --reason TEXT [--by NAME]
    contactcenter consent withdraw VALUE --purpose P --reason TEXT [--by NAME]

Phones are taken in any Russian notation and stored in E.164. Who made a change is ``--by``
(default: the operating-system user), recorded as ``cli:<name>`` in the audit log with the
reason. A bad phone, purpose or empty reason exits 1 with one clear line; the lists print
the next page's ``--cursor`` at their end.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from contactcenter.cli_support import settings_or_exit
from crm_store import contact_lists
from crm_store.db import Database
from crm_store.dnc_import import DncFileFormat, import_dnc
from crm_store.errors import ImportFileError, InvalidInput
from crm_store.models import CONSENT_PURPOSES, DNC_CHANNELS

__all__ = ["consent_group", "dnc_group"]

_T = TypeVar("_T")


def _actor(by: str | None) -> str:
    if by and by.strip():
        return f"cli:{by.strip()}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


@contextmanager
def _database() -> Iterator[Database]:
    db = Database(settings_or_exit().database_url)
    try:
        yield db
    finally:
        db.dispose()


def _run(work: Callable[[Session], _T]) -> _T:
    """Run ``work`` in one transaction; a bad input or a database failure exits 1."""
    with _database() as db:
        try:
            with db.transaction() as session:
                return work(session)
        except InvalidInput as exc:
            click.echo(f"error: {exc}", err=True)
        except SQLAlchemyError as exc:
            click.echo(f"database error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
    sys.exit(1)


def _echo_page(
    page: contact_lists.ContactPage[Any], as_json: bool, line: Callable[[Any], str]
) -> None:
    if as_json:
        items = [item.as_dict() for item in page.items]
        click.echo(
            json.dumps({"items": items, "next_cursor": page.next_cursor}, ensure_ascii=False)
        )
        return
    for item in page.items:
        click.echo(line(item))
    if not page.items:
        click.echo("(nothing)")
    if page.next_cursor is not None:
        click.echo(f"more: --cursor {page.next_cursor}")


_by = click.option("--by", default=None, help="Who makes the change (default: the OS user).")
_reason = click.option("--reason", required=True, help="Why (recorded in the audit log).")
_limit = click.option("--limit", default=contact_lists.DEFAULT_PAGE, show_default=True, type=int)
_cursor = click.option("--cursor", default=None, help="Next page: the cursor a page printed.")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


# ---------------------------------------------------------------------------- dnc


@click.group(name="dnc")
def dnc_group() -> None:
    """The do-not-contact list: numbers campaigns never call or text."""


def _dnc_line(entry: contact_lists.DncEntry) -> str:
    why = f" — {entry.reason}" if entry.reason else ""
    return (
        f"{entry.id}\t{entry.phone}\t{entry.channel}\t{entry.source}\t"
        f"{entry.created_at:%Y-%m-%d %H:%M}\t{entry.created_by}{why}"
    )


@dnc_group.command(name="list")
@click.option("--phone", default=None, help="Only this number (any notation).")
@click.option("--channel", type=click.Choice(DNC_CHANNELS), default=None)
@_limit
@_cursor
@_json
def dnc_list(
    phone: str | None, channel: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Entries, newest first: id, phone, channel, source, added, by whom — reason."""
    page = _run(
        lambda s: contact_lists.list_dnc(
            s, phone=phone, channel=channel, limit=limit, cursor=cursor
        )
    )
    _echo_page(page, as_json, _dnc_line)


@dnc_group.command(name="add")
@click.argument("phone")
@click.option("--channel", type=click.Choice(DNC_CHANNELS), default="any", show_default=True)
@_reason
@_by
def dnc_add(phone: str, channel: str, reason: str, by: str | None) -> None:
    """Put PHONE on the list (effective for the next dial at once)."""
    actor = _actor(by)
    entry, added = _run(
        lambda s: contact_lists.add_dnc(s, phone, channel=channel, reason=reason, actor=actor)
    )
    state = "added" if added else "already listed"
    click.echo(f"{entry.phone} ({entry.channel}): {state}")


@dnc_group.command(name="remove")
@click.argument("phone")
@click.option(
    "--channel", type=click.Choice(DNC_CHANNELS), default=None, help="Default: every channel."
)
@_reason
@_by
def dnc_remove(phone: str, channel: str | None, reason: str, by: str | None) -> None:
    """Take PHONE off the list (for CHANNEL, or every channel)."""
    actor = _actor(by)
    removed = _run(
        lambda s: contact_lists.remove_dnc(s, phone, channel=channel, reason=reason, actor=actor)
    )
    if not removed:
        click.echo("not on the list: nothing removed")
    for entry in removed:
        click.echo(f"{entry.phone} ({entry.channel}): removed")


@dnc_group.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--channel", type=click.Choice(DNC_CHANNELS), default="any", show_default=True)
@click.option(
    "--reason", default=None, help="Reason of rows without one (default: «импорт списка FILE»)."
)
@click.option("--format", "file_format", type=click.Choice(["csv", "xlsx"]), default=None)
@_by
def dnc_import(
    file: Path, channel: str, reason: str | None, file_format: str | None, by: str | None
) -> None:
    """Import a list of numbers (CSV, XLSX or one number a line; optional reason column).

    Bad rows are reported with their row numbers and the good ones kept; numbers already
    listed are left alone, so a file imported twice changes nothing."""
    with _database() as db:
        try:
            report = import_dnc(
                db,
                file,
                actor=_actor(by),
                reason=reason or f"импорт списка {file.name}",
                channel=channel,
                file_format=cast("DncFileFormat | None", file_format),
            )
        except (ImportFileError, InvalidInput) as exc:
            click.echo(f"Импорт невозможен: {exc}", err=True)
            sys.exit(1)
    for line in report.lines():
        click.echo(line)


# ---------------------------------------------------------------------------- consent


@click.group(name="consent")
def consent_group() -> None:
    """Consents of phones and e-mail addresses by purpose (history kept)."""


def _consent_line(entry: contact_lists.ConsentEntry) -> str:
    why = f" — {entry.reason}" if entry.reason else ""
    withdrawn = f" withdrawn {entry.withdrawn_at:%Y-%m-%d %H:%M}" if entry.withdrawn_at else ""
    return (
        f"{entry.id}\t{entry.value}\t{entry.purpose}\t{entry.status}\t"
        f"given {entry.given_at:%Y-%m-%d %H:%M}{withdrawn}\t{entry.source}{why}"
    )


@consent_group.command(name="list")
@click.option("--value", default=None, help="Only this phone (any notation) or e-mail.")
@click.option("--purpose", type=click.Choice(CONSENT_PURPOSES), default=None)
@_limit
@_cursor
@_json
def consent_list(
    value: str | None, purpose: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Consent records, newest first: id, value, purpose, status, dates, source — reason."""
    page = _run(
        lambda s: contact_lists.list_consents(
            s, value=value, purpose=purpose, limit=limit, cursor=cursor
        )
    )
    _echo_page(page, as_json, _consent_line)


_purpose = click.option("--purpose", type=click.Choice(CONSENT_PURPOSES), required=True)


@consent_group.command(name="grant")
@click.argument("value")
@_purpose
@_reason
@_by
def consent_grant(value: str, purpose: str, reason: str, by: str | None) -> None:
    """Record that VALUE (phone or e-mail) consents to PURPOSE from now."""
    actor = _actor(by)
    entry, changed = _run(
        lambda s: contact_lists.grant(s, value, purpose=purpose, reason=reason, actor=actor)
    )
    click.echo(f"{entry.value} {entry.purpose}: {'granted' if changed else 'already granted'}")


@consent_group.command(name="withdraw")
@click.argument("value")
@_purpose
@_reason
@_by
def consent_withdraw(value: str, purpose: str, reason: str, by: str | None) -> None:
    """Record that VALUE withdraws its consent to PURPOSE from now."""
    actor = _actor(by)
    entry, changed = _run(
        lambda s: contact_lists.withdraw(s, value, purpose=purpose, reason=reason, actor=actor)
    )
    click.echo(f"{entry.value} {entry.purpose}: {'withdrawn' if changed else 'already withdrawn'}")
