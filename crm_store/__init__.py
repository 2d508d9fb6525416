"""The shared CRM store: ORM models, sessions, repositories, migrations, import.

Importing the package installs the audit-log listeners (:mod:`crm_store.audit`).
"""

# Importing crm_store.audit installs the audit-log listeners.
from crm_store.audit import acting_as, audit_suspended
from crm_store.db import Database, make_engine

__all__ = ["Database", "acting_as", "audit_suspended", "make_engine"]
