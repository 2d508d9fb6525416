"""Exceptions of the CRM store, in one place.

::

    CrmError                      what the repositories raise on purpose (accounts, ledger …)
    ├── NotFound                  a referenced row does not exist
    ├── InvalidInput (ValueError) bad input from a caller or a user; ``str()`` is clear
    │   ├── InvalidAccountNumber
    │   └── InvalidOutage         an outage (file row, API item) with field problems
    ├── InvalidTransition         a case status change that is not allowed
    └── Conflict                  a unique value is already taken (user name …)

    The import and the migrations have their own roots:

    ImportFileError               a consumer import file as a whole cannot be read (missing,
                                  unreadable, wrong header); the message is plain Russian
    MigrationDriftError           the models and the migrated schema differ
    (RuntimeError)                (``contactcenter db check``)

Callers that talk to people catch :class:`InvalidInput`; jobs let the others raise.
"""

from __future__ import annotations


class CrmError(Exception):
    """Base of every error the ``crm_store`` repositories raise on purpose."""


class NotFound(CrmError, LookupError):
    """A referenced row (account, meter, interaction, case, user …) does not exist."""


class InvalidInput(CrmError, ValueError):
    """Input is malformed or out of range; the message says what is wrong."""


class InvalidAccountNumber(InvalidInput):
    """An account number does not satisfy the supplier's rules."""


class InvalidOutage(InvalidInput):
    """An outage that cannot be stored; ``problems`` lists ``(field, reason)``, in Russian."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in self.problems))


class InvalidTransition(CrmError):
    """A status change that the workflow does not allow."""


class Conflict(CrmError):
    """A value that must be unique is already used."""


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, unreadable, wrong header).

    The message is plain Russian, ready to print.
    """


class MigrationDriftError(RuntimeError):
    """The models and the migrated database schema differ (``alembic check`` failed)."""
