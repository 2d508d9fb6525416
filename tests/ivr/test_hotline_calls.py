"""Whole hotline calls on the shipped ``call_flows.yaml``, driven as Twilio drives them.

Every request is a signed form POST; every next request follows the action URL of the
TwiML just returned (see ``TwilioCall`` in ``test_webhooks_app``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import select

from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import (
    Account,
    AccountPhone,
    Case,
    Charge,
    Consent,
    Consumer,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
)
from ivr.sms import IVR_QUEUE
from ivr.voice_policy import VOICE_UNAVAILABLE_PROMPT
from webhooks import create_app, services_of

from .test_webhooks_app import TwilioCall, interaction_of, path_of

# 20 November 2026, 12:00 in Moscow: a Friday inside the reading window (15th-25th).
IN_WINDOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# 10 November 2026, 12:00 in Moscow: before the window opens.
BEFORE_WINDOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
# Sunday 8 November 2026, 23:00 in Moscow: operators do not work.
OPERATORS_CLOSED = datetime(2026, 11, 8, 20, 0, tzinfo=UTC)

UNKNOWN_CALLER = "+79035550000"
KNOWN_CALLER = "+79161234567"
SHARED_CALLER = "+79260001122"


class Clock:
    """A settable clock the runtime reads through ``Services``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(IN_WINDOW)


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any, clock: Clock) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = clock
    yield application
    services_of(application).db.dispose()


def add_customer(
    db: Database,
    number: str,
    *,
    address: str,
    phones: tuple[str, ...] = (),
    email: str | None = "ivanov@example.ru",
    meters: tuple[tuple[str, int, tuple[str, ...]], ...] = (("0123456", 6, ("день", "ночь")),),
    history: dict[str, int] | None = None,
    debt: Decimal | None = None,
    paid: Decimal | None = None,
) -> int:
    """A consumer with one account, its phones, meters (serial, capacity, zones) and money."""
    with db.transaction() as s:
        consumer = Consumer(full_name="Иванов Иван Иванович", email=email)
        s.add(consumer)
        s.flush()
        account = Account(
            consumer_id=consumer.id,
            number_raw=number,
            number=number,
            service_address=address,
            timezone="Europe/Moscow",
        )
        s.add(account)
        s.flush()
        for phone in phones:
            row = s.scalars(select(PhoneNumber).where(PhoneNumber.e164 == phone)).one_or_none()
            if row is None:
                row = PhoneNumber(e164=phone, source="import", verified=True)
                s.add(row)
                s.flush()
            s.add(AccountPhone(account_id=account.id, phone_id=row.id))
        for serial, capacity, zones in meters:
            meter = Meter(
                account_id=account.id, serial=serial, capacity=capacity, zones=list(zones)
            )
            s.add(meter)
            s.flush()
            for zone, value in (history or {}).items():
                s.add(
                    MeterReading(
                        meter_id=meter.id,
                        zone=zone,
                        value=value,
                        period=date(2026, 10, 1),
                        source="import",
                        submitted_at=datetime(2026, 10, 20, 9, 0, tzinfo=UTC),
                    )
                )
        if debt is not None:
            s.add(
                Charge(
                    account_id=account.id,
                    period=date(2026, 10, 1),
                    amount=debt + (paid or Decimal(0)),
                    due_date=date(2026, 11, 10),
                )
            )
        if paid is not None:
            s.add(
                Payment(
                    account_id=account.id, amount=paid, paid_on=date(2026, 10, 5), channel="sbp"
                )
            )
        return int(account.id)


def identify_by_number(call: TwilioCall, number: str) -> None:
    """From the greeting to the main menu, typing the account number."""
    answer = call.start()
    assert "Введите номер лицевого счёта или код из рамки на квитанции и нажмите решётку." in (
        answer.heard
    )
    answer = call.press(number)
    assert answer.step == "identify:ask_account"
    assert any(text.startswith("Вы ввели: ") for text in answer.heard)
    answer = call.press("1")
    assert answer.step == "identify:confirm_found"
    answer = call.press("1")
    assert answer.step == "hotline:main_menu"


