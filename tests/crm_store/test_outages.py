"""Outages: address keys, house specifications, storing, matching, expiry and report grouping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm_store.addresses import (
    House,
    HouseSpecError,
    address_key,
    parse_address,
    parse_house,
    parse_house_spec,
)
from crm_store.cases import change_status
from crm_store.db import Database
from crm_store.errors import InvalidOutage
from crm_store.models import Account, Case, CaseEvent, Consumer, Outage, OutageCase, OutageReport
from crm_store.outages import (
    active_outages_for,
    grid_key,
    list_outages,
    parse_moment,
    parse_outage,
    report_outage,
    upsert_outage,
)

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "settlement", "street_type", "street", "house"),
    [
        ("г. Москва, ул. Ленина, д. 1, кв. 2", "москва", "ул", "ленина", "1"),
        ("Тверская область, г. Ржев, ул. Заречная, д. 7", "ржев", "ул", "заречная", "7"),
        ("г.Москва,ул.Лёнина,д.1", "москва", "ул", "ленина", "1"),
        ("город Москва, улица Ленина, дом 1", "москва", "ул", "ленина", "1"),
        ("Москва, Ленина ул., 5а", "москва", "ул", "ленина", "5а"),
        ("Тверская обл г Ржев ул Заречная д 7 кв 3", "ржев", "ул", "заречная", "7"),
        (
            "д. Ивановка, ул. Центральная, д. 12/1 корп. 2",
            "ивановка",
            "ул",
            "центральная",
            "12/1к2",
        ),
        ("123456, г. Омск, ул. 8 Марта, 7-а", "омск", "ул", "8 марта", "7а"),
        ("пос. Южный, ул. 1-я Парковая, д 3 стр 1", "южный", "ул", "1 парковая", "3с1"),
        ("г. Москва, пр-т Мира, д. 15", "москва", "пр-т", "мира", "15"),
        ("ул. Ленина, д. 5", "", "ул", "ленина", "5"),
        ("Ленина 5", "", "", "ленина", "5"),
    ],
)
def test_parse_address(
    text: str, settlement: str, street_type: str, street: str, house: str
) -> None:
    parsed = parse_address(text)
    assert (parsed.settlement, parsed.street_type, parsed.street) == (
        settlement,
        street_type,
        street,
    )
    assert str(parsed.house) == house


def test_address_key_ignores_the_flat_and_the_spelling() -> None:
    key = address_key("г. Москва, ул. Ленина, д. 1, кв. 2")
    assert address_key("Москва, улица Лёнина, дом 1, квартира 40") == key
    assert address_key("г. Москва, ул. Ленина, д. 3, кв. 2") != key
    assert address_key("г. Москва, пр-т Ленина, д. 1") != key
    assert address_key("Кв. 5") == "кв 5"  # nothing to place: the text itself
    assert address_key("улица Мира, дом семь") == "улица мира дом семь"  # no house number


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ("1-15", ["1", "7", "7а", "15", "9 к2"], ["16", "0"]),
        ("1–15", ["15"], ["17"]),
        ("с 1 по 15", ["3"], ["20"]),
        ("2-20 чётные", ["2", "10", "20"], ["3", "22", "19"]),
        ("нечётные 1-15", ["1", "13", "15"], ["2", "17"]),
        ("1-15 нечет.", ["9"], ["8"]),
        ("нечётные", ["1", "101"], ["2", "100"]),
        ("ЧЁТНАЯ СТОРОНА", ["4"], ["5"]),
        ("7а, 9", ["7а", "9", "9 к2"], ["7", "8", "9а"]),
        ("7", ["7", "7 корп. 2", "7 стр 1"], ["7а", "17"]),
        ("12/1", ["12/1"], ["12", "12/2"]),
        ("1-15 нечетные; 2-20 четные", ["3", "4"], ["17", "22"]),
        ("", ["1", "999"], []),
        ("все", ["1"], []),
    ],
)
def test_house_specifications(spec: str, inside: list[str], outside: list[str]) -> None:
    parsed = parse_house_spec(spec)
    for text in inside:
        assert parsed.covers(parse_house(text)), (spec, text)
    for text in outside:
        assert not parsed.covers(parse_house(text)), (spec, text)


def test_an_unknown_house_is_in_no_range_but_on_a_whole_street() -> None:
    assert not parse_house_spec("1-15").covers(None)
    assert parse_house_spec("").covers(None)


@pytest.mark.parametrize(
    ("spec", "reason"), [("15-1", "начало диапазона"), ("abc", "не распознаны")]
)
def test_bad_house_specifications(spec: str, reason: str) -> None:
    with pytest.raises(HouseSpecError, match=reason):
        parse_house_spec(spec)


def test_parse_house_forms() -> None:
    assert parse_house("7 А") == House(7, "а")
    assert parse_house("7-а") == House(7, "а")
    assert parse_house("5 корп. 2 стр. 1") == House(5, "к2с1")
    assert parse_house("семь") is None


# --------------------------------------------------------------------------- input


def fields(**overrides: Any) -> dict[str, Any]:
    base = {
        "external_id": "GRID-1",
        "kind": "emergency",
        "settlement": "г. Москва",
        "street": "ул. Ленина",
        "houses": "1-15 нечётные",
        "starts_at": "20.11.2026 10:00",
        "expected_end_at": "20.11.2026 16:00",
        "reason": "повреждение кабеля",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_parse_outage_reads_local_times_in_the_given_zone() -> None:
    outage = parse_outage(fields())
    assert outage.starts_at == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert outage.expected_end_at == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    assert outage.settlement_key == "москва"
    assert outage.street_parts == ("ул", "ленина")
    omsk = parse_outage(fields(timezone="Asia/Omsk"))
    assert omsk.starts_at == datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    iso = parse_outage(fields(starts_at="2026-11-20T10:00:00+05:00"))
    assert iso.starts_at == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
    assert parse_outage(fields(kind="Плановое")).kind == "planned"


def test_parse_outage_lists_every_problem() -> None:
    with pytest.raises(InvalidOutage) as caught:
        parse_outage(
            fields(
                kind="сильное",
                starts_at="20.11.2026",
                expected_end_at="31.11.2026 10:00",
                houses="15-1",
                timezone="Mars/Base",
                colour="red",
            )
        )
    problems = dict(caught.value.problems)
    assert set(problems) == {"kind", "starts_at", "expected_end_at", "houses", "timezone", "colour"}
    assert "нужны дата и время" in problems["starts_at"]
    assert "такой даты" in problems["expected_end_at"]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"expected_end_at": "20.11.2026 09:00"}, "expected_end_at", "позже начала"),
        ({"expected_end_at": "30.12.2026 09:00"}, "expected_end_at", "длиннее 31 дня"),
        (
            {"settlement": None, "street": None},
            "settlement",
            "не указано место: населённый пункт, улица, фидер или подстанция",
        ),
        (
            {"settlement": None, "street": None, "houses": None, "feeder": "—"},
            "feeder",
            "нет ни названия, ни номера: «—»",
        ),
        ({"street": None, "feeder": "Ф-12"}, "houses", "без улицы"),
        ({"feeder": "Ф" * 101}, "feeder", "слишком длинно"),
        ({"street": None}, "houses", "без улицы"),
        ({"kind": None}, "kind", "не заполнено"),
        ({"reason": "x" * 501}, "reason", "слишком длинно"),
        ({"street": ["ул. Ленина"]}, "street", "строкой"),
    ],
)
def test_parse_outage_refuses(overrides: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidOutage) as caught:
        parse_outage(fields(**overrides))
    assert any(f == field and reason in r for f, r in caught.value.problems), caught.value.problems


def test_parse_moment_notations() -> None:
    expected = datetime(2026, 12, 5, 7, 30, tzinfo=UTC)
    for text in ("05.12.2026 10:30", "2026-12-05 10:30", "2026-12-05T07:30:00Z", "05.12.26 10:30"):
        assert parse_moment(text, "Europe/Moscow") == expected, text


def test_an_outage_without_an_id_gets_one_from_its_place_and_start() -> None:
    first = parse_outage(fields(external_id=None))
    same = parse_outage(fields(external_id=None, expected_end_at="20.11.2026 18:00"))
    other = parse_outage(fields(external_id=None, houses="1-15"))
    assert first.external_id.startswith("auto:")
    assert first.external_id == same.external_id
    assert first.external_id != other.external_id


# --------------------------------------------------------------------------- storing, matching


def store(db: Database, **overrides: Any) -> Outage:
    with db.transaction() as s:
        outage, _result = upsert_outage(s, parse_outage(fields(**overrides)), source="import")
        return outage


def found(db: Database, address: str, at: datetime = NOW, **kwargs: Any) -> list[str]:
    with db.transaction() as s:
        return [o.external_id for o in active_outages_for(s, address, at, **kwargs)]


def test_upsert_is_idempotent_and_updates_by_external_id(db: Database) -> None:
    with db.transaction() as s:
        _row, result = upsert_outage(s, parse_outage(fields()), source="import")
        assert result == "created"
    with db.transaction() as s:
        _row, result = upsert_outage(s, parse_outage(fields()), source="import")
        assert result == "unchanged"
    later = parse_outage(fields(expected_end_at="20.11.2026 18:00"))
    with db.transaction() as s:
        row, result = upsert_outage(s, later, source="api")
        assert (result, row.source) == ("updated", "api")
    with db.transaction() as s:
        stored = s.scalars(select(Outage)).one()
        assert stored.expected_end_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_matching_by_house_range_side_and_spelling(db: Database) -> None:
    store(db)  # ул. Ленина, 1-15 odd, Moscow
    assert found(db, "г. Москва, ул. Ленина, д. 7, кв. 12") == ["GRID-1"]
    assert found(db, "Москва, улица Лёнина, дом 13а") == ["GRID-1"]
    assert found(db, "ул. Ленина, д. 9") == ["GRID-1"]  # no settlement written: the street
    assert found(db, "г. Москва, ул. Ленина, д. 8") == []  # the even side
    assert found(db, "г. Москва, ул. Ленина, д. 17") == []
    assert found(db, "г. Тверь, ул. Ленина, д. 7") == []
    assert found(db, "г. Москва, пр-т Ленина, д. 7") == []
    assert found(db, "г. Москва, ул. Ленина") == []  # no house: not in a range
    assert found(db, "адрес не указан") == []


def test_whole_street_and_whole_settlement(db: Database) -> None:
    store(db, external_id="STREET", houses=None, street="Садовая")
    store(db, external_id="TOWN", settlement="пос. Южный", street=None, houses=None)
    assert found(db, "г. Москва, ул. Садовая, д. 150") == ["STREET"]
    assert found(db, "Московская обл., пос. Южный, ул. Лесная, д. 2") == ["TOWN"]
    assert found(db, "ул. Лесная, д. 2") == []  # whole settlement needs the settlement


def test_expired_and_future_outages(db: Database) -> None:
    store(db, external_id="PAST", starts_at="19.11.2026 10:00", expected_end_at="20.11.2026 12:00")
    store(db, external_id="NOW")
    store(
        db,
        external_id="TOMORROW",
        kind="planned",
        starts_at="21.11.2026 10:00",
        expected_end_at="21.11.2026 16:00",
    )
    address = "г. Москва, ул. Ленина, д. 7"
    # 12:00 Moscow: PAST ends exactly now (the end is exclusive), NOW is on.
    assert found(db, address) == ["NOW"]
    assert found(db, address, horizon=timedelta(hours=24)) == ["NOW", "TOMORROW"]
    assert found(db, address, at=NOW + timedelta(hours=5)) == []
    with db.transaction() as s:
        assert [o.external_id for o in list_outages(s, active_at=NOW)] == ["NOW"]
        assert len(list_outages(s)) == 3


# --------------------------------------------------------------------------- grid links


@pytest.mark.parametrize(
    ("names", "key"),
    [
        (["Ф-12", "фидер 12", "ф.12", "Ф12", "ФИДЕР №12", "12", "фид. 12"], "12"),
        (
            [
                "ПС 110 кВ Северная",
                "ПС 110/10 кВ «Северная»",
                "п/ст Северная",
                "Подстанция Северная",
                "Северная подстанция",
                "северная",
                "ПC Северная",  # a Latin C
            ],
            "северная",
        ),
        (["ТП-245", "ТП №245", "КТП 10/0,4 кВ № 245", "TП-245"], "245"),  # a Latin T
        (["Северная Ф-12", "ПС Северная, фидер 12", "Северная-12"], "северная12"),
        (["Ёлочная", "елочная"], "елочная"),
        (["ТП", "тп"], "тп"),  # only a generic word: kept
        (["", "—", "  ", None], ""),
    ],
)
def test_grid_key(names: list[str | None], key: str) -> None:
    assert {grid_key(name) for name in names} == {key}


def test_grid_keys_of_different_objects_differ() -> None:
    assert grid_key("Ф-12") != grid_key("Ф-1")
    assert grid_key("Северная Ф-12") != grid_key("Ф-12")  # a name is compared whole
    assert grid_key("ПС Северная") != grid_key("ПС Северная-2")


def test_an_outage_given_by_feeder_or_substation_alone_is_accepted() -> None:
    feeder = parse_outage(fields(settlement=None, street=None, houses=None, feeder="Фидер 12"))
    assert (feeder.feeder, feeder.feeder_key, feeder.substation_key) == ("Фидер 12", "12", "")
    substation = parse_outage(
        fields(settlement=None, street=None, houses=None, substation="ПС 110 кВ Северная")
    )
    assert (substation.substation, substation.substation_key) == ("ПС 110 кВ Северная", "северная")
    # Without a sender's id, feeders of one start get distinct ids.
    first = parse_outage(
        fields(external_id=None, settlement=None, street=None, houses=None, feeder="Ф-1")
    )
    other = parse_outage(
        fields(external_id=None, settlement=None, street=None, houses=None, feeder="Ф-2")
    )
    assert first.external_id != other.external_id


def on_grid(
    db: Database, address: str = "", feeder: str | None = None, substation: str | None = None
) -> list[str]:
    return found(db, address, feeder=feeder, substation=substation)


def test_matching_by_feeder(db: Database) -> None:
    store(db, external_id="F12", settlement=None, street=None, houses=None, feeder="Ф-12")
    assert on_grid(db, "г. Тверь, ул. Советская, д. 5", feeder="фидер 12") == ["F12"]
    assert on_grid(db, "", feeder="ф.12") == ["F12"]  # no address needed
    assert on_grid(db, "г. Тверь, ул. Советская, д. 5", feeder="Ф-1") == []
    assert on_grid(db, "г. Тверь, ул. Советская, д. 5") == []  # no grid link: not concerned
    # An outage with a feeder concerns the feeder, not its whole substation.
    store(
        db,
        external_id="F7",
        settlement=None,
        street=None,
        houses=None,
        feeder="Ф-7",
        substation="ПС Северная",
    )
    assert on_grid(db, feeder="Ф-8", substation="Северная") == []
    assert on_grid(db, feeder="Ф-7", substation="ПС Южная") == ["F7"]


def test_matching_by_substation(db: Database) -> None:
    store(
        db,
        external_id="SEV",
        settlement=None,
        street=None,
        houses=None,
        substation="ПС 110 кВ Северная",
    )
    assert on_grid(db, "г. Тверь, ул. Советская, д. 5", substation="Северная") == ["SEV"]
    assert on_grid(db, feeder="Ф-3", substation="п/ст Северная") == ["SEV"]
    assert on_grid(db, feeder="Северная") == []  # a feeder is not a substation
    assert on_grid(db, substation="Южная") == []


def test_an_outage_by_address_and_feeder_matches_either(db: Database) -> None:
    store(db, external_id="BOTH", feeder="Ф-12", substation="ПС Северная")  # ул. Ленина 1-15 odd
    assert on_grid(db, "г. Москва, ул. Ленина, д. 7") == ["BOTH"]
    assert on_grid(db, "г. Москва, ул. Мира, д. 2", feeder="Ф-12") == ["BOTH"]
    assert on_grid(db, "г. Москва, ул. Ленина, д. 7", feeder="Ф-12") == ["BOTH"]  # once
    assert on_grid(db, "г. Москва, ул. Мира, д. 2", feeder="Ф-3", substation="Северная") == []
    assert on_grid(db, "г. Москва, ул. Мира, д. 2") == []


def test_grid_outages_expire_and_are_announced_ahead(db: Database) -> None:
    place: dict[str, Any] = {"settlement": None, "street": None, "houses": None, "feeder": "Ф-5"}
    store(
        db,
        external_id="PAST",
        starts_at="19.11.2026 10:00",
        expected_end_at="20.11.2026 12:00",
        **place,
    )
    store(
        db,
        external_id="TOMORROW",
        kind="planned",
        starts_at="21.11.2026 10:00",
        expected_end_at="21.11.2026 16:00",
        **place,
    )
    assert on_grid(db, feeder="Ф-5") == []
    assert found(db, "", feeder="Ф-5", horizon=timedelta(hours=24)) == ["TOMORROW"]


def test_a_new_feeder_name_updates_the_outage_and_its_key(db: Database) -> None:
    store(db, feeder="Ф-12")
    with db.transaction() as s:
        row, result = upsert_outage(s, parse_outage(fields(feeder="Ф-14")), source="api")
        assert (result, row.feeder, row.feeder_key) == ("updated", "Ф-14", "14")
    assert on_grid(db, feeder="Ф-12") == []
    assert on_grid(db, feeder="14") == ["GRID-1"]


# --------------------------------------------------------------------------- reports


def account(db: Database, number: str, address: str) -> int:
    with db.transaction() as s:
        acc = Account(
            consumer=Consumer(full_name="Петров Пётр"),
            number_raw=number,
            number=number,
            service_address=address,
            timezone="Europe/Moscow",
        )
        s.add(acc)
        s.flush()
        return int(acc.id)


def report(db: Database, address: str, at: datetime = NOW, **kwargs: Any) -> Any:
    with db.transaction() as s:
        return report_outage(s, address=address, at=at, **kwargs)


def test_reports_of_one_building_share_a_case(db: Database) -> None:
    first_id = account(db, "1001", "г. Москва, ул. Мира, д. 3, кв. 1")
    first = report(
        db,
        "г. Москва, ул. Мира, д. 3, кв. 1",
        account_id=first_id,
        phone="+79161234567",
        account_number="1001",
    )
    assert (first.joined, first.reports) == (False, 1)
    second = report(db, "Москва, улица Мира, дом 3, кв. 40", at=NOW + timedelta(minutes=20))
    assert (second.case_id, second.joined, second.reports) == (first.case_id, True, 2)
    elsewhere = report(db, "г. Москва, ул. Мира, д. 5")
    assert elsewhere.case_id != first.case_id
    with db.transaction() as s:
        case = s.get(Case, first.case_id)
        assert case is not None
        assert (case.type, case.status, case.account_id) == ("outage", "open", first_id)
        assert "г. Москва, ул. Мира, д. 3, кв. 1" in case.description
        assert "20.11.2026 12:00" in case.description  # Moscow time
        assert "+79161234567" in case.description
        notes = s.scalars(select(CaseEvent.note).where(CaseEvent.case_id == case.id)).all()
        assert any("Ещё одно сообщение об отключении: 20.11.2026 12:20" in n for n in notes)
        assert s.scalar(select(OutageCase.address_key).where(OutageCase.case_id == case.id)) == (
            "москва|ул|мира|3"
        )


def test_a_closed_or_old_case_takes_no_more_reports(db: Database) -> None:
    address = "г. Москва, ул. Мира, д. 3"
    first = report(db, address)
    late = report(db, address, at=NOW + timedelta(hours=13))
    assert (late.joined, late.reports) == (False, 1)
    assert late.case_id != first.case_id
    with db.transaction() as s:
        change_status(s, late.case_id, "closed", actor="operator")
    after_close = report(db, address, at=NOW + timedelta(hours=14))
    assert after_close.case_id not in (first.case_id, late.case_id)
    narrow = report(db, address, at=NOW + timedelta(hours=15), window=timedelta(minutes=30))
    assert narrow.case_id != after_close.case_id
    with db.transaction() as s:
        open_keys = s.scalars(select(OutageCase.open_key).where(OutageCase.open_key.is_not(None)))
        assert list(open_keys) == ["москва|ул|мира|3"]


def test_simultaneous_first_reports_open_one_case(db: Database) -> None:
    callers = 4
    barrier = threading.Barrier(callers)
    results: list[Any] = []
    errors: list[Exception] = []

    def call(n: int) -> None:
        try:
            barrier.wait()
            results.append(
                report(db, f"г. Москва, ул. Мира, д. 3, кв. {n}", phone=f"+7916000000{n}")
            )
        except Exception as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.case_id for r in results}) == 1
    assert sorted(r.joined for r in results) == [False, True, True, True]
    with db.transaction() as s:
        assert s.scalar(select(Case.id).where(Case.type == "outage")) == results[0].case_id
        assert len(s.scalars(select(OutageReport)).all()) == callers
