"""The IVR flow language: pydantic models of ``call_flows.yaml``.

A flow file has four top-level keys::

    version: 1
    defaults: {...}        # language, voice, timeouts, retries, operator queue, universal keys
    prompts: {name: ...}   # reusable named prompts, referenced as {prompt: name}
    flows:                 # flow name -> Flow
      hotline: {description: ..., start: greet, steps: {greet: {type: say, ...}, ...}}

Every model is immutable (``frozen=True``) and rejects unknown keys (``extra="forbid"``).
Steps are a discriminated union on ``type``. The models check the *shape* of a file;
cross-references (targets, actions, variables, reachability) are checked by
:mod:`ivr.validate`, which reports every problem with its YAML line and column.

Targets
    A step is left through *targets*: ``step`` (a step of the flow the current step belongs
    to) or ``flow:step`` (a step of another flow; a plain jump, the subflow call stack is not
    touched). Use a ``subflow`` step to *call* a flow and come back.

Prompts
    A prompt is a list of items; a single item may be written without the list. An item is
    a Russian text with ``{variable}`` or ``{variable:format[:options]}`` fields (see
    :mod:`ivr.verbalize` for the formats), ``{play: URL}`` for an audio file, or
    ``{prompt: NAME}`` to splice a named prompt from the top-level ``prompts``.

Expressions (``branch`` conditions)
    A deliberately small language (comparisons, ``and``/``or``/``not``, ``in`` lists) of
    :mod:`ivr.expressions`, parsed at load time and never passed to ``eval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from ivr.expressions import Expression, parse_expression

__all__ = [
    "CONTEXT_VARIABLES",
    "ActionStep",
    "BranchStep",
    "CollectStep",
    "Condition",
    "ConfirmBelow",
    "Defaults",
    "Flow",
    "FlowSet",
    "GotoStep",
    "HangupStep",
    "InputHandler",
    "MenuOption",
    "MenuStep",
    "PlayPrompt",
    "PromptRef",
    "RecordStep",
    "ReturnStep",
    "SayStep",
    "SmsStep",
    "Step",
    "SubflowStep",
    "TransferStep",
    "UniversalCommands",
    "flow_json_schema",
    "split_target",
]

#: Variables the engine always provides to every flow (inbound and outbound calls).
#: ``caller_phone`` is the other party's number in E.164 (the caller for inbound calls,
#: the dialled consumer for outbound ones); ``path`` is the list of steps visited so far.
CONTEXT_VARIABLES: frozenset[str] = frozenset(
    {"caller_phone", "called_phone", "call_sid", "direction", "path", "intent"}
)

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
KEY_PATTERN = r"^[0-9*#]$"
TARGET_PATTERN = r"^(?:[A-Za-z_][A-Za-z0-9_]*:)?[A-Za-z_][A-Za-z0-9_]*$"

_PHONE_OR_VARIABLE = r"\+[1-9]\d{6,14}|\{[A-Za-z_][A-Za-z0-9_]*\}"

#: A flow, step, variable or action name: letters, digits and ``_``, not starting with a digit.
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
#: ``step`` or ``flow:step``.
Target = Annotated[str, StringConstraints(pattern=TARGET_PATTERN)]
#: Seconds to wait for input.
Seconds = Annotated[int, Field(ge=1, le=120)]


def split_target(target: str, current_flow: str) -> tuple[str, str]:
    """Resolve a target to ``(flow, step)``; a bare step name belongs to ``current_flow``."""
    if ":" in target:
        flow, step = target.split(":", 1)
        return flow, step
    return current_flow, target


def _key_to_str(value: Any) -> Any:
    """YAML reads ``1`` as an int; keypad keys are strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: A keypad key: ``"0"``-``"9"``, ``"*"`` or ``"#"`` (YAML integers 0-9 are accepted).
