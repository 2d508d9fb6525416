"""PAYMENT_URL_TEMPLATE / SBP_PAYMENT_URL_TEMPLATE: checked at start-up, filled per account."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contactcenter.config import ConfigError, load_settings
from contactcenter.payment_links import (
    LinkTemplateError,
    build_link,
    check_link_template,
    format_amount,
    payment_links,
)

TWILIO = {
    "TELEPHONY": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM_NUMBER": "+74950000000",
    "PUBLIC_BASE_URL": "https://ivr.example.ru",
}


def test_links_are_filled_and_url_encoded() -> None:
    template = "https://pay.example/{account}?sum={amount}&src=sms"
    assert build_link(template, "000-12 34/5", Decimal("1234.5")) == (
        "https://pay.example/000-12%2034%2F5?sum=1234.50&src=sms"
    )
    assert build_link(template, "55", Decimal("0.005")) == "https://pay.example/55?sum=0.01&src=sms"
    sbp = "https://qr.nspk.ru/AS1?type=01&sum={amount_kopecks}&cur=RUB"
    assert (
        build_link(sbp, "55", Decimal("10.50")) == "https://qr.nspk.ru/AS1?type=01&sum=1050&cur=RUB"
    )


@pytest.mark.parametrize("debt", [None, Decimal(0), Decimal("-15.00")])
def test_without_a_debt_the_amount_parameter_is_left_out(debt: Decimal | None) -> None:
    assert format_amount(debt) == ""
    assert build_link("https://p.ru/{account}?sum={amount}", "55", debt) == "https://p.ru/55"
    assert (
        build_link("https://p.ru/pay?acc={account}&sum={amount_kopecks}#top", "55", debt)
        == "https://p.ru/pay?acc=55#top"
    )
    # Inside a longer value the placeholder just becomes empty.
    assert build_link("https://p.ru/{account}/x{amount}", "55", debt) == "https://p.ru/55/x"


def test_both_links_or_none() -> None:
    links = payment_links("https://a.ru/{account}", None, "7", Decimal(1))
    assert (links.pay_url, links.sbp_url) == ("https://a.ru/7", None)
    assert payment_links(None, None, "7", Decimal(1)).pay_url is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty"),
        ("https://pay.example/pay", "must contain {account}"),
        ("https://pay.example/{acount}", "unknown placeholder {acount}"),
        ("https://pay.example/{phone}", "unknown placeholder {phone}"),
        ("https://pay.example/{account", "unbalanced"),
        ("https://pay.example/}{account}", "unbalanced"),
        ("pay.example/{account}", "absolute https or http URL"),
        ("ftp://pay.example/{account}", "absolute https or http URL"),
        ("https://{account}.pay.example/", "after the host"),
        ("https://pay.example{account}", "after the host"),
        ("https://pay.example/{account} x", "not a valid URL"),
    ],
)
def test_bad_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(LinkTemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_link_template(template, require_https=False)


def test_settings_check_the_templates_with_the_variable_name() -> None:
    settings = load_settings(
        {
            "PAYMENT_URL_TEMPLATE": " https://pay.example/{account}?sum={amount} ",
            "SBP_PAYMENT_URL_TEMPLATE": "http://127.0.0.1:5000/sbp/{account}",
        }
    )
    assert settings.payment_url_template == "https://pay.example/{account}?sum={amount}"
    assert settings.sbp_payment_url_template == "http://127.0.0.1:5000/sbp/{account}"
    assert load_settings({}).payment_url_template is None
    with pytest.raises(ConfigError, match=r"SBP_PAYMENT_URL_TEMPLATE: .*production needs https"):
        load_settings({**TWILIO, "SBP_PAYMENT_URL_TEMPLATE": "http://pay.example/{account}"})
    with pytest.raises(ConfigError, match=r"PAYMENT_URL_TEMPLATE: unknown placeholder \{sum\}"):
        load_settings({"PAYMENT_URL_TEMPLATE": "https://pay.example/{account}?s={sum}"})
    production = load_settings({**TWILIO, "PAYMENT_URL_TEMPLATE": "https://p.ru/{account}"})
    assert production.payment_url_template == "https://p.ru/{account}"
