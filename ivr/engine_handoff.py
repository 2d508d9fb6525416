"""The steps that leave the IVR or reach outside it: ``transfer``, ``sms``, ``record``, errors.

A ``transfer`` hands the call to people (to the operators as
:class:`ivr.operator_routing.OperatorRouting` says: ``<Enqueue>`` with the call's context as
a JSON task or TaskRouter attributes, or ``<Dial>`` with a whisper; or ``<Dial>`` to a
number) and records a :class:`ivr.events.Handoff`; its end either finishes the call or takes
``on_failure``. An ``sms`` step becomes a :class:`ivr.events.SendSms` effect
(the runtime enqueues it). A finished ``<Record>`` runs the step's action with the
recording. After an internal error the caller is apologised to and put in the operator
queue.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ivr.engine_run import RunBase, StopRun, step_name
from ivr.errors import ActionFailed
from ivr.events import Handoff, Recording, SendSms, StepRecord, TransferEnded
from ivr.operator_routing import OPERATOR_CONTEXT
from ivr.schema import RecordStep, SmsStep, TransferStep
from ivr.twiml import Dial, Enqueue, Hangup, Record

__all__ = ["ERROR_PROMPT", "GOODBYE_PROMPT", "TRANSFER_FAILED_PROMPT", "HandoffSteps"]

ERROR_PROMPT = "Извините, произошла ошибка. Соединяю с оператором."
TRANSFER_FAILED_PROMPT = "К сожалению, соединиться не удалось. Попробуйте позвонить позже."
GOODBYE_PROMPT = "Спасибо за звонок. До свидания."

#: ``DialCallStatus`` / ``QueueResult`` values after which the call is over; any other
#: (busy, no-answer, failed, queue-full, leave, error, system-error …) takes ``on_failure``.
_TRANSFER_DONE = frozenset(
    {
        "completed",
        "answered",
        "canceled",
        "bridged",
        "bridging-in-process",
        "redirected-from-bridged",
        "hangup",
    }
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class HandoffSteps(RunBase):
    """Transfers, texts, recordings and the escalation after an error."""

    def transfer_context(
        self, names: tuple[str, ...], *, operator: bool = False, reason: str | None = None
    ) -> dict[str, Any]:
        """What the operator's screen gets: the named variables, path and intent; for an
        operator transfer also what the caller already did (:data:`OPERATOR_CONTEXT` the
        call has, the last step before the transfer) and the reason."""
        variables = self.variables()
        context: dict[str, Any] = {"call_sid": self.s.call_sid, "caller": self.s.caller}
        for name in (*names, "path", "intent"):
            value = variables.get(name)
            context[name] = _jsonable(value)
        if operator:
            for name in OPERATOR_CONTEXT:
                if name not in context and variables.get(name) is not None:
                    context[name] = _jsonable(variables[name])
            context["last_step"] = self.last_step()
            context["reason"] = reason or variables.get("intent") or "caller_request"
        return context

    def last_step(self) -> str | None:
        """The last step the caller went through before the flow they are in now (the
        operator flow's own steps are no news to the operator)."""
        here = self.s.flow
        for name in reversed(self.s.visited):
            if not name.startswith(f"{here}:"):
                return name
        previous = self.s.visited[:-1]
        return previous[-1] if previous else None

    def operator_verb(
        self, queue: str, context: dict[str, Any], action: str | None
    ) -> Enqueue | Dial:
        """``<Enqueue>``/``<Dial>`` to the operators as the engine's routing says."""
        return self.e.operator.verb(queue, context, call_sid=self.s.call_sid, action=action)

    def transfer(self, step: TransferStep) -> None:
        """Hand the call to a queue (``<Enqueue>``) or a number (``<Dial>``)."""
        if step.intent:
            self.s.variables["intent"] = step.intent
        self.out.verbs.extend(self.prompts(step.prompts))
        context = self.transfer_context(step.context, operator=step.to == "queue")
        action = self.e.action_url(self.s, "transfer")
        if step.to == "number":
            number = step.number or ""
            if number.startswith("{"):
                number = str(self.variables().get(number.strip("{}")) or "")
            if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
                raise ActionFailed(f"transfer number {number!r} is not E.164")
            self.out.verbs.append(Dial(number, action=action, timeout=step.timeout or 30))
            self.out.effects.append(Handoff("number", number, context))
        else:
            queue = step.queue or self.e.defaults.operator_queue
            self.out.verbs.append(self.operator_verb(queue, context, action))
            self.out.effects.append(Handoff("queue", queue, context))
        raise StopRun

    def on_transfer_ended(self, event: TransferEnded) -> None:
        """After ``<Dial>``/``<Enqueue>``: hang up, or take ``on_failure``."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        status = event.status.lower()
        self.out.steps.append(
            StepRecord(step_name(self.s), "transfer_ended", outcome=status or None)
        )
        if not isinstance(step, TransferStep) or status in _TRANSFER_DONE:
            self.out.verbs.append(Hangup())
            self.s.ended = True
            raise StopRun
        if step.on_failure:
            self.goto(step.on_failure)
            self.run()
        self.out.verbs.append(self.say_text(TRANSFER_FAILED_PROMPT))
        self.out.verbs.append(Hangup())
        self.s.ended = True
        raise StopRun

    def send_sms(self, step: SmsStep) -> None:
        """Queue an SMS effect for the step's recipient."""
        variables = self.variables()
        if step.to == "caller":
            to = self.s.caller or ""
        elif step.to.startswith("{"):
            to = str(variables.get(step.to.strip("{}")) or "")
        else:
            to = step.to
        body = self.e.render_text(step.template, variables).strip()
        if not to:
            self.out.steps.append(StepRecord(step_name(self.s), "sms", outcome="no_recipient"))
            return
        self.out.effects.append(SendSms(to=to, body=body))
        self.out.steps.append(StepRecord(step_name(self.s), "sms", outcome="queued"))

    def on_recording(self, event: Recording) -> None:
        """After ``<Record>``: run the step's action with the recording, then go on."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        if not isinstance(step, RecordStep):
            self.run()
            return
        self.s.variables["recording_url"] = event.url
        self.s.variables["recording_duration"] = event.duration
        args = {
            "recording_url": event.url,
            "recording_duration": event.duration,
            "purpose": step.purpose,
        }
        self.call_action(step.action, args)
        self.goto(step.next)
        self.run()

    def escalate_on_error(self) -> None:
        """After an internal error: apologise and put the caller in the operator queue."""
        self.out.verbs.clear()
        self.out.verbs.append(self.say_text(ERROR_PROMPT))
        context = self.transfer_context(("account_number",), operator=True, reason="error")
        self.out.verbs.append(self.operator_verb(self.e.defaults.operator_queue, context, None))
        self.out.effects.append(Handoff("queue", self.e.defaults.operator_queue, context))
        self.s.ended = True

    def record(self, step: RecordStep) -> None:
        """Say the step's prompts and start a ``<Record>``; its end comes back as a recording."""
        self.out.verbs.extend(self.prompts(step.prompts))
        self.out.verbs.append(
            Record(
                action=self.e.action_url(self.s, "record"),
                max_length=step.max_length,
                finish_on_key=step.finish_on_key,
                play_beep=step.play_beep,
            )
        )
        raise StopRun