def readings_of(db: Database, account_id: int) -> list[tuple[str, int, str, int | None]]:
    with db.transaction() as s:
        rows = s.execute(
            select(
                MeterReading.zone,
                MeterReading.value,
                MeterReading.source,
                MeterReading.interaction_id,
            )
            .join(Meter, Meter.id == MeterReading.meter_id)
            .where(Meter.account_id == account_id, MeterReading.period == date(2026, 11, 1))
            .order_by(MeterReading.id)
        ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_unknown_caller_submits_two_zone_readings_by_keypad(
    app: Flask, settings: Settings, db: Database
) -> None:
    """The Done-when of issue 3."""
    account_id = add_customer(
        db, "7700112233", address="улица Ленина, дом пять", history={"день": 12000, "ночь": 5000}
    )
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    answer = call.press("1")
    assert answer.step == "readings:ask_reading"
    assert "Введите показание по тарифу «день» и нажмите решётку." in answer.heard
    assert any("Предыдущее показание: двенадцать тысяч." in t for t in answer.heard)
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("finishOnKey") == "#"
    answer = call.press("12345")
    assert answer.heard[0] == "Вы ввели: двенадцать тысяч триста сорок пять. Верно?"
    answer = call.press("1")
    assert "Показание по тарифу «день» записано." in answer.heard
    assert "Введите показание по тарифу «ночь» и нажмите решётку." in answer.heard
    call.press("5100")
    answer = call.press("1")
    assert "Показание по тарифу «ночь» записано." in answer.heard
    assert "Показания приняты. Спасибо!" in answer.heard
    assert answer.step == "hotline:after_service"
    answer = call.press("2")
    assert answer.heard == ["Спасибо за звонок! До свидания."]
    assert answer.first("Hangup") is not None

    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    assert readings_of(db, account_id) == [
        ("день", 12345, "ivr_dtmf", interaction.id),
        ("ночь", 5100, "ivr_dtmf", interaction.id),
    ]
    assert interaction.account_id == account_id
    assert interaction.phone == UNKNOWN_CALLER
    path = path_of(db, interaction.id)
    entered = [step for step, event, _i, _o in path if event == "enter"]
    for expected in (
        "hotline:greet",
        "identify:lookup",
        "identify:ask_account",
        "identify:find_account",
        "hotline:main_menu",
        "readings:begin",
        "readings:ask_reading",
        "readings:save",
        "readings:all_accepted",
        "hotline:goodbye",
    ):
        assert expected in entered
    assert ("identify:lookup", "action", None, "unknown") in path
    assert ("readings:ask_reading", "input", "12345", "confirm") in path


def test_known_caller_confirms_address_and_hears_the_balance(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(
        db,
        "5500123456",
        address="улица Мира, дом семь",
        phones=(KNOWN_CALLER,),
        debt=Decimal("1234.56"),
        paid=Decimal("500.00"),
    )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    answer = call.start()
    assert answer.heard[:2] == [
        "Здравствуйте! Вы позвонили в компанию ЭнергоСбыт.",
        "Для улучшения качества обслуживания разговор записывается.",
    ]
    assert "Ваш адрес: улица Мира, дом семь. Верно?" in answer.heard
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("numDigits") == "1"
    answer = call.press("1")
    assert answer.step == "hotline:main_menu"
    answer = call.press("2")
    text = " ".join(answer.heard)
    # the 10 November due date is past on 20 November: overdue, not a deadline to meet
    assert "Ваша задолженность составляет одну тысячу двести тридцать четыре рубля" in text
    assert "пятьдесят шесть копеек" in text
    assert "Задолженность просрочена: срок оплаты истёк десятого ноября." in text
    assert "Оплатить её нужно до" not in text
    assert "Последний платёж пятьсот рублей" in text
    assert answer.step == "hotline:after_service"
    answer = call.press("1")
    assert answer.step == "hotline:main_menu"


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (datetime(2026, 11, 10, 20, 59, tzinfo=UTC), False),  # 23:59 in Moscow on the due date
        (datetime(2026, 11, 10, 21, 0, tzinfo=UTC), True),  # 00:00 the next day in Moscow
    ],
)
def test_debt_is_overdue_only_after_its_due_date(
    app: Flask, settings: Settings, db: Database, clock: Clock, now: datetime, overdue: bool
) -> None:
    clock.now = now
    add_customer(
        db,
        "5500123458",
        address="улица Мира, дом девять",
        phones=(KNOWN_CALLER,),
        debt=Decimal(91000),
    )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    text = " ".join(call.press("2").heard)
    assert "Ваша задолженность составляет девяносто одну тысячу рублей." in text
    assert ("Задолженность просрочена: срок оплаты истёк десятого ноября." in text) is overdue
    assert ("Оплатить её нужно до десятого ноября." in text) is not overdue


