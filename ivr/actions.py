"""Implementations of the IVR actions declared in :mod:`ivr.action_names`, against the CRM.

Every action is a function ``(ActionContext) -> ActionResult``; :func:`registry` returns
them by name, each wrapped so that its result is checked against its declaration
(:meth:`~ivr.action_names.ActionSpec.check_result`). ``ctx.deps`` is the app's
:class:`~contactcenter.runtime.Services`; each action opens one short transaction.

Per-call state the actions keep between steps (the list of accounts spoken to a caller
with several, the meter-zone cursor of a readings session) lives in ``ctx.state`` and is
returned as ``ActionResult.state``; the engine stores it in the call session.

Slow work (SMS) is never done here: actions return :class:`~ivr.engine.SendSms` effects
that the runtime enqueues on RQ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.action_names import ACTION_SPECS, get_action_spec
from ivr.engine import ActionContext, ActionFailed, ActionResult, SendSms

if TYPE_CHECKING:
    from contactcenter.runtime import Services
    from crm_store.models import Account

log = logging.getLogger(__name__)

ActionImpl = Callable[[ActionContext], ActionResult]

ACTOR = "ivr"
MAX_LISTED_ACCOUNTS = 9
ACCOUNT_INPUT = re.compile(r"\d{4,32}")
DEFAULT_TZ = "Europe/Moscow"
#: Operator hours (local time): weekdays 08-17; on the 21st-25th weekdays 08-21, weekends 08-17.
OPERATOR_OPEN = time(8, 0)
OPERATOR_CLOSE = time(17, 0)
OPERATOR_CLOSE_PEAK = time(21, 0)
PEAK_DAYS = range(21, 26)

_IMPLEMENTATIONS: dict[str, ActionImpl] = {}


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
        result = fn(ctx)
        spec.check_result(result.outcome, result.variables)
        return result

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


def registry() -> dict[str, ActionImpl]:
    """Every implemented action by name, checked against its declaration."""
    return {name: _checked(name, fn) for name, fn in _IMPLEMENTATIONS.items()}


def missing_implementations() -> list[str]:
    """Declared actions without an implementation (should be empty)."""
    return sorted(set(ACTION_SPECS) - set(_IMPLEMENTATIONS))


# --------------------------------------------------------------------------- helpers


def _services(ctx: ActionContext) -> Services:
    if ctx.deps is None:
        raise ActionFailed(f"action {ctx.name} needs the app's services")
    services: Services = ctx.deps
    return services


def _session(ctx: ActionContext) -> Any:
    """A CRM transaction acting as ``ivr`` (audit log actor)."""
    from contextlib import contextmanager

    from crm_store.audit import acting_as

    services = _services(ctx)

    @contextmanager
    def tx() -> Any:
        with acting_as(ACTOR), services.db.transaction() as s:
            yield s

    return tx()


def _current_account(ctx: ActionContext, s: Session) -> Account:
    from crm_store.models import Account

    number = ctx.variables.get("account_number")
    if not number:
        raise ActionFailed(f"action {ctx.name}: no account identified yet")
    account = s.scalars(select(Account).where(Account.number == str(number))).one_or_none()
    if account is None:
        raise ActionFailed(f"action {ctx.name}: account {number!r} vanished")
    return account


def _local_today(account_tz: str | None, now: datetime) -> date:
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
    from crm_store.accounts import accounts_for_phone
    from ivr.verbalize import say_number

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
            f"{say_number(i)} — {_address(a)}" for i, a in enumerate(accounts, start=1)
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
    from crm_store.models import Account

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
    """The account by typed number (normalised) or, failing that, by the bill's IVR code."""
    from crm_store.accounts import find_account_by_ivr_code, find_account_by_number

    raw = str(ctx.args.get("number") or "").strip()
    if not raw:
        return ActionResult("not_found")
    with _session(ctx) as s:
        account = find_account_by_number(s, raw) or find_account_by_ivr_code(s, raw)
        if account is None or account.status == "closed":
            return ActionResult("not_found")
        return ActionResult(
            "found", {"account_number": account.number, "address": _address(account)}
        )


# --------------------------------------------------------------------------- money


def _balance(ctx: ActionContext) -> Any:
    from crm_store.ledger import balance

    with _session(ctx) as s:
        account = _current_account(ctx, s)
        return balance(s, account.id, _local_today(account.timezone, ctx.now))


@action("balance")
def balance_action(ctx: ActionContext) -> ActionResult:
    """Debt (Decimal roubles), its due date and the last payment of the current account."""
    b = _balance(ctx)
    last = {
        "last_payment_amount": b.last_payment_amount,
        "last_payment_date": b.last_payment_on,
    }
    if b.debt > 0:
        return ActionResult(
            "ok", {"debt": b.debt, "due_date": b.earliest_unpaid_due, "has_debt": True, **last}
        )
    return ActionResult("no_debt", {"credit": b.credit, "has_debt": False, **last})


