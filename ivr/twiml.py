"""TwiML verbs as plain values, and their rendering to XML.

The engine produces a list of the dataclasses below (easy to assert on in tests); the
webhooks render them with :func:`render` through the official ``twilio`` TwiML builder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

DEFAULT_LANGUAGE = "ru-RU"
DEFAULT_VOICE = "Polly.Tatyana"


@dataclass(frozen=True)
class Say:
    """Speak ``text`` with text-to-speech."""

    text: str
    voice: str = DEFAULT_VOICE
    language: str = DEFAULT_LANGUAGE
    loop: int = 1


@dataclass(frozen=True)
class Play:
    """Play an audio file."""

    url: str
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    """Silence for ``length`` seconds."""

    length: int = 1


Prompt = Say | Play | Pause


@dataclass(frozen=True)
class Gather:
    """Collect keypad (and/or speech) input while playing ``prompts``.

    ``action_on_empty_result`` is always rendered true so that no input comes back to us
    (Twilio would otherwise fall through to the next verb).
    """

    action: str
    prompts: tuple[Prompt, ...] = ()
    input: str = "dtmf"
    num_digits: int | None = None
    finish_on_key: str = "#"
    timeout: int = 5
    language: str = DEFAULT_LANGUAGE
    speech_timeout: str | None = None
    hints: str | None = None
    action_on_empty_result: bool = True
    """False lets Twilio fall through to the next verb on no input (stream capture)."""


@dataclass(frozen=True)
class Record:
    """Record the caller (voicemail, callback request, voice capture of an input step)."""

    action: str
    max_length: int = 120
    timeout: int = 5
    finish_on_key: str = "#"
    play_beep: bool = True
    trim: str | None = None
    """``trim-silence`` drops leading and trailing silence; None keeps Twilio's default."""


@dataclass(frozen=True)
class StartStream:
    """``<Start><Stream>``: fork the caller's audio to our websocket; TwiML goes on at once.

    ``parameters`` become ``<Parameter name value>`` children (``start.customParameters``).
    """

    url: str
    name: str
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ConnectStream:
    """``<Connect><Stream>``: a bidirectional stream to our websocket; Twilio runs no more
    TwiML until the socket closes, then goes on with the verb after it.

    Twilio plays nothing of ours meanwhile: the app sends the prompt audio over the socket.
    ``parameters`` become ``<Parameter name value>`` children (``start.customParameters``).
    Only the inbound track is streamed (the only track ``<Connect>`` accepts).
    """

    url: str
    name: str
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StopStream:
    """``<Stop><Stream name>``: end the stream a previous answer started."""

    name: str


@dataclass(frozen=True)
class Enqueue:
    """Put the caller into an operator queue, with the call's context as a JSON task.

    With ``workflow_sid`` the call goes to that TaskRouter workflow (no queue name is
    rendered) and the context becomes the task's attributes.
    """

    queue: str
    action: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    wait_url: str | None = None
    workflow_sid: str | None = None


@dataclass(frozen=True)
class Dial:
    """Connect the caller to a phone number (e.g. the grid company)."""

    number: str
    action: str | None = None
    timeout: int = 30
    caller_id: str | None = None
    whisper_url: str | None = None
    """``<Number url>``: TwiML the called party hears before being bridged (a whisper)."""


@dataclass(frozen=True)
class Redirect:
    """Continue the call with the TwiML at ``url``."""

    url: str


@dataclass(frozen=True)
class Hangup:
    """End the call."""


Verb = (
    Say
    | Play
    | Pause
    | Gather
    | Record
    | Enqueue
    | Dial
    | Redirect
    | Hangup
    | StartStream
    | ConnectStream
    | StopStream
)


def _add_prompt(target: Any, prompt: Prompt) -> None:
    if isinstance(prompt, Say):
        target.say(
            prompt.text, voice=prompt.voice, language=prompt.language, loop=_loop(prompt.loop)
        )
    elif isinstance(prompt, Play):
        target.play(prompt.url, loop=_loop(prompt.loop))
    else:
        target.pause(length=prompt.length)


def _loop(loop: int) -> int | None:
    return None if loop == 1 else loop


def render(verbs: list[Verb] | tuple[Verb, ...]) -> str:
    """The TwiML document (``<Response>…``) for ``verbs``."""
    response = VoiceResponse()
    for verb in verbs:
        if isinstance(verb, Say | Play | Pause):
            _add_prompt(response, verb)
        elif isinstance(verb, Gather):
            gather = response.gather(
                action=verb.action,
                method="POST",
                input=verb.input,
                num_digits=verb.num_digits,
                finish_on_key=verb.finish_on_key,
                timeout=verb.timeout,
                language=verb.language,
                speech_timeout=verb.speech_timeout,
                hints=verb.hints,
                action_on_empty_result=True if verb.action_on_empty_result else None,
            )
            for prompt in verb.prompts:
                _add_prompt(gather, prompt)
        elif isinstance(verb, Record):
            response.record(
                action=verb.action,
                method="POST",
                max_length=verb.max_length,
                timeout=verb.timeout,
                finish_on_key=verb.finish_on_key,
                play_beep=verb.play_beep,
                trim=verb.trim,
            )
        elif isinstance(verb, StartStream):
            stream = response.start().stream(url=verb.url, name=verb.name)
            for name, value in verb.parameters:
                stream.parameter(name=name, value=value)
        elif isinstance(verb, ConnectStream):
            stream = response.connect().stream(url=verb.url, name=verb.name)
            for name, value in verb.parameters:
                stream.parameter(name=name, value=value)
        elif isinstance(verb, StopStream):
            response.stop().stream(name=verb.name)
        elif isinstance(verb, Enqueue):
            enqueue = response.enqueue(
                None if verb.workflow_sid else verb.queue,
                action=verb.action,
                method="POST" if verb.action else None,
                wait_url=verb.wait_url,
                workflow_sid=verb.workflow_sid,
            )
            if verb.context:
                enqueue.task(json.dumps(verb.context, ensure_ascii=False, sort_keys=True))
        elif isinstance(verb, Dial):
            dial = response.dial(
                action=verb.action,
                method="POST" if verb.action else None,
                timeout=verb.timeout,
                caller_id=verb.caller_id,
            )
            dial.number(
                verb.number,
                url=verb.whisper_url,
                method="POST" if verb.whisper_url else None,
            )
        elif isinstance(verb, Redirect):
            response.redirect(verb.url, method="POST")
        else:
            response.hangup()
    return str(response)


OUTAGE_APOLOGY = "Извините, сервис временно недоступен. Соединяю с оператором."
FALLBACK_APOLOGY = "Извините, произошла техническая ошибка. Соединяю с оператором."


def apology_transfer(message: str, queue: str, *, context: dict[str, Any] | None = None) -> str:
    """TwiML that apologises in Russian and puts the caller in the operator queue."""
    return render([Say(message), Enqueue(queue, context=context or {})])
