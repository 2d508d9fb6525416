"""Per-account payment links built from the supplier's URL templates.

The supplier's payment page (``PAYMENT_URL_TEMPLATE``) and, where it has one, its SBP
(Система быстрых платежей) link (``SBP_PAYMENT_URL_TEMPLATE``) are URL templates with
placeholders; the SMS of the hotline and of campaigns send the link of the caller's account,
never a fixed site. Placeholders:

``{account}``         the account number, URL-encoded (required: a link is per account)
``{amount}``          the debt in roubles, a plain decimal with a dot and two places (``1234.50``)
``{amount_kopecks}``  the debt in kopecks (``123450``), as SBP links (``qr.nspk.ru``) take it

Nothing else about the consumer goes into a link. Without a debt the amount is empty; a query
parameter whose whole value is an amount placeholder (``sum={amount}``) is then left out, so
``https://pay.example/{account}?sum={amount}`` gives ``https://pay.example/5500123456``.

Templates are checked when the settings load (:func:`check_link_template`): balanced braces,
known placeholders, ``{account}`` present, placeholders only after the host, an absolute
``https`` URL (``http`` is allowed outside production, for a local test page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote, urlparse

__all__ = [
    "PLACEHOLDERS",
    "LinkTemplateError",
    "PaymentLinks",
    "build_link",
    "check_link_template",
    "format_amount",
    "payment_links",
]

#: The placeholders a link template may use.
PLACEHOLDERS = ("account", "amount", "amount_kopecks")
_AMOUNTS = frozenset({"amount", "amount_kopecks"})
_FIELD = re.compile(r"\{([^{}]*)\}")
_SAMPLE_ACCOUNT = "5500123456"
_SAMPLE_AMOUNT = Decimal("1234.50")
_CENT = Decimal("0.01")


class LinkTemplateError(ValueError):
    """A payment link template is malformed; the message says what is wrong."""


@dataclass(frozen=True)
class PaymentLinks:
    """The payment links of one account (``None`` where the supplier configured none)."""

    pay_url: str | None
    sbp_url: str | None


def format_amount(amount: Decimal | None) -> str:
    """A debt as a link carries it: ``1234.50`` (dot, two places); empty when nothing is owed."""
    if amount is None or amount <= 0:
        return ""
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):.2f}"


def _kopecks(amount: Decimal | None) -> str:
    if amount is None or amount <= 0:
        return ""
    return str(int(amount.quantize(_CENT, rounding=ROUND_HALF_UP) * 100))


def _fields(template: str) -> list[str]:
    names = _FIELD.findall(template)
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        raise LinkTemplateError("unbalanced '{' or '}'")
    return names


def check_link_template(template: str, *, require_https: bool) -> str:
    """Return ``template`` stripped when it is a usable link template, else raise
    :class:`LinkTemplateError` saying why (see the module docstring for the rules)."""
    text = template.strip()
    if not text:
        raise LinkTemplateError("is empty")
    names = _fields(text)
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise LinkTemplateError(f"unknown placeholder {{{unknown[0]}}}; use {known}")
    if "account" not in names:
        raise LinkTemplateError("must contain {account}: the link is built per account")
    schemes = ("https",) if require_https else ("https", "http")
    head = text.split("{", 1)[0]
    prefix = urlparse(head)
    if prefix.scheme not in schemes:
        raise LinkTemplateError(
            f"must be an absolute {' or '.join(schemes)} URL, got {text!r}"
            + (" (production needs https)" if require_https and prefix.scheme == "http" else "")
        )
    if not prefix.netloc or not (prefix.path or prefix.query or head.endswith(("/", "?", "#"))):
        raise LinkTemplateError(
            "placeholders belong in the path or the query, after the host "
            f"(e.g. https://pay.example/{{account}}), got {text!r}"
        )
    rendered = urlparse(build_link(text, _SAMPLE_ACCOUNT, _SAMPLE_AMOUNT))
    if " " in text or not rendered.netloc:
        raise LinkTemplateError(f"is not a valid URL: {text!r}")
    return text


def build_link(template: str, account: str, amount: Decimal | None) -> str:
    """The link of ``account`` owing ``amount`` (``None`` or ``0``: nothing owed).

    Values are URL-encoded; without a debt, query parameters whose whole value is an amount
    placeholder are left out.
    """
    values = {
        "account": quote(account, safe=""),
        "amount": format_amount(amount),
        "amount_kopecks": _kopecks(amount),
    }
    if not values["amount"]:
        template = _without_empty_amounts(template)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise LinkTemplateError(f"unknown placeholder {{{name}}}")
        return values[name]

    return _FIELD.sub(fill, template)


def _without_empty_amounts(template: str) -> str:
    base, sep, rest = template.partition("?")
    if not sep:
        return template
    query, hash_sep, fragment = rest.partition("#")
    kept = [
        item
        for item in query.split("&")
        if not (
            "=" in item
            and item.split("=", 1)[1].startswith("{")
            and item.split("=", 1)[1].endswith("}")
            and item.split("=", 1)[1][1:-1] in _AMOUNTS
        )
    ]
    joined = "&".join(kept)
    return base + ("?" + joined if joined else "") + hash_sep + fragment


def payment_links(
    pay_template: str | None, sbp_template: str | None, account: str, amount: Decimal | None
) -> PaymentLinks:
    """Both links of an account from the configured templates (``Settings.payment_url_template``
    and ``Settings.sbp_payment_url_template``); a missing template gives ``None``."""
    return PaymentLinks(
        pay_url=build_link(pay_template, account, amount) if pay_template else None,
        sbp_url=build_link(sbp_template, account, amount) if sbp_template else None,
    )
