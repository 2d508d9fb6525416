"""A campaign definition from the console's form or an uploaded YAML file, with the errors
placed where a person fixes them.

:func:`definition_from_form` turns the form's fields into the definition payload of
:mod:`campaigns.definition` (each field converted and range-checked with a Russian message
next to it), validates it with :func:`~campaigns.definition.parse_definition`, and maps every
remaining issue back to its field (:data:`PATH_FIELDS`). :func:`definition_from_upload`
checks an uploaded file (size, name, UTF-8 text) and validates it with
:func:`~campaigns.definition.parse_definition_text`, whose issues carry their YAML line.
Both refuse a definition whose audience reaches beyond the user's regions
(:func:`region_issue`): a region-scoped supervisor creates only campaigns confined to their
own regions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from campaigns.definition import CampaignDefinition, parse_definition, parse_definition_text
from campaigns.errors import DefinitionError, FieldIssue
from crm_store.access import Scope

#: The largest definition file accepted.
MAX_UPLOAD_BYTES = 64 * 1024
UPLOAD_SUFFIXES = (".yaml", ".yml", ".json")
#: The form-wide error's key in :attr:`FormResult.errors`.
FORM = "__all__"

CHANNELS = ("voice", "sms", "voice_then_sms")
PURPOSES = ("debt_notice", "service_notice")
AMD_POLICIES = ("leave_message", "hangup_retry")
AGING = ("0-30", "31-90", "91+")

#: Issue paths of :mod:`campaigns.definition` → the form field showing them (the longest
#: matching path prefix wins; an unmatched issue is form-wide).
PATH_FIELDS: dict[str, str] = {
    "name": "name",
    "channel": "channel",
    "purpose": "purpose",
    "audience": "min_debt",
    "audience.min_debt": "min_debt",
    "audience.min_days_overdue": "min_days_overdue",
    "audience.aging_buckets": "aging_buckets",
    "audience.regions": "regions",
    "audience.not_contacted_days": "not_contacted_days",
    "voice": "voice_flow",
    "voice.flow": "voice_flow",
    "voice.amd_policy": "amd_policy",
    "sms": "sms_template",
    "sms.template": "sms_template",
    "schedule": "end",
    "schedule.start": "start",
    "schedule.end": "end",
    "schedule.daily_window": "daily_window",
    "pacing.calls_per_second": "calls_per_second",
    "pacing.max_concurrent": "max_concurrent",
    "pacing.sms_per_second": "sms_per_second",
    "control_group_percent": "control_group_percent",
    "attribution_days": "attribution_days",
}

_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (r"^Input should be greater than or equal to (.+)$", r"должно быть не меньше \1"),
        (r"^Input should be less than or equal to (.+)$", r"должно быть не больше \1"),
        (r"^Input should be greater than (.+)$", r"должно быть больше \1"),
        (r"^Input should be less than (.+)$", r"должно быть меньше \1"),
        (r"^Field required$", "обязательное поле"),
        (r"^unknown field$", "неизвестное поле"),
        (r"^String should have at least 1 character$", "не может быть пустым"),
        (r"^String should have at most (\d+) characters?$", r"не длиннее \1 символов"),
        (r"^Input should be a valid number.*$", "должно быть числом"),
        (r"^Input should be a valid integer.*$", "должно быть целым числом"),
        (r"^Input should be a valid date.*$", "должно быть датой ГГГГ-ММ-ДД"),
        (r"^Input should be a valid list$", "должно быть списком"),
        (r"^Input should be (.+)$", r"допустимые значения: \1"),
        (r"^end must not be before start$", "окончание не может быть раньше начала"),
        (
            r"^give a debt filter .*$",
            (
                "укажите фильтр по долгу (минимальный долг, дни просрочки или группы просрочки)"
                " или список лицевых счетов"
            ),
        ),
        (r"^not valid YAML: (.+)$", r"это не YAML: \1"),
    )
)


def russian_message(message: str) -> str:
    """A validator's message in Russian when it is one of the usual ones, else as it is."""
    for pattern, text in _MESSAGES:
        if pattern.match(message):
            return pattern.sub(text, message)
    return message


