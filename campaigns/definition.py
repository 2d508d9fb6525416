"""Campaign definitions: the YAML file / API payload schema and its validation.

A definition says *who* (audience filters or an imported list of account numbers), *how*
(channel, voice flow, SMS template, answering-machine policy), *when* (dates, daily window,
contact policy overrides), *how fast* (pacing) and *how often* (retry policy per outcome).
Errors come back as a :class:`~campaigns.errors.DefinitionError` listing
:class:`~campaigns.errors.FieldIssue` values (dotted field path, message and, for a YAML file,
the line), never as a pydantic traceback. Example::

    name: Долг декабрь
    channel: voice_then_sms
    audience: {min_debt: 1000, min_days_overdue: 30, not_contacted_days: 7}
    voice: {flow: debt_reminder, amd_policy: hangup_retry}
    sms: {template: "{supplier}: долг {amount} по ЛС {account}. {due_phrase} {pay_url}"}
    schedule: {start: 2026-12-01, end: 2026-12-20, daily_window: "10:00-19:00"}
    pacing: {calls_per_second: 2, max_concurrent: 20}
    retry: {busy: {retry_after: 30m, max_attempts: 3}, no_answer: {retry_after: 2h}}
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from campaigns.compliance import (
    CALL_CAPS,
    NON_WORKING_DAY_WINDOW,
    SMS_CAPS,
    WORKING_DAY_WINDOW,
    ContactPolicy,
    DailyWindow,
    FrequencyCaps,
    Purpose,
)
from campaigns.errors import DefinitionError, FieldIssue, PolicyError, TemplateError
from campaigns.sms import LINK_VARIABLES, MAX_SEGMENTS, SAMPLE_VARIABLES, render, template_fields
from contactcenter.phones import InvalidPhoneError, normalize_phone
from telephony.sms import count_segments

# --------------------------------------------------------------------------- value types

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")


def _parse_duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a duration like 30m, 2h, 1d or a number of seconds")  # noqa: TRY004 - pydantic turns ValueError into a field error
    if isinstance(value, int):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 30m, 2h, 1d or 90s")
        return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def _parse_window(value: Any) -> Any:
    if isinstance(value, str):
        match = _WINDOW.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a window like 09:00-20:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h2 == 24 and m2 == 0:
            h2, m2 = 23, 59
        try:
            return DailyWindow(dt.time(h1, m1), dt.time(h2, m2))
        except PolicyError as exc:
            raise ValueError(str(exc)) from None
        except ValueError:
            raise ValueError(f"{value!r} has an impossible time") from None
    if isinstance(value, Mapping):
        return _parse_window(f"{value.get('start')}-{value.get('end')}")
    return value


def _window_text(window: DailyWindow) -> str:
    return f"{window.start:%H:%M}-{window.end:%H:%M}"


Duration = Annotated[dt.timedelta, BeforeValidator(_parse_duration)]
Window = Annotated[DailyWindow, BeforeValidator(_parse_window)]


class CampaignChannel(StrEnum):
    """How a campaign contacts its targets: by call, by SMS, or a call then an SMS."""

    VOICE = "voice"
    SMS = "sms"
    VOICE_THEN_SMS = "voice_then_sms"


class AmdPolicy(StrEnum):
    """What to do when an answering machine picks up."""

    LEAVE_MESSAGE = "leave_message"
    HANGUP_RETRY = "hangup_retry"


class RetryOutcome(StrEnum):
    """Attempt outcomes that may be retried."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    MACHINE = "machine"
    MACHINE_MESSAGE = "machine_message"


DEFAULT_MACHINE_MESSAGE = "Это {supplier}. Пожалуйста, перезвоните по номеру {callback_number}."
"""The answering-machine message of ``leave_message``: neutral, no personal data."""

