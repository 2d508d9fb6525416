"""The IVR engine: a pure state machine over the flow language.

``Engine(flowset, actions, clock).handle(session, event)`` maps the call's state and one
webhook event to the next TwiML verbs. It never touches Flask, Redis or the database
itself: the session comes in and goes out as a value (:class:`ivr.session.CallSession`),
actions are plain callables (they may use the ``deps`` they are given, e.g. the CRM), and
slow side effects (SMS) come back as :class:`Effect` values for the caller to enqueue.

The engine runs steps until one needs input or ends the call:

- ``say`` → its prompts, then ``next``;
- ``menu``/``collect`` → a ``<Gather>`` whose action URL names the flow, the step and the
  session version it expects (``seq``), so a replayed webhook is recognised; voice input
  (``input: speech|both``) follows the :class:`SpeechPolicy` the runtime gives: ``record``
  (prompts, ``<Record>``, recognised by the runtime → :class:`VoiceInput`), ``stream``
  (``<Start><Stream>`` + a keypad ``<Gather>`` in parallel + a fall-through ``<Redirect>``)
  or, with no usable speech model, keypad only after a spoken notice (once per call);
- ``action`` → the registered implementation, then ``branches[outcome]`` or ``default``;
- ``branch`` / ``goto`` / ``subflow`` / ``return``;
- ``transfer`` → ``<Enqueue>`` (with the call's context as a JSON task) or ``<Dial>``;
- ``record`` → ``<Record>``, then the step's action with the recording;
- ``sms`` → a :class:`SendSms` effect; ``hangup`` → ``<Hangup>``.

Input steps handle universal commands (operator / repeat), keypad type-ahead (digits typed
beyond what a step consumed are kept for the next input step), validation, read-back
confirmation and no-input / no-match counting with tapered reprompts and escalation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlencode

from ivr import twiml
from ivr.schema import (
    CONTEXT_VARIABLES,
    ActionStep,
    BranchStep,
    CollectStep,
    ConfirmBelow,
    FlowSet,
    GotoStep,
    HangupStep,
    InputHandler,
    MenuStep,
    PlayPrompt,
    PromptRef,
    RecordStep,
    ReturnStep,
    SayStep,
    SmsStep,
    SubflowStep,
    TransferStep,
)
from ivr.session import CallSession, Frame

log = logging.getLogger(__name__)

MAX_HOPS = 200
#: Session variable holding the actions' private state (not visible to flows).
STATE_KEY = "_action_state"
MAX_PATH = 200
#: Seconds of silence that end an utterance. A number, not ``auto``: Twilio rejects ``auto``
#: with some speech models (warning 13335).
SPEECH_END_SILENCE_S = 2
#: An input step asked this often in one call means the caller is stuck: operator.
MAX_INPUT_VISITS = 10
MASK = "***"
#: Variables whose captured values are never written to the IVR path in clear.
SECRET_HINTS = ("pin", "password", "secret", "birth", "passport", "snils", "code_word")

CONFIRM_PROMPT = "Вы ввели: {value}. Если верно, нажмите 1. Если нет, нажмите 2."
VOICE_CONFIRM_PROMPT = "Вы назвали: {value}. Верно?"
#: Said once per call when a step asks for speech and voice input cannot be served.
VOICE_UNAVAILABLE_PROMPT = (
    "Голосовой ввод сейчас недоступен, пожалуйста, используйте клавиатуру телефона."
)
#: Longest utterance a voice capture takes (seconds; ``<Record maxLength>``).
VOICE_MAX_SECONDS = 15
#: Seconds of silence that end a ``<Record>`` capture.
RECORD_SILENCE_S = 3
#: Rough text-to-speech rate, to tell the stream recognizer how long the prompt plays.
SAY_CHARS_PER_S = 14.0
#: ``ev`` values of voice captures: a ``<Record>`` finished, the stream's fall-through
#: ``<Redirect>`` (no key pressed), the provider redirect after a stream's final result.
EV_RECORD, EV_LISTEN, EV_SPEECH = "record", "listen", "speech"
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


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    """A new call: run ``flow`` from its start with ``variables`` (flow parameters)."""

    flow: str = "hotline"
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Input:
    """What a ``<Gather>`` returned: keypad digits and/or recognised speech."""

    digits: str = ""
    speech: str | None = None
    confidence: float | None = None
    audio_ref: str | None = None


@dataclass(frozen=True)
class VoiceInput:
    """What our own recognizer made of a voice capture (``record`` or ``stream``).

    ``digits``: a key pressed during the capture (it wins over speech); ``failed``: why
    recognition could not run (the step then goes on keypad-only after a spoken notice);
    ``speech_detected`` False with no text is silence (a no-input).
    """

    text: str = ""
    confidence: float | None = None
    digits: str = ""
    audio_ref: str | None = None
    speech_detected: bool = True
    failed: str | None = None


@dataclass(frozen=True)
class Recording:
    """A ``<Record>`` finished."""

    url: str | None = None
    duration: int | None = None
    sid: str | None = None


@dataclass(frozen=True)
class TransferEnded:
    """A ``<Dial>`` or ``<Enqueue>`` returned (``DialCallStatus`` or ``QueueResult``)."""

    status: str = ""


Event = Start | Input | VoiceInput | Recording | TransferEnded


# --------------------------------------------------------------------------- speech


CaptureMode = Literal["record", "stream"]


@dataclass(frozen=True)
class SpeechPolicy:
    """What voice input the runtime can serve; the engine itself never touches a model.

    ``lang``: the language of the usable speech model (``ru``), None when there is none —
    voice steps then run keypad-only after :data:`VOICE_UNAVAILABLE_PROMPT`. ``capture``
    forces one capture mode for every voice step (the simulator's ``--capture``); otherwise
    a collect step's ``capture`` or ``default_capture`` applies, and menus use
    ``menu_capture`` — ``stream`` by default, because its keypad ``<Gather>`` runs in
    parallel (Twilio drops a key pressed into an empty ``<Record>``). ``stream_url`` is the
    ``wss://`` URL of our ``/media-stream`` websocket.
    """

    lang: str | None = None
    capture: CaptureMode | None = None
    default_capture: CaptureMode = "record"
    menu_capture: CaptureMode = "stream"
    stream_url: str = ""


@dataclass(frozen=True)
class VoiceGrammar:
    """The recognizer grammar of a voice step: kind (``speech.grammar``), language, keywords."""

    kind: str
    lang: str
    keywords: tuple[str, ...] = ()


_VALUE_GRAMMARS: Mapping[str, str] = {
    "digits": "digits",
    "account_number": "digits",
    "meter_reading": "digits",
    "number": "number",
    "yes_no": "yes_no",
}


def speech_lang(language: str) -> str:
    """The recognizer language of a ``<Say>``/flow language tag: ``ru-RU`` → ``ru``."""
    return language.split("-", 1)[0].strip().lower()


def step_grammar(
    flowset: FlowSet, step: MenuStep | CollectStep, *, confirming: bool = False
) -> VoiceGrammar | None:
    """The grammar ``step`` is recognised with (None: the step cannot take voice input)."""
    lang = speech_lang(step.language or flowset.defaults.language)
    if confirming:
        return VoiceGrammar("yes_no", lang)
    if isinstance(step, MenuStep):
        words = [k for o in step.options for k in o.keywords]
        if step.universal:
            u = flowset.defaults.universal
            words += [*u.operator_keywords, *u.repeat_keywords]
        unique = tuple(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
        return VoiceGrammar("menu", lang, unique) if unique else None
    kind = _VALUE_GRAMMARS.get(step.value)
    return VoiceGrammar(kind, lang) if kind else None


def session_grammar(flowset: FlowSet, session: CallSession) -> VoiceGrammar | None:
    """The grammar of the input ``session`` waits for now (its step, or its read-back)."""
    try:
        step = flowset.step(session.flow, session.step)
    except KeyError:
        return None
    if not isinstance(step, MenuStep | CollectStep) or step.input == "dtmf":
        return None
    confirming = bool(session.pending and session.pending.get("kind") == "confirm")
    return step_grammar(flowset, step, confirming=confirming and isinstance(step, CollectStep))


def voice_steps(flowset: FlowSet) -> dict[str, VoiceGrammar | None]:
    """Every step that asks for speech (``flow:step`` → its grammar, None if it has none)."""
    found: dict[str, VoiceGrammar | None] = {}
    for flow, name, step in flowset.iter_steps():
        if isinstance(step, MenuStep | CollectStep) and step.input != "dtmf":
            found[f"{flow}:{name}"] = step_grammar(flowset, step)
    return found


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class CallInfo:
    """Who is on the call."""

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
    call: CallInfo
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


class ActionFailed(RuntimeError):
    """An action could not do its work; the engine transfers the caller to an operator."""


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class SendSms:
    """Send a text (the runtime enqueues it on RQ; never sent inline)."""

    to: str
    body: str
    purpose: str = "ivr"


@dataclass(frozen=True)
class Handoff:
    """The call was handed to people; ``context`` is what their screen shows."""

    kind: str
    destination: str
    context: Mapping[str, Any]


Effect = SendSms | Handoff


# --------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class StepRecord:
    """One entry of the IVR path (an ``InteractionStep`` row)."""

    step: str
    event: str
    input: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Heard:
    """Speech the engine acted on (a ``Transcript`` row): where, what, and what it decided."""

    step: str
    text: str
    confidence: float | None
    decision: str | None
    audio_ref: str | None = None


@dataclass
class Outcome:
    """What :meth:`Engine.handle` produced."""

    verbs: list[twiml.Verb] = field(default_factory=list)
    session: CallSession | None = None
    steps: list[StepRecord] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)

    @property
    def current_step(self) -> str | None:
        """``flow:step`` the call is at (for the ``X-IVR-Step`` header)."""
        if self.session is None:
            return None
        return f"{self.session.flow}:{self.session.step}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Stop(Exception):
    """The run loop stops: the verbs produced so far wait for the caller."""


# --------------------------------------------------------------------------- engine


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
    ) -> None:
        self.flowset = flowset
        self.actions = actions
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.render_text = render_text or _plain_render
        self.deps = deps
        self.step_path = step_path
        self.defaults = flowset.defaults
        self.speech = speech
        """None renders speech steps as Twilio's own ``<Gather input="dtmf speech">``."""

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
                out.verbs.append(twiml.Hangup())
            elif isinstance(event, Input):
                run.on_input(event)
            elif isinstance(event, VoiceInput):
                run.on_voice(event)
            elif isinstance(event, Recording):
                run.on_recording(event)
            else:
                run.on_transfer_ended(event)
        except _Stop:
            pass
        except ActionFailed as exc:
            log.warning("call %s: action failed at %s: %s", session.call_sid, session.step, exc)
            out.steps.append(StepRecord(_name(session), "error", outcome="action_failed"))
            run.escalate_on_error()
        if active_stream:
            out.verbs.insert(0, twiml.StopStream(active_stream))
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


def _name(session: CallSession) -> str:
    return f"{session.flow}:{session.step}"


def _plain_render(text: str, variables: Mapping[str, Any]) -> str:
    """Substitute ``{name}`` / ``{name:fmt}`` with ``str(value)`` (used without verbalize)."""

    def sub(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return "" if value is None else str(value)

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*)?\}", sub, text)