@dataclass
class FormResult:
    """The outcome of a form or an upload: the definition, or the errors (field → messages;
    ``issues`` keeps the definition's own issues with their YAML lines)."""

    definition: CampaignDefinition | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    issues: list[FieldIssue] = field(default_factory=list)
    text: str = ""

    def add(self, name: str, message: str) -> None:
        """One more error of field ``name``."""
        self.errors.setdefault(name, []).append(message)

    @property
    def ok(self) -> bool:
        """True when the definition is valid."""
        return self.definition is not None and not self.errors and not self.issues


def field_of(path: str) -> str:
    """The form field that shows an issue at ``path`` (:data:`FORM` when none does)."""
    parts = path.split(".") if path else []
    for n in range(len(parts), 0, -1):
        found = PATH_FIELDS.get(".".join(parts[:n]))
        if found is not None:
            return found
    return FORM


def region_issue(scope: Scope, definition: CampaignDefinition) -> str | None:
    """Why ``scope`` may not create ``definition`` (its audience reaches beyond the user's
    regions), or None."""
    return regions_issue(scope, definition.audience.regions)


def regions_issue(scope: Scope, regions: Sequence[str] | None) -> str | None:
    """Why ``scope`` may not create a campaign for ``regions`` (None: every region), or None."""
    if scope.covers_regions(regions):
        return None
    own = ", ".join(sorted(scope.regions or ())) or "нет"
    if not regions:
        return f"укажите регионы аудитории: вам доступны только ваши регионы ({own})"
    outside = ", ".join(sorted(set(regions) - set(scope.regions or ())))
    return f"регионы вне вашей зоны: {outside} (доступны: {own})"


# --------------------------------------------------------------------------- the form


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return str(value).strip() if value is not None else ""


def _decimal(result: FormResult, form: Mapping[str, Any], name: str) -> Decimal | None:
    raw = _text(form, name).replace(",", ".").replace(" ", "")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        result.add(name, "введите число")
        return None
    if not value.is_finite() or value < 0:
        result.add(name, "введите неотрицательное число")
        return None
    return value


