"""Simulator scripts: a call's steps and expectations in YAML, for the CLI and for tests.

::

    from: "+79161234501"          # optional, default +79161234501
    to: "+78001234567"            # optional
    capture: record               # optional: record | stream (checked on every `say`)
    reading_window: [1, 31]       # optional: the days readings are accepted (in-process app)
    steps:
      - press: "1"
      - say: ../fixtures/audio/ru/account_7700112233.wav   # relative to the script
        text: "семь семь ноль ноль"                        # optional SpeechResult
      - say_text: "да"
      - wait                                                # silence: the timeout path
      - expect_heard: "принят"
      - expect_step: "hotline:reading"
      - expect_reading: {account: "7700112233", value: 12345, zone: "T1"}
      - hangup

Expectations are checked when reached (``expect_heard`` against everything heard so far);
``expect_reading`` looks for a meter reading stored in the CRM since the call started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from crm_store.db import Database
from crm_store.models import Account, AuditLog, Meter, MeterReading
from devtools.sandbox.scenario import read_yaml
from devtools.simulator import SimulatedCall, Simulator, SimulatorError

INPUT_STEPS = ("press", "say", "say_text", "wait", "hangup")
EXPECT_STEPS = ("expect_heard", "expect_step", "expect_reading", "expect_ended")
CAPTURE_MODES = ("record", "stream")
DTMF_KEYS = frozenset("0123456789*#")


class ScriptError(ValueError):
    """The script is invalid; the message says where."""


@dataclass(frozen=True)
class Step:
    """One step: ``kind`` is an input (press, say …) or an expectation (expect_…)."""

    kind: str
    value: Any = None
    text: str = ""
    where: str = ""


@dataclass(frozen=True)
class Script:
    """A parsed script."""

    from_: str = "+79161234501"
    to: str = "+78001234567"
    capture: str | None = None
    steps: tuple[Step, ...] = ()
    #: The reading window (first, last day of the month) the in-process app runs with, so a
    #: script that submits readings passes on any day; None: the settings' window.
    reading_window: tuple[int, int] | None = None


@dataclass(frozen=True)
class Check:
    """The outcome of one expectation."""

    description: str
    ok: bool
    detail: str = ""


@dataclass
class ScriptResult:
    """The call a script made and its checks."""

    call: SimulatedCall
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every expectation held."""
        return all(c.ok for c in self.checks)


def check_keys(keys: str, where: str = "press") -> str:
    """``keys`` when they are DTMF keys (0-9, * and #); else :class:`ScriptError`."""
    if not keys or any(k not in DTMF_KEYS for k in keys):
        raise ScriptError(f"{where}: DTMF keys are 0-9, * and #, got {keys!r}")
    return keys


def _step(raw: Any, where: str, base_dir: Path | None) -> Step:
    if isinstance(raw, str):
        if raw in ("wait", "silence", "hangup"):
            return Step("wait" if raw == "silence" else raw, where=where)
        raise ScriptError(f"{where}: unknown step {raw!r}")
    if not isinstance(raw, Mapping) or not raw:
        raise ScriptError(f"{where}: a step is a word (wait, hangup) or a one-key mapping")
    keys = [k for k in raw if k != "text"]
    if len(keys) != 1 or keys[0] not in INPUT_STEPS + EXPECT_STEPS:
        raise ScriptError(
            f"{where}: expected one of {', '.join(INPUT_STEPS + EXPECT_STEPS)}, got {list(raw)}"
        )
    kind = keys[0]
    value = raw[kind]
    if "text" in raw and kind != "say":
        raise ScriptError(f"{where}: 'text' goes only with 'say'")
    if kind == "press":
        value = check_keys(str(value), where)
    elif kind == "say":
        path = Path(str(value))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        value = path
    elif kind in ("say_text", "expect_heard", "expect_step"):
        if not isinstance(value, str | int) or str(value).strip() == "":
            raise ScriptError(f"{where}: {kind} needs a text")
        value = str(value)
    elif kind == "expect_reading":
        if not isinstance(value, Mapping) or "value" not in value:
            raise ScriptError(f"{where}: expect_reading needs a mapping with 'value'")
        unknown = set(value) - {"account", "value", "zone"}
        if unknown:
            raise ScriptError(f"{where}: unknown keys {sorted(unknown)} in expect_reading")
        try:
            value = {**value, "value": int(value["value"])}
        except (TypeError, ValueError):
            raise ScriptError(f"{where}: expect_reading value must be an integer") from None
    elif kind == "expect_ended":
        value = bool(value)
    return Step(kind, value, str(raw.get("text", "")), where)


