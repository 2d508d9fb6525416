"""Scripted outcomes: what happens to each outbound call and SMS in the sandbox.

A scenario is a dict (or a YAML file, see ``devtools/README.md``)::

    seed: 7
    calls:
      default: {answer: human, ring_s: 4}
      numbers:
        "+79161234501": {answer: machine, machine_end: beep}
        "+79161234502": {answer: human, hangup_after_s: 6, inputs: ["1", {say: "да"}]}
      random:
        - {weight: 70, answer: human}
        - {weight: 30, answer: no-answer}
    sms:
      default: {status: delivered}
      numbers: {"+79161234503": {status: undelivered, error_code: 30003}}

Numbers listed under ``numbers`` use their entry; the others draw from ``random`` (when
given) with a generator seeded by ``seed``, the number and the attempt count, so a run is
deterministic whatever order the calls are placed in; else ``default`` applies.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contactcenter.phones import InvalidPhoneError, normalize_phone
from devtools.sandbox.audio import AudioError, read_wav
from devtools.sandbox.twiml import CallerAction

ANSWERS = ("human", "machine", "fax", "unknown", "busy", "no-answer", "failed")
MACHINE_ENDS = ("beep", "silence", "other")
DIAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
QUEUE_RESULTS = ("bridged", "hangup", "leave", "queue-full", "redirected", "system-error")
SMS_STATUSES = ("delivered", "undelivered", "failed")
DEFAULT_SMS_ERRORS = {"undelivered": 30003, "failed": 30008}


class ScenarioError(ValueError):
    """The scenario is invalid; the message says where."""


def read_yaml(path: Path, error: type[ValueError]) -> Any:
    """Parse a YAML file; a missing file or bad YAML raises ``error`` naming the file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None


@dataclass(frozen=True)
class CallOutcome:
    """How one outbound call goes."""

    answer: str = "human"
    ring_s: float = 5.0
    machine_end: str = "beep"
    detection_s: float = 3.0
    greeting_s: float = 12.0
    hangup_after_s: float | None = None
    hangup_after_verbs: int | None = None
    inputs: tuple[CallerAction, ...] = ()
    dial_status: str = "completed"
    queue_result: str = "bridged"

    @property
    def answered(self) -> bool:
        """Whether the call is picked up (by a person or a machine)."""
        return self.answer in ("human", "machine", "fax", "unknown")

    def answered_by(self, machine_detection: str | None) -> str:
        """The AMD ``AnsweredBy`` value for this outcome and detection mode."""
        if self.answer in ("human", "fax", "unknown"):
            return self.answer
        if machine_detection == "DetectMessageEnd":
            return f"machine_end_{self.machine_end}"
        return "machine_start"


@dataclass(frozen=True)
class SmsOutcome:
    """How one SMS goes: its final status and Twilio error code."""

    status: str = "delivered"
    error_code: int | None = None


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ScenarioError(f"{where}: {message}")


def parse_input(raw: Any, where: str, base_dir: Path | None = None) -> CallerAction:
    """One callee input: ``"123#"``, ``silence``, ``hangup``, ``{press: …}``,
    ``{say: text, confidence: 0.8}`` or ``{audio: file.wav, text: …}``."""
    try:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if isinstance(raw, str):
            if raw in ("silence", "wait"):
                return CallerAction.silence()
            if raw == "hangup":
                return CallerAction.hangup()
            return CallerAction.press(raw)
        _check(isinstance(raw, Mapping), where, f"expected a string or a mapping, got {raw!r}")
        if "press" in raw:
            return CallerAction.press(str(raw["press"]))
        if "say" in raw:
            return CallerAction.speech(str(raw["say"]), float(raw.get("confidence", 0.92)))
        if "audio" in raw:
            path = Path(str(raw["audio"]))
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            return CallerAction(
                "audio",
                str(raw.get("text", "")),
                float(raw.get("confidence", 0.92)),
                audio=read_wav(path),
                label=path.name,
            )
    except (ValueError, TypeError, AudioError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"{where}: {exc}") from None
    raise ScenarioError(f"{where}: expected press, say or audio in {dict(raw)!r}")


