"""Keyset-paged lists of the back office: users, import runs, outages, campaigns.

The lists the REST API gives besides the CRM data of :mod:`crm_store.consumer_queries` and
:mod:`crm_store.case_queries`, with the same paging (:mod:`crm_store.paging`). Campaigns are
seen within a :class:`Scope` (:func:`crm_store.visibility.covers_campaign`): a region-scoped
user sees a campaign only when its audience names regions, all of them theirs; one they do
not see is :class:`~crm_store.errors.NotFound`; the list's query carries the SQL form of
that rule (:func:`crm_store.console_queries.campaign_clause`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from crm_store.access import Scope
from crm_store.console_queries import campaign_clause
from crm_store.errors import InvalidInput, NotFound
from crm_store.models import (
    CAMPAIGN_STATUSES,
    IMPORT_KINDS,
    ROLE_NAMES,
    Campaign,
    ImportRun,
    Outage,
    Role,
    User,
)
from crm_store.paging import KeysetPage, after, check_limit, decode_cursor, page_of
from crm_store.visibility import campaign_regions, covers_campaign


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------------------- users


def users_page(
    session: Session,
    *,
    role: str | None = None,
    active: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[User]:
    """Users by username, optionally holding ``role`` and/or (in)active."""
    check_limit(limit)
    query = select(User).options(selectinload(User.roles))
    if role is not None:
        if role not in ROLE_NAMES:
            raise InvalidInput(f"unknown role {role!r}; one of {', '.join(ROLE_NAMES)}")
        query = query.where(User.roles.any(Role.name == role))
    if active is not None:
        query = query.where(User.active.is_(active))
    if cursor:
        query = query.where(
            after((User.username,), decode_cursor(cursor, (str,)), descending=False)
        )
    rows = list(session.scalars(query.order_by(User.username).limit(limit + 1)))
    return page_of(rows, limit, lambda u: (u.username,))


def user_as_dict(user: User) -> dict[str, Any]:
    """A user as an admin sees them: never a hash, only whether secrets are set and when."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "roles": user.role_names,
        "regions": list(user.regions) if user.regions is not None else None,
        "active": user.active,
        "has_password": user.password_hash is not None,
        "has_api_token": user.api_token_hash is not None,
        "created_at": _iso(user.created_at),
        "password_changed_at": _iso(user.password_changed_at),
        "api_token_issued_at": _iso(user.api_token_issued_at),
        "last_login_at": _iso(user.last_login_at),
    }


# ---------------------------------------------------------------------------- import runs


def import_runs_page(
    session: Session, *, kind: str | None = None, limit: int = 50, cursor: str | None = None
) -> KeysetPage[ImportRun]:
    """Import runs, newest first (``kind``: consumers, payments or charges)."""
    check_limit(limit)
    query = select(ImportRun)
    if kind is not None:
        if kind not in IMPORT_KINDS:
            raise InvalidInput(f"unknown import kind {kind!r}; one of {', '.join(IMPORT_KINDS)}")
        query = query.where(ImportRun.kind == kind)
    if cursor:
        query = query.where(after((ImportRun.id,), decode_cursor(cursor, (int,))))
    rows = list(session.scalars(query.order_by(ImportRun.id.desc()).limit(limit + 1)))
    return page_of(rows, limit, lambda r: (r.id,))


# ---------------------------------------------------------------------------- outages


def outages_page(
    session: Session,
    *,
    active_at: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[Outage]:
    """Outages, latest start first; with ``active_at``, those in effect then."""
    check_limit(limit)
    query = select(Outage)
    if active_at is not None:
        query = query.where(Outage.starts_at <= active_at, Outage.expected_end_at > active_at)
    columns = (Outage.starts_at, Outage.id)
    if cursor:
        query = query.where(after(columns, decode_cursor(cursor, (datetime, int))))
    rows = list(session.scalars(query.order_by(*(c.desc() for c in columns)).limit(limit + 1)))
    return page_of(rows, limit, lambda o: (o.starts_at, o.id))


# ---------------------------------------------------------------------------- campaigns


def campaigns_page(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> KeysetPage[Campaign]:
    """Campaigns the scope sees, newest first (``status``: one of the campaign statuses)."""
    check_limit(limit)
    query = select(Campaign)
    if status is not None:
        if status not in CAMPAIGN_STATUSES:
            raise InvalidInput(f"unknown status {status!r}; one of {', '.join(CAMPAIGN_STATUSES)}")
        query = query.where(Campaign.status == status)
    query = query.where(campaign_clause(scope, session.get_bind().dialect.name))
    if cursor:
        query = query.where(after((Campaign.id,), decode_cursor(cursor, (int,))))
    rows = list(session.scalars(query.order_by(Campaign.id.desc()).limit(limit + 1)))
    return page_of(rows, limit, lambda c: (c.id,))


def get_campaign(session: Session, scope: Scope, campaign_id: int) -> Campaign:
    """The campaign ``campaign_id`` when the scope sees it, else :class:`NotFound`."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not covers_campaign(scope, campaign.definition):
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def campaign_as_dict(campaign: Campaign) -> dict[str, Any]:
    """A campaign as a list shows it."""
    return {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status,
        "regions": campaign_regions(campaign.definition),
        "created_by": campaign.created_by,
        "created_at": _iso(campaign.created_at),
        "launched_at": _iso(campaign.launched_at),
        "finished_at": _iso(campaign.finished_at),
    }
