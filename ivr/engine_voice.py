"""Voice capture of input steps by our own recognizer: ``<Record>`` or a media stream.

With a :class:`ivr.voice_policy.SpeechPolicy`, a voice step is captured either by
``<Record>`` (prompts, then a recording the runtime recognises) or by ``<Start><Stream>``
(the call's audio goes to our ``/media-stream`` websocket while a keypad ``<Gather>`` runs in
parallel, with a fall-through ``<Redirect>``). A step with ``barge_in`` whose prompts our
server can play (:class:`ivr.voice_policy.PromptAudio`) is captured by ``<Connect><Stream>``
instead: the websocket plays the prompt, cuts it when the caller talks or presses a key,
collects the keys and closes, and Twilio goes on with the ``<Redirect>`` after it
(``ev=speech``); without prompt audio such a step falls back to ``<Start><Stream>``.
Either way the runtime comes back with a :class:`ivr.events.VoiceInput`, handled here: a
key pressed wins, a failed recognition goes on by keypad after a spoken notice (once per
call), silence and misheard speech count as no-input / no-match, and recognised text is
handled like a ``<Gather>``'s speech.
"""

from __future__ import annotations

import logging

from ivr.engine_input import InputSteps
from ivr.engine_run import step_name
from ivr.errors import ActionFailed
from ivr.events import Heard, Input, StepRecord, VoiceInput
from ivr.schema import CollectStep, MenuStep
from ivr.twiml import ConnectStream, Play, Prompt, Record, Redirect, Say, StartStream
from ivr.voice_policy import (
    EV_LISTEN,
    EV_RECORD,
    EV_SPEECH,
    PROMPT_MARK,
    RECORD_SILENCE_S,
    SAY_CHARS_PER_S,
    VOICE_MAX_SECONDS,
    VOICE_UNAVAILABLE_PROMPT,
    step_grammar,
    wants_barge_in,
)

__all__ = ["VoiceSteps"]

log = logging.getLogger(__name__)
#: Barge-in steps already logged as falling back to a one-way stream (once per process).
_FALLBACK_LOGGED: set[str] = set()


