"""The shared CRM store: ORM models, sessions, repositories, migrations, import.

The package's public API is its modules; other packages import names from them
(``from crm_store.db import Database``), never from the package itself:

* :mod:`crm_store.models` — the ORM models and their value sets (``ACCOUNT_STATUSES`` …)
* :mod:`crm_store.db` — ``Database`` (engine + sessions), ``make_engine``,
  ``insert_or_existing`` (insert in a savepoint, or the row already there)
* :mod:`crm_store.migrate` — ``upgrade``, ``downgrade``, ``check``, ``current``, ``head``
* :mod:`crm_store.audit` — automatic audit log; ``acting_as``, ``audit_suspended``
* :mod:`crm_store.accounts` — account-number rules, lookups by number / IVR code / phone
* :mod:`crm_store.ledger` — charges (optionally keyed), payments, ``balance`` (FIFO, aging)
* :mod:`crm_store.readings` — reading validation (``validate_reading``, ``check_reading``)
  and ``submit_reading``
* :mod:`crm_store.interactions` — contact history and its paginated, indexed search
* :mod:`crm_store.messages` — inbound SMS and delivery statuses of outbound ones
* :mod:`crm_store.cases` — cases with SLA over a working calendar
* :mod:`crm_store.outages` — outages by place (keys of :mod:`crm_store.addresses`), matching
  an address, «no power» reports grouped per building; :mod:`crm_store.outage_import` — the
  outages file
* :mod:`crm_store.consent` — consent by purpose, do-not-contact list
* :mod:`crm_store.contact_lists` — both managed by people (list, add, remove, grant, withdraw;
  audited with who and why); :mod:`crm_store.dnc_import` — a do-not-contact list file;
  :mod:`crm_store.cli_contacts` — the ``dnc`` and ``consent`` command groups
* :mod:`crm_store.users` — users, roles, passwords, API tokens
* :mod:`crm_store.importer` — CSV/XLSX consumer import
* :mod:`crm_store.import_payments`, :mod:`crm_store.import_charges` — payments registries,
  accruals and balance snapshots (reading: :mod:`crm_store.import_files`, batches:
  :mod:`crm_store.import_batches`, runs: :mod:`crm_store.import_runs`)
* :mod:`crm_store.cli` — the ``db`` and ``users`` command groups
* :mod:`crm_store.errors` — the exception tree

Importing the package (which any ``import crm_store.<module>`` does first) installs the
audit listeners of :mod:`crm_store.audit`, so changes to audited models are logged however
the models are imported.
"""

from __future__ import annotations

from crm_store import audit

__all__: list[str] = []

audit.install()
