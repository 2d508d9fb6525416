"""Who may do what, and on which regions' data: roles, permissions and the region scope.

Every console page and API answer is computed for a :class:`Scope`: the acting user's
permissions (from their roles, :data:`ROLE_PERMISSIONS`) and regions (``None``: all).
Region scoping filters the queries themselves (:meth:`Scope.region_clause`), so what a user
may not see is absent from pages, API answers, search results, exports and charts alike,
not hidden after the fact. A consumer's region is its account's ``Account.region``; a
campaign belongs to the regions its audience names (:meth:`Scope.covers_regions`): a
campaign without regions reaches every region, so only a user of all regions sees it.

Roles: ``admin`` (everything, users included), ``supervisor`` (campaigns, CRM data, DNC and
consents, imports, outages), ``operator`` (consumers of their regions: read, notes and
outcomes), ``auditor`` (read-only: everything a supervisor reads, and the audit log),
``developer`` (flows and their validation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import InstrumentedAttribute

from crm_store.models import User

#: Every permission the console and the API check.
PERMISSIONS: tuple[str, ...] = (
    "consumers.read",  # the 360 view, search, timeline, readings, balance, cases
    "consumers.write",  # notes and outcomes, cases, readings by an operator
    "contacts.read",  # do-not-contact entries and consents
    "contacts.write",
    "campaigns.read",
    "campaigns.write",  # create, launch, pause, resume, cancel
    "imports.write",  # billing files, outages
    "dashboard.read",
    "flows.read",
    "audit.read",
    "users.admin",  # create users, roles, regions, disable, reset tokens
)

_READ = frozenset(p for p in PERMISSIONS if p.endswith(".read"))

#: role → its permissions.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "supervisor": frozenset(
        {
            "consumers.read",
            "consumers.write",
            "contacts.read",
            "contacts.write",
            "campaigns.read",
            "campaigns.write",
            "imports.write",
            "dashboard.read",
            "flows.read",
        }
    ),
    "operator": frozenset({"consumers.read", "consumers.write", "contacts.read"}),
    "auditor": _READ,
    "developer": frozenset({"flows.read", "dashboard.read"}),
}


@dataclass(frozen=True)
class Scope:
    """What one user may do (``permissions``) and see (``regions``; ``None``: all)."""

    user: str
    roles: frozenset[str]
    regions: frozenset[str] | None

    @property
    def permissions(self) -> frozenset[str]:
        """The union of the roles' permissions."""
        granted: set[str] = set()
        for role in self.roles:
            granted |= ROLE_PERMISSIONS.get(role, frozenset())
        return frozenset(granted)

    def can(self, permission: str) -> bool:
        """True when a role of the user grants ``permission``."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return permission in self.permissions

    @property
    def all_regions(self) -> bool:
        """True for a user who sees every region."""
        return self.regions is None

    def sees_region(self, region: str | None) -> bool:
        """True when data of ``region`` (an account's region) is visible."""
        return self.regions is None or (region or "") in self.regions

    def covers_regions(self, regions: Iterable[str] | None) -> bool:
        """True when every region of a campaign audience (``None``/empty: all regions) is
        visible: a scoped supervisor launches only campaigns confined to their regions."""
        if self.regions is None:
            return True
        wanted = set(regions or ())
        return bool(wanted) and wanted <= self.regions

    def region_clause(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """A WHERE clause keeping rows of visible regions (``column``: e.g. ``Account.region``)."""
        if self.regions is None:
            return true()
        if not self.regions:
            return false()
        return column.in_(sorted(self.regions))


def scope_for(user: str, roles: Iterable[str], regions: Iterable[str] | None) -> Scope:
    """The scope of a user with ``roles`` and ``regions`` (``None``: all regions)."""
    return Scope(
        user=user,
        roles=frozenset(roles),
        regions=None if regions is None else frozenset(r for r in regions if r),
    )


def scope_of_user(user: User) -> Scope:
    """The scope of a stored user: their roles and regions; a disabled user may do nothing."""
    roles = user.role_names if user.active else []
    return scope_for(user.username, roles, user.regions)


#: The scope of the configured ``API_TOKEN`` and of the CLI: everything, every region.
SYSTEM_SCOPE = Scope(user="system", roles=frozenset({"admin"}), regions=None)
