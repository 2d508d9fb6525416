"""The shared CRM store: ORM models, sessions, repositories, migrations, import, demo data.

The main names are importable from the package itself (``from crm_store import
Database, import_consumers, search_interactions``). Only :class:`Database`,
:func:`make_engine`, :func:`acting_as` and :func:`audit_suspended` are imported eagerly;
every other name is loaded on first access (PEP 562 ``__getattr__``), so ``import
crm_store`` stays cheap and cannot create an import cycle with the modules that import
``crm_store.db``. ``import crm_store`` imports :mod:`crm_store.audit` and with it
:mod:`crm_store.models`, so the automatic audit log is switched on as soon as the package
is imported (as importing the models always does).

Public modules (import them directly for anything not listed in ``__all__``):

* :mod:`crm_store.models` — the ORM models and their value sets (``ACCOUNT_STATUSES`` …)
* :mod:`crm_store.db` — ``Database`` (engine + sessions), ``make_engine``
* :mod:`crm_store.migrate` — ``upgrade``, ``downgrade``, ``check``, ``current``, ``head``
* :mod:`crm_store.audit` — automatic audit log; ``acting_as``, ``audit_suspended``
* :mod:`crm_store.accounts` — account-number rules, lookups by number / IVR code / phone
* :mod:`crm_store.ledger` — charges (optionally keyed), payments, ``balance`` (FIFO, aging)
* :mod:`crm_store.readings` — reading validation (``validate_reading``, ``check_reading``)
  and ``submit_reading``
* :mod:`crm_store.interactions` — contact history and its paginated, indexed search
* :mod:`crm_store.cases` — cases with SLA over a working calendar
* :mod:`crm_store.consent` — consent by purpose, do-not-contact list
* :mod:`crm_store.users` — users, roles, passwords, API tokens
* :mod:`crm_store.importer` — CSV/XLSX consumer import
* :mod:`crm_store.demo` — deterministic demo data (``seed_demo``)
* :mod:`crm_store.errors` — the exception tree
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crm_store.audit import acting_as, audit_suspended
from crm_store.db import Database, make_engine

if TYPE_CHECKING:
    from crm_store.accounts import (
        accounts_for_phone,
        find_account_by_ivr_code,
        find_account_by_number,
        get_account,
        link_phone,
        normalize_account_number,
        phones_for_account,
    )
    from crm_store.cases import (
        add_note,
        change_status,
        get_case,
        open_case,
        overdue_cases,
    )
    from crm_store.consent import (
        add_do_not_contact,
        consent_in_force,
        consent_status,
        grant_consent,
        is_do_not_contact,
        remove_do_not_contact,
        withdraw_consent,
    )
    from crm_store.demo import (
        DemoSeedError,
        SeedResult,
        seed_demo,
    )
    from crm_store.errors import (
        Conflict,
        CrmError,
        InvalidAccountNumber,
        InvalidInput,
        InvalidTransition,
        NotFound,
    )
    from crm_store.importer import (
        ImportFileError,
        ImportReport,
        debt_key,
        import_consumers,
        read_rows,
        validate_rows,
    )
    from crm_store.interactions import (
        InteractionQuery,
        Page,
        add_transcript,
        append_step,
        count_interactions,
        finish_interaction,
        get_interaction,
        search_interactions,
        search_statement,
        start_interaction,
        update_interaction,
    )
    from crm_store.ledger import (
        Balance,
        add_charge,
        balance,
        charge_by_key,
        put_keyed_charge,
        record_payment,
        to_money,
    )
    from crm_store.migrate import (
        MigrationDriftError,
    )
    from crm_store.readings import (
        Accepted,
        NeedsConfirmation,
        Rejected,
        check_reading,
        submit_reading,
        validate_reading,
    )
    from crm_store.users import (
        authenticate_password,
        authenticate_token,
        create_user,
        get_user,
        issue_api_token,
    )

_LAZY: dict[str, str] = {
    "CrmError": "crm_store.errors",
    "NotFound": "crm_store.errors",
    "InvalidInput": "crm_store.errors",
    "InvalidAccountNumber": "crm_store.errors",
    "InvalidTransition": "crm_store.errors",
    "Conflict": "crm_store.errors",
    "MigrationDriftError": "crm_store.migrate",
    "ImportFileError": "crm_store.importer",
    "ImportReport": "crm_store.importer",
    "import_consumers": "crm_store.importer",
    "read_rows": "crm_store.importer",
    "validate_rows": "crm_store.importer",
    "debt_key": "crm_store.importer",
    "DemoSeedError": "crm_store.demo",
    "SeedResult": "crm_store.demo",
    "seed_demo": "crm_store.demo",
    "normalize_account_number": "crm_store.accounts",
    "get_account": "crm_store.accounts",
    "find_account_by_number": "crm_store.accounts",
    "find_account_by_ivr_code": "crm_store.accounts",
    "accounts_for_phone": "crm_store.accounts",
    "phones_for_account": "crm_store.accounts",
    "link_phone": "crm_store.accounts",
    "Balance": "crm_store.ledger",
    "balance": "crm_store.ledger",
    "add_charge": "crm_store.ledger",
    "put_keyed_charge": "crm_store.ledger",
    "charge_by_key": "crm_store.ledger",
    "record_payment": "crm_store.ledger",
    "to_money": "crm_store.ledger",
    "Accepted": "crm_store.readings",
    "NeedsConfirmation": "crm_store.readings",
    "Rejected": "crm_store.readings",
    "validate_reading": "crm_store.readings",
    "check_reading": "crm_store.readings",
    "submit_reading": "crm_store.readings",
    "InteractionQuery": "crm_store.interactions",
    "Page": "crm_store.interactions",
    "get_interaction": "crm_store.interactions",
    "start_interaction": "crm_store.interactions",
    "update_interaction": "crm_store.interactions",
    "append_step": "crm_store.interactions",
    "add_transcript": "crm_store.interactions",
    "finish_interaction": "crm_store.interactions",
    "search_interactions": "crm_store.interactions",
    "search_statement": "crm_store.interactions",
    "count_interactions": "crm_store.interactions",
    "open_case": "crm_store.cases",
    "get_case": "crm_store.cases",
    "change_status": "crm_store.cases",
    "add_note": "crm_store.cases",
    "overdue_cases": "crm_store.cases",
    "consent_status": "crm_store.consent",
    "consent_in_force": "crm_store.consent",
    "grant_consent": "crm_store.consent",
    "withdraw_consent": "crm_store.consent",
    "add_do_not_contact": "crm_store.consent",
    "is_do_not_contact": "crm_store.consent",
    "remove_do_not_contact": "crm_store.consent",
    "create_user": "crm_store.users",
    "get_user": "crm_store.users",
    "issue_api_token": "crm_store.users",
    "authenticate_token": "crm_store.users",
    "authenticate_password": "crm_store.users",
}

__all__ = [
    "Accepted",
    "Balance",
    "Conflict",
    "CrmError",
    "Database",
    "DemoSeedError",
    "ImportFileError",
    "ImportReport",
    "InteractionQuery",
    "InvalidAccountNumber",
    "InvalidInput",
    "InvalidTransition",
    "MigrationDriftError",
    "NeedsConfirmation",
    "NotFound",
    "Page",
    "Rejected",
    "SeedResult",
    "accounts_for_phone",
    "acting_as",
    "add_charge",
    "add_do_not_contact",
    "add_note",
    "add_transcript",
    "append_step",
    "audit_suspended",
    "authenticate_password",
    "authenticate_token",
    "balance",
    "change_status",
    "charge_by_key",
    "check_reading",
    "consent_in_force",
    "consent_status",
    "count_interactions",
    "create_user",
    "debt_key",
    "find_account_by_ivr_code",
    "find_account_by_number",
    "finish_interaction",
    "get_account",
    "get_case",
    "get_interaction",
    "get_user",
    "grant_consent",
    "import_consumers",
    "is_do_not_contact",
    "issue_api_token",
    "link_phone",
    "make_engine",
    "normalize_account_number",
    "open_case",
    "overdue_cases",
    "phones_for_account",
    "put_keyed_charge",
    "read_rows",
    "record_payment",
    "remove_do_not_contact",
    "search_interactions",
    "search_statement",
    "seed_demo",
    "start_interaction",
    "submit_reading",
    "to_money",
    "update_interaction",
    "validate_reading",
    "validate_rows",
    "withdraw_consent",
]


def __getattr__(name: str) -> Any:
    """Load a lazily exported name from its module on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crm_store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names including the lazy exports."""
    return sorted({*globals(), *_LAZY})