Key = Annotated[
    str,
    BeforeValidator(
        _key_to_str,
        json_schema_input_type=Annotated[int, Field(ge=0, le=9)]
        | Annotated[str, StringConstraints(pattern=KEY_PATTERN)],
    ),
    StringConstraints(pattern=KEY_PATTERN),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Prompts


class PlayPrompt(_Model):
    """Play an audio file (``<Play>``) instead of synthesising speech."""

    play: Annotated[str, StringConstraints(pattern=r"^(https?://|/)\S+$")]
    """Absolute http(s) URL, or a path on our own server starting with ``/``."""
    loop: Annotated[int, Field(ge=1, le=10)] = 1
    """How many times to play it."""


class PromptRef(_Model):
    """Splice a named prompt from the top-level ``prompts`` mapping."""

    prompt: Name
    """Name of a prompt in ``FlowSet.prompts``."""


def _prompt_item_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, PlayPrompt):
        return "play"
    if isinstance(value, PromptRef):
        return "ref"
    if isinstance(value, Mapping):
        if "play" in value:
            return "play"
        if "prompt" in value:
            return "ref"
    return None


#: One prompt item: text with ``{variables}``, ``{play: URL}`` or ``{prompt: NAME}``.
PromptItem = Annotated[
    Annotated[str, Tag("text"), StringConstraints(min_length=1)]
    | Annotated[PlayPrompt, Tag("play")]
    | Annotated[PromptRef, Tag("ref")],
    Discriminator(
        _prompt_item_kind,
        custom_error_type="prompt_item",
        custom_error_message="a prompt item must be a text, {play: URL} or {prompt: NAME}",
    ),
]


def _as_list(value: Any) -> Any:
    """Accept a single prompt item where a list of items is expected."""
    if isinstance(value, str | Mapping | PlayPrompt | PromptRef):
        return [value]
    return value


#: A prompt: one or more items spoken/played in order. A single item may omit the list.
Prompts = Annotated[
    tuple[PromptItem, ...],
    BeforeValidator(_as_list, json_schema_input_type=PromptItem | list[PromptItem]),
    Field(min_length=1),
]


# --------------------------------------------------------------------------------------------
# Defaults and shared pieces


class UniversalCommands(_Model):
    """Commands available in every input step (``menu`` and ``collect``) unless disabled.

    A menu option on the same key takes precedence over a universal command in that menu.
    """

    operator_key: Key | None = "0"
    """Key that transfers to the operator (``defaults.operator_target``); null disables it."""
    operator_keywords: tuple[str, ...] = ("оператор", "оператора", "с оператором")
    """Spoken words that do the same."""
    repeat_key: Key | None = "*"
    """Key that repeats the current step's prompt; null disables it."""
    repeat_keywords: tuple[str, ...] = ("повторить", "повтори", "повторите")
    """Spoken words that do the same."""


VariableValue = str | int | Decimal | bool


class Defaults(_Model):
    """File-wide defaults; every step may override the timing and voice settings."""

    language: str = "ru-RU"
    """``language`` of ``<Say>`` and of speech recognition."""
    voice: str = "Polly.Tatyana"
    """``voice`` of ``<Say>`` (``Polly.Tatyana`` or ``Polly.Maxim`` for Russian)."""
    timeout: Seconds = 5
    """Seconds to wait for the first key or word of an input step."""
    inter_digit_timeout: Seconds = 3
    """Seconds to wait between keys of a multi-digit ``collect``."""
    finish_on_key: Literal["#", "*", ""] = "#"
    """Key that ends a multi-digit entry (``""`` disables it)."""
    max_no_input: Annotated[int, Field(ge=1, le=10)] = 3
    """Attempts without any input before an input step escalates."""
    max_no_match: Annotated[int, Field(ge=1, le=10)] = 3
    """Attempts with invalid input before an input step escalates."""
    operator_queue: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "operators"
    """Queue name used by ``transfer`` steps with ``to: queue`` and no ``queue`` of their own."""
    operator_target: Target = "operator:transfer"
    """Where the universal operator command goes, and where an input step escalates after
    too many failed attempts when its handler has no ``then``. A bare step name is resolved in
    the flow of the step that uses it."""
    universal: UniversalCommands = UniversalCommands()
    """Universal commands of input steps."""
    no_input_prompts: tuple[Prompts, ...] = ()
    """Default tapered reprompts after no input (the n-th is spoken after the n-th silence)."""
    no_match_prompts: tuple[Prompts, ...] = ()
    """Default tapered reprompts after invalid input."""
    barge_in: bool = False
    """Default of the input steps' ``barge_in``: a step that can honour it lets the caller
    interrupt its prompt by speaking; the others ignore it (see ``docs/speech.md``)."""
    variables: dict[Name, VariableValue] = Field(default_factory=dict)
    """Constants every flow may read (e.g. ``supplier_name``, ``grid_company_phone``)."""


