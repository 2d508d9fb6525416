"""Implementations of the IVR actions declared in :mod:`ivr.action_names`, against the CRM.

Every action is a function ``(ActionContext) -> ActionResult``; :func:`registry` returns
them by name, each wrapped so that its result is checked against its declaration
(:meth:`~ivr.action_names.ActionSpec.check_result`). ``ctx.deps`` is the app's
:class:`~contactcenter.services.Services`; each action opens one short transaction.

Per-call state the actions keep between steps (the list of accounts spoken to a caller
with several, the meter-zone cursor of a readings session) lives in ``ctx.state`` and is
returned as ``ActionResult.state``; the engine stores it in the call session.

Slow work (SMS) is never done here: an action that needs it returns
:class:`~ivr.events.SendSms` effects that :mod:`ivr.sms` enqueues on RQ; the shipped flows send
their texts with ``sms`` steps.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.calendar_ru import ProductionCalendar, default_calendar
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store import readings
from crm_store.accounts import accounts_for_phone, find_account_by_ivr_code, find_account_by_number
from crm_store.audit import acting_as
from crm_store.cases import open_case
from crm_store.consent import add_do_not_contact, grant_consent, withdraw_consent
from crm_store.errors import CrmError
from crm_store.ledger import balance
from crm_store.models import Account, Interaction, Meter
from crm_store.readings import (
    Accepted,
    ReadingPolicy,
    Rejected,
    billing_period,
    submit_reading,
    zone_history,
)
from ivr.action_context import ActionContext, ActionResult
from ivr.action_names import ACTION_SPECS, get_action_spec
from ivr.actions_outage import OUTAGE_ACTIONS
from ivr.actions_payment import PAYMENT_ACTIONS
from ivr.errors import ActionContractError, ActionFailed
from ivr.schema import ActionStep, CollectStep, FlowSet, RecordStep
from ivr.verbalize import plural, say_address, say_date, say_number

log = logging.getLogger(__name__)

ActionImpl = Callable[[ActionContext], ActionResult]

ACTOR = "ivr"
MAX_LISTED_ACCOUNTS = 9
ACCOUNT_INPUT = re.compile(r"\d{4,32}")
#: The supplier's clock (crm_store.models.SUPPLIER_TIMEZONE): operator hours are always in
#: it, and an account whose service-address zone is unknown (``Account.timezone is None``)
#: gets its reading window, billing period and balance date in it too (Moscow time is the
#: supplier's published convention). Contact windows never use it (see campaigns.compliance).
DEFAULT_TZ = "Europe/Moscow"
#: How far ahead operator_availability looks for the next open day (long January holidays).
OPERATOR_LOOKAHEAD_DAYS = 31
#: «в понедельник», … : the day operators open next, in the accusative after «в».
_WEEKDAYS_ACCUSATIVE = (
    "в понедельник",
    "во вторник",
    "в среду",
    "в четверг",
    "в пятницу",
    "в субботу",
    "в воскресенье",
)

_IMPLEMENTATIONS: dict[str, ActionImpl] = {**PAYMENT_ACTIONS, **OUTAGE_ACTIONS}  # + @action below


def action(name: str) -> Callable[[ActionImpl], ActionImpl]:
    """Register the implementation of the declared action ``name``."""
    get_action_spec(name)  # raises for an undeclared name

    def register(fn: ActionImpl) -> ActionImpl:
        _IMPLEMENTATIONS[name] = fn
        return fn

    return register


def _checked(name: str, fn: ActionImpl) -> ActionImpl:
    spec = get_action_spec(name)

    def run(ctx: ActionContext) -> ActionResult:
        try:
            result = fn(ctx)
            spec.check_result(result.outcome, result.variables)
        except (CrmError, ActionContractError) as exc:
            # The caller hears an apology and goes to an operator; the log says why.
            raise ActionFailed(f"action {name}: {type(exc).__name__}: {exc}") from exc
        return result

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def registry() -> dict[str, ActionImpl]:
    """Every implemented action by name, checked against its declaration."""
    return {name: _checked(name, fn) for name, fn in _IMPLEMENTATIONS.items()}


def unimplemented_actions(flowset: FlowSet) -> list[str]:
    """Actions the flows call (action steps, record steps, validators) with no implementation."""
    used: set[str] = set()
    for _flow, _step, step in flowset.iter_steps():
        if isinstance(step, ActionStep):
            used.add(step.name)
        elif isinstance(step, RecordStep):
            used.add(step.action)
        elif isinstance(step, CollectStep) and step.validate_with:
            used.add(step.validate_with)
    return sorted(used - set(_IMPLEMENTATIONS))


def missing_implementations() -> list[str]:
    """Declared actions without an implementation (should be empty)."""
    return sorted(set(ACTION_SPECS) - set(_IMPLEMENTATIONS))


# --------------------------------------------------------------------------- helpers


def _services(ctx: ActionContext) -> Services:
    if ctx.deps is None:
        raise ActionFailed(f"action {ctx.name} needs the app's services")
    services: Services = ctx.deps
    return services


@contextmanager
def _session(ctx: ActionContext) -> Iterator[Session]:
    """A CRM transaction acting as ``ivr`` (audit log actor)."""
    services = _services(ctx)
    with acting_as(ACTOR), services.db.transaction() as s:
        yield s


def _current_account(ctx: ActionContext, s: Session) -> Account:
    number = ctx.variables.get("account_number")
    if not number:
        raise ActionFailed(f"action {ctx.name}: no account identified yet")
    account = s.scalars(select(Account).where(Account.number == str(number))).one_or_none()
    if account is None:
        raise ActionFailed(f"action {ctx.name}: account {number!r} vanished")
    return account


def _local_today(account_tz: str | None, now: datetime) -> date:
    """``now``'s date in ``account_tz``; in :data:`DEFAULT_TZ` when the zone is unknown."""
    return now.astimezone(_zone(account_tz)).date()


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TZ)


