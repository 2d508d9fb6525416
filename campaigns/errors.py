"""Exceptions of the campaigns package, in one place.

Callers catch at the level they care about::

    Definitions (``contactcenter campaign create``, ``POST /api/campaigns``)
    DefinitionError (ValueError)        a campaign definition is invalid; ``issues`` lists
                                        every :class:`FieldIssue` (dotted path, YAML line);
                                        the CLI exits 2, the API answers 422
    PolicyError (ValueError)            a contact-policy setting is invalid (a window that
                                        ends before it starts, a negative cap); a definition
                                        reports it as one of its issues
    TemplateError (ValueError)          an SMS template is malformed or needs a variable that
                                        was not supplied; a definition reports it as an issue
    CalendarError (ValueError)          the production-calendar file is missing or malformed

    Operations on a campaign (:mod:`campaigns.service`, :mod:`campaigns.report`)
    CampaignError                       the operation is not possible (wrong status, already
                                        launching); the message is for people: the CLI exits
                                        1, the API answers 409
    └── CampaignNotFound (LookupError)  no campaign with this id (the API answers 404)

The RQ jobs raise nothing of their own: they let unexpected errors (and the provider's
:class:`~telephony.errors.AuthenticationFailed`) raise, so RQ's failed registry keeps them.
:class:`FieldIssue` is not an exception: it is the value a :class:`DefinitionError` carries,
defined here with the error it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contactcenter.calendar_ru import CalendarError

__all__ = [
    "CalendarError",
    "CampaignError",
    "CampaignNotFound",
    "DefinitionError",
    "FieldIssue",
    "PolicyError",
    "TemplateError",
]


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class FieldIssue:
    """One problem in a definition: where (dotted path, YAML line) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "(top level)"
        if self.line is not None:
            where = f"line {self.line}: {where}"
        return f"{where}: {self.message}"


class DefinitionError(ValueError):
    """A campaign definition is invalid; ``issues`` lists every problem."""

    def __init__(self, issues: Sequence[FieldIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(i) for i in self.issues))

    def as_dicts(self) -> list[dict[str, Any]]:
        """The issues as JSON-able dicts (the API returns these)."""
        return [{"path": i.path, "message": i.message, "line": i.line} for i in self.issues]


class PolicyError(ValueError):
    """A contact-policy setting is invalid (e.g. a window that ends before it starts)."""


class TemplateError(ValueError):
    """An SMS template is malformed or needs a variable that was not supplied."""


# --------------------------------------------------------------------------- operations


class CampaignError(Exception):
    """An operation is not possible (unknown campaign, wrong status); message for people."""


class CampaignNotFound(CampaignError, LookupError):
    """No campaign with this id."""
