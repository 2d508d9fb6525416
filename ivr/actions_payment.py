"""The payment actions of the IVR: the per-account payment links a call sends by SMS.

:data:`PAYMENT_ACTIONS` is merged into the registry of :mod:`ivr.actions` (which wraps each
implementation in its declaration check); the declarations are in :mod:`ivr.action_names`.
The links come from the supplier's templates (``PAYMENT_URL_TEMPLATE``,
``SBP_PAYMENT_URL_TEMPLATE``: :mod:`contactcenter.payment_links`) filled with the account and
its debt at the time of the call; the SMS text around them stays in ``call_flows.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from contactcenter.payment_links import PaymentLinks, payment_links
from contactcenter.services import Services
from crm_store.ledger import balance
from crm_store.models import SUPPLIER_TIMEZONE, Account
from ivr.action_context import ActionContext, ActionResult
from ivr.errors import ActionFailed

__all__ = ["PAYMENT_ACTIONS", "SBP_LABEL", "links_text", "payment_links_action"]

#: What precedes the SBP link in an SMS that carries both links.
SBP_LABEL = "СБП:"


def links_text(links: PaymentLinks) -> str | None:
    """The links as an SMS carries them: the payment page, then ``СБП: <link>``; the SBP link
    alone when it is the only one; ``None`` when there is none."""
    if links.pay_url and links.sbp_url:
        return f"{links.pay_url} {SBP_LABEL} {links.sbp_url}"
    return links.pay_url or links.sbp_url


def _local_today(account: Account, now: datetime) -> date:
    try:
        zone = ZoneInfo(account.local_timezone or SUPPLIER_TIMEZONE)
    except (KeyError, ValueError):
        zone = ZoneInfo(SUPPLIER_TIMEZONE)
    return now.astimezone(zone).date()


def payment_links_action(ctx: ActionContext) -> ActionResult:
    """``payment_links``: the links of the current account filled with its current debt
    (``ok``: ``pay_links``), or ``none`` when the supplier configured no link template."""
    services: Services | None = ctx.deps
    if services is None:
        raise ActionFailed(f"action {ctx.name} needs the app's services")
    settings = services.settings
    if not (settings.payment_url_template or settings.sbp_payment_url_template):
        return ActionResult("none")
    number = ctx.variables.get("account_number")
    if not number:
        raise ActionFailed(f"action {ctx.name}: no account identified yet")
    with services.db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == str(number))).one_or_none()
        if account is None:
            raise ActionFailed(f"action {ctx.name}: account {number!r} vanished")
        debt = balance(s, account.id, _local_today(account, ctx.now)).debt
        links = payment_links(
            settings.payment_url_template, settings.sbp_payment_url_template, account.number, debt
        )
    return ActionResult("ok", {"pay_links": links_text(links)})


#: The implementations of this module by action name.
PAYMENT_ACTIONS: Mapping[str, Callable[[ActionContext], ActionResult]] = {
    "payment_links": payment_links_action,
}