def test_no_debt_with_credit(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(db, "5500123457", address="улица Мира, дом восемь", phones=(KNOWN_CALLER,))
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "5500123457")).one()
        s.add(
            Payment(
                account_id=account.id,
                amount=Decimal("300.00"),
                paid_on=date(2026, 11, 1),
                channel="card",
            )
        )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    text = " ".join(call.press("2").heard)
    assert "Задолженности по вашему лицевому счёту нет." in text
    assert "Переплата составляет триста рублей" in text


def test_caller_with_several_accounts_chooses_one(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "1000000001", address="улица Первая, дом один", phones=(SHARED_CALLER,))
    add_customer(db, "1000000002", address="улица Вторая, дом два", phones=(SHARED_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=SHARED_CALLER)
    answer = call.start()
    text = " ".join(answer.heard)
    assert "несколько лицевых счетов: два" in text
    assert "один — улица Первая, дом один; два — улица Вторая, дом два." in text
    answer = call.press("7")
    assert "Такого номера в списке нет." in answer.heard
    answer = call.press("2")
    assert answer.step == "hotline:main_menu"
    call.press("2")
    call.flush_crm()
    interaction = interaction_of(db, call.call_sid)
    with db.transaction() as s:
        account = s.scalars(select(Account).where(Account.number == "1000000002")).one()
        assert interaction.account_id == account.id


def test_address_denied_then_unknown_account_then_operator(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    answer = call.press("2")
    assert answer.step == "identify:ask_account"
    call.press("99999999")
    answer = call.press("1")
    assert answer.step == "identify:not_found"
    assert "Лицевой счёт девять девять девять девять девять девять девять девять не найден." in (
        answer.heard
    )
    answer = call.press("1")
    assert answer.step == "identify:ask_account"
    call.press("88888888")
    call.press("1")
    answer = call.press("0")
    assert answer.step == "operator:connect"
    assert "Соединяю с оператором. Пожалуйста, оставайтесь на линии." in answer.heard
    enqueue = answer.first("Enqueue")
    assert enqueue is not None
    task = enqueue.find("Task")
    assert task is not None
    assert '"identify:not_found"' in (task.text or "")
    assert interaction_of(db, call.call_sid).outcome == "transferred_queue"
    answer = call.transfer_ended("Enqueue", "bridged")
    assert answer.verbs[0].tag == "Hangup"


def test_wrong_account_retries_are_capped_then_operator(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь")
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    call.start()
    for attempt, number in enumerate(("99999999", "88888888", "77777777"), start=1):
        answer = call.press(number)
        assert answer.step == "identify:ask_account"
        answer = call.press("1")
        if attempt < 3:
            assert answer.step == "identify:not_found"
            answer = call.press("1")
            assert answer.step == "identify:ask_account"
    assert "Не удалось найти лицевой счёт. Вам поможет оператор." in answer.heard
    assert "Соединяю с оператором. Пожалуйста, оставайтесь на линии." in answer.heard
    assert answer.step == "operator:connect"
    path = path_of(db, interaction_of(db, call.call_sid).id)
    lookups = [r for r in path if r[0] == "identify:find_account" and r[1] == "action"]
    assert [r[3] for r in lookups] == ["not_found", "not_found", "not_found"]
    assert "identify:account_attempts_used" in [r[0] for r in path]


def test_rejected_addresses_count_as_wrong_account_attempts(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь")
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    call.start()
    for attempt in range(1, 4):
        call.press("5500123456")
        answer = call.press("1")
        assert answer.step == "identify:confirm_found"
        answer = call.press("2")  # not my address
        if attempt < 3:
            assert answer.step == "identify:ask_account"
    assert "Не удалось найти лицевой счёт. Вам поможет оператор." in answer.heard
    assert answer.step == "operator:connect"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("1234567890123456789012345", "Вы ввели слишком много цифр."),
        ("12", "Вы ввели слишком мало цифр."),
    ],
)
def test_account_reprompt_states_the_real_reason(
    app: Flask, settings: Settings, db: Database, typed: str, reason: str
) -> None:
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    call.start()
    answer = call.press(typed)
    assert answer.step == "identify:ask_account"
    assert answer.heard[:2] == [reason, "Введите номер лицевого счёта и нажмите решётку."]
    assert not any("только из цифр" in text for text in answer.heard)


def test_reading_reprompt_says_too_many_digits(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "7700112233", address="улица Ленина, дом пять")
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    call.press("1")
    answer = call.press("123456789")
    assert answer.step == "readings:ask_reading"
    assert answer.heard[:2] == [
        "Вы ввели слишком много цифр.",
        "Введите показание до запятой и нажмите решётку.",
    ]


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        (BEFORE_WINDOW, "с пятнадцатого ноября по двадцать пятое ноября"),
        (
            datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
            "с пятнадцатого декабря по двадцать пятое декабря",
        ),
    ],
)
def test_reading_window_closed_when_the_supplier_refuses_late_readings(
    settings: Settings, db: Database, redis_client: Any, now: datetime, opens: str
) -> None:
    """READING_LATE_POLICY=refuse: nothing is taken, and the caller is not told otherwise."""
    application = create_app(settings.with_overrides(reading_late_policy="refuse"))
    services_of(application).clock = Clock(now)
    try:
        account_id = add_customer(db, "7700112233", address="улица Ленина, дом пять")
        call = TwilioCall(application.test_client(), settings, caller=UNKNOWN_CALLER)
        identify_by_number(call, "7700112233")
        answer = call.press("1")
    finally:
        services_of(application).db.dispose()
    text = " ".join(answer.heard)
    assert f"Показания принимаются {opens}." in text
    assert "Пожалуйста, передайте их в эти дни." in text
    assert "учтены" not in text
    assert answer.step == "hotline:after_service"
    assert readings_of(db, account_id) == []