def _address(account: Account) -> str:
    return account.service_address or "адрес не указан"


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


# --------------------------------------------------------------------------- identify


@action("identify_caller")
def identify_caller(ctx: ActionContext) -> ActionResult:
    """Accounts linked to the caller's phone: one, several (listed) or none."""
    phone = ctx.variables.get("caller_phone")
    if not phone:
        return ActionResult("unknown")
    with _session(ctx) as s:
        accounts = accounts_for_phone(s, str(phone))[:MAX_LISTED_ACCOUNTS]
        if not accounts:
            return ActionResult("unknown")
        if len(accounts) == 1:
            account = accounts[0]
            return ActionResult(
                "single",
                {"account_number": account.number, "address": _address(account)},
            )
        listed = "; ".join(
            f"{say_number(i)} — {say_address(_address(a))}" for i, a in enumerate(accounts, start=1)
        )
        state = {**ctx.state, "choices": [a.number for a in accounts]}
        return ActionResult(
            "multiple",
            {"accounts_count": len(accounts), "accounts_list": listed},
            state=state,
        )


@action("choose_account")
def choose_account(ctx: ActionContext) -> ActionResult:
    """The account at the position the caller pressed in the list identify_caller spoke."""
    choices = list(ctx.state.get("choices") or [])
    raw = str(ctx.args.get("choice") or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= len(choices):
        return ActionResult("invalid")
    number = choices[int(raw) - 1]
    with _session(ctx) as s:
        account = s.scalars(select(Account).where(Account.number == number)).one_or_none()
        if account is None:
            return ActionResult("invalid")
        return ActionResult(
            "chosen", {"account_number": account.number, "address": _address(account)}
        )


@action("check_account_number")
def check_account_number(ctx: ActionContext) -> ActionResult:
    """Validator of a typed account number or IVR code: 4 to 32 digits."""
    value = str(ctx.args.get("value") or "")
    if not ACCOUNT_INPUT.fullmatch(value):
        if len(value) < 4:
            message = "Номер слишком короткий."
        elif len(value) > 32:
            message = "Номер слишком длинный."
        else:
            message = "Номер должен состоять только из цифр."
        return ActionResult("invalid", {"message": message})
    return ActionResult("valid")


@action("find_account")
def find_account(ctx: ActionContext) -> ActionResult:
    """The account by typed number (normalised) or, failing that, by the bill's IVR code.

    ``account_attempts`` counts the lookups of this call, so that a flow can cap the retries
    (numbers not found, addresses the caller rejected) and hand the call to an operator."""
    attempts = int(ctx.state.get("account_attempts") or 0) + 1
    state = {**ctx.state, "account_attempts": attempts}
    raw = str(ctx.args.get("number") or "").strip()
    if not raw:
        return ActionResult("not_found", {"account_attempts": attempts}, state=state)
    with _session(ctx) as s:
        account = find_account_by_number(s, raw) or find_account_by_ivr_code(s, raw)
        if account is None or account.status == "closed":
            return ActionResult("not_found", {"account_attempts": attempts}, state=state)
        return ActionResult(
            "found",
            {
                "account_number": account.number,
                "address": _address(account),
                "account_attempts": attempts,
            },
            state=state,
        )


# --------------------------------------------------------------------------- money


def _balance(ctx: ActionContext) -> tuple[Any, date]:
    """The current account's balance and the account's local today."""
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        today = _local_today(account.local_timezone, ctx.now)
        return balance(s, account.id, today), today


def _overdue(due: date | None, today: date) -> bool:
    """A debt is overdue once its due date has passed (the due date itself is still in time)."""
    return due is not None and due < today


@action("balance")
def balance_action(ctx: ActionContext) -> ActionResult:
    """Debt (Decimal roubles), its due date and the last payment of the current account."""
    b, today = _balance(ctx)
    last = {
        "last_payment_amount": b.last_payment_amount,
        "last_payment_date": b.last_payment_on,
    }
    if b.debt > 0:
        return ActionResult(
            "ok",
            {
                "debt": b.debt,
                "due_date": b.earliest_unpaid_due,
                "overdue": _overdue(b.earliest_unpaid_due, today),
                "has_debt": True,
                **last,
            },
        )
    return ActionResult("no_debt", {"credit": b.credit, "has_debt": False, **last})


@action("debt_for_reminder")
def debt_for_reminder(ctx: ActionContext) -> ActionResult:
    """The debt of the campaign target's account, re-read at call time."""
    b, today = _balance(ctx)
    if b.debt > 0:
        due = b.earliest_unpaid_due
        return ActionResult(
            "ok", {"debt": b.debt, "due_date": due, "overdue": _overdue(due, today)}
        )
    return ActionResult("no_debt")


# --------------------------------------------------------------------------- readings

READINGS_KEY = "readings"
_REJECT_REASONS = {
    "empty": "показание должно состоять из цифр до запятой",
    "not_digits": "показание должно состоять только из цифр",
    "decimal_part": "вводите только цифры до запятой",
    "too_short": "в показании меньше цифр, чем на табло счётчика",
    "too_long": "в показании больше цифр, чем на табло счётчика",
    "remote_read": "этот счётчик передаёт показания автоматически",
    "account_closed": "лицевой счёт закрыт",
    "unknown_zone": "у счётчика нет такой тарифной зоны",
}


def reading_policy(services: Services) -> ReadingPolicy:
    """The reading rules of the IVR: the settings' window; short values are zero-padded
    (callers type the integer part without the display's leading zeros)."""
    return ReadingPolicy.from_settings(services.settings, length_mode="pad")


def _window(policy: ReadingPolicy, local_day: date) -> dict[str, date]:
    """The window of ``local_day``'s month, or of the next month once this one closed."""
    if local_day.day > policy.window_end_day:
        local_day = (local_day.replace(day=1) + timedelta(days=32)).replace(day=1)
    last = calendar.monthrange(local_day.year, local_day.month)[1]
    return {
        "window_opens": local_day.replace(day=min(policy.window_start_day, last)),
        "window_closes": local_day.replace(day=min(policy.window_end_day, last)),
    }


def _readings_state(ctx: ActionContext) -> dict[str, Any]:
    state = ctx.state.get(READINGS_KEY)
    if not isinstance(state, dict) or state.get("account") != ctx.variables.get("account_number"):
        raise ActionFailed(f"action {ctx.name}: no readings session (start_readings first)")
    return dict(state)


def _current_zone(state: Mapping[str, Any]) -> tuple[int, str, str]:
    index = int(state.get("index", -1))
    zones = state.get("zones") or []
    if not 0 <= index < len(zones):
        raise ActionFailed("no current meter zone")
    meter_id, serial, zone = zones[index]
    return int(meter_id), str(serial), str(zone)


@action("start_readings")
def start_readings(ctx: ActionContext) -> ActionResult:
    """Begin a readings session: every manually read meter of the account, zone by zone."""
    policy = reading_policy(_services(ctx))
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        meters = sorted((m for m in account.meters if not m.remote_read), key=lambda m: m.id)
        if not meters:
            return ActionResult("no_meters")
        timing = billing_period(ctx.now, account.local_timezone, policy)
        if isinstance(timing, Rejected):
            local = _local_today(account.local_timezone, ctx.now)
            return ActionResult("window_closed", _window(policy, local))
        zones = [[m.id, m.serial, zone] for m in meters for zone in m.zones]
        state = {
            **ctx.state,
            READINGS_KEY: {"account": account.number, "zones": zones, "index": -1, "saved": 0},
        }
        local = _local_today(account.local_timezone, ctx.now).replace(day=1)
        closes = _window(policy, local)["window_closes"]  # this month's, passed when late
        late = {"next_period": timing[1], "window_closes": closes}
        return ActionResult("ok", {"meters_count": len(meters), **late}, state=state)


@action("next_meter_zone")
def next_meter_zone(ctx: ActionContext) -> ActionResult:
    """Advance to the next meter zone; ``done`` with the count saved when none is left."""
    state = _readings_state(ctx)
    state["index"] = int(state.get("index", -1)) + 1
    new_state = {**ctx.state, READINGS_KEY: state}
    if state["index"] >= len(state.get("zones") or []):
        return ActionResult("done", {"readings_count": int(state.get("saved", 0))}, state=new_state)
    meter_id, serial, zone = _current_zone(state)
    policy = reading_policy(_services(ctx))
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        timing = billing_period(ctx.now, account.local_timezone, policy)
        period = (
            _local_today(account.local_timezone, ctx.now).replace(day=1)
            if isinstance(timing, Rejected)
            else timing[0]
        )
        history = zone_history(s, meter_id, zone, period, policy)
    return ActionResult(
        "zone",
        {"meter_serial": serial, "zone_label": zone, "last_value": history.previous},
        state=new_state,
    )


def _reason_text(decision: Any) -> str:
    if decision.reason == "implausible":
        used = decision.value - (decision.previous or 0)
        unit = plural(used, "киловатт-час", "киловатт-часа", "киловатт-часов")
        return f"расход составит {say_number(used)} {unit}, это намного больше обычного"
    return _REJECT_REASONS.get(decision.reason, "показание не прошло проверку")


@action("check_reading")
def check_reading(ctx: ActionContext) -> ActionResult:
    """Validate the current zone's reading against its history without saving it."""
    state = _readings_state(ctx)
    meter_id, _serial, zone = _current_zone(state)
    policy = reading_policy(_services(ctx))
    value = str(ctx.args.get("value") or "")
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        meter = s.get(Meter, meter_id)
        if meter is None or meter.account_id != account.id:
            raise ActionFailed(f"meter {meter_id} is not on account {account.number}")
        decision = readings.check_reading(
            s, meter_id, zone, value, submitted_at=ctx.now, policy=policy
        )
    if isinstance(decision, readings.Accepted):
        return ActionResult("accepted")
    if isinstance(decision, readings.NeedsConfirmation):
        if decision.reason == "lower_than_previous":
            return ActionResult("lower_than_last", {"last_value": decision.previous})
        return ActionResult("implausible", {"reason": _reason_text(decision)})
    if decision.reason == "window_closed":
        return ActionResult(
            "window_closed", _window(policy, _local_today(account.local_timezone, ctx.now))
        )
    return ActionResult("implausible", {"reason": _reason_text(decision)})


@action("save_reading")
def save_reading(ctx: ActionContext) -> ActionResult:
    """Store the current zone's reading: source ``ivr_dtmf``, or ``ivr_voice`` from speech."""
    state = _readings_state(ctx)
    meter_id, _serial, zone = _current_zone(state)
    policy = reading_policy(_services(ctx))
    spoken = ctx.input_source("value") == "speech"
    variable = ctx.arg_sources.get("value")
    confidence = ctx.variables.get(f"{variable}_confidence") if spoken and variable else None
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        submission = submit_reading(
            s,
            meter_id,
            zone,
            str(ctx.args.get("value") or ""),
            "ivr_voice" if spoken else "ivr_dtmf",
            submitted_at=ctx.now,
            confirmed=ctx.args.get("confirmed_lower") is True,
            confidence=float(confidence) if isinstance(confidence, int | float) else None,
            interaction_id=ctx.interaction_id,
            policy=policy,
        )
        decision = submission.decision
        if isinstance(decision, Accepted):
            state["saved"] = int(state.get("saved", 0)) + 1
            return ActionResult("saved", state={**ctx.state, READINGS_KEY: state})
        if decision.status == "rejected" and decision.reason == "window_closed":
            return ActionResult(
                "window_closed", _window(policy, _local_today(account.local_timezone, ctx.now))
            )
    raise ActionFailed(f"save_reading: the reading was not accepted ({decision.message})")


# --------------------------------------------------------------------------- e-receipts


@action("subscribe_e_receipt")
def subscribe_e_receipt(ctx: ActionContext) -> ActionResult:
    """Consent to electronic bills (purpose ``e_receipt``, the call is the record).

    The SMS confirmation is the flow's business (an ``sms`` step after ``ok``), so that the
    text stays editable in ``call_flows.yaml``.
    """
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        email = account.consumer.email
        if not email:
            return ActionResult("no_email")
        masked = _mask_email(email)
        if account.e_receipt:
            return ActionResult("already", {"email_masked": masked})
        account.e_receipt = True
        grant_consent(
            s,
            contact="email",
            value=email,
            purpose="e_receipt",
            source=f"ivr:{ctx.call.call_sid}",
            at=ctx.now,
        )
    return ActionResult("ok", {"email_masked": masked})


# --------------------------------------------------------------------------- info


def operator_hours(
    day: date, settings: Settings, production: ProductionCalendar | None = None
) -> tuple[time, time] | None:
    """Operator hours on a local ``day``, from the settings and the production calendar:
    closed on the hotline's own holidays (``OPERATOR_HOLIDAYS``); on a working day the
    ordinary hours (``OPERATOR_HOURS``), the peak hours on the peak days of the month
    (``OPERATOR_PEAK_DAYS``, ``OPERATOR_PEAK_HOURS``); a non-working day (weekend or public
    holiday) is closed except during the peak, when it gets the ordinary hours."""
    if day in settings.operator_holidays:
        return None
    working = (production or default_calendar()).is_working_day(day)
    first, last = settings.operator_peak_days
    peak = first <= day.day <= last and first > 0
    if working:
        return settings.operator_peak_hours if peak else settings.operator_hours
    return settings.operator_hours if peak else None


def opening_day_words(day: date, today: date) -> str:
    """When operators open next, as said before «в восемь часов»: «сегодня», «завтра»,
    «в понедельник» within a week, else the date («девятого января»)."""
    ahead = (day - today).days
    if ahead == 0:
        return "сегодня"
    if ahead == 1:
        return "завтра"
    if ahead < 7:
        return _WEEKDAYS_ACCUSATIVE[day.weekday()]
    return say_date(day, case="gen", today=today)


@action("operator_availability")
def operator_availability(ctx: ActionContext) -> ActionResult:
    """Whether operators work now (supplier's time); when closed, the day and hour they open
    next (``opens_day`` «в понедельник», ``opens_at`` 08:00)."""
    settings = _services(ctx).settings
    local = ctx.now.astimezone(_zone(DEFAULT_TZ))
    today = local.date()
    hours = operator_hours(today, settings)
    if hours is not None and hours[0] <= local.time() < hours[1]:
        return ActionResult("open")
    if hours is not None and local.time() < hours[0]:
        return ActionResult("closed", {"opens_at": hours[0], "opens_day": "сегодня"})
    for ahead in range(1, OPERATOR_LOOKAHEAD_DAYS + 1):
        day = today + timedelta(days=ahead)
        hours = operator_hours(day, settings)
        if hours is not None:
            return ActionResult(
                "closed", {"opens_at": hours[0], "opens_day": opening_day_words(day, today)}
            )
    raise ActionFailed(
        f"operators are closed for the next {OPERATOR_LOOKAHEAD_DAYS} days: "
        "check OPERATOR_HOLIDAYS and OPERATOR_HOURS"
    )


# --------------------------------------------------------------------------- cases, consent


CASE_KINDS = {"already_paid", "callback", "voicemail", "complaint"}
CASE_SUBJECTS = {
    "already_paid": "Клиент сообщил об оплате",
    "callback": "Просьба перезвонить",
    "voicemail": "Голосовое сообщение",
    "complaint": "Жалоба",
}


@action("create_case")
def create_case(ctx: ActionContext) -> ActionResult:
    """A CRM Case with the call's context (account or caller's phone, recording, path)."""
    kind = str(ctx.args.get("kind") or ctx.args.get("purpose") or "callback")
    if kind not in CASE_KINDS:
        raise ActionFailed(f"create_case: unknown kind {kind!r}")
    lines = [f"Звонок {ctx.call.call_sid} с номера {ctx.call.caller or 'скрыт'}."]
    if ctx.args.get("note"):
        lines.append(str(ctx.args["note"]))
    if ctx.args.get("recording_url"):
        lines.append(
            f"Запись: {ctx.args['recording_url']} ({ctx.args.get('recording_duration') or '?'} с)."
        )
    lines.append("Путь в IVR: " + " → ".join(str(p) for p in ctx.variables.get("path") or []))
    with _session(ctx) as s:
        account = None
        number = ctx.variables.get("account_number")
        if number:
            account = s.scalars(select(Account).where(Account.number == str(number))).one_or_none()
        case = open_case(
            s,
            case_type=kind,
            subject=CASE_SUBJECTS[kind],
            account_id=account.id if account else None,
            consumer_id=account.consumer_id if account else None,
            description="\n".join(lines),
            interaction_id=ctx.interaction_id,
            actor=ACTOR,
            now=ctx.now,
        )
        return ActionResult("created", {"case_number": str(case.id)})


@action("opt_out_robot_calls")
def opt_out_robot_calls(ctx: ActionContext) -> ActionResult:
    """Caller refuses robot calls: do-not-contact (voice) and robot_calls consent withdrawn."""
    phone = ctx.variables.get("caller_phone")
    if not phone:
        raise ActionFailed("opt_out_robot_calls: the caller's number is unknown")
    with _session(ctx) as s:
        add_do_not_contact(s, str(phone), channel="voice", reason="ivr_opt_out", created_by=ACTOR)
        withdraw_consent(
            s,
            contact="phone",
            value=str(phone),
            purpose="robot_calls",
            source=f"ivr:{ctx.call.call_sid}",
            at=ctx.now,
        )
    return ActionResult("done")


def _note_on_interaction(ctx: ActionContext, key: str, value: Any, outcome: str | None) -> None:
    if ctx.interaction_id is None:
        return
    with _session(ctx) as s:
        interaction = s.get(Interaction, ctx.interaction_id)
        if interaction is None:
            return
        interaction.data = {**(interaction.data or {}), key: value}
        if outcome is not None:
            interaction.outcome = outcome


@action("verify_person")
def verify_person(ctx: ActionContext) -> ActionResult:
    """Record the right-party check of an outbound call."""
    confirmed = ctx.args.get("confirmed") is True
    _note_on_interaction(ctx, "right_party", confirmed, None if confirmed else "wrong_party")
    return ActionResult("right_party" if confirmed else "wrong_party")


@action("log_contact_result")
def log_contact_result(ctx: ActionContext) -> ActionResult:
    """Record the result of an outbound reminder on the call's Interaction."""
    result = str(ctx.args.get("result") or "").strip()
    if not result:
        raise ActionFailed("log_contact_result: empty result")
    _note_on_interaction(ctx, "contact_result", result, result[:64])
    return ActionResult("done")


def all_implemented() -> Mapping[str, ActionImpl]:
    """Read-only view of the raw implementations (tests)."""
    return dict(_IMPLEMENTATIONS)
