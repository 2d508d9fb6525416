"""One run of the engine over one event: the call's state, the outcome, the shared helpers.

:class:`RunBase` holds what every kind of step needs: the session and the outcome being
built, the variables a flow sees, prompt rendering, moving between steps, the step loop
(:meth:`RunBase.run` executes steps until one waits for input or the call ends, which
raises :class:`StopRun`), subflow returns and action calls. The steps themselves are
handled by its subclasses: :mod:`ivr.engine_input` (``menu``/``collect``),
:mod:`ivr.engine_voice` (voice capture), :mod:`ivr.engine_handoff` (``transfer``, ``sms``,
``record``, errors); :class:`ivr.engine.Engine` composes them and dispatches each step.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from ivr.action_context import ActionContext, ActionFn, ActionResult, CallContext
from ivr.errors import ActionFailed
from ivr.events import Outcome, Start, StepRecord
from ivr.operator_routing import OperatorRouting
from ivr.schema import (
    CONTEXT_VARIABLES,
    CollectStep,
    Defaults,
    FlowSet,
    MenuStep,
    PlayPrompt,
    PromptRef,
    ReturnStep,
    SubflowStep,
)
from ivr.session import CallSession, Frame
from ivr.twiml import Hangup, Play, Prompt, Say
from ivr.voice_policy import SpeechPolicy, speech_lang

__all__ = [
    "MAX_HOPS",
    "MAX_PATH",
    "STATE_KEY",
    "EngineView",
    "RunBase",
    "StopRun",
    "plain_render",
    "step_name",
]

MAX_HOPS = 200
#: Session variable holding the actions' private state (not visible to flows).
STATE_KEY = "_action_state"
MAX_PATH = 200


class StopRun(Exception):
    """The run loop stops: the verbs produced so far wait for the caller."""


class EngineView(Protocol):
    """What a run reads of its :class:`ivr.engine.Engine`."""

    flowset: FlowSet
    actions: Mapping[str, ActionFn]
    clock: Callable[[], datetime]
    base_url: str
    render_text: Callable[[str, Mapping[str, Any]], str]
    deps: Any
    defaults: Defaults
    speech: SpeechPolicy | None
    operator: OperatorRouting

    def action_url(self, session: CallSession, event: str) -> str:
        """The webhook URL the next event of ``session`` comes back to."""
        ...


def step_name(session: CallSession) -> str:
    """``flow:step`` of the step ``session`` is at."""
    return f"{session.flow}:{session.step}"


def plain_render(text: str, variables: Mapping[str, Any]) -> str:
    """Substitute ``{name}`` / ``{name:fmt}`` with ``str(value)`` (used without verbalize)."""

    def sub(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return "" if value is None else str(value)

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*)?\}", sub, text)


class RunBase(ABC):
    """One :meth:`Engine.handle` call: a session, an outcome, and the helpers."""

    def __init__(self, engine: EngineView, session: CallSession, out: Outcome) -> None:
        self.e = engine
        self.s = session
        self.out = out
        self.hops = 0
        self.voice = False  # the input being handled came from our recognizer

    @abstractmethod
    def enter(self) -> None:
        """Execute the current step: produce verbs, then move on, wait for input or stop."""

    # ---- variables -----------------------------------------------------------------

    def variables(self) -> dict[str, Any]:
        """Session variables merged over the file's constants, plus the call context."""
        merged: dict[str, Any] = dict(self.e.defaults.variables)
        merged.update(self.s.variables)
        merged.update(
            {
                "caller_phone": self.s.caller,
                "called_phone": self.s.called,
                "call_sid": self.s.call_sid,
                "direction": self.s.direction,
                "path": list(self.s.visited),
            }
        )
        merged.setdefault("intent", self.s.variables.get("intent"))
        return merged

    def call_context(self) -> CallContext:
        """Who is on the call, for actions."""
        return CallContext(self.s.call_sid, self.s.caller, self.s.called, self.s.direction)

    # ---- prompts -------------------------------------------------------------------

    def prompts(
        self, items: Any, *, voice: str | None = None, language: str | None = None
    ) -> list[Prompt]:
        """Render prompt items (text, ``{play}``, ``{prompt}`` references) to Say/Play verbs."""
        if items is None:
            return []
        voice = voice or self.e.defaults.voice
        language = language or self.e.defaults.language
        variables = self.variables()
        rendered: list[Prompt] = []
        for item in items:
            if isinstance(item, PromptRef):
                rendered.extend(
                    self.prompts(
                        self.e.flowset.prompts[item.prompt], voice=voice, language=language
                    )
                )
            elif isinstance(item, PlayPrompt):
                url = item.play if not item.play.startswith("/") else self.e.base_url + item.play
                rendered.append(Play(url, loop=item.loop))
            else:
                text = self.e.render_text(str(item), variables).strip()
                if text:
                    rendered.append(Say(text, voice=voice, language=language))
        return rendered

    def say_text(self, text: str) -> Say:
        """A built-in Russian sentence in the default voice."""
        return Say(text, voice=self.e.defaults.voice, language=self.e.defaults.language)

    def lang(self, step: MenuStep | CollectStep) -> str:
        """The recognizer language of ``step`` (``ru`` for ``ru-RU``)."""
        return speech_lang(step.language or self.e.defaults.language)

    # ---- movement ------------------------------------------------------------------

    def goto(self, target: str) -> None:
        """Move to ``target`` (``step`` or ``flow:step``), resetting the step's counters."""
        flow, step = self.e.flowset.resolve(target, self.s.flow)
        if flow not in self.e.flowset.flows or step not in self.e.flowset.flows[flow].steps:
            raise ActionFailed(f"unknown target {target!r} from {step_name(self.s)}")
        self.s.flow, self.s.step = flow, step
        self.s.no_input = 0
        self.s.no_match = 0
        self.s.pending = None
        self.s.keypad_step = None

    def start(self, event: Start) -> None:
        """Begin ``event.flow`` from its start step."""
        if event.flow not in self.e.flowset.flows:
            raise ActionFailed(f"unknown flow {event.flow!r}")
        self.s.variables.update(event.variables)
        self.s.flow = event.flow
        self.s.step = self.e.flowset.flows[event.flow].start
        self.run()

    def run(self) -> None:
        """Execute steps from the current one until input is needed or the call ends."""
        while True:
            self.hops += 1
            if self.hops > MAX_HOPS:
                raise ActionFailed(f"more than {MAX_HOPS} steps without input (a loop?)")
            self.enter()

    def hangup(self, prompts: Any = None) -> None:
        """Say the goodbye prompts and end the call."""
        self.out.verbs.extend(self.prompts(prompts))
        self.out.verbs.append(Hangup())
        self.s.ended = True
        raise StopRun

    def call_subflow(self, step: SubflowStep) -> None:
        """Enter the called flow at its start, remembering where to come back."""
        self.s.stack.append(Frame(self.s.flow, self.s.step))
        self.goto(f"{step.flow}:{self.e.flowset.flows[step.flow].start}")

    def do_return(self, step: ReturnStep) -> None:
        """Return from a subflow to the calling step's ``branches``/``next``."""
        if step.outcome is not None:
            self.s.variables["subflow_outcome"] = step.outcome
        if not self.s.stack:
            self.hangup()
        frame = self.s.stack.pop()
        caller = self.e.flowset.step(frame.flow, frame.step)
        if not isinstance(caller, SubflowStep):
            raise ActionFailed(
                f"return into {frame.flow}:{frame.step}, which is not a subflow step"
            )
        target = caller.branches.get(step.outcome or "", caller.next)
        self.s.flow = frame.flow
        self.out.steps.append(
            StepRecord(f"{frame.flow}:{frame.step}", "return", outcome=step.outcome)
        )
        self.goto(target)

    # ---- actions -------------------------------------------------------------------

    def resolve_args(
        self, args: Mapping[str, Any], sources: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Action arguments with ``{variable}`` references substituted."""
        variables = self.variables()
        resolved: dict[str, Any] = {}
        for key, value in args.items():
            if isinstance(value, str):
                whole = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
                if whole:
                    resolved[key] = variables.get(whole.group(1))
                    if sources is not None:
                        sources[key] = whole.group(1)
                    continue
                value = plain_render(value, variables) if "{" in value else value
            resolved[key] = value
        return resolved

    def call_action(
        self, name: str, args: Mapping[str, Any], sources: Mapping[str, str] | None = None
    ) -> ActionResult:
        """Run a registered action and store the variables and state it returns."""
        fn = self.e.actions.get(name)
        if fn is None:
            raise ActionFailed(f"no implementation registered for action {name!r}")
        arg_sources: dict[str, str] = dict(sources or {})
        context = ActionContext(
            name=name,
            args=self.resolve_args(args, arg_sources),
            variables=self.variables(),
            call=self.call_context(),
            now=self.e.clock(),
            interaction_id=self.s.interaction_id,
            deps=self.e.deps,
            state=dict(self.s.variables.get(STATE_KEY) or {}),
            arg_sources=arg_sources,
        )
        result = fn(context)
        if result.state is not None:
            self.s.variables[STATE_KEY] = dict(result.state)
        for key, value in result.variables.items():
            if key not in CONTEXT_VARIABLES or key == "intent":
                self.s.variables[key] = value
        self.out.effects.extend(result.effects)
        self.out.steps.append(StepRecord(step_name(self.s), "action", outcome=result.outcome))
        return result
