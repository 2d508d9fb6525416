"""Campaign SMS: the due-date wording of overdue debts and the account's payment links."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from campaign_factories import add_debtor
from campaign_harness import Clock, make_services, run_to_end

from campaigns import service
from campaigns.definition import parse_definition, parse_definition_text
from campaigns.dialing import sms_variables
from campaigns.errors import DefinitionError
from campaigns.sms import (
    SAMPLE_VARIABLES,
    derived_variables,
    due_phrase,
    link_variables,
    render,
    render_preview,
)
from contactcenter.config import Settings
from crm_store.db import Database
from telephony.sms import Encoding

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # Tuesday, 12:00 in Moscow
PAY = "https://pay.example.ru/{account}?sum={amount}"
SBP = "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2?type=01&sum={amount_kopecks}"
TEMPLATE = "{supplier}: долг {amount} по ЛС {account}. {due_phrase} {pay_url}"


def test_due_phrase_never_asks_to_pay_by_a_past_date() -> None:
    assert due_phrase(dt.date(2026, 12, 25), 0) == "Оплатите до 25.12.2026."
    assert (
        due_phrase(dt.date(2026, 11, 25), 6)
        == "Срок оплаты истёк 25.11.2026, оплатите, пожалуйста."
    )


def test_derived_variables_carry_the_configured_links_only(settings: Settings) -> None:
    plain = derived_variables(settings, "00-12", Decimal("10.5"), dt.date(2026, 12, 25), 0)
    assert plain == {"due_phrase": "Оплатите до 25.12.2026."}
    linked = settings.with_overrides(payment_url_template=PAY, sbp_payment_url_template=SBP)
    both = derived_variables(linked, "00-12", Decimal("10.5"), dt.date(2026, 11, 25), 3)
    assert both["pay_url"] == "https://pay.example.ru/00-12?sum=10.50"
    assert both["sbp_url"].endswith("type=01&sum=1050")
    assert link_variables(settings) == frozenset()
    assert link_variables(linked) == {"pay_url", "sbp_url"}


def test_sample_of_a_template_with_a_link_takes_three_parts() -> None:
    # Cyrillic makes it UCS-2 (67 characters a part): the overdue wording and a link take three,
    # so such a campaign sets max_segments: 3 (the definition refuses it otherwise).
    shown = render_preview(TEMPLATE, SAMPLE_VARIABLES)
    assert shown.encoding is Encoding.UCS2
    assert shown.segments == 3
    assert "истёк" in shown.text
    data = {"name": "D", "channel": "sms", "audience": {"min_debt": 1}}
    with pytest.raises(DefinitionError, match="3 SMS parts"):
        parse_definition({**data, "sms": {"template": TEMPLATE}})
    without_link = "{supplier}: долг {amount} по ЛС {account}. {due_phrase} {phone}"
    assert render_preview(without_link, SAMPLE_VARIABLES).segments == 2


def test_a_template_with_a_link_needs_its_setting(settings: Settings) -> None:
    data: dict[str, Any] = {
        "name": "Долг",
        "channel": "sms",
        "audience": {"min_debt": 1},
        "sms": {"template": TEMPLATE, "max_segments": 3},
    }
    with pytest.raises(DefinitionError) as caught:
        parse_definition(data, link_variables=link_variables(settings))
    [issue] = caught.value.issues
    assert issue.path == "sms.template"
    assert "PAYMENT_URL_TEMPLATE" in issue.message
    linked = settings.with_overrides(payment_url_template=PAY)
    assert parse_definition(data, link_variables=link_variables(linked)).sms is not None
    # Without settings to check against (a file checked offline), the template is accepted.
    assert parse_definition(data).sms is not None
    text = "name: D\nchannel: sms\naudience: {min_debt: 1}\nsms:\n  template: '{sbp_url}'\n"
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text(text, link_variables=frozenset({"pay_url"}))
    assert caught.value.issues[0].line == 5
    assert "SBP_PAYMENT_URL_TEMPLATE" in caught.value.issues[0].message


def test_sms_variables_word_the_due_date_by_the_debts_state(
    db: Database, settings: Settings
) -> None:
    linked = settings.with_overrides(payment_url_template=PAY)
    services, _ = make_services(linked, Clock(START))
    today = START.date()
    with db.transaction() as s:
        overdue = add_debtor(s, 1, today=today, overdue_days=6).id
        current = add_debtor(s, 2, today=today, overdue_days=-10, debt=Decimal("99.9")).id
    with db.transaction() as s:
        late = render(TEMPLATE, sms_variables(s, overdue, services, today))
        early = render(TEMPLATE, sms_variables(s, current, services, today))
    assert late == (
        "ЭнергоСбыт: долг 3 000,00 руб. по ЛС 00000001. Срок оплаты истёк 25.11.2026, "
        "оплатите, пожалуйста. https://pay.example.ru/00000001?sum=3000.00"
    )
    assert early == (
        "ЭнергоСбыт: долг 99,90 руб. по ЛС 00000002. Оплатите до 11.12.2026. "
        "https://pay.example.ru/00000002?sum=99.90"
    )


def test_an_sms_campaign_sends_each_account_its_own_link(db: Database, settings: Settings) -> None:
    clock = Clock(START)
    scenario = {"sms": {"default": {"status": "delivered"}}}
    services, provider = make_services(
        settings.with_overrides(payment_url_template=PAY), clock, scenario
    )
    with db.transaction() as s:
        for n in (1, 2):
            add_debtor(s, n, today=START.date(), debt=Decimal(1000 * n))
    definition = parse_definition(
        {
            "name": "Долг",
            "channel": "sms",
            "audience": {"min_debt": 1},
            "sms": {"template": TEMPLATE, "max_segments": 3},
        },
        link_variables=link_variables(services.settings),
    )
    cid = service.create_campaign(services, definition)
    service.launch(services, cid, start=False)
    run_to_end(services, provider, clock, cid, step_s=600)
    bodies = sorted(m.body for m in provider.messages.values())
    assert [b.rsplit(" ", 1)[1] for b in bodies] == [
        "https://pay.example.ru/00000001?sum=1000.00",
        "https://pay.example.ru/00000002?sum=2000.00",
    ]
    assert all("Срок оплаты истёк" in b and "Оплатите до" not in b for b in bodies)
