"""How a transfer to the operators reaches people, and what the operator learns of the call.

:class:`OperatorRouting` (from ``OPERATOR_ROUTING``) renders an operator transfer as

- ``queue`` (the default): ``<Enqueue>`` into the flow's queue with the call's context as a
  JSON ``<Task>``;
- ``taskrouter``: ``<Enqueue workflowSid>`` with the context as the task's attributes;
- ``dial``: ``<Dial>`` to ``OPERATOR_PHONE`` whose ``<Number url>`` is our whisper
  (``POST /voice/whisper?call=<CallSid>``): the operator hears :func:`whisper_text` (the
  account and the reason) before the caller is bridged.

The context is the one the engine stores on the call's Interaction (``data.handoff``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from contactcenter.config import Settings
from contactcenter.services import Services
from ivr.crm import handoff_context
from ivr.twiml import Dial, Enqueue, Say, render

__all__ = [
    "OPERATOR_CONTEXT",
    "WHISPER_PATH",
    "OperatorRouting",
    "mask_account",
    "whisper_text",
    "whisper_twiml",
    "whisper_unavailable_twiml",
]

log = logging.getLogger(__name__)

#: Path of the whisper webhook (``web/voice.py``).
WHISPER_PATH = "/voice/whisper"

#: Variables every operator transfer passes along when the call has them: the account, the
#: balance the caller heard and the readings they gave.
OPERATOR_CONTEXT = ("account_number", "debt", "credit", "due_date", "readings_count")

_REASONS = {
    None: "запрос оператора",
    "": "запрос оператора",
    "error": "техническая ошибка в голосовом меню",
    "fallback": "техническая ошибка в голосовом меню",
    "service_outage": "техническая ошибка в голосовом меню",
    "caller_request": "запрос оператора",
    "operator": "запрос оператора",
    "outage": "авария или отключение электроэнергии",
    "readings": "передача показаний",
    "balance": "вопрос о задолженности и оплате",
    "debt": "вопрос о задолженности",
    "payment": "способы оплаты",
}


@dataclass(frozen=True)
class OperatorRouting:
    """How operator transfers are rendered (see the module docstring)."""

    mode: str = "queue"
    number: str | None = None
    """E.164 number ``dial`` calls."""
    workflow_sid: str | None = None
    """TaskRouter workflow of ``taskrouter``."""
    base_url: str = ""
    """Public base URL the whisper URL starts with."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorRouting:
        """The routing ``OPERATOR_ROUTING`` (and its number / workflow) selects."""
        return cls(
            mode=settings.operator_routing,
            number=settings.operator_phone,
            workflow_sid=settings.taskrouter_workflow_sid,
            base_url=settings.public_base_url.rstrip("/"),
        )

    def whisper_url(self, call_sid: str) -> str:
        """The whisper webhook of the call ``call_sid`` (the caller's leg)."""
        return f"{self.base_url}{WHISPER_PATH}?{urlencode({'call': call_sid})}"

    def verb(
        self,
        queue: str,
        context: Mapping[str, Any],
        *,
        call_sid: str,
        action: str | None = None,
        timeout: int = 30,
    ) -> Enqueue | Dial:
        """The verb handing the caller to the operators, ``context`` travelling along."""
        if self.mode == "dial" and self.number:
            return Dial(
                self.number,
                action=action,
                timeout=timeout,
                whisper_url=self.whisper_url(call_sid),
            )
        if self.mode == "taskrouter" and self.workflow_sid:
            return Enqueue(
                queue, action=action, context=dict(context), workflow_sid=self.workflow_sid
            )
        return Enqueue(queue, action=action, context=dict(context))


def _spell(number: str) -> str:
    """An account number read digit by digit (``"0012"`` → ``"0 0 1 2"``)."""
    return " ".join(ch for ch in number if not ch.isspace())


def whisper_text(context: Mapping[str, Any] | None) -> str:
    """What the operator hears before being bridged: the account, the reason and what the
    caller already did (balance heard, readings given, the last step)."""
    context = context or {}
    parts = ["Звонок с голосовой линии."]
    account = context.get("account_number")
    if account:
        parts.append(f"Лицевой счёт: {_spell(str(account))}.")
    else:
        parts.append("Лицевой счёт не определён.")
    reason = context.get("reason") or context.get("intent")
    parts.append(f"Причина: {_REASONS.get(reason, str(reason))}.")
    if context.get("debt") not in (None, ""):
        parts.append(f"Абонент слышал задолженность {str(context['debt']).replace('.', ',')} руб.")
    elif context.get("credit") not in (None, ""):
        parts.append(f"Абонент слышал переплату {str(context['credit']).replace('.', ',')} руб.")
    readings = context.get("readings_count")
    if readings not in (None, "", 0, "0"):
        parts.append(f"Передано показаний: {readings}.")
    last_step = context.get("last_step")
    if last_step:
        parts.append(f"Последний шаг: {last_step}.")
    return " ".join(parts)


def mask_account(number: object) -> str:
    """An account number for logs: only its last two characters (``"***45"``)."""
    text = str(number or "")
    if not text:
        return "-"
    return "***" + text[-2:] if len(text) > 2 else "***"


def whisper_twiml(services: Services, call_sid: str) -> str:
    """``POST /voice/whisper?call=<CallSid>``: the ``<Say>`` the operator hears before being
    bridged to the caller of ``call_sid`` (its handoff context, read from the CRM)."""
    context = handoff_context(services, call_sid) if call_sid else None
    log.info(
        "whisper for call %s: account %s, reason %s",
        call_sid or "-",
        mask_account(context.get("account_number") if context else None),
        (context or {}).get("reason") or "-",
    )
    return render([Say(whisper_text(context))])


def whisper_unavailable_twiml() -> str:
    """The whisper when the CRM cannot be read (an outage): the context is unknown."""
    return render([Say(whisper_text(None))])
