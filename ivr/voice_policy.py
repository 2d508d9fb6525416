"""Voice input: what the runtime can serve, and which grammar each voice step is heard with.

The engine never touches a speech model. The runtime tells it what it can serve through a
:class:`SpeechPolicy` (the usable model's language, the capture modes, what plays the
prompts of barge-in steps); the engine picks a step's :class:`VoiceGrammar` with
:func:`step_grammar` and renders the capture (``<Record>``, ``<Start><Stream>``, or
``<Connect><Stream>`` for a step with ``barge_in``: :func:`wants_barge_in`); the runtime
recognises the audio with :func:`session_grammar` and answers with a
:class:`ivr.events.VoiceInput`. The capture's parameters and the ``ev`` values of its
webhooks are the contract between the two, defined here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ivr.schema import CollectStep, FlowSet, MenuStep
from ivr.session import CallSession
from ivr.twiml import Prompt

__all__ = [
    "EV_LISTEN",
    "EV_RECORD",
    "EV_SPEECH",
    "PROMPT_MARK",
    "RECORD_SILENCE_S",
    "SAY_CHARS_PER_S",
    "VALUE_GRAMMARS",
    "VOICE_MAX_SECONDS",
    "VOICE_UNAVAILABLE_PROMPT",
    "CaptureMode",
    "PromptAudio",
    "SpeechPolicy",
    "VoiceGrammar",
    "barge_in_steps",
    "session_grammar",
    "speech_lang",
    "step_grammar",
    "voice_steps",
    "wants_barge_in",
]

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

#: The mark a bidirectional stream sends after its prompt audio: its echo means the caller
#: has heard the whole prompt (the no-input timer starts then).
PROMPT_MARK = "prompt"

CaptureMode = Literal["record", "stream"]


class PromptAudio(Protocol):
    """Makes the audio of a barge-in step's prompts ready for its bidirectional stream
    (:class:`ivr.prompt_stream.PromptAudioStore`)."""

    def prepare(self, prompts: Sequence[Prompt]) -> str | None:
        """The key the websocket loads the prompts' audio by; None when they cannot be
        played by us (no text-to-speech, a ``<Play>`` of a foreign URL): the step then
        falls back to a one-way stream with the provider playing the prompts."""
        ...


@dataclass(frozen=True)
class SpeechPolicy:
    """What voice input the runtime can serve; the engine itself never touches a model.

    ``lang``: the language of the usable speech model (``ru``), None when there is none —
    voice steps then run keypad-only after :data:`VOICE_UNAVAILABLE_PROMPT`. ``capture``
    forces one capture mode for every voice step (the simulator's ``--capture``); otherwise
    a collect step's ``capture`` or ``default_capture`` applies, and menus use
    ``menu_capture`` — ``stream`` by default, because its keypad ``<Gather>`` runs in
    parallel (Twilio drops a key pressed into an empty ``<Record>``). ``stream_url`` is the
    ``wss://`` URL of our ``/media-stream`` websocket. ``prompt_audio`` plays the prompts of
    barge-in steps over ``<Connect><Stream>`` (None: those steps use one-way streams).
    """

    lang: str | None = None
    capture: CaptureMode | None = None
    default_capture: CaptureMode = "record"
    menu_capture: CaptureMode = "stream"
    stream_url: str = ""
    prompt_audio: PromptAudio | None = None


@dataclass(frozen=True)
class VoiceGrammar:
    """The recognizer grammar of a voice step: kind (``speech.grammar``), language, keywords."""

    kind: str
    lang: str
    keywords: tuple[str, ...] = ()


#: The ``speech.grammar`` kind a ``collect`` value is recognised (and parsed) with.
VALUE_GRAMMARS: Mapping[str, str] = {
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
    kind = VALUE_GRAMMARS.get(step.value)
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


def wants_barge_in(flowset: FlowSet, step: MenuStep | CollectStep) -> bool:
    """Whether the flow asks for speech barge-in on ``step`` (its ``barge_in``, else the
    flow file's default)."""
    return flowset.defaults.barge_in if step.barge_in is None else step.barge_in


def barge_in_steps(flowset: FlowSet) -> list[str]:
    """The ``flow:step`` names that ask for barge-in and can honour it (speech input, a
    grammar, no ``capture: record``): those whose prompts our server must be able to play."""
    found = []
    for flow, name, step in flowset.iter_steps():
        if (
            isinstance(step, MenuStep | CollectStep)
            and step.input != "dtmf"
            and wants_barge_in(flowset, step)
            and not (isinstance(step, CollectStep) and step.capture == "record")
            and step_grammar(flowset, step) is not None
        ):
            found.append(f"{flow}:{name}")
    return found