class InputHandler(_Model):
    """What an input step does on no input (silence) or no match (invalid input)."""

    max: Annotated[int, Field(ge=1, le=10)] | None = None
    """Attempts before escalating; null uses ``defaults.max_no_input``/``max_no_match``."""
    reprompts: tuple[Prompts, ...] = ()
    """Tapered reprompts: the n-th failure speaks the n-th one (the last one repeats), then
    the step's own prompt again. Empty uses the defaults' reprompts."""
    then: Target | None = None
    """Where to go after ``max`` failures; null uses ``defaults.operator_target``."""


class ConfirmBelow(_Model):
    """Confirm the captured value only when recognition confidence is below a threshold."""

    below_confidence: Annotated[float, Field(gt=0, le=1)]


InputMode = Literal["dtmf", "speech", "both"]


class _StepBase(_Model):
    description: str | None = None
    """Free text for people reading the flow and the graph."""


class _InputStepBase(_StepBase):
    prompts: Prompts
    """What is said before and while waiting for input (keys pressed during it are kept)."""
    input: InputMode = "dtmf"
    """``dtmf`` (keypad), ``speech`` or ``both``. A key pressed wins over speech."""
    timeout: Seconds | None = None
    """Seconds to wait for the first input; null uses ``defaults.timeout``."""
    no_input: InputHandler | None = None
    """Silence handling; null uses the defaults."""
    no_match: InputHandler | None = None
    """Invalid input handling; null uses the defaults."""
    universal: bool = True
    """False disables the universal operator/repeat commands in this step."""
    voice: str | None = None
    """Override of ``defaults.voice``."""
    language: str | None = None
    """Override of ``defaults.language``."""
    barge_in: bool | None = None
    """Speech interrupts the prompt: the step is captured on a bidirectional stream
    (``<Connect><Stream>``) whose prompt audio our server plays (text-to-speech) and cuts
    when the caller starts talking or presses a key. Needs speech input and stream capture
    (a ``collect`` without ``capture`` then streams); ``flows check`` reports a step that
    cannot honour it. Null uses ``defaults.barge_in``. See ``docs/speech.md``."""


# --------------------------------------------------------------------------------------------
# Steps


class SayStep(_StepBase):
    """Speak (or play) prompts, then go on."""

    type: Literal["say"]
    prompts: Prompts
    voice: str | None = None
    """Override of ``defaults.voice``."""
    language: str | None = None
    """Override of ``defaults.language``."""
    next: Target


class MenuOption(_Model):
    """One choice of a menu: a key and/or spoken keywords leading to a target."""

    key: Key | None = None
    """Keypad key (``"0"``-``"9"``, ``"*"``, ``"#"``; quote ``"*"`` and ``"#"`` in YAML)."""
    keywords: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = ()
    """Spoken words or phrases selecting this option (lower case)."""
    goto: Target
    """Where the option leads."""
    intent: Name | None = None
    """Sets the ``intent`` variable (passed to the operator on transfer)."""

    @model_validator(mode="after")
    def _needs_key_or_keyword(self) -> MenuOption:
        if self.key is None and not self.keywords:
            raise ValueError("a menu option needs a key or keywords")
        return self


class MenuStep(_InputStepBase):
    """Offer choices by key and by spoken keyword."""

    type: Literal["menu"]
    options: Annotated[tuple[MenuOption, ...], Field(min_length=1)]
    input: InputMode = "both"


