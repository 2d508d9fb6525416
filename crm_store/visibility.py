"""Which rows a :class:`~crm_store.access.Scope` sees, as WHERE clauses for the queries.

A region-scoped user sees the data of accounts in their regions (``Account.region``); every
other row is seen through the accounts it belongs to:

* a consumer — when one of their accounts is visible (a consumer without accounts has no
  region: only users of all regions see them);
* an interaction, a case — when its account is visible, or, when it names no account, when
  its consumer is visible;
* a do-not-contact entry or consent (a phone or e-mail value) — when the phone is linked to
  a visible account, or the e-mail is a visible consumer's;
* a campaign — when the scope covers every region its audience names
  (:meth:`~crm_store.access.Scope.covers_regions`: a campaign without regions reaches all).

The clauses go into the queries themselves (never a filter after the fetch), so what a user
may not see is absent from lists, searches, counts and exports alike. For a user of all
regions each clause is plain ``true()`` and costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, literal, or_, select, true
from sqlalchemy.orm import Session

from crm_store.access import Scope
from crm_store.models import Account, AccountPhone, Case, Consumer, Interaction, PhoneNumber


def visible_account_ids(scope: Scope) -> Select[int]:
    """The ids of the accounts ``scope`` sees (a sub-select)."""
    return select(Account.id).where(scope.region_clause(Account.region))


def visible_consumer_ids(scope: Scope) -> Select[int]:
    """The ids of the consumers with an account ``scope`` sees (a sub-select)."""
    return select(Account.consumer_id).where(scope.region_clause(Account.region))


def consumer_clause(scope: Scope) -> ColumnElement[bool]:
    """Consumers ``scope`` sees (for a query over :class:`Consumer`)."""
    if scope.all_regions:
        return true()
    return exists().where(Account.consumer_id == Consumer.id, scope.region_clause(Account.region))


def interaction_clause(scope: Scope) -> ColumnElement[bool]:
    """Interactions ``scope`` sees (for a query over :class:`Interaction`)."""
    if scope.all_regions:
        return true()
    return or_(
        Interaction.account_id.in_(visible_account_ids(scope)),
        and_(
            Interaction.account_id.is_(None),
            Interaction.consumer_id.in_(visible_consumer_ids(scope)),
        ),
    )


def case_clause(scope: Scope) -> ColumnElement[bool]:
    """Cases ``scope`` sees (for a query over :class:`Case`)."""
    if scope.all_regions:
        return true()
    return or_(
        Case.account_id.in_(visible_account_ids(scope)),
        and_(Case.account_id.is_(None), Case.consumer_id.in_(visible_consumer_ids(scope))),
    )


def contact_clause(scope: Scope, column: Any) -> ColumnElement[bool]:
    """Rows whose contact ``column`` (an E.164 phone or an e-mail, e.g. ``Consent.value``)
    belongs to an account or consumer ``scope`` sees."""
    if scope.all_regions:
        return true()
    region = scope.region_clause(Account.region)
    phones = (
        select(PhoneNumber.e164)
        .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
        .join(Account, Account.id == AccountPhone.account_id)
        .where(region)
    )
    emails = (
        select(Consumer.email)
        .join(Account, Account.consumer_id == Consumer.id)
        .where(region, Consumer.email.is_not(None))
    )
    return or_(column.in_(phones), column.in_(emails))


def contact_visible(session: Session, scope: Scope, value: str) -> bool:
    """True when ``scope`` sees the contact ``value`` (normalised: E.164 or an e-mail)."""
    if scope.all_regions:
        return True
    probe = select(true()).where(contact_clause(scope, literal(value)))
    return session.scalar(probe) is not None


def campaign_regions(definition: Mapping[str, Any] | None) -> list[str] | None:
    """The regions a stored campaign definition's audience names (None: every region)."""
    audience = (definition or {}).get("audience") or {}
    regions = audience.get("regions") if isinstance(audience, Mapping) else None
    if not regions:
        return None
    return [str(r) for r in regions]


def covers_campaign(scope: Scope, definition: Mapping[str, Any] | None) -> bool:
    """True when ``scope`` sees the campaign of this stored definition."""
    return scope.covers_regions(campaign_regions(definition))
