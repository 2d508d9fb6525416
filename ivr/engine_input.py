"""Input steps (``menu`` and ``collect``): gathering, type-ahead, choices, values, retries.

:class:`InputSteps` renders an input step's ``<Gather>`` (or hands it to a voice capture,
:mod:`ivr.engine_voice`) and acts on what comes back: universal commands (operator /
repeat), keypad type-ahead (digits typed beyond what a step consumed are kept for the next
input step), menu choices by key or keyword, values parsed, validated and maybe read back
for confirmation, and no-input / no-match counting with tapered reprompts and escalation.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from ivr.engine_run import RunBase, StopRun, step_name
from ivr.events import Heard, Input, StepRecord
from ivr.input_values import (
    KEYPAD_PROBLEMS,
    MASK,
    has_phrase,
    is_secret,
    keypad_problem,
    parse_keypad,
    parse_speech,
    parse_yes_no,
    speech_problem,
    spoken,
)
from ivr.schema import CollectStep, ConfirmBelow, InputHandler, MenuStep
from ivr.twiml import Gather, Prompt, Say
from ivr.voice_policy import VOICE_UNAVAILABLE_PROMPT, step_grammar

__all__ = [
    "CONFIRM_PROMPT",
    "MAX_INPUT_VISITS",
    "SPEECH_END_SILENCE_S",
    "VOICE_CONFIRM_PROMPT",
    "InputSteps",
]

#: Seconds of silence that end an utterance. A number, not ``auto``: Twilio rejects ``auto``
#: with some speech models (warning 13335).
SPEECH_END_SILENCE_S = 2
#: An input step asked this often in one call means the caller is stuck: operator.
MAX_INPUT_VISITS = 10
CONFIRM_PROMPT = "Вы ввели: {value}. Если верно, нажмите 1. Если нет, нажмите 2."
VOICE_CONFIRM_PROMPT = "Вы назвали: {value}. Верно?"


class InputSteps(RunBase):
    """The ``menu`` and ``collect`` steps of a run."""

    @abstractmethod
    def voice_capture(
        self,
        step: MenuStep | CollectStep,
        prompts: list[Prompt],
        mode: str,
        confirming: bool,
    ) -> None:
        """Render a ``record`` or ``stream`` capture of the current step."""

    def gather_for(
        self,
        step: MenuStep | CollectStep,
        prompts: list[Prompt],
        *,
        confirm: bool = False,
        keypad_only: bool = False,
        on_empty: bool = True,
    ) -> Gather:
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
        return Gather(
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

    def step_prompts(self, step: MenuStep | CollectStep) -> list[Prompt]:
        """The input step's own prompts."""
        return self.prompts(step.prompts, voice=step.voice, language=step.language)

    def confirm_prompts(self, step: CollectStep, *, by_voice: bool = False) -> list[Prompt]:
        """The read-back prompt of a captured value (``by_voice``: the answer may be spoken)."""
        if step.confirm_prompts is not None:
            return self.prompts(step.confirm_prompts, voice=step.voice, language=step.language)
        pending = self.s.pending or {}
        value = pending.get("spoken", "")
        template = VOICE_CONFIRM_PROMPT if by_voice else CONFIRM_PROMPT
        return [
            Say(
                template.format(value=value),
                voice=step.voice or self.e.defaults.voice,
                language=step.language or self.e.defaults.language,
            )
        ]

    def input_mode(self, step: MenuStep | CollectStep, confirming: bool) -> str:
        """How the step takes input now: ``dtmf``, ``gather`` (Twilio's own recognizer,
        without a speech policy), ``record``, ``stream`` or ``unavailable`` (voice asked
        for but not servable: keypad after the notice)."""
        if step.input == "dtmf":
            return "dtmf"
        policy = self.e.speech
        if policy is None:
            return "gather"
        if self.s.keypad_step == step_name(self.s):
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

    def wait_for_input(
        self,
        step: MenuStep | CollectStep,
        lead: list[Prompt] | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        """Consume type-ahead if it completes the step, else render the input verbs and stop.

        ``quiet`` leaves the step's prompt out (the caller is in the middle of an entry).
        """
        if self.s.typeahead and self.typeahead_complete(step):
            digits, self.s.typeahead = self.s.typeahead, ""
            self.out.steps.append(StepRecord(step_name(self.s), "typeahead"))
            self.on_input(Input(digits=digits), from_typeahead=True)
            return
        name = step_name(self.s)
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
        raise StopRun

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
        name = step_name(self.s)

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
            secret = isinstance(step, CollectStep) and is_secret(step.into)
            text = MASK if secret else speech
            self.out.heard.append(Heard(name, text, event.confidence, decision, event.audio_ref))

    def dispatch(
        self,
        step: MenuStep | CollectStep,
        digits: str,
        speech: str | None,
        confidence: float | None,
        confirming: bool,
    ) -> None:
        """Act on non-empty input: a universal command, a confirmation, a choice or a value."""
        name = step_name(self.s)
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
        if any(has_phrase(text, w) for w in u.operator_keywords):
            return "operator"
        if any(has_phrase(text, w) for w in u.repeat_keywords):
            return "repeat"
        return None

    def failed(
        self, step: MenuStep | CollectStep, kind: str, hint: list[Prompt] | None = None
    ) -> None:
        """Count a no-input / no-match; reprompt (tapered) or escalate."""
        d = self.e.defaults
        if self.voice and kind == "no_match":
            # Misheard or implausible speech: the retry is by keypad.
            self.s.keypad_step = step_name(self.s)
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
            self.out.steps.append(StepRecord(step_name(self.s), "escalate", outcome=kind))
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
                (o for o in step.options if any(has_phrase(text, k.lower()) for k in o.keywords)),
                None,
            )
        if option is None:
            self.s.typeahead = ""
            self.out.steps.append(StepRecord(step_name(self.s), "no_match", input=heard))
            self.failed(step, "no_match")
            return
        if option.intent:
            self.s.variables["intent"] = option.intent
        self.out.steps.append(
            StepRecord(step_name(self.s), "input", input=heard, outcome=option.goto)
        )
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
        name = step_name(self.s)
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
        shown = MASK if is_secret(step.into) else heard
        if value is None:
            self.s.typeahead = ""
            problem = (
                keypad_problem(step, entry)
                if digits
                else speech_problem(step, speech or "", self.lang(step))
            )
            self.out.steps.append(StepRecord(name, "no_match", input=shown))
            # the reprompt says why: too many digits is not the same mistake as a star
            reason: list[Prompt] | None = (
                [self.say_text(KEYPAD_PROBLEMS[problem])] if problem else None
            )
            self.failed(step, "no_match", reason)
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
                hint: list[Prompt] | None = [self.say_text(str(message))] if message else None
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
        self.out.steps.append(
            StepRecord(step_name(self.s), "input", input=shown, outcome="accepted")
        )
        self.goto(step.next)
        self.run()

    def on_confirmation(self, step: CollectStep, digits: str, speech: str | None) -> None:
        """1/да accepts the pending value, 2/нет asks again."""
        answer: bool | None
        if digits:
            self.s.typeahead = digits[1:] + self.s.typeahead
            answer = {"1": True, "2": False}.get(digits[0])
        else:
            answer = parse_yes_no(speech or "", self.lang(step))
        pending = self.s.pending or {}
        value = pending.get("value")
        shown = MASK if is_secret(step.into) else str(pending.get("spoken", ""))
        if answer is None:
            self.s.typeahead = ""
            self.out.steps.append(
                StepRecord(step_name(self.s), "no_match", input=digits[:1] or speech)
            )
            self.failed(step, "no_match")
            return
        if answer:
            self.out.steps.append(
                StepRecord(step_name(self.s), "confirm", input=digits[:1] or speech, outcome="yes")
            )
            self.accept(step, value, shown)
            return
        self.out.steps.append(
            StepRecord(step_name(self.s), "confirm", input=digits[:1] or speech, outcome="no")
        )
        self.s.variables.pop(step.into, None)
        self.s.pending = None
        self.s.typeahead = ""
        self.wait_for_input(step)