class _Run:
    """One :meth:`Engine.handle` call: a session, an outcome, and the helpers."""

    def __init__(self, engine: Engine, session: CallSession, out: Outcome) -> None:
        self.e = engine
        self.s = session
        self.out = out
        self.hops = 0
        self.voice = False  # the input being handled came from our recognizer

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

    def call_info(self) -> CallInfo:
        """Who is on the call, for actions."""
        return CallInfo(self.s.call_sid, self.s.caller, self.s.called, self.s.direction)

    # ---- prompts -------------------------------------------------------------------

    def prompts(
        self, items: Any, *, voice: str | None = None, language: str | None = None
    ) -> list[twiml.Prompt]:
        """Render prompt items (text, ``{play}``, ``{prompt}`` references) to Say/Play verbs."""
        if items is None:
            return []
        voice = voice or self.e.defaults.voice
        language = language or self.e.defaults.language
        variables = self.variables()
        rendered: list[twiml.Prompt] = []
        for item in items:
            if isinstance(item, PromptRef):
                rendered.extend(
                    self.prompts(
                        self.e.flowset.prompts[item.prompt], voice=voice, language=language
                    )
                )
            elif isinstance(item, PlayPrompt):
                url = item.play if not item.play.startswith("/") else self.e.base_url + item.play
                rendered.append(twiml.Play(url, loop=item.loop))
            else:
                text = self.e.render_text(str(item), variables).strip()
                if text:
                    rendered.append(twiml.Say(text, voice=voice, language=language))
        return rendered

    def say_text(self, text: str) -> twiml.Say:
        """A built-in Russian sentence in the default voice."""
        return twiml.Say(text, voice=self.e.defaults.voice, language=self.e.defaults.language)

    # ---- movement ------------------------------------------------------------------

    def goto(self, target: str) -> None:
        """Move to ``target`` (``step`` or ``flow:step``), resetting the step's counters."""
        flow, step = self.e.flowset.resolve(target, self.s.flow)
        if flow not in self.e.flowset.flows or step not in self.e.flowset.flows[flow].steps:
            raise ActionFailed(f"unknown target {target!r} from {_name(self.s)}")
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

    def enter(self) -> None:
        """Execute the current step: produce verbs, then move on, wait for input or stop."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        name = _name(self.s)
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
            self.s.stack.append(Frame(self.s.flow, self.s.step))
            self.goto(f"{step.flow}:{self.e.flowset.flows[step.flow].start}")
        elif isinstance(step, ReturnStep):
            self.do_return(step)
        elif isinstance(step, TransferStep):
            self.transfer(step)
        elif isinstance(step, RecordStep):
            self.out.verbs.extend(self.prompts(step.prompts))
            self.out.verbs.append(
                twiml.Record(
                    action=self.e.action_url(self.s, "record"),
                    max_length=step.max_length,
                    finish_on_key=step.finish_on_key,
                    play_beep=step.play_beep,
                )
            )
            raise _Stop
        elif isinstance(step, SmsStep):
            self.send_sms(step)
            self.goto(step.next)
        elif isinstance(step, HangupStep):
            self.hangup(step.prompts)
        else:  # pragma: no cover - the schema's union is exhaustive
            raise ActionFailed(f"unsupported step {type(step).__name__}")

    def hangup(self, prompts: Any = None) -> None:
        """Say the goodbye prompts and end the call."""
        self.out.verbs.extend(self.prompts(prompts))
        self.out.verbs.append(twiml.Hangup())
        self.s.ended = True
        raise _Stop

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
                value = _plain_render(value, variables) if "{" in value else value
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
            call=self.call_info(),
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
        self.out.steps.append(StepRecord(_name(self.s), "action", outcome=result.outcome))
        return result

    # ---- transfer, sms -------------------------------------------------------------

    def transfer_context(self, names: tuple[str, ...]) -> dict[str, Any]:
        """What the operator's screen gets: the named variables, path and intent."""
        variables = self.variables()
        context: dict[str, Any] = {"call_sid": self.s.call_sid, "caller": self.s.caller}
        for name in (*names, "path", "intent"):
            value = variables.get(name)
            context[name] = _jsonable(value)
        return context

    def transfer(self, step: TransferStep) -> None:
        """Hand the call to a queue (``<Enqueue>``) or a number (``<Dial>``)."""
        if step.intent:
            self.s.variables["intent"] = step.intent
        self.out.verbs.extend(self.prompts(step.prompts))
        context = self.transfer_context(step.context)
        action = self.e.action_url(self.s, "transfer")
        if step.to == "number":
            number = step.number or ""
            if number.startswith("{"):
                number = str(self.variables().get(number.strip("{}")) or "")
            if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
                raise ActionFailed(f"transfer number {number!r} is not E.164")
            self.out.verbs.append(twiml.Dial(number, action=action, timeout=step.timeout or 30))
            self.out.effects.append(Handoff("number", number, context))
        else:
            queue = step.queue or self.e.defaults.operator_queue
            self.out.verbs.append(twiml.Enqueue(queue, action=action, context=context))
            self.out.effects.append(Handoff("queue", queue, context))
        raise _Stop

    def on_transfer_ended(self, event: TransferEnded) -> None:
        """After ``<Dial>``/``<Enqueue>``: hang up, or take ``on_failure``."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        status = event.status.lower()
        self.out.steps.append(StepRecord(_name(self.s), "transfer_ended", outcome=status or None))
        if not isinstance(step, TransferStep) or status in _TRANSFER_DONE:
            self.out.verbs.append(twiml.Hangup())
            self.s.ended = True
            raise _Stop
        if step.on_failure:
            self.goto(step.on_failure)
            self.run()
        self.out.verbs.append(self.say_text(TRANSFER_FAILED_PROMPT))
        self.out.verbs.append(twiml.Hangup())
        self.s.ended = True
        raise _Stop

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
            self.out.steps.append(StepRecord(_name(self.s), "sms", outcome="no_recipient"))
            return
        self.out.effects.append(SendSms(to=to, body=body))
        self.out.steps.append(StepRecord(_name(self.s), "sms", outcome="queued"))

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
        context = self.transfer_context(("account_number",))
        self.out.verbs.append(twiml.Enqueue(self.e.defaults.operator_queue, context=context))
        self.out.effects.append(Handoff("queue", self.e.defaults.operator_queue, context))
        self.s.ended = True

    # ---- input ---------------------------------------------------------------------

    def gather_for(
        self,
        step: MenuStep | CollectStep,
        prompts: list[twiml.Prompt],
        *,
        confirm: bool = False,
        keypad_only: bool = False,
        on_empty: bool = True,
    ) -> twiml.Gather:
        """The ``<Gather>`` of an input step (or of its read-back confirmation).

        ``keypad_only`` leaves speech out (our own recognizer or the keypad fallback serve
        it); ``on_empty=False`` lets Twilio fall through to the next verb on no input.
        """
        d = self.e.defaults
        speech = step.input in ("speech", "both") and not keypad_only
        if isinstance(step, MenuStep) or confirm:
            keys = {o.key for o in step.options} if isinstance(step, MenuStep) else {"1", "2"}
            num_digits: int | None = 1 if all(k is not None for k in keys) else None
            finish = ""
        else:
            finish = d.finish_on_key if step.finish_on_key is None else step.finish_on_key
            num_digits = None
            if step.value in ("yes_no",):
                num_digits, finish = 1, ""
            elif step.min_length is not None and step.min_length == step.max_length:
                num_digits = step.max_length
        hints = None
        if speech and confirm:
            hints = "да, нет, верно, неверно"
        elif speech and isinstance(step, MenuStep):
            words = [w for o in step.options for w in o.keywords]
            hints = ", ".join(words) or None
        timeout = step.timeout or d.timeout
        if isinstance(step, CollectStep) and not confirm and step.value not in ("yes_no",):
            timeout = max(timeout, step.inter_digit_timeout or d.inter_digit_timeout)
        return twiml.Gather(
            action=self.e.action_url(self.s, "gather"),
            prompts=tuple(prompts),
            input="dtmf speech" if speech else "dtmf",
            num_digits=num_digits,
            finish_on_key=finish,
            timeout=timeout,
            language=step.language or d.language,
            speech_timeout=str(SPEECH_END_SILENCE_S) if speech else None,
            hints=hints,
            action_on_empty_result=on_empty,
        )

    def step_prompts(self, step: MenuStep | CollectStep) -> list[twiml.Prompt]:
        """The input step's own prompts."""
        return self.prompts(step.prompts, voice=step.voice, language=step.language)

    def confirm_prompts(self, step: CollectStep, *, by_voice: bool = False) -> list[twiml.Prompt]:
        """The read-back prompt of a captured value (``by_voice``: the answer may be spoken)."""
        if step.confirm_prompts is not None:
            return self.prompts(step.confirm_prompts, voice=step.voice, language=step.language)
        pending = self.s.pending or {}
        value = pending.get("spoken", "")
        template = VOICE_CONFIRM_PROMPT if by_voice else CONFIRM_PROMPT
        return [
            twiml.Say(
                template.format(value=value),
                voice=step.voice or self.e.defaults.voice,
                language=step.language or self.e.defaults.language,
            )
        ]

    def lang(self, step: MenuStep | CollectStep) -> str:
        """The recognizer language of ``step`` (``ru`` for ``ru-RU``)."""
        return speech_lang(step.language or self.e.defaults.language)

    def input_mode(self, step: MenuStep | CollectStep, confirming: bool) -> str:
        """How the step takes input now: ``dtmf``, ``gather`` (Twilio's own recognizer,
        without a speech policy), ``record``, ``stream`` or ``unavailable`` (voice asked
        for but not servable: keypad after the notice)."""
        if step.input == "dtmf":
            return "dtmf"
        policy = self.e.speech
        if policy is None:
            return "gather"
        if self.s.keypad_step == _name(self.s):
            return "dtmf"
        grammar = step_grammar(
            self.e.flowset, step, confirming=confirming and isinstance(step, CollectStep)
        )
        if grammar is None or policy.lang is None or grammar.lang != policy.lang:
            return "unavailable"
        if policy.capture:
            return policy.capture
        if isinstance(step, MenuStep):
            return policy.menu_capture
        return step.capture or policy.default_capture

    def voice_capture(
        self,
        step: MenuStep | CollectStep,
        prompts: list[twiml.Prompt],
        mode: str,
        confirming: bool,
    ) -> None:
        """Render a ``record`` or ``stream`` capture of the current step."""
        if mode == "record":
            self.out.verbs.extend(prompts)
            self.out.verbs.append(
                twiml.Record(
                    action=self.e.action_url(self.s, EV_RECORD),
                    max_length=VOICE_MAX_SECONDS,
                    timeout=RECORD_SILENCE_S,
                    finish_on_key="0123456789*#",
                    play_beep=False,
                    trim="trim-silence",
                )
            )
            # An empty recording falls through to here: a no-input.
            self.out.verbs.append(twiml.Redirect(self.e.action_url(self.s, EV_RECORD)))
            return
        policy = self.e.speech
        grammar = step_grammar(
            self.e.flowset, step, confirming=confirming and isinstance(step, CollectStep)
        )
        if policy is None or grammar is None:  # pragma: no cover - input_mode checked both
            raise ActionFailed(f"no stream capture possible at {_name(self.s)}")
        seq = self.s.version + 1
        name = f"capture-{seq}"
        said = sum(len(p.text) for p in prompts if isinstance(p, twiml.Say))
        played = sum(3 for p in prompts if isinstance(p, twiml.Play))
        parameters = (
            ("grammar", grammar.kind),
            ("lang", grammar.lang),
            ("keywords", ",".join(grammar.keywords)),
            ("call_sid", self.s.call_sid),
            ("step_token", f"{self.s.flow}:{self.s.step}:{seq}"),
            ("prompt_seconds", f"{said / SAY_CHARS_PER_S + played:.1f}"),
        )
        self.out.verbs.append(twiml.StartStream(policy.stream_url, name, parameters))
        self.out.verbs.append(
            self.gather_for(step, prompts, confirm=confirming, keypad_only=True, on_empty=False)
        )
        self.out.verbs.append(twiml.Redirect(self.e.action_url(self.s, EV_LISTEN)))
        self.s.stream = name

    def wait_for_input(
        self,
        step: MenuStep | CollectStep,
        lead: list[twiml.Prompt] | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        """Consume type-ahead if it completes the step, else render the input verbs and stop.

        ``quiet`` leaves the step's prompt out (the caller is in the middle of an entry).
        """
        if self.s.typeahead and self.typeahead_complete(step):
            digits, self.s.typeahead = self.s.typeahead, ""
            self.out.steps.append(StepRecord(_name(self.s), "typeahead"))
            self.on_input(Input(digits=digits), from_typeahead=True)
            return
        name = _name(self.s)
        self.s.visits[name] = self.s.visits.get(name, 0) + 1
        operator_flow = self.e.flowset.resolve(self.e.defaults.operator_target, self.s.flow)[0]
        if self.s.visits[name] > MAX_INPUT_VISITS and self.s.flow != operator_flow:
            self.out.steps.append(StepRecord(name, "escalate", outcome="loop"))
            self.goto(self.e.defaults.operator_target)
            self.run()
        confirming = bool(self.s.pending and self.s.pending.get("kind") == "confirm")
        mode = self.input_mode(step, confirming)
        prompts = list(lead or [])
        if mode == "unavailable":
            if not self.s.speech_notice:
                self.s.speech_notice = True
                prompts.insert(0, self.say_text(VOICE_UNAVAILABLE_PROMPT))
                self.out.steps.append(StepRecord(name, "voice_unavailable"))
            mode = "dtmf"
        if quiet:
            pass
        elif confirming and isinstance(step, CollectStep):
            by_voice = mode in ("record", "stream")
            prompts.extend(self.confirm_prompts(step, by_voice=by_voice))
        else:
            prompts.extend(self.step_prompts(step))
        if mode in ("record", "stream"):
            self.voice_capture(step, prompts, mode, confirming)
        else:
            self.out.verbs.append(
                self.gather_for(step, prompts, confirm=confirming, keypad_only=mode == "dtmf")
            )
        raise _Stop

    def typeahead_complete(self, step: MenuStep | CollectStep) -> bool:
        """Whether the buffered keys already answer ``step``."""
        buffered = self.s.typeahead
        if isinstance(step, MenuStep) or (
            self.s.pending and self.s.pending.get("kind") == "confirm"
        ):
            return len(buffered) >= 1
        if step.value == "yes_no":
            return len(buffered) >= 1
        finish = self.e.defaults.finish_on_key if step.finish_on_key is None else step.finish_on_key
        if finish and finish in buffered:
            return True
        return (
            step.min_length is not None
            and step.min_length == step.max_length
            and len(buffered) >= step.max_length
        )

    def on_input(self, event: Input, *, from_typeahead: bool = False) -> None:
        """Handle what a ``<Gather>`` returned for the current input step."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        if not isinstance(step, MenuStep | CollectStep):
            # A stale Gather answered after the call moved on: just continue where we are.
            self.run()
            return
        digits = event.digits
        if not from_typeahead and self.s.typeahead:
            digits, self.s.typeahead = self.s.typeahead + digits, ""
        speech = (event.speech or "").strip() or None
        if digits:
            speech = None  # a key pressed wins over speech
        confirming = bool(self.s.pending and self.s.pending.get("kind") == "confirm")
        name = _name(self.s)

        if not digits and not speech:
            self.out.steps.append(StepRecord(name, "no_input"))
            self.failed(step, "no_input")
            return
        if speech is None:
            self.dispatch(step, digits, None, event.confidence, confirming)
            return
        mark = len(self.out.steps)
        try:
            self.dispatch(step, digits, speech, event.confidence, confirming)
        finally:
            decision = next(
                (
                    f"{r.event}:{r.outcome}" if r.outcome else r.event
                    for r in self.out.steps[mark:]
                    if r.step == name and r.event != "enter"
                ),
                None,
            )
            secret = isinstance(step, CollectStep) and _is_secret(step.into)
            text = MASK if secret else speech
            self.out.heard.append(Heard(name, text, event.confidence, decision, event.audio_ref))

    def on_voice(self, event: VoiceInput) -> None:
        """Handle what our recognizer made of a voice capture of the current input step."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        if not isinstance(step, MenuStep | CollectStep):
            self.run()
            return
        name = _name(self.s)
        if event.digits:
            # A key pressed during the capture wins; the rest of the entry is by keypad.
            self.out.steps.append(StepRecord(name, "voice_key", input=event.digits[:1]))
            self.s.keypad_step = name
            self.s.typeahead += event.digits
            self.wait_for_input(step, quiet=True)
            return
        if event.failed:
            self.out.steps.append(StepRecord(name, "voice_failed", outcome=event.failed))
            self.s.keypad_step = name
            lead: list[twiml.Prompt] = []
            if not self.s.speech_notice:
                self.s.speech_notice = True
                lead.append(self.say_text(VOICE_UNAVAILABLE_PROMPT))
            self.wait_for_input(step, lead)
            return
        self.voice = True
        text = event.text.strip()
        if not text:
            kind = "no_match" if event.speech_detected else "no_input"
            self.out.steps.append(StepRecord(name, kind))
            confirming = bool(self.s.pending and self.s.pending.get("kind") == "confirm")
            if kind == "no_input" and self.input_mode(step, confirming) == "record":
                # Twilio drops a key pressed into an empty <Record>: retry by keypad.
                self.s.keypad_step = name
            if event.speech_detected:
                self.out.heard.append(Heard(name, "", event.confidence, kind, event.audio_ref))
            self.failed(step, kind)
            return
        confidence = event.confidence if event.confidence is not None else 0.0
        self.on_input(Input(speech=text, confidence=confidence, audio_ref=event.audio_ref))

    def dispatch(
        self,
        step: MenuStep | CollectStep,
        digits: str,
        speech: str | None,
        confidence: float | None,
        confirming: bool,
    ) -> None:
        """Act on non-empty input: a universal command, a confirmation, a choice or a value."""
        name = _name(self.s)
        command = self.universal_command(step, digits, speech, confirming)
        if command == "operator":
            self.out.steps.append(StepRecord(name, "operator", input=digits or speech))
            self.goto(self.e.defaults.operator_target)
            self.run()
            return
        if command == "repeat":
            self.out.steps.append(StepRecord(name, "repeat", input=digits or speech))
            self.wait_for_input(step)
            return

        if confirming and isinstance(step, CollectStep):
            self.on_confirmation(step, digits, speech)
        elif isinstance(step, MenuStep):
            self.on_menu(step, digits, speech)
        else:
            self.on_collect(step, digits, speech, confidence)

    def universal_command(
        self, step: MenuStep | CollectStep, digits: str, speech: str | None, confirming: bool
    ) -> str | None:
        """``operator`` / ``repeat`` when the input is a universal command."""
        if not step.universal:
            return None
        u = self.e.defaults.universal
        menu_keys = {o.key for o in step.options} if isinstance(step, MenuStep) else set()
        if confirming:
            menu_keys = {"1", "2"}
        first = digits[:1]
        if digits:
            whole_command = len(digits) == 1 or isinstance(step, MenuStep) or confirming
            if (
                u.operator_key
                and first == u.operator_key
                and whole_command
                and first not in menu_keys
            ):
                return "operator"
            if u.repeat_key and u.repeat_key in digits and u.repeat_key not in menu_keys:
                return "repeat"
            return None
        text = (speech or "").lower()
        if any(_has_phrase(text, w) for w in u.operator_keywords):
            return "operator"
        if any(_has_phrase(text, w) for w in u.repeat_keywords):
            return "repeat"
        return None

    def failed(
        self, step: MenuStep | CollectStep, kind: str, hint: list[twiml.Prompt] | None = None
    ) -> None:
        """Count a no-input / no-match; reprompt (tapered) or escalate."""
        d = self.e.defaults
        if self.voice and kind == "no_match":
            # Misheard or implausible speech: the retry is by keypad.
            self.s.keypad_step = _name(self.s)
        handler: InputHandler | None = step.no_input if kind == "no_input" else step.no_match
        limit = (handler.max if handler and handler.max else None) or (
            d.max_no_input if kind == "no_input" else d.max_no_match
        )
        if kind == "no_input":
            self.s.no_input += 1
            count = self.s.no_input
        else:
            self.s.no_match += 1
            count = self.s.no_match
        if count >= limit:
            target = (handler.then if handler else None) or d.operator_target
            self.out.steps.append(StepRecord(_name(self.s), "escalate", outcome=kind))
            self.goto(target)
            self.run()
            return
        reprompts = (handler.reprompts if handler else ()) or (
            d.no_input_prompts if kind == "no_input" else d.no_match_prompts
        )
        lead = list(hint or [])
        if reprompts:
            lead.extend(self.prompts(reprompts[min(count, len(reprompts)) - 1]))
        self.wait_for_input(step, lead)

    def on_menu(self, step: MenuStep, digits: str, speech: str | None) -> None:
        """Pick the menu option by key or spoken keyword."""
        option = None
        heard = digits[:1] if digits else speech
        if digits:
            self.s.typeahead = digits[1:] + self.s.typeahead
            option = next((o for o in step.options if o.key == digits[0]), None)
        elif speech:
            text = speech.lower()
            option = next(
                (o for o in step.options if any(_has_phrase(text, k.lower()) for k in o.keywords)),
                None,
            )
        if option is None:
            self.s.typeahead = ""
            self.out.steps.append(StepRecord(_name(self.s), "no_match", input=heard))
            self.failed(step, "no_match")
            return
        if option.intent:
            self.s.variables["intent"] = option.intent
        self.out.steps.append(StepRecord(_name(self.s), "input", input=heard, outcome=option.goto))
        self.goto(option.goto)
        self.run()

    def split_entry(self, step: CollectStep, digits: str) -> str:
        """The part of ``digits`` this step consumes; the rest is kept as type-ahead."""
        finish = self.e.defaults.finish_on_key if step.finish_on_key is None else step.finish_on_key
        if step.value == "yes_no":
            self.s.typeahead = digits[1:] + self.s.typeahead
            return digits[:1]
        if finish and finish in digits:
            entry, rest = digits.split(finish, 1)
            self.s.typeahead = rest + self.s.typeahead
            return entry
        if (
            step.min_length is not None
            and step.min_length == step.max_length
            and len(digits) > step.max_length
        ):
            self.s.typeahead = digits[step.max_length :] + self.s.typeahead
            return digits[: step.max_length]
        return digits

    def on_collect(
        self, step: CollectStep, digits: str, speech: str | None, confidence: float | None
    ) -> None:
        """Parse, validate and (maybe) confirm a captured value."""
        name = _name(self.s)
        source = "dtmf" if digits else "speech"
        if digits:
            entry = self.split_entry(step, digits)
            value = parse_keypad(step, entry, self.e.clock())
            conf = 1.0
            heard: str | None = entry
        else:
            value = parse_speech(step, speech or "", self.lang(step))
            conf = confidence if confidence is not None else 0.0
            heard = speech
        shown = MASK if _is_secret(step.into) else heard
        if value is None:
            self.s.typeahead = ""
            self.out.steps.append(StepRecord(name, "no_match", input=shown))
            self.failed(step, "no_match")
            return
        self.s.variables[f"{step.into}_source"] = source
        self.s.variables[f"{step.into}_confidence"] = conf
        if step.validate_with:
            result = self.call_action(
                step.validate_with, {"value": value}, sources={"value": step.into}
            )
            if result.outcome != "valid":
                self.s.typeahead = ""
                self.out.steps.append(
                    StepRecord(name, "no_match", input=shown, outcome=result.outcome)
                )
                message = result.variables.get("message")
                hint: list[twiml.Prompt] | None = [self.say_text(str(message))] if message else None
                self.failed(step, "no_match", hint)
                return
        if self.needs_confirmation(step, conf):
            self.s.pending = {"kind": "confirm", "value": value, "spoken": spoken(step, value)}
            self.s.variables[step.into] = value  # the read-back prompt may speak it
            self.out.steps.append(StepRecord(name, "input", input=shown, outcome="confirm"))
            self.wait_for_input(step)
            return
        self.accept(step, value, shown)

    def needs_confirmation(self, step: CollectStep, confidence: float) -> bool:
        """Whether the step's policy asks to read ``confidence``-rated input back."""
        if step.confirm == "always":
            return True
        if isinstance(step.confirm, ConfirmBelow):
            return confidence < step.confirm.below_confidence
        return False

    def accept(self, step: CollectStep, value: Any, shown: str | None) -> None:
        """Store the value and continue at the step's ``next``."""
        self.s.variables[step.into] = value
        self.s.pending = None
        self.out.steps.append(StepRecord(_name(self.s), "input", input=shown, outcome="accepted"))
        self.goto(step.next)
        self.run()

    def on_confirmation(self, step: CollectStep, digits: str, speech: str | None) -> None:
        """1/да accepts the pending value, 2/нет asks again."""
        answer: bool | None
        if digits:
            self.s.typeahead = digits[1:] + self.s.typeahead
            answer = {"1": True, "2": False}.get(digits[0])
        else:
            answer = _parse_yes_no(speech or "", self.lang(step))
        pending = self.s.pending or {}
        value = pending.get("value")
        shown = MASK if _is_secret(step.into) else str(pending.get("spoken", ""))
        if answer is None:
            self.s.typeahead = ""
            self.out.steps.append(StepRecord(_name(self.s), "no_match", input=digits[:1] or speech))
            self.failed(step, "no_match")
            return
        if answer:
            self.out.steps.append(
                StepRecord(_name(self.s), "confirm", input=digits[:1] or speech, outcome="yes")
            )
            self.accept(step, value, shown)
            return
        self.out.steps.append(
            StepRecord(_name(self.s), "confirm", input=digits[:1] or speech, outcome="no")
        )
        self.s.variables.pop(step.into, None)
        self.s.pending = None
        self.s.typeahead = ""
        self.wait_for_input(step)


# --------------------------------------------------------------------------- parsing


def _has_phrase(text: str, phrase: str) -> bool:
    phrase = phrase.strip().lower()
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in SECRET_HINTS)


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


