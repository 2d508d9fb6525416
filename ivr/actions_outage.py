"""The outage actions of the IVR: what is happening at the caller's address, and reports.

:data:`OUTAGE_ACTIONS` is merged into the registry of :mod:`ivr.actions` (which wraps each
implementation in its declaration check); the declarations are in :mod:`ivr.action_names`,
the data in :mod:`crm_store.outages`.

* ``outage_info`` reads the identified account's service address and grid link (feeder,
  substation) and tells what concerns it (:func:`crm_store.outages.active_outages_for`): an
  outage in progress (``current``: what is happening and when power is expected back) or
  one starting within ``horizon_hours`` (``planned``: when it starts and ends). An outage
  of the account's feeder is told like one of its street, «по вашему адресу …»: a caller
  knows the address, and the feeder's name would tell them nothing. Times are
  spoken in the account's local time zone (the supplier's when unknown) with the
  verbalizer: «сегодня в шестнадцать часов», «завтра в десять часов», «двадцать первого
  ноября в восемь часов тридцать минут».
* ``report_outage`` records the caller's «no power» report for that address and returns the
  case number; reports of one building within ``group_hours`` join one case (``joined``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from contactcenter.services import Services
from crm_store.audit import acting_as
from crm_store.models import SUPPLIER_TIMEZONE, Account, Outage
from crm_store.outages import DEFAULT_REPORT_WINDOW, active_outages_for, report_outage
from ivr.action_context import ActionContext, ActionResult
from ivr.errors import ActionFailed
from ivr.verbalize import accusative, say_date, say_time

__all__ = [
    "DEFAULT_HORIZON_HOURS",
    "OUTAGE_ACTIONS",
    "describe_outage",
    "outage_info",
    "report_outage_action",
]

ACTOR = "ivr"
#: How far ahead ``outage_info`` announces planned outages unless the flow says otherwise.
DEFAULT_HORIZON_HOURS = 48
#: The most outages one answer reads out (the nearest first).
MAX_SPOKEN = 3
_DAYS_AHEAD = ("сегодня", "завтра", "послезавтра")


def _services(ctx: ActionContext) -> Services:
    services: Services | None = ctx.deps
    if services is None:
        raise ActionFailed(f"action {ctx.name} needs the app's services")
    return services


@contextmanager
def _session(ctx: ActionContext) -> Iterator[Session]:
    with acting_as(ACTOR), _services(ctx).db.transaction() as s:
        yield s


def _account(ctx: ActionContext, s: Session) -> Account | None:
    number = ctx.variables.get("account_number")
    if not number:
        return None
    account = s.scalars(select(Account).where(Account.number == str(number))).one_or_none()
    if account is None:
        raise ActionFailed(f"action {ctx.name}: account {number!r} vanished")
    return account


def _hours(ctx: ActionContext, name: str, default: float) -> timedelta:
    raw = ctx.args.get(name)
    if raw is None or raw == "":
        return timedelta(hours=default)
    try:
        hours = float(str(raw))
    except ValueError:
        raise ActionFailed(f"action {ctx.name}: {name} must be a number of hours") from None
    if not 0 <= hours <= 24 * 31:
        raise ActionFailed(f"action {ctx.name}: {name} must be 0 to 744 hours")
    return timedelta(hours=hours)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or SUPPLIER_TIMEZONE)
    except (KeyError, ValueError):
        return ZoneInfo(SUPPLIER_TIMEZONE)


def _day_words(day: date, today: date) -> str:
    ahead = (day - today).days
    if 0 <= ahead < len(_DAYS_AHEAD):
        return _DAYS_AHEAD[ahead]
    return say_date(day, case="gen", today=today)


def _moment_words(moment: datetime, today: date) -> str:
    """«завтра в десять часов», «двадцать первого ноября в восемь часов тридцать минут»."""
    return f"{_day_words(moment.date(), today)} в {accusative(say_time(moment.time()))}"


def describe_outage(outage: Outage, now: datetime, timezone: str | None) -> str:
    """What a caller hears about ``outage`` at ``now``, times in ``timezone`` (local)."""
    zone = _zone(timezone)
    today = now.astimezone(zone).date()
    start = outage.starts_at.astimezone(zone)
    end = outage.expected_end_at.astimezone(zone)
    reason = f" Причина: {outage.reason.rstrip('. ')}." if outage.reason.strip() else ""
    back = f"Электроснабжение планируется восстановить {_moment_words(end, today)}."
    if outage.starts_at <= now:
        if outage.kind == "emergency":
            return f"По вашему адресу аварийное отключение электроэнергии.{reason} {back}"
        return f"По вашему адресу идут плановые работы, электроэнергия отключена.{reason} {back}"
    if end.date() == start.date():
        at_end = accusative(say_time(end.time()))
        back = f"Электроснабжение планируется восстановить в тот же день в {at_end}."
    what = "Плановое отключение" if outage.kind == "planned" else "Отключение"
    starts = _moment_words(start, today)
    return f"{what} электроэнергии по вашему адресу начнётся {starts}.{reason} {back}"


def outage_info(ctx: ActionContext) -> ActionResult:
    """``outage_info``: outages at the account's address or on its feeder or substation now
    (``current``) or starting within ``horizon_hours`` (``planned``), as ``outage_text``;
    ``none``; ``no_address`` when no account is identified or it has no service address (a
    report needs one)."""
    horizon = _hours(ctx, "horizon_hours", DEFAULT_HORIZON_HOURS)
    with _session(ctx) as s:
        account = _account(ctx, s)
        if account is None or not account.service_address.strip():
            return ActionResult("no_address")
        outages = active_outages_for(
            s,
            account.service_address,
            ctx.now,
            horizon=horizon,
            feeder=account.feeder,
            substation=account.substation,
        )
        current = [o for o in outages if o.starts_at <= ctx.now]
        told = (current or outages)[:MAX_SPOKEN]
        text = " ".join(describe_outage(o, ctx.now, account.local_timezone) for o in told)
    if current:
        return ActionResult("current", {"outage_text": text})
    if outages:
        return ActionResult("planned", {"outage_text": text})
    return ActionResult("none")


def report_outage_action(ctx: ActionContext) -> ActionResult:
    """``report_outage``: the caller's «no power» report at the account's address; the case
    number of a new case (``created``) or of the building's open one (``joined``)."""
    window = _hours(ctx, "group_hours", DEFAULT_REPORT_WINDOW.total_seconds() / 3600)
    phone = ctx.variables.get("caller_phone")
    with _session(ctx) as s:
        account = _account(ctx, s)
        if account is None or not account.service_address.strip():
            raise ActionFailed(f"action {ctx.name}: no account with an address identified")
        result = report_outage(
            s,
            address=account.service_address,
            at=ctx.now,
            account_id=account.id,
            consumer_id=account.consumer_id,
            account_number=account.number,
            phone=str(phone) if phone else None,
            interaction_id=ctx.interaction_id,
            timezone=account.local_timezone,
            actor=ACTOR,
            window=window,
        )
    outcome = "joined" if result.joined else "created"
    return ActionResult(outcome, {"case_number": str(result.case_id)})


#: The implementations of this module by action name.
OUTAGE_ACTIONS: Mapping[str, Callable[[ActionContext], ActionResult]] = {
    "outage_info": outage_info,
    "report_outage": report_outage_action,
}