@action("debt_for_reminder")
def debt_for_reminder(ctx: ActionContext) -> ActionResult:
    """The debt of the campaign target's account, re-read at call time."""
    b = _balance(ctx)
    if b.debt > 0:
        return ActionResult("ok", {"debt": b.debt, "due_date": b.earliest_unpaid_due})
    return ActionResult("no_debt")


# --------------------------------------------------------------------------- e-receipts


@action("subscribe_e_receipt")
def subscribe_e_receipt(ctx: ActionContext) -> ActionResult:
    """Consent to electronic bills (purpose ``e_receipt``) and an SMS confirmation."""
    from crm_store.models import Consent

    phone = ctx.variables.get("caller_phone")
    with _session(ctx) as s:
        account = _current_account(ctx, s)
        email = account.consumer.email
        if not email:
            effects: tuple[SendSms, ...] = ()
            if phone:
                effects = (
                    SendSms(
                        str(phone),
                        "Чтобы получать электронные квитанции по лицевому счёту "
                        f"{account.number}, укажите адрес электронной почты в личном кабинете.",
                        purpose="e_receipt",
                    ),
                )
            return ActionResult("no_email", effects=effects)
        masked = _mask_email(email)
        if account.e_receipt:
            return ActionResult("already", {"email_masked": masked})
        account.e_receipt = True
        s.add(
            Consent(
                contact="email",
                value=email,
                purpose="e_receipt",
                granted=True,
                source=f"ivr:{ctx.call.call_sid}",
            )
        )
    confirmation: tuple[SendSms, ...] = ()
    if phone:
        confirmation = (
            SendSms(
                str(phone),
                f"Вы подписались на электронные квитанции по лицевому счёту {account.number}. "
                f"Квитанции будут приходить на {masked}.",
                purpose="e_receipt",
            ),
        )
    return ActionResult("ok", {"email_masked": masked}, effects=confirmation)


# --------------------------------------------------------------------------- info


@action("outage_info")
def outage_info(ctx: ActionContext) -> ActionResult:
    """Planned works at the caller's address, from the outage feed registered in Services.

    The feed is ``services.get("outage_feed")``: a callable ``(address: str | None) -> str |
    None`` returning speakable text. Without a feed nothing is known (``none``) and the flow
    routes the caller to the grid company, which owns outage information.
    """
    services = _services(ctx)
    feed = services.get("outage_feed")
    if feed is None:
        return ActionResult("none")
    text = feed(ctx.variables.get("address"))
    if not text:
        return ActionResult("none")
    return ActionResult("planned", {"outage_text": str(text)})


def operator_hours(day: date) -> tuple[time, time] | None:
    """Operator hours on a local ``day``: extended on the 21st-25th, closed on other weekends."""
    weekend = day.weekday() >= 5
    if day.day in PEAK_DAYS:
        return (OPERATOR_OPEN, OPERATOR_CLOSE) if weekend else (OPERATOR_OPEN, OPERATOR_CLOSE_PEAK)
    if weekend:
        return None
    return OPERATOR_OPEN, OPERATOR_CLOSE


@action("operator_availability")
def operator_availability(ctx: ActionContext) -> ActionResult:
    """Whether operators work now (Moscow time); when closed, when they open next."""
    local = ctx.now.astimezone(_zone(DEFAULT_TZ))
    hours = operator_hours(local.date())
    if hours is not None and hours[0] <= local.time() < hours[1]:
        return ActionResult("open")
    day = local.date()
    if hours is not None and local.time() < hours[0]:
        return ActionResult("closed", {"opens_at": hours[0]})
    for _ in range(7):
        day += timedelta(days=1)
        hours = operator_hours(day)
        if hours is not None:
            return ActionResult("closed", {"opens_at": hours[0]})
    return ActionResult("closed", {"opens_at": OPERATOR_OPEN})  # pragma: no cover


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
    from crm_store.cases import open_case
    from crm_store.models import Account

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
    from crm_store.models import Consent, DoNotContact

    phone = ctx.variables.get("caller_phone")
    if not phone:
        raise ActionFailed("opt_out_robot_calls: the caller's number is unknown")
    with _session(ctx) as s:
        exists = s.scalars(
            select(DoNotContact).where(
                DoNotContact.value == str(phone), DoNotContact.channel == "voice"
            )
        ).one_or_none()
        if exists is None:
            s.add(
                DoNotContact(
                    value=str(phone), channel="voice", reason="ivr_opt_out", created_by=ACTOR
                )
            )
        for consent in s.scalars(
            select(Consent).where(
                Consent.value == str(phone),
                Consent.purpose == "robot_calls",
                Consent.withdrawn_at.is_(None),
            )
        ):
            consent.withdrawn_at = ctx.now
        s.add(
            Consent(
                contact="phone",
                value=str(phone),
                purpose="robot_calls",
                granted=False,
                source=f"ivr:{ctx.call.call_sid}",
                withdrawn_at=ctx.now,
            )
        )
    return ActionResult("done")


def _note_on_interaction(ctx: ActionContext, key: str, value: Any, outcome: str | None) -> None:
    from crm_store.models import Interaction

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