def test_late_reading_is_taken_for_the_next_period_by_default(
    app: Flask, settings: Settings, db: Database, clock: Clock
) -> None:
    """READING_LATE_POLICY=accept (default): after the window the reading is taken, for the
    next period, and the caller hears exactly that."""
    clock.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    account_id = add_customer(
        db, "7700112233", address="улица Ленина, дом пять", meters=(("555", 6, ("T1",)),)
    )
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    answer = call.press("1")
    text = " ".join(answer.heard)
    assert "Приём показаний за текущий месяц закончился двадцать пятого ноября." in text
    assert "будут учтены в следующем расчётном периоде" in text
    assert answer.step == "readings:ask_reading"
    call.press("12345")
    answer = call.press("1")
    assert "Показания приняты. Спасибо!" in answer.heard
    with db.transaction() as s:
        reading = s.scalars(select(MeterReading)).one()
        assert (reading.value, reading.period) == (12345, date(2026, 12, 1))
        assert reading.meter.account_id == account_id


def test_early_reading_is_taken_for_the_current_period_by_default(
    app: Flask, settings: Settings, db: Database, clock: Clock
) -> None:
    clock.now = BEFORE_WINDOW
    add_customer(db, "7700112233", address="улица Ленина, дом пять", meters=(("555", 6, ("T1",)),))
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    answer = call.press("1")
    assert "учтены" not in " ".join(answer.heard)
    assert answer.step == "readings:ask_reading"
    call.press("12345")
    answer = call.press("1")
    assert "Показания приняты. Спасибо!" in answer.heard
    with db.transaction() as s:
        assert s.scalars(select(MeterReading.period)).one() == date(2026, 11, 1)


def test_lower_and_implausible_readings(app: Flask, settings: Settings, db: Database) -> None:
    account_id = add_customer(
        db,
        "7700112233",
        address="улица Ленина, дом пять",
        meters=(("555", 6, ("T1",)),),
        history={"T1": 12000},
    )
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    call.press("1")
    call.press("11000")
    answer = call.press("1")
    assert answer.step == "readings:confirm_lower"
    assert "Показание одиннадцать тысяч меньше предыдущего, двенадцать тысяч." in answer.heard
    answer = call.press("2")
    assert answer.step == "readings:ask_reading"
    call.press("99999")
    answer = call.press("1")
    text = " ".join(answer.heard)
    assert "Показание не принято: расход составит восемьдесят семь тысяч" in text
    assert "это намного больше обычного" in text
    assert answer.step == "readings:ask_reading"
    call.press("1234567")  # seven digits on a six-digit display
    answer = call.press("1")
    assert "Показание не принято: в показании больше цифр, чем на табло счётчика." in answer.heard
    call.press("11000")
    call.press("1")
    answer = call.press("1")
    assert "Показания приняты. Спасибо!" in answer.heard
    assert readings_of(db, account_id) == [
        ("T1", 11000, "ivr_dtmf", interaction_of(db, call.call_sid).id)
    ]
    with db.transaction() as s:
        reading = s.scalars(select(MeterReading).where(MeterReading.value == 11000)).one()
        assert reading.override


