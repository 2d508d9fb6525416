"""SMS opt-out / opt-in keywords (Russian and Twilio's)."""

from __future__ import annotations

import pytest

from campaigns.keywords import KeywordAction, parse_sms_keyword
from campaigns.status import keyword_reply
from contactcenter.config import Settings


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", " Stop! ", "СТОП", "стоп.", "Отписаться", "ОТПИСАТЬСЯ", "unsubscribe",
     "Стоп всё", "стоп все", "«СТОП»", "quit", "STOPALL", "cancel"],
)  # fmt: skip
def test_opt_out_keywords(body: str) -> None:
    assert parse_sms_keyword(body) is KeywordAction.OPT_OUT


@pytest.mark.parametrize("body", ["START", "start", "Старт", "UNSTOP", "подписаться"])
def test_opt_in_keywords(body: str) -> None:
    assert parse_sms_keyword(body) is KeywordAction.OPT_IN


@pytest.mark.parametrize(
    "body",
    ["", "   ", None, "я не могу сейчас, стоп", "стоп-кран", "оплатил вчера", "да", "STOP IT"],
)
def test_ordinary_text_is_not_a_keyword(body: str | None) -> None:
    assert parse_sms_keyword(body) is None


def test_help_and_twilio_opt_out_type() -> None:
    assert parse_sms_keyword("Помощь") is KeywordAction.HELP
    # Twilio's Advanced Opt-Out reports what it matched; that wins over our parsing.
    assert parse_sms_keyword("whatever", "STOP") is KeywordAction.OPT_OUT
    assert parse_sms_keyword("whatever", "start") is KeywordAction.OPT_IN
    assert parse_sms_keyword("стоп", "unknown-type") is KeywordAction.OPT_OUT


def test_keyword_replies(settings: Settings) -> None:
    assert "отписаны" in str(keyword_reply(settings, KeywordAction.OPT_OUT))
    assert "снова подписаны" in str(keyword_reply(settings, KeywordAction.OPT_IN))
    help_text = str(keyword_reply(settings, KeywordAction.HELP))
    assert help_text.startswith(f"{settings.supplier_name}: справка по телефону")
    assert settings.operator_phone in help_text
    assert keyword_reply(settings, None) is None