def parse_script(raw: Any, base_dir: Path | None = None, name: str = "script") -> Script:
    """Parse the dict form of a script; raises :class:`ScriptError`."""
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{name}: expected a mapping")
    unknown = set(raw) - {"from", "to", "capture", "steps", "reading_window"}
    if unknown:
        raise ScriptError(f"{name}: unknown keys {sorted(unknown)}")
    capture = raw.get("capture")
    if capture is not None and capture not in CAPTURE_MODES:
        raise ScriptError(f"{name}: capture must be record or stream")
    steps_raw = raw.get("steps") or []
    if not isinstance(steps_raw, list):
        raise ScriptError(f"{name}: steps must be a list")
    steps = tuple(_step(item, f"{name}: steps[{i}]", base_dir) for i, item in enumerate(steps_raw))
    return Script(
        from_=str(raw.get("from", Script.from_)),
        to=str(raw.get("to", Script.to)),
        capture=capture,
        steps=steps,
        reading_window=_reading_window(raw.get("reading_window"), name),
    )


def _reading_window(raw: Any, name: str) -> tuple[int, int] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw)
        or not 1 <= raw[0] <= raw[1] <= 31
    ):
        raise ScriptError(f"{name}: reading_window must be [first day, last day] within 1..31")
    return (raw[0], raw[1])


def load_script(path: str | Path) -> Script:
    """Read a script file (audio paths are relative to it)."""
    p = Path(path)
    return parse_script(read_yaml(p, ScriptError) or {}, base_dir=p.parent, name=str(p))


def find_reading(
    db: Database, since: datetime, value: int, account: str | None, zone: str | None
) -> bool:
    """Whether a reading with ``value`` (and account number / zone) was stored since ``since``."""
    query = (
        select(MeterReading.id)
        .join(Meter, MeterReading.meter_id == Meter.id)
        .join(Account, Meter.account_id == Account.id)
        .where(MeterReading.value == value, MeterReading.submitted_at >= since)
    )
    if account:
        query = query.where(Account.number == account)
    if zone:
        query = query.where(MeterReading.zone == zone)
    with db.session() as session:
        return session.execute(query.limit(1)).first() is not None


def crm_changes(db: Database, since: datetime) -> list[str]:
    """Audit-log summary of what changed in the CRM since ``since``: ``entity action × n``."""
    query = (
        select(AuditLog.entity, AuditLog.action, func.count())
        .where(AuditLog.at >= since)
        .group_by(AuditLog.entity, AuditLog.action)
        .order_by(AuditLog.entity, AuditLog.action)
    )
    with db.session() as session:
        return [f"{entity} {action} × {n}" for entity, action, n in session.execute(query)]


def _capture_check(call: SimulatedCall, capture: str, where: str) -> Check | None:
    waiting = call.waiting_for
    kind = waiting.kind if waiting is not None else "nothing"
    if capture == "record" and kind != "record":
        return Check(f"{where}: capture by <Record>", False, f"the call was waiting for {kind}")
    if capture == "stream" and kind != "stream" and not call.live.streams:
        return Check(f"{where}: capture by Media Streams", False, "no media stream was open")
    return None


def run_script(
    sim: Simulator, script: Script, *, db: Database | None = None, since: datetime | None = None
) -> ScriptResult:
    """Place the script's call, play its steps, check its expectations.

    The caller hangs up after the last step if the call is still going. CRM rows are
    looked for from ``since`` (default: now, wall-clock UTC — the simulator's clock may be
    virtual).
    """
    started = since or datetime.now(UTC)
    call = sim.call(from_=script.from_, to=script.to)
    result = ScriptResult(call)
    for step in script.steps:
        if step.kind in INPUT_STEPS:
            if call.ended:
                if step.kind != "hangup":
                    result.checks.append(
                        Check(f"{step.where}: {step.kind}", False, "the call had already ended")
                    )
                continue
            if step.kind == "say" and script.capture:
                bad = _capture_check(call, script.capture, step.where)
                if bad is not None:
                    result.checks.append(bad)
            try:
                if step.kind == "press":
                    call.press(step.value)
                elif step.kind == "say":
                    call.say(step.value, text=step.text)
                elif step.kind == "say_text":
                    call.say_text(step.value)
                elif step.kind == "wait":
                    call.wait_silence()
                else:
                    call.hangup()
            except SimulatorError as exc:
                result.checks.append(Check(f"{step.where}: {step.kind}", False, str(exc)))
            continue
        result.checks.append(_expect(call, step, db, started))
    call.hangup()
    return result


def _expect(call: SimulatedCall, step: Step, db: Database | None, since: datetime) -> Check:
    if step.kind == "expect_heard":
        ok = call.heard(step.value)
        return Check(f"heard «{step.value}»", ok, "" if ok else "not among the prompts")
    if step.kind == "expect_step":
        ok = step.value in call.steps
        detail = "" if ok else f"steps reported: {', '.join(call.steps) or 'none (no X-IVR-Step)'}"
        return Check(f"step {step.value}", ok, detail)
    if step.kind == "expect_ended":
        ok = call.ended == step.value
        return Check(f"call {'ended' if step.value else 'still going'}", ok, call.status)
    spec = step.value
    desc = f"reading {spec['value']}" + (
        f" for account {spec['account']}" if "account" in spec else ""
    )
    if db is None:
        return Check(desc, False, "no CRM database available (use the in-process app)")
    ok = find_reading(db, since, spec["value"], spec.get("account"), spec.get("zone"))
    return Check(desc, ok, "" if ok else "no such reading was stored during the call")