def test_remote_read_meters_only(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(db, "7700112233", address="улица Ленина, дом пять")
    with db.transaction() as s:
        for meter in s.scalars(select(Meter)):
            meter.remote_read = True
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    answer = call.press("1")
    assert any(
        "нет счётчиков, показания которых нужно передавать вручную" in t for t in answer.heard
    )


@pytest.fixture
def pay_app(settings: Settings, db: Database, redis_client: Any, clock: Clock) -> Iterator[Flask]:
    """The app of a supplier with a payment page per account (PAYMENT_URL_TEMPLATE)."""
    linked = settings.with_overrides(payment_url_template="https://pay.example/{account}")
    application = create_app(linked)
    services_of(application).clock = clock
    yield application
    services_of(application).db.dispose()


def test_payment_sms_goes_to_rq_and_is_sent_by_the_job(
    pay_app: Flask, settings: Settings, db: Database, redis_client: Any
) -> None:
    from rq import SimpleWorker

    app = pay_app
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    answer = call.press("3")
    assert answer.step == "hotline:payment_menu"
    answer = call.press("1")
    assert "Мы отправили вам СМС со ссылкой на оплату." in answer.heard
    services = services_of(app)
    queue = Queue(IVR_QUEUE, connection=services.redis)
    jobs = [j for j in queue.get_jobs() if j.func_name == "ivr.sms.send_sms_job"]
    assert len(jobs) == 1
    to, body, interaction_id = jobs[0].args
    assert to == KNOWN_CALLER
    assert body.endswith("https://pay.example/5500123456")
    assert interaction_id == interaction_of(db, call.call_sid).id
    # A retried webhook does not enqueue the SMS twice.
    SimpleWorker([queue], connection=services.redis).work(burst=True)
    provider: Any = services.telephony
    assert [m.body for m in provider.messages.values()] == [body]
    with db.transaction() as s:
        from crm_store.models import Interaction

        sms = s.scalars(select(Interaction).where(Interaction.channel == "sms")).one()
        assert sms.phone == KNOWN_CALLER
        assert sms.direction == "outbound"


def test_e_receipt_subscription_records_consent(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    call.press("3")
    answer = call.press("2")
    assert answer.step == "hotline:ereceipt_consent"
    answer = call.press("1")
    assert "Готово. Электронная квитанция будет приходить на адрес i***@example.ru." in answer.heard
    with db.transaction() as s:
        consent = s.scalars(select(Consent).where(Consent.purpose == "e_receipt")).one()
        assert (consent.contact, consent.value, consent.granted) == (
            "email",
            "ivanov@example.ru",
            True,
        )
        assert s.scalars(select(Account)).one().e_receipt
    jobs = Queue(IVR_QUEUE, connection=services_of(app).redis).get_jobs()
    assert [j.func_name for j in jobs].count("ivr.sms.send_sms_job") == 1
    # A second call hears that the subscription exists.
    again = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    again.start()
    again.press("1")
    again.press("3")
    again.press("2")
    answer = again.press("1")
    assert (
        "Вы уже подписаны на электронную квитанцию. Она приходит на адрес i***@example.ru."
        in answer.heard
    )


def test_e_receipt_without_email(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(
        db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,), email=None
    )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    call.press("3")
    call.press("2")
    answer = call.press("1")
    assert any("не указана электронная почта" in t for t in answer.heard)


@pytest.mark.parametrize(
    ("now", "overrides", "heard"),
    [
        # Friday 13 November, 18:00 in Moscow: next Monday
        (datetime(2026, 11, 13, 15, 0, tzinfo=UTC), {}, "в понедельник в восемь часов"),
        # Friday 20 November, 18:00: Saturday the 21st is a peak day (ordinary hours)
        (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), {}, "завтра в восемь часов"),
        # Tuesday 3 November, 18:00: 4 November is a public holiday (production calendar)
        (datetime(2026, 11, 3, 15, 0, tzinfo=UTC), {}, "в четверг в восемь часов"),
        # hours and the hotline's own holidays come from the settings
        (
            datetime(2026, 11, 13, 15, 0, tzinfo=UTC),
            {
                "operator_hours": (time(9, 30), time(18, 0)),
                "operator_holidays": frozenset({date(2026, 11, 16)}),
            },
            "во вторник в девять часов тридцать минут",
        ),
        # 31 December, 18:00: the January holidays, then the date
        (datetime(2026, 12, 31, 15, 0, tzinfo=UTC), {}, "одиннадцатого января"),
    ],
)
def test_operators_closed_say_the_day_and_hour_they_open(
    settings: Settings,
    db: Database,
    redis_client: Any,
    now: datetime,
    overrides: dict[str, Any],
    heard: str,
) -> None:
    application = create_app(settings.with_overrides(**overrides))
    services_of(application).clock = Clock(now)
    try:
        call = TwilioCall(application.test_client(), settings, caller=UNKNOWN_CALLER)
        call.start()
        answer = call.press("0")
    finally:
        services_of(application).db.dispose()
    assert answer.step == "operator:closed_menu"
    text = " ".join(answer.heard)
    assert f"Они начнут принимать звонки {heard}" in text


def test_operators_closed_callback_request_creates_a_case(
    app: Flask, settings: Settings, db: Database, clock: Clock
) -> None:
    clock.now = OPERATORS_CLOSED
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    answer = call.press("0")
    assert answer.step == "operator:closed_menu"
    assert any(
        t == "Сейчас операторы не работают. Они начнут принимать звонки завтра в восемь часов."
        for t in answer.heard
    )
    answer = call.press("1")
    record = answer.first("Record")
    assert record is not None
    assert record.get("maxLength") == "60"
    answer = call.record("https://api.twilio.com/rec/RE42", 15)
    assert answer.first("Hangup") is not None
    with db.transaction() as s:
        case = s.scalars(select(Case)).one()
        assert case.type == "callback"
        assert "https://api.twilio.com/rec/RE42" in case.description
        assert case.interaction_id == interaction_of(db, call.call_sid).id
        assert case.account_id is not None
    assert any("номер заявки" in t for t in answer.heard)


def test_no_input_and_no_match_on_the_main_menu(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    answer = call.silence()
    assert answer.heard[0] == "Извините, я вас не слышу."
    assert answer.step == "hotline:main_menu"
    answer = call.press("7")
    assert answer.heard[0] == "Извините, я не поняла."
    answer = call.press("8")
    assert answer.heard[0].startswith("Пожалуйста, воспользуйтесь кнопками телефона.")
    answer = call.press("6")
    assert answer.step == "operator:connect"
    assert answer.first("Enqueue") is not None
    interaction = interaction_of(db, call.call_sid)
    events = [(step, event) for step, event, _i, _o in path_of(db, interaction.id)]
    assert ("hotline:main_menu", "no_input") in events
    assert events.count(("hotline:main_menu", "no_match")) == 3
    assert ("hotline:main_menu", "escalate") in events


def test_universal_repeat_and_operator_in_account_entry(
    app: Flask, settings: Settings, db: Database
) -> None:
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    first = call.start()
    answer = call.press("*")
    assert answer.heard == [
        "Введите номер лицевого счёта или код из рамки на квитанции и нажмите решётку."
    ]
    assert answer.step == first.step == "identify:ask_account"
    answer = call.speak("повторите пожалуйста")
    assert answer.step == "identify:ask_account"
    answer = call.press("0")
    assert answer.step == "operator:connect"


def test_keypad_typeahead_skips_prompts(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(
        db,
        "5500123456",
        address="улица Мира, дом семь",
        phones=(KNOWN_CALLER,),
        history={"день": 100, "ночь": 50},
    )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    # «Да» for the address, then 1 for readings, typed before the menu was spoken.
    answer = call.press("11")
    assert answer.step == "readings:ask_reading"
    assert "Введите показание по тарифу «день» и нажмите решётку." in answer.heard


def test_main_menu_without_a_speech_model_is_keypad_with_one_notice(
    app: Flask, settings: Settings, db: Database
) -> None:
    """No Russian model: the voice menu asks by keypad after a spoken notice, once a call;
    a ``SpeechResult`` Twilio posts to the Gather is still understood."""
    add_customer(
        db,
        "5500123456",
        address="улица Мира, дом семь",
        phones=(KNOWN_CALLER,),
        debt=Decimal("10.00"),
    )
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    answer = call.press("1")
    assert answer.step == "hotline:main_menu"
    assert answer.heard[0] == VOICE_UNAVAILABLE_PROMPT
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf"
    assert answer.first("Record") is None
    assert answer.first("Start") is None
    answer = call.speak("хочу узнать баланс")
    assert any("Ваша задолженность составляет десять рублей" in t for t in answer.heard)
    assert VOICE_UNAVAILABLE_PROMPT not in answer.heard
    answer = call.press("1")  # after_service: back to the main menu, no second notice
    assert answer.step == "hotline:main_menu"
    assert answer.first("Gather") is not None
    assert call.heard.count(VOICE_UNAVAILABLE_PROMPT) == 1


def test_reading_by_speech_is_saved_as_ivr_voice(
    app: Flask, settings: Settings, db: Database
) -> None:
    """Keypad-only without a model, but a ``SpeechResult`` (Twilio's recogniser) is parsed:
    the reading is saved as ``ivr_voice`` with its confidence."""
    account_id = add_customer(
        db,
        "7700112233",
        address="улица Ленина, дом пять",
        meters=(("555", 6, ("T1",)),),
        history={"T1": 12000},
    )
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    answer = call.speak("показания")
    assert answer.step == "readings:ask_reading"
    assert VOICE_UNAVAILABLE_PROMPT not in answer.heard  # said once, at the main menu
    gather = answer.first("Gather")
    assert gather is not None
    assert gather.get("input") == "dtmf"
    answer = call.speak("двенадцать тысяч триста сорок пять", confidence=0.71)
    assert answer.recognized == "двенадцать тысяч триста сорок пять"
    assert answer.heard[0] == "Вы ввели: двенадцать тысяч триста сорок пять. Верно?"
    answer = call.speak("да, верно")
    assert "Показания приняты. Спасибо!" in answer.heard
    with db.transaction() as s:
        reading = s.scalars(select(MeterReading).where(MeterReading.value == 12345)).one()
        assert reading.source == "ivr_voice"
        assert reading.confidence == pytest.approx(0.71)
    assert [r[2] for r in readings_of(db, account_id)] == ["ivr_voice"]
    call.flush_crm()
    with db.transaction() as s:
        from crm_store.models import Transcript

        rows = s.scalars(select(Transcript).order_by(Transcript.id)).all()
        assert [(r.step, r.text, r.decision) for r in rows] == [
            ("hotline:main_menu", "показания", "input:readings"),
            ("readings:ask_reading", "двенадцать тысяч триста сорок пять", "input:confirm"),
            ("readings:ask_reading", "да, верно", "confirm:yes"),
        ]
        assert rows[1].confidence == pytest.approx(0.71)


def test_unrecognised_speech_is_a_no_match(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(db, "7700112233", address="улица Ленина, дом пять")
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    call.press("1")
    answer = call.speak("не знаю что сказать")
    assert answer.heard[0] == "Введите показание до запятой и нажмите решётку."
    assert answer.step == "readings:ask_reading"


def test_spoken_reading_with_too_many_digits_says_so(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "7700112233", address="улица Ленина, дом пять")
    call = TwilioCall(app.test_client(), settings, caller=UNKNOWN_CALLER)
    identify_by_number(call, "7700112233")
    call.press("1")
    answer = call.speak("один два три четыре пять шесть семь восемь девять")
    assert answer.heard[:2] == [
        "Вы ввели слишком много цифр.",
        "Введите показание до запятой и нажмите решётку.",
    ]
    assert answer.step == "readings:ask_reading"


def test_full_operator_queue_offers_a_callback(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="улица Мира, дом семь", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    answer = call.press("0")
    assert answer.step == "operator:connect"
    answer = call.transfer_ended("Enqueue", "queue-full")
    assert answer.step == "operator:callback_offer"
    assert "К сожалению, все операторы заняты." in answer.heard
    answer = call.press("2")
    assert answer.heard == ["Спасибо за звонок! До свидания."]
    call.flush_crm()
    path = path_of(db, interaction_of(db, call.call_sid).id)
    assert ("operator:connect", "transfer_ended", None, "queue-full") in path