_CALL_KEYS = {
    "answer",
    "ring_s",
    "machine_end",
    "detection_s",
    "greeting_s",
    "hangup_after_s",
    "hangup_after_verbs",
    "inputs",
    "dial_status",
    "queue_result",
    "weight",
}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_call_outcome(
    raw: Mapping[str, Any], where: str, base_dir: Path | None = None
) -> CallOutcome:
    """A :class:`CallOutcome` from its dict form."""
    _check(isinstance(raw, Mapping), where, "expected a mapping")
    unknown = set(raw) - _CALL_KEYS
    _check(not unknown, where, f"unknown keys {sorted(unknown)}")
    answer = str(raw.get("answer", "human"))
    _check(answer in ANSWERS, where, f"answer must be one of {', '.join(ANSWERS)}")
    machine_end = str(raw.get("machine_end", "beep"))
    _check(machine_end in MACHINE_ENDS, where, f"machine_end must be one of {MACHINE_ENDS}")
    dial_status = str(raw.get("dial_status", "completed"))
    _check(dial_status in DIAL_STATUSES, where, f"dial_status must be one of {DIAL_STATUSES}")
    queue_result = str(raw.get("queue_result", "bridged"))
    _check(queue_result in QUEUE_RESULTS, where, f"queue_result must be one of {QUEUE_RESULTS}")
    inputs_raw = raw.get("inputs", [])
    _check(isinstance(inputs_raw, list), where, "inputs must be a list")
    try:
        outcome = CallOutcome(
            answer=answer,
            ring_s=float(raw.get("ring_s", 5.0)),
            machine_end=machine_end,
            detection_s=float(raw.get("detection_s", 3.0)),
            greeting_s=float(raw.get("greeting_s", 12.0)),
            hangup_after_s=_opt_float(raw.get("hangup_after_s")),
            hangup_after_verbs=_opt_int(raw.get("hangup_after_verbs")),
            inputs=tuple(
                parse_input(item, f"{where}.inputs[{i}]", base_dir)
                for i, item in enumerate(inputs_raw)
            ),
            dial_status=dial_status,
            queue_result=queue_result,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"{where}: {exc}") from None
    _check(outcome.ring_s >= 0, where, "ring_s must not be negative")
    return outcome


def parse_sms_outcome(raw: Mapping[str, Any], where: str) -> SmsOutcome:
    """An :class:`SmsOutcome` from its dict form."""
    _check(isinstance(raw, Mapping), where, "expected a mapping")
    unknown = set(raw) - {"status", "error_code", "weight"}
    _check(not unknown, where, f"unknown keys {sorted(unknown)}")
    status = str(raw.get("status", "delivered"))
    _check(status in SMS_STATUSES, where, f"status must be one of {', '.join(SMS_STATUSES)}")
    code = raw.get("error_code", DEFAULT_SMS_ERRORS.get(status))
    return SmsOutcome(status, None if code is None else int(code))


@dataclass
class _Table:
    default: Any
    numbers: dict[str, Any] = field(default_factory=dict)
    weighted: list[tuple[float, Any]] = field(default_factory=list)


def _numbers(raw: Any, where: str) -> dict[str, Any]:
    _check(isinstance(raw, Mapping), where, "expected a mapping of phone number to outcome")
    out: dict[str, Any] = {}
    for number, value in raw.items():
        try:
            out[normalize_phone(str(number), require_russian=False)] = value
        except InvalidPhoneError as exc:
            raise ScenarioError(f"{where}: {number!r}: {exc}") from None
    return out


def _weighted(raw: Any, where: str) -> list[tuple[float, Any]]:
    _check(isinstance(raw, list), where, "expected a list of outcomes with a weight")
    out: list[tuple[float, Any]] = []
    for i, item in enumerate(raw):
        _check(isinstance(item, Mapping), f"{where}[{i}]", "expected a mapping")
        weight = float(item.get("weight", 1))
        _check(weight > 0, f"{where}[{i}]", "weight must be positive")
        out.append((weight, item))
    return out


