"""The shared CRM store: ORM models, sessions, repositories, migrations, import.

Public modules (import them directly, e.g. ``from crm_store.readings import submit_reading``):

* :mod:`crm_store.models` — the ORM models and their value sets (``ACCOUNT_STATUSES`` …)
* :mod:`crm_store.db` — ``Database`` (engine + sessions), ``make_engine``
* :mod:`crm_store.migrate` — ``upgrade``, ``downgrade``, ``check``, ``current``, ``head``
* :mod:`crm_store.audit` — automatic audit log; ``acting_as``, ``audit_suspended``
* :mod:`crm_store.accounts` — account-number rules, lookups by number / IVR code / phone
* :mod:`crm_store.ledger` — charges, payments, ``balance`` (FIFO, aging buckets)
* :mod:`crm_store.readings` — reading validation (``validate_reading``, ``check_reading``)
  and ``submit_reading``
* :mod:`crm_store.interactions` — contact history and its paginated search
* :mod:`crm_store.cases` — cases with SLA over a working calendar
* :mod:`crm_store.consent` — consent by purpose, do-not-contact list
* :mod:`crm_store.users` — users, roles, passwords, API tokens
* :mod:`crm_store.errors` — the exception tree

Importing the models installs the audit-log listeners (:mod:`crm_store.audit`).
"""

from crm_store.audit import acting_as, audit_suspended
from crm_store.db import Database, make_engine

__all__ = ["Database", "acting_as", "audit_suspended", "make_engine"]