class CollectStep(_InputStepBase):
    """Capture a typed value into a variable."""

    type: Literal["collect"]
    value: Literal["digits", "number", "account_number", "meter_reading", "yes_no", "date"]
    """What is captured: ``digits`` (a string of digits, leading zeros kept), ``number``
    (a Decimal), ``account_number`` (digits, or an IVR code), ``meter_reading`` (the integer
    part of a meter display), ``yes_no`` (1 = да, 2 = нет; a bool), ``date`` (DDMM or DDMMYYYY
    by keypad; a date)."""
    into: Name
    """Variable the value is stored in."""
    capture: Literal["record", "stream"] | None = None
    """Speech capture mode when ``input`` includes speech: ``record`` (``<Record>`` then
    recognition) or ``stream`` (Media Streams); null lets the engine choose (``record``)."""
    min_length: Annotated[int, Field(ge=1, le=64)] | None = None
    """Fewest digits accepted (digit-like values)."""
    max_length: Annotated[int, Field(ge=1, le=64)] | None = None
    """Most digits accepted (digit-like values); also ``numDigits`` when equal to min."""
    finish_on_key: Literal["#", "*", ""] | None = None
    """Key that ends the entry; null uses ``defaults.finish_on_key``, ``""`` disables it."""
    inter_digit_timeout: Seconds | None = None
    """Seconds between keys; null uses ``defaults.inter_digit_timeout``."""
    validate_with: Name | None = Field(default=None, alias="validate")
    """Name of a validator action (``valid``/``invalid`` outcomes) run on the captured value;
    ``invalid`` counts as a no match. Written ``validate:`` in YAML."""
    confirm: Literal["always", "never"] | ConfirmBelow = "never"
    """Read the value back and ask 1 = да / 2 = нет: always, never, or only below a recognition
    confidence (keypad input has confidence 1)."""
    confirm_prompts: Prompts | None = None
    """Read-back prompt; may use the ``into`` variable. Null uses a built-in one."""
    next: Target
    """Where to go with a valid (and confirmed) value."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_lengths(self) -> CollectStep:
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError("min_length is greater than max_length")
        if self.capture is not None and self.input == "dtmf":
            raise ValueError("capture applies to speech input; set input to speech or both")
        if self.value in ("yes_no", "date") and (
            self.min_length is not None or self.max_length is not None
        ):
            raise ValueError(f"min_length/max_length do not apply to {self.value} values")
        return self


ArgValue = str | int | Decimal | bool | None


class ActionStep(_StepBase):
    """Call a registered Python action (see :mod:`ivr.action_names`) and branch on its outcome."""

    type: Literal["action"]
    name: Name
    """Registered action name."""
    args: dict[Name, ArgValue] = Field(default_factory=dict)
    """Arguments; a string may reference variables as ``{name}`` (a string that is exactly
    ``{name}`` passes the variable's value unchanged)."""
    branches: dict[Name, Target] = Field(default_factory=dict)
    """Outcome name -> target."""
    default: Target | None = None
    """Target of every outcome not listed in ``branches``."""
    prompts: Prompts | None = None
    """Optional filler said before the action runs (e.g. «Минуту, проверяю…»)."""


class Condition(_Model):
    """One case of a ``branch``: go to ``goto`` when ``when`` is true."""

    when: str
    """An expression (see :mod:`ivr.expressions`)."""
    goto: Target

    @field_validator("when")
    @classmethod
    def _parse(cls, value: str) -> str:
        parse_expression(value)
        return value

    @cached_property
    def expression(self) -> Expression:
        """The parsed condition."""
        return parse_expression(self.when)


class BranchStep(_StepBase):
    """Choose the first condition that holds, else ``otherwise``."""

    type: Literal["branch"]
    conditions: Annotated[tuple[Condition, ...], Field(min_length=1)]
    otherwise: Target


class GotoStep(_StepBase):
    """Jump to a target (``step`` or ``flow:step``)."""

    type: Literal["goto"]
    target: Target


class SubflowStep(_StepBase):
    """Call another flow from its start; when it returns, continue at ``next`` (or at the
    branch named by the ``return`` step's outcome)."""

    type: Literal["subflow"]
    flow: Name
    next: Target
    branches: dict[Name, Target] = Field(default_factory=dict)
    """Return outcome -> target; outcomes not listed go to ``next``."""


class ReturnStep(_StepBase):
    """Return from a subflow to the calling ``subflow`` step (ends the call at top level)."""

    type: Literal["return"]
    outcome: Name | None = None
    """Outcome the caller may branch on."""


class TransferStep(_StepBase):
    """Hand the call to people: an operator queue (``<Enqueue>``) or a number (``<Dial>``)."""

    type: Literal["transfer"]
    to: Literal["queue", "number"] = "queue"
    queue: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    """Queue name for ``to: queue``; null uses ``defaults.operator_queue``."""
    number: str | None = None
    """E.164 number, or a ``{variable}`` holding one, for ``to: number``."""
    prompts: Prompts | None = None
    """Said before transferring."""
    context: tuple[Name, ...] = ("account_number", "intent", "path")
    """Variables passed along with the call (to the operator's screen)."""
    intent: Name | None = None
    """Sets the ``intent`` variable before transferring."""
    timeout: Annotated[int, Field(ge=5, le=600)] | None = None
    """``<Dial>`` ring timeout in seconds."""
    on_failure: Target | None = None
    """Where to go when the number does not answer or the queue rejects the call; null plays
    an apology and hangs up."""

    @field_validator("number")
    @classmethod
    def _check_number(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_PHONE_OR_VARIABLE, value):
            raise ValueError(f"must be E.164 (+7XXXXXXXXXX) or a {{variable}}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_destination(self) -> TransferStep:
        if self.to == "number":
            if self.number is None:
                raise ValueError("transfer to a number needs 'number'")
            if self.queue is not None:
                raise ValueError("'queue' applies to transfers to a queue")
        elif self.number is not None:
            raise ValueError("'number' applies to transfers to a number")
        return self


class RecordStep(_StepBase):
    """Record a voicemail or a callback request; the recording creates a Case via an action."""

    type: Literal["record"]
    purpose: Literal["voicemail", "callback"]
    prompts: Prompts
    """Said before the beep (include the recording consent notice)."""
    max_length: Annotated[int, Field(ge=5, le=600)] = 120
    """Longest recording in seconds."""
    finish_on_key: Literal["#", "*", ""] = "#"
    play_beep: bool = True
    action: Name = "create_case"
    """Action run with the recording (``recording_url``, ``recording_duration`` and ``purpose``
    are passed to it)."""
    next: Target


class SmsStep(_StepBase):
    """Send a text message (Russian, with variables) and go on."""

    type: Literal["sms"]
    template: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    """Message text with ``{variables}`` and format specifiers."""
    to: str = "caller"
    """``caller`` (the other party of the call), an E.164 number or a ``{variable}``."""
    next: Target

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str) -> str:
        if value == "caller" or re.fullmatch(_PHONE_OR_VARIABLE, value):
            return value
        raise ValueError(f"'to' must be caller, an E.164 number or a {{variable}}, got {value!r}")


class HangupStep(_StepBase):
    """End the call, optionally after a goodbye."""

    type: Literal["hangup"]
    prompts: Prompts | None = None


#: Any step, discriminated by ``type``.
Step = Annotated[
    SayStep
    | MenuStep
    | CollectStep
    | ActionStep
    | BranchStep
    | GotoStep
    | SubflowStep
    | ReturnStep
    | TransferStep
    | RecordStep
    | SmsStep
    | HangupStep,
    Field(discriminator="type"),
]

#: Step types that take input from the caller.
INPUT_STEP_TYPES: tuple[type[_InputStepBase], ...] = (MenuStep, CollectStep)


class Flow(_Model):
    """A named graph of steps."""

    description: str = ""
    start: Name
    """First step."""
    params: tuple[Name, ...] = ()
    """Variables whoever starts or calls this flow provides (e.g. an outbound campaign sets
    ``account_number``, ``debt``, ``due_date`` for ``debt_reminder``)."""
    record_calls: bool = True
    """Record the whole call when an inbound call starts this flow (the greeting must say
    so); false turns recording off for this flow. Outbound calls are not recorded."""
    steps: Annotated[dict[Name, Step], Field(min_length=1)]


class FlowSet(_Model):
    """A whole flow file."""

    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    prompts: dict[Name, Prompts] = Field(default_factory=dict)
    """Reusable named prompts."""
    flows: Annotated[dict[Name, Flow], Field(min_length=1)]

    def step(self, flow: str, step: str) -> Step:
        """The step ``step`` of flow ``flow``; raises ``KeyError`` when there is none."""
        return self.flows[flow].steps[step]

    def resolve(self, target: str, current_flow: str) -> tuple[str, str]:
        """Resolve a target used in ``current_flow`` to ``(flow, step)``."""
        return split_target(target, current_flow)

    def iter_steps(self) -> Iterator[tuple[str, str, Step]]:
        """Every ``(flow name, step name, step)`` in file order."""
        for flow_name, flow in self.flows.items():
            for step_name, step in flow.steps.items():
                yield flow_name, step_name, step


def flow_json_schema() -> dict[str, Any]:
    """JSON Schema of flow files (for editors' YAML language servers)."""
    schema = FlowSet.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "IVR call flows (call_flows.yaml)"
    return schema