def _digits_ok(step: CollectStep, entry: str) -> bool:
    if not entry.isdigit() or not entry.isascii():
        return False
    if step.min_length is not None and len(entry) < step.min_length:
        return False
    return not (step.max_length is not None and len(entry) > step.max_length)


def parse_keypad(step: CollectStep, entry: str, now: datetime) -> Any:
    """The value typed on the keypad for ``step``, or None when it is not valid."""
    if step.value == "yes_no":
        return {"1": True, "2": False}.get(entry)
    if step.value == "date":
        return _parse_date(entry, now)
    if not _digits_ok(step, entry):
        return None
    if step.value == "number":
        return Decimal(entry)
    return entry


def _parse_date(entry: str, now: datetime) -> date | None:
    if not entry.isdigit() or len(entry) not in (4, 8):
        return None
    day, month = int(entry[:2]), int(entry[2:4])
    year = int(entry[4:]) if len(entry) == 8 else now.year
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_yes_no(text: str, lang: str = "ru") -> bool | None:
    from speech.grammar import parse_value

    try:
        value = parse_value("yes_no", text, lang)
    except ValueError:  # no language pack for ``lang``
        return None
    return value if isinstance(value, bool) else None


def parse_speech(step: CollectStep, text: str, lang: str = "ru") -> Any:
    """The value recognised in ``text`` for ``step`` (via :mod:`speech.numbers` and the
    development language table of :mod:`speech.grammar`), or None."""
    from speech.grammar import parse_value

    kind = _VALUE_GRAMMARS.get(step.value)
    if kind is None:
        return None
    try:
        value = parse_value(kind, text, lang)
    except (ValueError, InvalidOperation):  # no language pack; the parser's own guard
        return None
    if kind == "digits" and (not isinstance(value, str) or not _digits_ok(step, value)):
        return None
    return value


def spoken(step: CollectStep, value: Any) -> str:
    """How a captured value is read back to the caller (digit-like values digit by digit)."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    text = str(value)
    if step.value in ("digits", "account_number") and text.isdigit():
        return " ".join(text)
    return text
