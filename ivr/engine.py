"""The IVR engine: a pure state machine over the flow language.

``Engine(flowset, actions, clock).handle(session, event)`` maps the call's state and one
webhook event to the next TwiML verbs. It never touches Flask, Redis or the database
itself: the session comes in and goes out as a value (:class:`ivr.session.CallSession`),
actions are plain callables (they may use the ``deps`` they are given, e.g. the CRM), and
slow side effects (SMS) come back as effects (:mod:`ivr.events`) for the caller to enqueue.

The engine runs steps until one needs input or ends the call:

- ``say`` → its prompts, then ``next``;
- ``menu``/``collect`` → a ``<Gather>`` whose action URL names the flow, the step and the
  session version it expects (``seq``), so a replayed webhook is recognised; voice input
  (``input: speech|both``) follows the :class:`~ivr.voice_policy.SpeechPolicy` the runtime
  gives: ``record`` (prompts, ``<Record>``, recognised by the runtime →
  :class:`~ivr.events.VoiceInput`), ``stream`` (``<Start><Stream>`` + a keypad ``<Gather>``
  in parallel + a fall-through ``<Redirect>``) or, with no usable speech model, keypad only
  after a spoken notice (once per call);
- ``action`` → the registered implementation, then ``branches[outcome]`` or ``default``;
- ``branch`` / ``goto`` / ``subflow`` / ``return``;
- ``transfer`` → ``<Enqueue>`` (with the call's context as a JSON task) or ``<Dial>``;
- ``record`` → ``<Record>``, then the step's action with the recording;
- ``sms`` → a :class:`~ivr.events.SendSms` effect; ``hangup`` → ``<Hangup>``.

Input steps handle universal commands (operator / repeat), keypad type-ahead (digits typed
beyond what a step consumed are kept for the next input step), validation, read-back
confirmation and no-input / no-match counting with tapered reprompts and escalation.

Where each part lives: the events, effects and outcome in :mod:`ivr.events`; what actions
receive and return in :mod:`ivr.action_context`; voice policy and grammars in
:mod:`ivr.voice_policy`; keypad and speech values in :mod:`ivr.input_values`. One
:meth:`Engine.handle` is one run (:mod:`ivr.engine_run`), whose steps are handled by
:mod:`ivr.engine_input` (``menu``/``collect``), :mod:`ivr.engine_voice` (voice capture) and
:mod:`ivr.engine_handoff` (``transfer``, ``sms``, ``record``, errors); this module composes
them and dispatches each step to its handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from ivr.action_context import ActionFn
from ivr.engine_handoff import HandoffSteps
from ivr.engine_run import MAX_PATH, StopRun, plain_render, step_name
from ivr.engine_voice import VoiceSteps
from ivr.errors import ActionFailed
from ivr.events import Event, Input, Outcome, Recording, Start, StepRecord, VoiceInput
from ivr.operator_routing import OperatorRouting
from ivr.schema import (
    ActionStep,
    BranchStep,
    CollectStep,
    FlowSet,
    GotoStep,
    HangupStep,
    MenuStep,
    RecordStep,
    ReturnStep,
    SayStep,
    SmsStep,
    SubflowStep,
    TransferStep,
)
from ivr.session import CallSession
from ivr.twiml import Hangup, StopStream
from ivr.voice_policy import SpeechPolicy

__all__ = ["Engine"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Executes a :class:`~ivr.schema.FlowSet`; one instance serves any number of calls."""

    def __init__(
        self,
        flowset: FlowSet,
        actions: Mapping[str, ActionFn],
        clock: Callable[[], datetime] = _utcnow,
        *,
        base_url: str = "",
        render_text: Callable[[str, Mapping[str, Any]], str] | None = None,
        deps: Any = None,
        step_path: str = "/voice/step",
        speech: SpeechPolicy | None = None,
        operator: OperatorRouting | None = None,
    ) -> None:
        self.flowset = flowset
        self.actions = actions
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.render_text = render_text or plain_render
        self.deps = deps
        self.step_path = step_path
        self.defaults = flowset.defaults
        self.speech = speech
        """None renders speech steps as Twilio's own ``<Gather input="dtmf speech">``."""
        self.operator = operator or OperatorRouting()
        """How operator transfers are rendered (default: ``<Enqueue>`` with a JSON task)."""

    # ---- public ------------------------------------------------------------------

    def handle(self, session: CallSession, event: Event) -> Outcome:
        """Apply ``event`` to ``session`` (mutated) and return the TwiML verbs to answer."""
        out = Outcome(session=session)
        run = _Run(self, session, out)
        active_stream, session.stream = session.stream, None
        try:
            if isinstance(event, Start):
                run.start(event)
            elif session.ended:
                out.verbs.append(Hangup())
            elif isinstance(event, Input):
                run.on_input(event)
            elif isinstance(event, VoiceInput):
                run.on_voice(event)
            elif isinstance(event, Recording):
                run.on_recording(event)
            else:
                run.on_transfer_ended(event)
        except StopRun:
            pass
        except ActionFailed as exc:
            log.warning("call %s: action failed at %s: %s", session.call_sid, session.step, exc)
            out.steps.append(StepRecord(step_name(session), "error", outcome="action_failed"))
            run.escalate_on_error()
        if active_stream:
            out.verbs.insert(0, StopStream(active_stream))
        return out

    def action_url(self, session: CallSession, event: str) -> str:
        """The webhook URL the next event of ``session`` comes back to."""
        query = urlencode(
            {
                "flow": session.flow,
                "step": session.step,
                "seq": session.version + 1,
                "ev": event,
            }
        )
        return f"{self.base_url}{self.step_path}?{query}"


class _Run(VoiceSteps, HandoffSteps):
    """One :meth:`Engine.handle` call: every kind of step, dispatched by :meth:`enter`."""

    def enter(self) -> None:
        """Execute the current step: produce verbs, then move on, wait for input or stop."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        name = step_name(self.s)
        if len(self.s.visited) < MAX_PATH:
            self.s.visited.append(name)
        self.out.steps.append(StepRecord(name, "enter"))
        if isinstance(step, SayStep):
            self.out.verbs.extend(
                self.prompts(step.prompts, voice=step.voice, language=step.language)
            )
            self.goto(step.next)
        elif isinstance(step, MenuStep | CollectStep):
            self.wait_for_input(step)
        elif isinstance(step, ActionStep):
            self.out.verbs.extend(self.prompts(step.prompts))
            result = self.call_action(step.name, step.args)
            target = step.branches.get(result.outcome, step.default)
            if target is None:
                raise ActionFailed(f"action {step.name} gave unhandled outcome {result.outcome!r}")
            self.goto(target)
        elif isinstance(step, BranchStep):
            variables = self.variables()
            for condition in step.conditions:
                if condition.expression.test(variables):
                    self.out.steps.append(StepRecord(name, "branch", outcome=condition.when))
                    self.goto(condition.goto)
                    return
            self.goto(step.otherwise)
        elif isinstance(step, GotoStep):
            self.goto(step.target)
        elif isinstance(step, SubflowStep):
            self.call_subflow(step)
        elif isinstance(step, ReturnStep):
            self.do_return(step)
        elif isinstance(step, TransferStep):
            self.transfer(step)
        elif isinstance(step, RecordStep):
            self.record(step)
        elif isinstance(step, SmsStep):
            self.send_sms(step)
            self.goto(step.next)
        elif isinstance(step, HangupStep):
            self.hangup(step.prompts)
        else:  # pragma: no cover - the schema's union is exhaustive
            raise ActionFailed(f"unsupported step {type(step).__name__}")