def _int(result: FormResult, form: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    raw = _text(form, name)
    if not raw:
        return None
    if not (raw.isascii() and raw.lstrip("-").isdigit()):
        result.add(name, "введите целое число")
        return None
    value = int(raw)
    if not low <= value <= high:
        result.add(name, f"введите число от {low} до {high}")
        return None
    return value


def _float(
    result: FormResult, form: Mapping[str, Any], name: str, low: float, high: float
) -> float | None:
    raw = _text(form, name).replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        result.add(name, "введите число")
        return None
    if not (low <= value <= high):
        result.add(name, f"введите число от {low:g} до {high:g}")
        return None
    return value


def _date(result: FormResult, form: Mapping[str, Any], name: str) -> str | None:
    raw = _text(form, name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        result.add(name, "введите дату в виде ГГГГ-ММ-ДД")
        return None


def _choice(
    result: FormResult, form: Mapping[str, Any], name: str, allowed: Sequence[str]
) -> str | None:
    raw = _text(form, name)
    if not raw:
        return None
    if raw not in allowed:
        result.add(name, "выберите значение из списка")
        return None
    return raw


def _list(form: Any, name: str) -> list[str]:
    getter = getattr(form, "getlist", None)
    values = getter(name) if getter is not None else form.get(name) or []
    if isinstance(values, str):
        values = [values]
    return [str(v).strip() for v in values if str(v).strip()]


def payload_from_form(form: Any, result: FormResult) -> dict[str, Any]:
    """The definition payload of the form's fields (conversion errors go to ``result``)."""
    channel = _choice(result, form, "channel", CHANNELS)
    audience: dict[str, Any] = {}
    min_debt = _decimal(result, form, "min_debt")
    if min_debt is not None:
        audience["min_debt"] = str(min_debt)
    for name, high in (("min_days_overdue", 3650), ("not_contacted_days", 365)):
        value = _int(result, form, name, 0 if name == "min_days_overdue" else 1, high)
        if value is not None:
            audience[name] = value
    buckets = _list(form, "aging_buckets")
    if any(b not in AGING for b in buckets):
        result.add("aging_buckets", "выберите значение из списка")
    elif buckets:
        audience["aging_buckets"] = buckets
    regions = _list(form, "regions")
    if regions:
        audience["regions"] = regions
    payload: dict[str, Any] = {
        "name": _text(form, "name"),
        "channel": channel or _text(form, "channel"),
        "audience": audience,
    }
    purpose = _choice(result, form, "purpose", PURPOSES)
    if purpose is not None:
        payload["purpose"] = purpose
    if channel in ("voice", "voice_then_sms"):
        voice: dict[str, Any] = {}
        flow = _text(form, "voice_flow")
        if flow:
            voice["flow"] = flow
        amd = _choice(result, form, "amd_policy", AMD_POLICIES)
        if amd is not None:
            voice["amd_policy"] = amd
        payload["voice"] = voice
    template = _text(form, "sms_template")
    if channel in ("sms", "voice_then_sms") or template:
        payload["sms"] = {"template": template}
    schedule: dict[str, Any] = {}
    for name in ("start", "end"):
        day = _date(result, form, name)
        if day is not None:
            schedule[name] = day
    window = _text(form, "daily_window")
    if window:
        schedule["daily_window"] = window
    if schedule:
        payload["schedule"] = schedule
    pacing: dict[str, Any] = {}
    rates = (("calls_per_second", 0.01, 100.0), ("sms_per_second", 0.01, 1000.0))
    for name, slowest, fastest in rates:
        rate = _float(result, form, name, slowest, fastest)
        if rate is not None:
            pacing[name] = rate
    concurrent = _int(result, form, "max_concurrent", 1, 1000)
    if concurrent is not None:
        pacing["max_concurrent"] = concurrent
    if pacing:
        payload["pacing"] = pacing
    control = _float(result, form, "control_group_percent", 0, 50)
    if control is not None:
        payload["control_group_percent"] = control
    days = _int(result, form, "attribution_days", 1, 90)
    if days is not None:
        payload["attribution_days"] = days
    return payload


def definition_from_form(
    form: Any,
    scope: Scope,
    *,
    flow_names: Collection[str] | None = None,
    link_variables: Collection[str] | None = None,
) -> FormResult:
    """Validate the console form (a ``MultiDict`` or a mapping) into a definition."""
    result = FormResult()
    payload = payload_from_form(form, result)
    if not payload["name"]:
        result.add("name", "введите название кампании")
    if not payload["channel"]:
        result.add("channel", "выберите канал")
    problem = regions_issue(scope, payload["audience"].get("regions"))
    if problem is not None:
        result.add("regions", problem)
    unreadable = set(result.errors)  # the validator's view of these fields adds nothing
    try:
        definition = parse_definition(payload, flow_names=flow_names, link_variables=link_variables)
    except DefinitionError as exc:
        for issue in exc.issues:
            name = field_of(issue.path)
            message = russian_message(issue.message)
            if name not in unreadable and message not in result.errors.get(name, []):
                result.add(name, message)
        return result
    if result.errors:
        return result
    result.definition = definition
    return result


# --------------------------------------------------------------------------- the upload


def _line_of(text: str, path: Sequence[str]) -> int | None:
    """The line of a key path in a YAML document (None when it is not there)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return line
        for key_node, value in node.value:
            if str(key_node.value) == key:
                line = key_node.start_mark.line + 1
                node = value
                break
        else:
            return line
    return line


def definition_from_upload(
    filename: str,
    data: bytes,
    scope: Scope,
    *,
    flow_names: Collection[str] | None = None,
    link_variables: Collection[str] | None = None,
) -> FormResult:
    """Validate an uploaded definition file; its issues keep their YAML lines."""
    result = FormResult()
    name = (filename or "").strip()
    if not name:
        result.add("file", "выберите файл с определением кампании")
        return result
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        result.add("file", "нужен файл .yaml, .yml или .json")
        return result
    if len(data) > MAX_UPLOAD_BYTES:
        result.add("file", f"файл больше {MAX_UPLOAD_BYTES // 1024} КБ")
        return result
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.add("file", "файл не в кодировке UTF-8")
        return result
    if "\x00" in text or not text.strip():
        result.add("file", "файл пуст или не текстовый")
        return result
    result.text = text
    try:
        definition = parse_definition_text(
            text, flow_names=flow_names, source=name, link_variables=link_variables
        )
    except DefinitionError as exc:
        result.issues = [FieldIssue(i.path, russian_message(i.message), i.line) for i in exc.issues]
        return result
    problem = region_issue(scope, definition)
    if problem is not None:
        line = _line_of(text, ("audience", "regions")) or _line_of(text, ("audience",))
        result.issues = [FieldIssue("audience.regions", problem, line)]
        return result
    result.definition = definition
    return result