class VoiceSteps(InputSteps):
    """Input steps with voice captured by ``<Record>`` or a media stream."""

    def input_mode(self, step: MenuStep | CollectStep, confirming: bool) -> str:
        """As :meth:`InputSteps.input_mode`, except that a ``collect`` with ``barge_in`` and
        no ``capture`` of its own streams (a ``<Record>`` cannot be interrupted)."""
        mode = super().input_mode(step, confirming)
        policy = self.e.speech
        if (
            mode == "record"
            and isinstance(step, CollectStep)
            and step.capture is None
            and policy is not None
            and policy.capture is None
            and wants_barge_in(self.e.flowset, step)
        ):
            return "stream"
        return mode

    def voice_capture(
        self,
        step: MenuStep | CollectStep,
        prompts: list[Prompt],
        mode: str,
        confirming: bool,
    ) -> None:
        """Render a ``record`` or ``stream`` capture of the current step."""
        if mode == "record":
            self.out.verbs.extend(prompts)
            self.out.verbs.append(
                Record(
                    action=self.e.action_url(self.s, EV_RECORD),
                    max_length=VOICE_MAX_SECONDS,
                    timeout=RECORD_SILENCE_S,
                    finish_on_key="0123456789*#",
                    play_beep=False,
                    trim="trim-silence",
                )
            )
            # An empty recording falls through to here: a no-input.
            self.out.verbs.append(Redirect(self.e.action_url(self.s, EV_RECORD)))
            return
        policy = self.e.speech
        grammar = step_grammar(
            self.e.flowset, step, confirming=confirming and isinstance(step, CollectStep)
        )
        if policy is None or grammar is None:  # pragma: no cover - input_mode checked both
            raise ActionFailed(f"no stream capture possible at {step_name(self.s)}")
        seq = self.s.version + 1
        name = f"capture-{seq}"
        said = sum(len(p.text) for p in prompts if isinstance(p, Say))
        played = sum(3 for p in prompts if isinstance(p, Play))
        common: tuple[tuple[str, str], ...] = (
            ("grammar", grammar.kind),
            ("lang", grammar.lang),
            ("keywords", ",".join(grammar.keywords)),
            ("call_sid", self.s.call_sid),
            ("step_token", f"{self.s.flow}:{self.s.step}:{seq}"),
        )
        if grammar.kind == "digits" and isinstance(step, CollectStep) and step.max_length:
            # The value's length: the recognizer ends the utterance once it holds all digits.
            common += (("max_digits", str(step.max_length)),)
            if step.min_length:
                common += (("min_digits", str(step.min_length)),)
        if wants_barge_in(self.e.flowset, step):
            key = policy.prompt_audio.prepare(prompts) if policy.prompt_audio else None
            if key is not None:
                self.connect_capture(step, name, common, key, confirming)
                return
            label = step_name(self.s)
            if label not in _FALLBACK_LOGGED:
                _FALLBACK_LOGGED.add(label)
                log.warning(
                    "barge-in step %s: its prompts cannot be played by us; the provider "
                    "plays them on a one-way stream (speech does not interrupt them)",
                    label,
                )
        parameters = (*common, ("prompt_seconds", f"{said / SAY_CHARS_PER_S + played:.1f}"))
        self.out.verbs.append(StartStream(policy.stream_url, name, parameters))
        self.out.verbs.append(
            self.gather_for(step, prompts, confirm=confirming, keypad_only=True, on_empty=False)
        )
        self.out.verbs.append(Redirect(self.e.action_url(self.s, EV_LISTEN)))
        self.s.stream = name

    def connect_capture(
        self,
        step: MenuStep | CollectStep,
        name: str,
        common: tuple[tuple[str, str], ...],
        prompt_key: str,
        confirming: bool,
    ) -> None:
        """Render the ``<Connect><Stream>`` of a barge-in step and its fall-through.

        The websocket plays the prepared prompt (``prompt``) and sends ``prompt_mark`` after
        it; the no-input timer (``no_input_s``) starts when that mark comes back. Keys end
        the capture: they are collected on the socket until ``keys_max`` keys, the
        ``keys_end`` key or ``keys_gap`` seconds without a key (what the step's keypad
        ``<Gather>`` would take), then handed over as type-ahead, so none is lost.
        """
        policy = self.e.speech
        assert policy is not None  # noqa: S101 - voice_capture checked it
        d = self.e.defaults
        keypad = self.gather_for(step, [], confirm=confirming, keypad_only=True)
        if isinstance(step, MenuStep) or confirming or step.value == "yes_no":
            keys_max, keys_end = 1, ""
        else:
            keys_end = d.finish_on_key if step.finish_on_key is None else step.finish_on_key
            fixed = step.min_length is not None and step.min_length == step.max_length
            keys_max = step.max_length if fixed and step.max_length else 0
        parameters = (
            *common,
            ("prompt", prompt_key),
            ("prompt_mark", PROMPT_MARK),
            ("no_input_s", str(step.timeout or d.timeout)),
            ("keys_max", str(keys_max)),
            ("keys_end", keys_end),
            ("keys_gap", str(keypad.timeout)),
        )
        self.out.verbs.append(ConnectStream(policy.stream_url, name, parameters))
        # Twilio runs this once the websocket closed (a result or keys stored, or a failure).
        self.out.verbs.append(Redirect(self.e.action_url(self.s, EV_SPEECH)))

    def on_voice(self, event: VoiceInput) -> None:
        """Handle what our recognizer made of a voice capture of the current input step."""
        step = self.e.flowset.step(self.s.flow, self.s.step)
        if not isinstance(step, MenuStep | CollectStep):
            self.run()
            return
        name = step_name(self.s)
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
            lead: list[Prompt] = []
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