class Scenario:
    """Deterministic scripted outcomes for calls and messages."""

    def __init__(
        self,
        *,
        seed: int = 0,
        call_default: CallOutcome | None = None,
        call_numbers: Mapping[str, CallOutcome] | None = None,
        call_random: Sequence[tuple[float, CallOutcome]] = (),
        sms_default: SmsOutcome | None = None,
        sms_numbers: Mapping[str, SmsOutcome] | None = None,
        sms_random: Sequence[tuple[float, SmsOutcome]] = (),
    ) -> None:
        self.seed = seed
        self._calls = _Table(call_default or CallOutcome(), dict(call_numbers or {}))
        self._calls.weighted = list(call_random)
        self._sms = _Table(sms_default or SmsOutcome(), dict(sms_numbers or {}))
        self._sms.weighted = list(sms_random)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], base_dir: Path | None = None) -> Scenario:
        """Build from the documented dict form; raises :class:`ScenarioError`."""
        _check(isinstance(raw, Mapping), "scenario", "expected a mapping")
        unknown = set(raw) - {"seed", "calls", "sms"}
        _check(not unknown, "scenario", f"unknown keys {sorted(unknown)}")
        calls = raw.get("calls") or {}
        sms = raw.get("sms") or {}
        _check(isinstance(calls, Mapping), "calls", "expected a mapping")
        _check(isinstance(sms, Mapping), "sms", "expected a mapping")
        for name, section in (("calls", calls), ("sms", sms)):
            extra = set(section) - {"default", "numbers", "random"}
            _check(not extra, name, f"unknown keys {sorted(extra)}")
        try:
            seed = int(raw.get("seed", 0))
        except (TypeError, ValueError):
            raise ScenarioError("seed: must be an integer") from None
        return cls(
            seed=seed,
            call_default=parse_call_outcome(calls.get("default") or {}, "calls.default", base_dir),
            call_numbers={
                n: parse_call_outcome(v or {}, f"calls.numbers.{n}", base_dir)
                for n, v in _numbers(calls.get("numbers") or {}, "calls.numbers").items()
            },
            call_random=[
                (w, parse_call_outcome(v, f"calls.random[{i}]", base_dir))
                for i, (w, v) in enumerate(_weighted(calls.get("random") or [], "calls.random"))
            ],
            sms_default=parse_sms_outcome(sms.get("default") or {}, "sms.default"),
            sms_numbers={
                n: parse_sms_outcome(v or {}, f"sms.numbers.{n}")
                for n, v in _numbers(sms.get("numbers") or {}, "sms.numbers").items()
            },
            sms_random=[
                (w, parse_sms_outcome(v, f"sms.random[{i}]"))
                for i, (w, v) in enumerate(_weighted(sms.get("random") or [], "sms.random"))
            ],
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> Scenario:
        """Load a scenario file; audio paths are relative to the file."""
        p = Path(path)
        return cls.from_dict(read_yaml(p, ScenarioError) or {}, base_dir=p.parent)

    def _pick(self, table: _Table, number: str, attempt: int) -> Any:
        if number in table.numbers:
            return table.numbers[number]
        if not table.weighted:
            return table.default
        rng = random.Random(f"{self.seed}:{number}:{attempt}")  # noqa: S311 - scripted test data
        total = sum(w for w, _ in table.weighted)
        point = rng.uniform(0, total)
        for weight, value in table.weighted:
            point -= weight
            if point <= 0:
                return value
        return table.weighted[-1][1]

    def call_outcome(self, number: str, attempt: int = 1) -> CallOutcome:
        """The outcome of the ``attempt``-th call to ``number``."""
        outcome: CallOutcome = self._pick(self._calls, number, attempt)
        return outcome

    def sms_outcome(self, number: str, attempt: int = 1) -> SmsOutcome:
        """The outcome of the ``attempt``-th SMS to ``number``."""
        outcome: SmsOutcome = self._pick(self._sms, number, attempt)
        return outcome
