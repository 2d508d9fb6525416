"""What an action implementation receives and returns: the contract of ``ivr.actions``.

The engine calls a registered :data:`ActionFn` with an :class:`ActionContext` (its resolved
arguments, the call's variables, who is on the call, the time, the runtime's services) and
gets an :class:`ActionResult` back (an outcome declared in :mod:`ivr.action_names`, the
variables it sets, the effects it asks for). An action that cannot do its work raises
:class:`ivr.errors.ActionFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ivr.events import Effect

__all__ = ["ActionContext", "ActionFn", "ActionResult", "CallContext"]


@dataclass(frozen=True)
class CallContext:
    """Who is on the call (not :class:`telephony.base.CallInfo`, the provider's view)."""

    call_sid: str
    caller: str | None
    called: str | None
    direction: str = "inbound"


@dataclass(frozen=True)
class ActionContext:
    """What an action implementation receives."""

    name: str
    args: Mapping[str, Any]
    variables: Mapping[str, Any]
    call: CallContext
    now: datetime
    interaction_id: int | None
    deps: Any = None
    """Opaque dependencies the runtime passes through (the app's ``Services``)."""
    state: Mapping[str, Any] = field(default_factory=dict)
    """Private state the actions of this call keep between calls (e.g. a zone cursor)."""
    arg_sources: Mapping[str, str] = field(default_factory=dict)
    """Argument name -> the variable it was taken from (``value: "{reading}"``)."""

    def input_source(self, arg: str) -> str | None:
        """How the variable behind argument ``arg`` was captured: ``dtmf``, ``speech`` or None."""
        variable = self.arg_sources.get(arg)
        if variable is None:
            return None
        source = self.variables.get(f"{variable}_source")
        return str(source) if source is not None else None


@dataclass(frozen=True)
class ActionResult:
    """An action's outcome, the variables it sets and the slow work it asks for."""

    outcome: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    effects: tuple[Effect, ...] = ()
    state: Mapping[str, Any] | None = None
    """New private state of the call's actions (None keeps it unchanged)."""


ActionFn = Callable[[ActionContext], ActionResult]