AGING_BUCKETS = ("0-30", "31-90", "91+")
"""Aging buckets of the ledger (≤30 / 31–90 / >90 days overdue)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections


class MeterFilter(_Model):
    """Meter type filter: number of tariff zones and/or remote reading."""

    zones: list[Annotated[int, Field(ge=1, le=3)]] | None = None
    remote_read: bool | None = None


class Audience(_Model):
    """Who is targeted. Filters combine with AND; ``accounts`` replaces the query."""

    min_debt: Decimal | None = Field(default=None, ge=0)
    min_days_overdue: int | None = Field(default=None, ge=0)
    aging_buckets: list[Literal["0-30", "31-90", "91+"]] | None = None
    regions: list[str] | None = None
    timezones: list[str] | None = None
    meter: MeterFilter | None = None
    consent_purpose: Literal["service_notice", "debt_notice", "marketing", "e_receipt"] | None = (
        None
    )
    not_contacted_days: int | None = Field(default=None, ge=1, le=365)
    accounts: list[str] | None = Field(default=None, min_length=1)
    """An imported list of account numbers (normalised like the CRM's ``Account.number``)."""

    @field_validator("timezones")
    @classmethod
    def _known_zones(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {name!r}") from None
        return value

    @model_validator(mode="after")
    def _some_filter(self) -> Audience:
        if self.accounts is None and not any(
            getattr(self, name) is not None
            for name in ("min_debt", "min_days_overdue", "aging_buckets")
        ):
            raise ValueError(
                "give a debt filter (min_debt, min_days_overdue or aging_buckets)"
                " or an imported list of accounts"
            )
        return self


class VoiceSettings(_Model):
    """The call: which IVR flow plays, caller ID, answering-machine handling."""

    flow: str = "debt_reminder"
    from_number: str | None = None
    machine_detection: bool = True
    amd_policy: AmdPolicy = AmdPolicy.LEAVE_MESSAGE
    machine_message: str = Field(default=DEFAULT_MACHINE_MESSAGE, min_length=1, max_length=500)
    """What ``leave_message`` says to an answering machine: ``{supplier}`` and
    ``{callback_number}`` are filled in; it must name no person, amount or account."""
    callback_number: str | None = None
    """The number the machine message asks to call back (default: ``from_number``)."""
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    time_limit_s: int = Field(default=300, ge=30, le=3600)

    @field_validator("machine_message")
    @classmethod
    def _neutral(cls, value: str) -> str:
        unknown = {name for _, name, _, _ in Formatter().parse(value) if name} - {
            "supplier",
            "callback_number",
        }
        if unknown:
            raise ValueError(
                "machine_message may use only {supplier} and {callback_number} "
                f"(no personal data on an answering machine), not {sorted(unknown)}"
            )
        return value

    @field_validator("from_number", "callback_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_phone(value)
        except InvalidPhoneError as exc:
            raise ValueError(str(exc)) from None


class SmsSettings(_Model):
    """The message: a Russian template with ``{variables}``."""

    template: str = Field(min_length=1, max_length=1000)
    from_: str | None = Field(default=None, alias="from")
    max_segments: int = Field(default=2, ge=1, le=MAX_SEGMENTS)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _renders(self) -> SmsSettings:
        try:
            text = render(self.template, SAMPLE_VARIABLES)
        except TemplateError as exc:
            raise ValueError(
                f"template: {exc}; known variables: {', '.join(sorted(SAMPLE_VARIABLES))}"
            ) from None
        segments = count_segments(text)[2]
        if segments > self.max_segments:
            raise ValueError(
                f"template renders to {segments} SMS parts with sample values,"
                f" more than max_segments={self.max_segments}"
            )
        return self


class Schedule(_Model):
    """Dates (inclusive, in the consumer's local calendar) and the daily window."""

    start: dt.date | None = None
    end: dt.date | None = None
    daily_window: Window | None = None

    @field_serializer("daily_window")
    def _window_text(self, value: DailyWindow | None) -> str | None:
        return None if value is None else _window_text(value)

    @model_validator(mode="after")
    def _order(self) -> Schedule:
        if self.start and self.end and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class Caps(_Model):
    """Frequency caps per local day / week / month."""

    day: int = Field(ge=0)
    week: int = Field(ge=0)
    month: int = Field(ge=0)

    def to_caps(self) -> FrequencyCaps:
        """As a :class:`~campaigns.compliance.FrequencyCaps`."""
        return FrequencyCaps(self.day, self.week, self.month)


class PolicySettings(_Model):
    """Overrides of the tenant's contact policy (defaults: 230-ФЗ)."""

    working_day_window: Window = WORKING_DAY_WINDOW
    non_working_day_window: Window = NON_WORKING_DAY_WINDOW
    call_caps: Caps = Caps(
        day=CALL_CAPS.per_day, week=CALL_CAPS.per_week, month=CALL_CAPS.per_month
    )
    sms_caps: Caps = Caps(day=SMS_CAPS.per_day, week=SMS_CAPS.per_week, month=SMS_CAPS.per_month)

    @field_serializer("working_day_window", "non_working_day_window")
    def _window_text(self, value: DailyWindow) -> str:
        return _window_text(value)


class Pacing(_Model):
    """Speed limits of this campaign and of all campaigns together."""

    calls_per_second: float = Field(default=1.0, gt=0, le=100)
    max_concurrent: int = Field(default=10, ge=1, le=1000)
    global_calls_per_second: float = Field(default=1.0, gt=0, le=100)
    global_max_concurrent: int = Field(default=30, ge=1, le=5000)
    sms_per_second: float = Field(default=5.0, gt=0, le=1000)


class RetryRule(_Model):
    """Retry an outcome after ``retry_after``, up to ``max_attempts`` attempts in total."""

    retry_after: Duration = dt.timedelta(hours=1)
    max_attempts: int = Field(default=3, ge=1, le=20)

    @field_serializer("retry_after")
    def _retry_seconds(self, value: dt.timedelta) -> int:
        return int(value.total_seconds())

    @field_validator("retry_after")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(minutes=1):
            raise ValueError("retry_after must be at least 1 minute")
        return value


class RetryPolicy(_Model):
    """Retry rules per outcome."""

    busy: RetryRule = RetryRule(retry_after=dt.timedelta(minutes=30), max_attempts=3)
    no_answer: RetryRule = RetryRule(retry_after=dt.timedelta(hours=2), max_attempts=3)
    failed: RetryRule = RetryRule(retry_after=dt.timedelta(hours=1), max_attempts=2)
    machine: RetryRule = RetryRule(retry_after=dt.timedelta(hours=4), max_attempts=2)
    machine_message: RetryRule = RetryRule(retry_after=dt.timedelta(hours=24), max_attempts=2)
    """After a neutral message was left on a machine: call again (a person must hear the
    notice); once exhausted the target is done (the message was left)."""

    def rule_for(self, outcome: RetryOutcome | str) -> RetryRule:
        """The rule of an outcome."""
        rule: RetryRule = getattr(self, str(outcome))
        return rule


class CampaignDefinition(_Model):
    """A whole campaign definition (YAML file or ``POST /api/campaigns`` body)."""

    name: str = Field(min_length=1, max_length=200)
    channel: CampaignChannel
    purpose: Purpose = Purpose.DEBT_NOTICE
    audience: Audience
    voice: VoiceSettings | None = None
    sms: SmsSettings | None = None
    schedule: Schedule = Schedule()
    policy: PolicySettings = PolicySettings()
    pacing: Pacing = Pacing()
    retry: RetryPolicy = RetryPolicy()
    control_group_percent: float = Field(default=0, ge=0, le=50)
    attribution_days: int = Field(default=14, ge=1, le=90)

    @model_validator(mode="before")
    @classmethod
    def _default_voice(cls, data: Any) -> Any:
        voice_channel = isinstance(data, Mapping) and data.get("channel") in (
            "voice",
            "voice_then_sms",
        )
        if voice_channel and data.get("voice") is None:
            return {**data, "voice": {}}
        return data

    @model_validator(mode="after")
    def _channel_needs(self) -> CampaignDefinition:
        if (
            self.channel in (CampaignChannel.SMS, CampaignChannel.VOICE_THEN_SMS)
            and self.sms is None
        ):
            raise ValueError(f"channel {self.channel} needs an sms section with a template")
        if self.channel is CampaignChannel.SMS and self.voice is not None:
            raise ValueError("channel sms takes no voice section")
        if self.purpose is Purpose.MARKETING and self.channel is not CampaignChannel.SMS:
            raise ValueError("auto-dialled marketing calls are prohibited (38-ФЗ ст. 18)")
        return self

    def contact_policy(self) -> ContactPolicy:
        """The effective contact policy: overrides narrowed to the daily window."""
        policy = ContactPolicy(
            working_day_window=self.policy.working_day_window,
            non_working_day_window=self.policy.non_working_day_window,
            call_caps=self.policy.call_caps.to_caps(),
            sms_caps=self.policy.sms_caps.to_caps(),
        )
        return policy.narrowed_to(self.schedule.daily_window)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (stored in ``Campaign.definition``, re-parsed by :func:`parse`)."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Map every key path of a YAML document to its 1-based line (best effort)."""
    lines: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                key_path = (*path, str(key.value))
                lines[key_path] = key.start_mark.line + 1
                walk(value, key_path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return lines


def _issues_from(exc: ValidationError, lines: Mapping[tuple[str, ...], int]) -> list[FieldIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        # pydantic puts union/literal branch names in loc; keep the data keys only.
        path = tuple(p for p in loc if not p.startswith(("function-", "constrained-")))
        message = str(err["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in lines:
                line = lines[path[:n]]
                break
        issues.append(FieldIssue(".".join(path), message, line))
    return issues


# --------------------------------------------------------------------------- entry points


def parse_definition(
    data: Any,
    *,
    flow_names: Collection[str] | None = None,
    lines: Mapping[tuple[str, ...], int] | None = None,
    source: str | None = None,
    link_variables: Collection[str] | None = None,
) -> CampaignDefinition:
    """Validate a parsed payload; raise :class:`DefinitionError` listing every problem.

    ``flow_names`` are the flows of ``call_flows.yaml``; when given, the voice flow must be
    one of them. ``link_variables`` are the payment-link variables the settings can fill
    (:func:`campaigns.sms.link_variables`); when given, the SMS template may use no other.
    """
    if not isinstance(data, Mapping):
        raise DefinitionError([FieldIssue("", "a campaign definition must be a mapping")], source)
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(_issues_from(exc, lines or {}), source) from None
    voice = definition.voice
    if flow_names is not None and voice is not None and voice.flow not in flow_names:
        known = ", ".join(sorted(flow_names)) or "none"
        line = (lines or {}).get(("voice", "flow"))
        issue = FieldIssue(
            "voice.flow", f"no flow {voice.flow!r} in call_flows.yaml ({known})", line
        )
        raise DefinitionError([issue], source)
    if link_variables is not None and definition.sms is not None:
        unset = [
            name
            for name in template_fields(definition.sms.template)
            if name in LINK_VARIABLES and name not in link_variables
        ]
        if unset:
            issue = FieldIssue(
                "sms.template",
                f"{{{unset[0]}}} needs {LINK_VARIABLES[unset[0]]}, which is not set",
                (lines or {}).get(("sms", "template")),
            )
            raise DefinitionError([issue], source)
    return definition


def parse_definition_text(
    text: str,
    *,
    flow_names: Collection[str] | None = None,
    source: str = "<definition>",
    link_variables: Collection[str] | None = None,
) -> CampaignDefinition:
    """Parse YAML (or JSON) text; errors carry YAML line numbers."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(
            [FieldIssue("", f"not valid YAML: {problem}", line)], source
        ) from None
    except ValueError as exc:  # e.g. an impossible date like 2026-02-30
        raise DefinitionError([FieldIssue("", f"not valid YAML: {exc}")], source) from None
    return parse_definition(
        data,
        flow_names=flow_names,
        lines=_line_map(text),
        source=source,
        link_variables=link_variables,
    )


def load_definition(
    path: str | Path,
    *,
    flow_names: Collection[str] | None = None,
    link_variables: Collection[str] | None = None,
) -> CampaignDefinition:
    """Read and validate a campaign YAML file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(
            [FieldIssue("", f"cannot read file ({exc.strerror})")], str(file)
        ) from None
    return parse_definition_text(
        text, flow_names=flow_names, source=str(file), link_variables=link_variables
    )


def flow_names_in(flows_file: str | Path) -> frozenset[str] | None:
    """Names under ``flows:`` in a flows YAML file, or None if the file does not exist."""
    file = Path(flows_file)
    if not file.is_file():
        return None
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError):
        return frozenset()
    flows = data.get("flows") if isinstance(data, Mapping) else None
    return frozenset(str(k) for k in flows) if isinstance(flows, Mapping) else frozenset()
