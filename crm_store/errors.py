"""Exceptions of the CRM store, in one place.

::

    CrmError                      anything this package raises on purpose
    ├── NotFound                  a referenced row does not exist
    ├── InvalidInput (ValueError) bad input from a caller or a user; ``str()`` is clear
    │   └── InvalidAccountNumber
    ├── InvalidTransition         a case status change that is not allowed
    └── Conflict                  a unique value is already taken (user name …)

Callers that talk to people catch :class:`InvalidInput`; jobs let the others raise.
"""

from __future__ import annotations


class CrmError(Exception):
    """Base of every error raised on purpose by ``crm_store``."""


class NotFound(CrmError, LookupError):
    """A referenced row (account, meter, interaction, case, user …) does not exist."""


class InvalidInput(CrmError, ValueError):
    """Input is malformed or out of range; the message says what is wrong."""


class InvalidAccountNumber(InvalidInput):
    """An account number does not satisfy the supplier's rules."""


class InvalidTransition(CrmError):
    """A status change that the workflow does not allow."""


class Conflict(CrmError):
    """A value that must be unique is already used."""
