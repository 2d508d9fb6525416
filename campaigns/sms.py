"""SMS text: template rendering with variables and the rendered message's preview.

Segments (GSM-7 / UCS-2 parts, as Twilio bills them) are counted by :mod:`telephony.sms`.

Templates use ``{name}`` placeholders (no attribute access or indexing); money is written
the Russian way (``1 234,56 руб.``) and dates as ``ДД.ММ.ГГГГ``.

Besides the account's plain values a template may use :func:`derived_variables`:
``{due_phrase}`` (a sentence that is right for a debt not yet due and for an overdue one
alike) and the account's payment links ``{pay_url}`` / ``{sbp_url}``
(:mod:`contactcenter.payment_links`), present only when the supplier configured them —
:func:`link_variables` says which, so a definition can be checked against the settings.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from campaigns.errors import TemplateError
from contactcenter.config import Settings
from contactcenter.payment_links import payment_links
from telephony.sms import SmsPreview, preview

MAX_SEGMENTS = 10
"""Longest message we agree to send (operators reassemble up to about 10 parts)."""


def format_money(amount: Decimal) -> str:
    """``Decimal('1234.5')`` → ``1 234,50 руб.`` (space between thousands)."""
    if not isinstance(amount, Decimal):
        raise TypeError("money must be a Decimal")
    quantized = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if quantized < 0 else ""
    whole, _, cents = f"{abs(quantized):.2f}".partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{' '.join(groups)},{cents} руб."


def format_value(value: Any) -> str:
    """How a template variable is written: money, dates and datetimes the Russian way."""
    if isinstance(value, Decimal):
        return format_money(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float):
        raise TypeError("floats are not allowed in SMS templates: pass money as a Decimal")
    return str(value)


def template_fields(template: str) -> list[str]:
    """The variable names a template uses, in order; raises TemplateError if malformed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template: {exc}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"placeholder {{{field}}} must be a plain name like {{amount}}")
        if spec or conversion:
            raise TemplateError(f"placeholder {{{field}}} must not carry a format or conversion")
        if field not in names:
            names.append(field)
    return names


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``template`` with ``variables``; every placeholder must be supplied."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in variables]
    if missing:
        raise TemplateError(f"no value for {', '.join('{' + m + '}' for m in missing)}")
    values = {f: format_value(variables[f]) for f in fields}
    return template.format_map(values)


def render_preview(template: str, variables: Mapping[str, Any]) -> SmsPreview:
    """Render and measure in one step (what the campaign preview shows)."""
    return preview(render(template, variables))


#: The variables of the account's payment links, by the setting each one needs.
LINK_VARIABLES: Mapping[str, str] = {
    "pay_url": "PAYMENT_URL_TEMPLATE",
    "sbp_url": "SBP_PAYMENT_URL_TEMPLATE",
}


def due_phrase(due_date: dt.date, days_overdue: int) -> str:
    """What to ask of the debtor, as one sentence: «Оплатите до 25.12.2026.» while the debt is
    not yet due, «Срок оплаты истёк 25.11.2026, оплатите, пожалуйста.» once it is overdue
    (the hotline's wording: the term has passed; never «pay by» a past date)."""
    if days_overdue > 0:
        return f"Срок оплаты истёк {format_value(due_date)}, оплатите, пожалуйста."
    return f"Оплатите до {format_value(due_date)}."


def link_variables(settings: Settings) -> frozenset[str]:
    """The link variables the settings can fill (``pay_url``, ``sbp_url``)."""
    configured = {
        "pay_url": settings.payment_url_template,
        "sbp_url": settings.sbp_payment_url_template,
    }
    return frozenset(name for name, template in configured.items() if template)


def derived_variables(
    settings: Settings, account: str, debt: Decimal, due_date: dt.date, days_overdue: int
) -> dict[str, Any]:
    """``due_phrase`` and the payment links configured in ``settings`` for one account."""
    links = payment_links(
        settings.payment_url_template, settings.sbp_payment_url_template, account, debt
    )
    derived: dict[str, Any] = {"due_phrase": due_phrase(due_date, days_overdue)}
    if links.pay_url is not None:
        derived["pay_url"] = links.pay_url
    if links.sbp_url is not None:
        derived["sbp_url"] = links.sbp_url
    return derived


SAMPLE_VARIABLES: Mapping[str, Any] = {
    "supplier": "ЭнергоСбыт",
    "account": "000-1234-5678",
    "amount": Decimal("12345.67"),
    "due_date": dt.date(2026, 12, 25),
    "days_overdue": 45,
    "phone": "8-800-000-00-00",
    "name": "Иван Петрович",
    "due_phrase": "Срок оплаты истёк 25.12.2026, оплатите, пожалуйста.",
    "pay_url": "https://pay.example.ru/000-1234-5678?sum=12345.67",
    "sbp_url": "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&sum=1234567",
}
"""Placeholder values for previewing a template before any real account is chosen."""
