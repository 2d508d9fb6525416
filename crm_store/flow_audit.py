"""Flow versions in the audit log: what changed in the flows each time a flow file went live.

Flows live in a file (``FLOWS_FILE``), changed by developers and deployed, not edited in
the console; the audit log still says when each flow changed and how. At start-up the web
app hands :func:`record_flow_versions` a version of every flow (its digest and a few
facts, :func:`ivr.startup.flow_versions`); against the latest row of each flow (entity
``flow``, the flow's name as the id) it writes an ``insert`` for a new flow, an ``update``
with the version before and after for a changed one and a ``delete`` for one no longer in
the file. An unchanged file writes nothing, so restarts and extra instances add no rows.
On PostgreSQL the comparison runs under a transaction-scoped advisory lock, so instances
starting together write a change once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from crm_store import audit
from crm_store.models import AuditLog

FLOW_ENTITY = "flow"
#: Any number the application's other advisory locks do not use.
_LOCK_KEY = 0x666C6F77


def latest_flow_versions(session: Session) -> dict[str, dict[str, Any]]:
    """The version each flow had at its latest audit row (flows deleted since are absent)."""
    latest = (
        select(func.max(AuditLog.id).label("id"))
        .where(AuditLog.entity == FLOW_ENTITY)
        .group_by(AuditLog.entity_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(AuditLog.entity_id, AuditLog.action, AuditLog.after).where(AuditLog.id.in_(latest))
    )
    return {name: dict(after or {}) for name, action, after in rows if action != "delete"}


def record_flow_versions(session: Session, versions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Audit the differences between ``versions`` (flow name → version, with a ``sha256``
    key) and the latest audited ones; returns the names of the flows that changed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    known = latest_flow_versions(session)
    changed: list[str] = []
    for name in sorted(set(versions) | set(known)):
        now = dict(versions[name]) if name in versions else None
        before = known.get(name)
        if now is not None and before is not None and now.get("sha256") == before.get("sha256"):
            continue
        action = "insert" if before is None else "delete" if now is None else "update"
        audit.record(session, FLOW_ENTITY, name, action, before, now)
        changed.append(name)
    return changed
