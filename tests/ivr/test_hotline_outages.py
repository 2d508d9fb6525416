"""Menu 4 of the hotline: outages announced to callers at the addresses they cover, and reports.

Calls are driven as Twilio drives them (``TwilioCall``) and, for the Done-when of issue 15,
through the call simulator after a real ``contactcenter import outages`` run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select

from contactcenter.cli import main
from contactcenter.config import Settings
from contactcenter.services import Services
from crm_store.db import Database
from crm_store.importer import HEADERS
from crm_store.models import Account, Case, Interaction, Outage, OutageReport
from crm_store.outages import parse_outage, upsert_outage
from devtools.simulator import Simulator
from ivr.action_context import ActionContext, CallContext
from ivr.actions import registry
from ivr.actions_outage import describe_outage
from ivr.errors import ActionFailed
from ivr.sms import IVR_QUEUE
from ivr.verbalize import say_digits
from webhooks import create_app, services_of

from .test_hotline_calls import IN_WINDOW, KNOWN_CALLER, UNKNOWN_CALLER, Clock, add_customer
from .test_webhooks_app import TwilioCall, interaction_of

NEIGHBOUR = "+79167654321"
LENINA_7 = "г. Москва, ул. Ленина, д. 7, кв. 3"


@pytest.fixture
def app(settings: Settings, db: Database, redis_client: Any) -> Iterator[Flask]:
    application = create_app(settings)
    services_of(application).clock = Clock(IN_WINDOW)  # Friday 20 November, 12:00 Moscow
    yield application
    services_of(application).db.dispose()


def add_outage(db: Database, **fields: str) -> None:
    values = {
        "external_id": "GRID-1",
        "kind": "emergency",
        "settlement": "г. Москва",
        "street": "ул. Ленина",
        "houses": "1-15 нечётные",
        "starts_at": "20.11.2026 10:00",
        "expected_end_at": "20.11.2026 16:00",
        "reason": "повреждение кабеля",
        **fields,
    }
    with db.transaction() as s:
        upsert_outage(s, parse_outage(values), source="api")


def sms_jobs(queue: Queue) -> list[Job]:
    """The SMS jobs the calls queued, in order."""
    return [job for job in queue.get_jobs() if job.func_name == "ivr.sms.send_sms_job"]


def menu_4(app: Flask, settings: Settings, caller: str = KNOWN_CALLER) -> TwilioCall:
    call = TwilioCall(app.test_client(), settings, caller=caller)
    call.start()
    call.press("1")  # the address read from the caller's account is right
    call.press("4")
    return call


def test_affected_caller_hears_what_and_until_when(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    add_outage(db)
    call = menu_4(app, settings)
    assert call.last.step == "hotline:outage_known_menu"
    assert (
        "По вашему адресу аварийное отключение электроэнергии. Причина: повреждение кабеля. "
        "Электроснабжение планируется восстановить сегодня в шестнадцать часов."
    ) in call.last.heard
    assert "Об этом отключении уже известно, сообщать о нём не нужно." in call.last.heard
    answer = call.press("1")
    dial = answer.first("Dial")
    assert dial is not None
    number = dial.find("Number")
    assert number is not None
    assert number.text == "+78002200220"
    assert answer.step == "hotline:grid_transfer"
    answer = call.transfer_ended("Dial", "no-answer")
    assert any("Сетевая компания сейчас не отвечает" in t for t in answer.heard)
    assert answer.step == "hotline:after_service"


def test_times_are_spoken_in_the_consumers_zone(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="г. Омск, ул. Ленина, д. 9", phones=(KNOWN_CALLER,))
    with db.transaction() as s:
        s.scalars(select(Account)).one().timezone = "Asia/Omsk"
    add_outage(db, settlement="Омск", timezone="Asia/Omsk", expected_end_at="21.11.2026 08:30")
    call = menu_4(app, settings)
    assert any("восстановить завтра в восемь часов тридцать минут" in t for t in call.last.heard), (
        call.last.heard
    )


def test_planned_outage_ahead_is_announced_and_a_report_offered(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    add_outage(
        db,
        kind="planned",
        starts_at="21.11.2026 10:00",
        expected_end_at="21.11.2026 16:30",
        reason="замена опор",
    )
    add_outage(
        db,
        external_id="GRID-2",
        kind="planned",
        starts_at="25.11.2026 10:00",
        expected_end_at="25.11.2026 16:30",
    )
    call = menu_4(app, settings)
    announced = (
        "Плановое отключение электроэнергии по вашему адресу начнётся завтра в десять часов. "
        "Причина: замена опор. Электроснабжение планируется восстановить в тот же день в "
        "шестнадцать часов тридцать минут."
    )
    assert call.last.heard[:2] == [
        announced,
        "Если у вас нет электричества, нажмите 1, и мы зарегистрируем заявку.",
    ]
    assert call.last.step == "hotline:outage_report_menu"


def test_expired_and_other_addresses_hear_nothing_and_report_with_a_case_number(
    app: Flask, settings: Settings, db: Database, redis_client: Any
) -> None:
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    add_outage(db, starts_at="20.11.2026 08:00", expected_end_at="20.11.2026 11:59")  # over
    add_outage(db, external_id="GRID-2", houses="2-20 чётные")  # the other side of the street
    call = menu_4(app, settings)
    heard = call.last.heard
    nothing = "По нашим данным, отключений по вашему адресу сейчас нет и в ближайшие дни "
    assert nothing + "не запланировано." in heard
    assert not any("аварийное" in t for t in heard)
    answer = call.press("1")
    confirm = "Заявка об отключении будет по адресу: город Москва, улица Ленина, дом 7, квартира 3."
    assert confirm + " Верно?" in answer.heard
    answer = call.press("1")
    with db.transaction() as s:
        case = s.scalars(select(Case)).one()
        assert (case.type, case.status) == ("outage", "open")
        assert case.account_id == s.scalars(select(Account.id)).one()
        assert case.interaction_id == interaction_of(db, call.call_sid).id
        assert "Адрес: г. Москва, ул. Ленина, д. 7, кв. 3" in case.description
        assert "Время: 20.11.2026 12:00 (Europe/Moscow)" in case.description
        number = str(case.id)
    assert f"Заявка принята. Номер заявки: {say_digits(number)}." in answer.heard
    assert "Мы отправили его вам в СМС." in answer.heard
    assert answer.step == "hotline:after_service"
    services = services_of(app)
    queue = Queue(IVR_QUEUE, connection=services.redis)
    (job,) = sms_jobs(queue)
    to, body, _interaction = job.args
    assert to == KNOWN_CALLER
    assert body == (
        "ЭнергоСбыт: заявка об отключении электроэнергии по адресу "
        f"г. Москва, ул. Ленина, д. 7, кв. 3 принята, номер {number}."
    )
    for other in queue.get_jobs():
        if other.id != job.id:
            queue.remove(other)  # the call's own jobs (recording): not this test's business
    SimpleWorker([queue], connection=services.redis).work(burst=True)
    provider: Any = services.telephony
    assert [m.body for m in provider.messages.values()] == [body]
    with db.transaction() as s:
        sms = s.scalars(select(Interaction).where(Interaction.channel == "sms")).one()
        assert (sms.phone, sms.direction) == (KNOWN_CALLER, "outbound")


def test_a_second_report_for_the_building_joins_the_case(
    app: Flask, settings: Settings, db: Database, redis_client: Any
) -> None:
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    add_customer(
        db, "5500654321", address="Москва, улица Ленина, дом 7, кв. 40", phones=(NEIGHBOUR,)
    )
    first = menu_4(app, settings)
    first.press("1")
    first.press("1")
    services_of(app).clock = Clock(IN_WINDOW + timedelta(minutes=25))
    second = menu_4(app, settings, caller=NEIGHBOUR)
    second.press("1")
    answer = second.press("1")
    with db.transaction() as s:
        case = s.scalars(select(Case)).one()
        reports = s.scalars(select(OutageReport).order_by(OutageReport.id)).all()
        assert [r.phone for r in reports] == [KNOWN_CALLER, NEIGHBOUR]
        number = str(case.id)
    assert (
        "По вашему адресу уже есть заявка об отключении, ваше сообщение добавлено к ней."
        in answer.heard
    )
    assert f"Номер заявки: {say_digits(number)}. Мы отправили его вам в СМС." in answer.heard
    jobs = sms_jobs(Queue(IVR_QUEUE, connection=services_of(app).redis))
    assert [j.args[0] for j in jobs] == [KNOWN_CALLER, NEIGHBOUR]
    assert jobs[1].args[1].endswith(f"добавлено к заявке {number}.")


def test_another_address_goes_to_the_operator(app: Flask, settings: Settings, db: Database) -> None:
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    call = menu_4(app, settings)
    call.press("1")
    answer = call.press("2")
    assert "Заявку по другому адресу примет оператор." in answer.heard
    assert answer.first("Enqueue") is not None
    with db.transaction() as s:
        assert s.scalars(select(Case)).all() == []


def test_an_account_without_an_address_is_sent_to_the_operator(
    app: Flask, settings: Settings, db: Database
) -> None:
    add_customer(db, "5500123456", address="", phones=(KNOWN_CALLER,))
    call = TwilioCall(app.test_client(), settings, caller=KNOWN_CALLER)
    call.start()
    call.press("1")
    answer = call.press("4")
    assert answer.step == "hotline:outage_no_address"
    assert "Чтобы сообщить об отключении, нужен адрес. Его примет оператор." in answer.heard


def test_done_when_imported_outage_is_announced_and_a_caller_elsewhere_reports_one(
    app: Flask,
    settings: Settings,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_customer(db, "7700112233", address="г. Москва, ул. Ленина, д. 5, кв. 12")
    add_customer(db, "7700445566", address="г. Москва, ул. Садовая, д. 15, кв. 48")
    feed = tmp_path / "outages.csv"
    feed.write_text(
        "external_id;kind;settlement;street;houses;starts_at;expected_end_at;reason\n"
        "AV-77;аварийное;г. Москва;ул. Ленина;1-15;20.11.2026 11:00;20.11.2026 18:00;"
        "повреждение кабеля\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABASE_URL", db.url)
    imported = CliRunner().invoke(main, ["import", "outages", str(feed)])
    assert imported.exit_code == 0, imported.output
    assert "Новых отключений: 1" in imported.output
    with Simulator(app, settings.webhook_auth_token, settings.public_base_url) as sim:
        affected = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
        affected.press("7700112233#")
        affected.press("1")
        assert affected.heard(
            "Лицевой счёт по адресу: город Москва, улица Ленина, дом 5, квартира 12"
        )
        affected.press("1")
        affected.press("4")
        assert affected.heard(
            "По вашему адресу аварийное отключение электроэнергии. Причина: повреждение кабеля. "
            "Электроснабжение планируется восстановить сегодня в восемнадцать часов."
        )
        affected.hangup()
        elsewhere = sim.call(from_=NEIGHBOUR, to="+78001234567")
        elsewhere.press("7700445566#")
        elsewhere.press("1")
        elsewhere.press("1")
        elsewhere.press("4")
        assert elsewhere.heard("отключений по вашему адресу сейчас нет")
        elsewhere.press("1")
        assert elsewhere.heard("Заявка об отключении будет по адресу: город Москва, улица Садовая")
        elsewhere.press("1")
        with db.transaction() as s:
            case = s.scalars(select(Case)).one()
            assert case.type == "outage"
            number = str(case.id)
        assert elsewhere.heard(f"Номер заявки: {say_digits(number)}")
        assert "hotline:outage_report" in elsewhere.steps
    (job,) = sms_jobs(Queue(IVR_QUEUE, connection=services_of(app).redis))
    assert job.args[0] == NEIGHBOUR
    assert f"номер {number}" in job.args[1]


def test_outage_info_is_told_in_the_accounts_own_day(
    app: Flask, settings: Settings, db: Database
) -> None:
    # 23:30 in Moscow on the 20th: «завтра» is the 21st, a date further on is spoken.
    services_of(app).clock = Clock(datetime(2026, 11, 20, 20, 30, tzinfo=UTC))
    add_customer(db, "5500123456", address=LENINA_7, phones=(KNOWN_CALLER,))
    add_outage(db, starts_at="20.11.2026 22:00", expected_end_at="23.11.2026 09:00")
    call = menu_4(app, settings)
    assert any(
        "восстановить двадцать третьего ноября в девять часов" in t for t in call.last.heard
    ), call.last.heard


@pytest.mark.parametrize(
    ("kind", "starts", "ends", "text"),
    [
        (
            "planned",
            datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
            datetime(2026, 11, 20, 18, 1, tzinfo=UTC),
            (
                "По вашему адресу идут плановые работы, электроэнергия отключена. "
                "Электроснабжение планируется восстановить сегодня в двадцать один час одну минуту."
            ),
        ),
        (
            "emergency",
            datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
            datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
            (
                "Отключение электроэнергии по вашему адресу начнётся послезавтра в девять часов. "
                "Электроснабжение планируется восстановить двадцать третьего ноября в одиннадцать "
                "часов."
            ),
        ),
    ],
)
def test_describe_outage_wording(kind: str, starts: datetime, ends: datetime, text: str) -> None:
    outage = Outage(kind=kind, starts_at=starts, expected_end_at=ends, reason="")
    assert describe_outage(outage, IN_WINDOW, "Europe/Moscow") == text


def test_a_bad_horizon_in_the_flow_is_an_action_failure(settings: Settings, db: Database) -> None:
    services = Services(settings)
    add_customer(db, "5500123456", address=LENINA_7)
    ctx = ActionContext(
        name="outage_info",
        args={"horizon_hours": "двое суток"},
        variables={"account_number": "5500123456"},
        call=CallContext("CA" + "7" * 32, KNOWN_CALLER, "+78001234567"),
        now=IN_WINDOW,
        interaction_id=None,
        deps=services,
    )
    try:
        with pytest.raises(ActionFailed, match="horizon_hours must be a number of hours"):
            registry()["outage_info"](ctx)
        no_account = ActionContext(**{**ctx.__dict__, "args": {}, "variables": {}})
        assert registry()["outage_info"](no_account).outcome == "no_address"
        with pytest.raises(ActionFailed, match="no account with an address"):
            registry()["report_outage"](
                ActionContext(**{**no_account.__dict__, "name": "report_outage"})
            )
    finally:
        services.db.dispose()


def test_a_caller_on_the_feeder_of_an_outage_hears_it(
    app: Flask,
    settings: Settings,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The billing file gives the accounts' feeders, the grid company the outage by feeder
    alone: a caller on that feeder hears it although no outage names their street; a caller
    on another feeder of the same substation does not."""
    consumers = tmp_path / "consumers.csv"
    consumers.write_text(
        ",".join(HEADERS[2])
        + "\n"
        + '7700112233,Иванов Иван Иванович,,"г. Москва, ул. Садовая, д. 15, кв. 48",'
        + "Europe/Moscow,SN-1,6,общая,,,,,Ф-12,ПС 110 кВ Северная\n"
        + '7700445566,Петров Пётр Петрович,,"г. Москва, ул. Садовая, д. 17, кв. 3",'
        + "Europe/Moscow,SN-2,6,общая,,,,,Ф-13,ПС 110 кВ Северная\n",
        encoding="utf-8",
    )
    feed = tmp_path / "outages.csv"
    feed.write_text(
        "Вид;Фидер;Подстанция;Начало;Окончание;Причина\n"
        "аварийное;фидер 12;Северная;20.11.2026 11:00;20.11.2026 18:00;повреждение кабеля\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DATABASE_URL", db.url)
    for kind, path in (("consumers", consumers), ("outages", feed)):
        imported = CliRunner().invoke(main, ["import", kind, str(path)])
        assert imported.exit_code == 0, imported.output
    with Simulator(app, settings.webhook_auth_token, settings.public_base_url) as sim:
        affected = sim.call(from_=UNKNOWN_CALLER, to="+78001234567")
        affected.press("7700112233#")
        affected.press("1")
        affected.press("1")
        affected.press("4")
        assert affected.heard(
            "По вашему адресу аварийное отключение электроэнергии. Причина: повреждение кабеля. "
            "Электроснабжение планируется восстановить сегодня в восемнадцать часов."
        )
        assert not affected.heard("фидер")  # the caller knows the address, not the feeder
        assert not affected.heard("Ф-12")
        assert "hotline:outage_known_menu" in affected.steps
        affected.hangup()
        other_feeder = sim.call(from_=NEIGHBOUR, to="+78001234567")
        other_feeder.press("7700445566#")
        other_feeder.press("1")
        other_feeder.press("1")
        other_feeder.press("4")
        assert other_feeder.heard("отключений по вашему адресу сейчас нет")
        other_feeder.hangup()
