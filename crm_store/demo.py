"""Deterministic, realistic demo data for development, the simulator and benchmarks.

:func:`seed_demo` writes a few fixed, documented consumers (:data:`FIXED_CONSUMERS`) and
``N`` random ones: Russian names, addresses in regions across all eleven Russian time zones
(Kaliningrad to Kamchatka, each with its IANA zone), valid ``+7 9xx`` mobile numbers,
meters with one to three tariff zones, a year of monthly readings, charges and payments,
and debtors in every aging bucket (≤30, 31–90, >90 days; domain.md §4).

The same ``consumers``, ``seed`` and ``as_of`` always give identical rows. Rows are
generated consumer by consumer and written in chunks with SQLAlchemy Core ``insert()``
executemany, so memory stays flat and 100,000 consumers take well under a minute on
SQLite. Bulk inserts bypass the ORM, so the demo data is **not** written to the audit log.
"""

from __future__ import annotations

import bisect
import gc
import logging
import multiprocessing
import pickle
import random
import time as monotonic_time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection as PipeConnection
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Numeric, Table, func, insert, select, text
from sqlalchemy.engine import Dialect

from crm_store.db import Database
from crm_store.models import Base

logger = logging.getLogger(__name__)


class DemoSeedError(RuntimeError):
    """The demo data cannot be written (e.g. the database already holds consumers)."""


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class Region:
    """A region with its main cities, IANA time zone and fixed UTC offset (no DST since 2014)."""

    name: str
    cities: tuple[str, ...]
    timezone: str
    utc_offset: int
    code: str
    weight: int


REGIONS: tuple[Region, ...] = (
    Region("Калининградская область", ("Калининград", "Советск"), "Europe/Kaliningrad", 2, "39", 3),
    Region("Москва", ("Москва",), "Europe/Moscow", 3, "77", 30),
    Region("Московская область", ("Химки", "Подольск", "Мытищи"), "Europe/Moscow", 3, "50", 20),
    Region("Тверская область", ("Тверь", "Ржев"), "Europe/Moscow", 3, "69", 4),
    Region("Кировская область", ("Киров", "Слободской"), "Europe/Kirov", 3, "43", 3),
    Region("Волгоградская область", ("Волгоград", "Волжский"), "Europe/Volgograd", 3, "34", 5),
    Region("Самарская область", ("Самара", "Тольятти"), "Europe/Samara", 4, "63", 6),
    Region("Саратовская область", ("Саратов", "Энгельс"), "Europe/Saratov", 4, "64", 4),
    Region("Ульяновская область", ("Ульяновск", "Димитровград"), "Europe/Ulyanovsk", 4, "73", 3),
    Region("Астраханская область", ("Астрахань",), "Europe/Astrakhan", 4, "30", 2),
    Region(
        "Свердловская область", ("Екатеринбург", "Нижний Тагил"), "Asia/Yekaterinburg", 5, "66", 8
    ),
    Region("Челябинская область", ("Челябинск", "Магнитогорск"), "Asia/Yekaterinburg", 5, "74", 6),
    Region("Омская область", ("Омск",), "Asia/Omsk", 6, "55", 4),
    Region("Новосибирская область", ("Новосибирск", "Бердск"), "Asia/Novosibirsk", 7, "54", 6),
    Region("Алтайский край", ("Барнаул", "Бийск"), "Asia/Barnaul", 7, "22", 4),
    Region("Томская область", ("Томск", "Северск"), "Asia/Tomsk", 7, "70", 2),
    Region("Кемеровская область", ("Новокузнецк", "Кемерово"), "Asia/Novokuznetsk", 7, "42", 4),
    Region("Красноярский край", ("Красноярск", "Норильск"), "Asia/Krasnoyarsk", 7, "24", 5),
    Region("Иркутская область", ("Иркутск", "Братск", "Ангарск"), "Asia/Irkutsk", 8, "38", 4),
    Region("Забайкальский край", ("Чита",), "Asia/Chita", 9, "75", 2),
    Region("Республика Саха (Якутия)", ("Якутск", "Мирный"), "Asia/Yakutsk", 9, "14", 2),
    Region("Амурская область", ("Благовещенск", "Свободный"), "Asia/Yakutsk", 9, "28", 2),
    Region(
        "Приморский край", ("Владивосток", "Уссурийск", "Находка"), "Asia/Vladivostok", 10, "25", 4
    ),
    Region(
        "Хабаровский край", ("Хабаровск", "Комсомольск-на-Амуре"), "Asia/Vladivostok", 10, "27", 3
    ),
    Region("Магаданская область", ("Магадан",), "Asia/Magadan", 11, "49", 1),
    Region("Сахалинская область", ("Южно-Сахалинск", "Корсаков"), "Asia/Sakhalin", 11, "65", 1),
    Region(
        "Камчатский край", ("Петропавловск-Камчатский", "Елизово"), "Asia/Kamchatka", 12, "41", 1
    ),
    Region("Чукотский автономный округ", ("Анадырь",), "Asia/Anadyr", 12, "87", 1),
)

MALE_NAMES = (
    "Александр", "Алексей", "Андрей", "Антон", "Артём", "Борис", "Вадим", "Василий", "Виктор",
    "Виталий", "Владимир", "Вячеслав", "Геннадий", "Георгий", "Григорий", "Дмитрий", "Евгений",
    "Егор", "Иван", "Игорь", "Илья", "Кирилл", "Константин", "Максим", "Михаил", "Никита",
    "Николай", "Олег", "Павел", "Пётр", "Роман", "Сергей", "Степан", "Юрий",
)  # fmt: skip
FEMALE_NAMES = (
    "Александра", "Алина", "Алла", "Анастасия", "Анна", "Валентина", "Вера", "Виктория",
    "Галина", "Дарья", "Евгения", "Екатерина", "Елена", "Ирина", "Ксения", "Лариса", "Людмила",
    "Марина", "Мария", "Надежда", "Наталья", "Нина", "Ольга", "Полина", "Светлана", "Софья",
    "Тамара", "Татьяна", "Юлия",
)  # fmt: skip
# (male patronymic, female patronymic)
PATRONYMICS = (
    ("Александрович", "Александровна"), ("Алексеевич", "Алексеевна"), ("Андреевич", "Андреевна"),
    ("Борисович", "Борисовна"), ("Васильевич", "Васильевна"), ("Викторович", "Викторовна"),
    ("Владимирович", "Владимировна"), ("Геннадьевич", "Геннадьевна"),
    ("Григорьевич", "Григорьевна"),
    ("Дмитриевич", "Дмитриевна"), ("Евгеньевич", "Евгеньевна"), ("Иванович", "Ивановна"),
    ("Игоревич", "Игоревна"), ("Ильич", "Ильинична"), ("Константинович", "Константиновна"),
    ("Михайлович", "Михайловна"), ("Николаевич", "Николаевна"), ("Олегович", "Олеговна"),
    ("Павлович", "Павловна"), ("Петрович", "Петровна"), ("Романович", "Романовна"),
    ("Сергеевич", "Сергеевна"), ("Юрьевич", "Юрьевна"),
)  # fmt: skip
SURNAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
    "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв",
    "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев",
    "Антонов", "Тарасов", "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев",
    "Герасимов", "Богданов", "Осипов", "Сидоров", "Матвеев", "Титов", "Марков", "Миронов",
    "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов", "Гаврилов", "Тихонов",
    "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев", "Фомин", "Чернов", "Абрамов",
    "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев", "Чернышёв",
    "Быков", "Маслов", "Родионов", "Коновалов", "Лазарев", "Воронин", "Климов", "Филатов",
    "Пономарёв", "Голубев", "Кудрявцев", "Прохоров", "Наумов", "Потапов", "Журавлёв",
    "Овчинников", "Трофимов", "Леонов", "Соболев", "Ермаков", "Колесников", "Гончаров",
    "Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин", "Ефремов", "Архипов", "Громов",
    "Кириллов", "Малышев", "Панов", "Моисеев", "Румянцев", "Акимов", "Кондратьев", "Бирюков",
    "Горбунов", "Анисимов", "Ерёмин", "Тихомиров", "Галкин", "Лукьянов", "Михеев", "Скворцов",
    "Юдин", "Белоусов", "Нестеров", "Симонов", "Прокофьев", "Харитонов", "Князев", "Цветков",
    "Левин", "Митрофанов", "Воронцов", "Аксёнов", "Софронов", "Мальцев", "Логинов", "Горшков",
    "Савин", "Краснов", "Майоров", "Демидов", "Елисеев", "Рыбаков", "Сафонов", "Плотников",
    "Дёмин", "Хохлов", "Жданов", "Руденко", "Шевченко", "Ким", "Кравчук", "Бондаренко",
    "Ковальчук", "Ткаченко", "Островский", "Вишневский", "Толстой", "Полевой",
)  # fmt: skip
STREETS = (
    "ул. Ленина", "ул. Советская", "ул. Мира", "ул. Молодёжная", "ул. Центральная",
    "ул. Школьная", "ул. Садовая", "ул. Лесная", "ул. Набережная", "ул. Гагарина",
    "ул. Октябрьская", "ул. Пушкина", "ул. Кирова", "ул. Комсомольская", "ул. Первомайская",
    "ул. Заречная", "ул. Строителей", "ул. Рабочая", "ул. Победы", "ул. Чехова",
    "ул. Лермонтова", "ул. Горького", "ул. Южная", "ул. Северная", "ул. Полевая",
    "пр-т Мира", "пр-т Ленина", "пр-т Победы", "пер. Почтовый", "пер. Садовый",
    "ш. Энтузиастов", "б-р Интернациональный",
)  # fmt: skip
ORG_FORMS = ("ООО", "ООО", "ООО", "АО", "ТСЖ", "СНТ")
ORG_WORDS_A = ("Север", "Юг", "Восток", "Запад", "Энерго", "Строй", "Агро", "Техно", "Лес", "Речь")
ORG_WORDS_B = ("сервис", "строй", "торг", "пром", "снаб", "маркет", "логистик", "монтаж")

#: Tariff per kWh in kopecks for each zone label (typical 2025 household tariffs).
TARIFF_KOPECKS = {"общая": 643, "сутки": 643, "день": 720, "ночь": 312, "пик": 801, "полупик": 643}
#: How a meter's consumption splits over its zones.
ZONE_SETS: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...] = (
    (("общая",), (1.0,)),
    (("сутки",), (1.0,)),
    (("день", "ночь"), (0.68, 0.32)),
    (("пик", "полупик", "ночь"), (0.27, 0.43, 0.30)),
)
ZONE_SET_WEIGHTS = (40, 15, 35, 10)
# Monthly factor of consumption, January first (heating and lighting in winter).
SEASON = (1.35, 1.25, 1.1, 0.95, 0.85, 0.8, 0.8, 0.82, 0.9, 1.05, 1.2, 1.35)

# Operator codes of Russian mobile networks (DEF 9xx); every one is a valid +7 9xx mobile.
MOBILE_CODES = (
    *range(901, 930),
    *range(931, 940),
    *range(950, 954),
    958,
    *range(960, 970),
    977,
    *range(980, 990),
    *range(991, 1000),
)
READING_CHANNELS = ("ivr_voice", "ivr_dtmf", "sms", "web", "operator")
READING_CHANNEL_WEIGHTS = (25, 15, 15, 35, 10)
PAYMENT_CHANNELS = ("bank", "card", "sbp", "cash", "ivr", "web")
PAYMENT_CHANNEL_WEIGHTS = (30, 25, 25, 5, 5, 10)

# Payment behaviours: pays everything on time, or leaves the newest k past-due bills unpaid
# so that the oldest unpaid bill lands in one aging bucket, or pays part of every bill.
BEHAVIOURS = ("on_time", "overdue_30", "overdue_90", "overdue_90_plus", "partial")
BEHAVIOUR_WEIGHTS = (70, 10, 9, 6, 5)
AGING_BUCKETS = {"overdue_30": (1, 30), "overdue_90": (31, 90), "overdue_90_plus": (91, 400)}


def _cumulative(weights: Sequence[int]) -> list[int]:
    total, out = 0, []
    for w in weights:
        total += w
        out.append(total)
    return out


# --------------------------------------------------------------------------- fixed consumers


@dataclass(frozen=True)
class FixedMeter:
    """A meter of a fixed demo account."""

    serial: str
    zones: tuple[str, ...]
    capacity: int = 6
    remote_read: bool = False


@dataclass(frozen=True)
class FixedAccount:
    """A fixed demo account with a known number, IVR code, region and payment behaviour."""

    number: str
    ivr_code: str
    region_code: str
    address: str
    meters: tuple[FixedMeter, ...]
    behaviour: str


@dataclass(frozen=True)
class FixedConsumer:
    """A documented demo consumer that the simulator, the docs and the tests rely on."""

    full_name: str
    phones: tuple[str, ...]
    accounts: tuple[FixedAccount, ...]
    purpose: str


FIXED_CONSUMERS: tuple[FixedConsumer, ...] = (
    FixedConsumer(
        "Иванов Иван Иванович",
        ("+79161234501",),
        (
            FixedAccount(
                "7700000001",
                "100001",
                "77",
                "г. Москва, ул. Ленина, д. 1, кв. 2",
                (FixedMeter("DEMO-0001", ("день", "ночь")),),
                "overdue_90",
            ),
        ),
        "one phone → one account, two-zone meter (день/ночь), debt 31–90 days",
    ),
    FixedConsumer(
        "Петрова Анна Сергеевна",
        ("+79161234502",),
        (
            FixedAccount(
                "7700000002",
                "100002",
                "77",
                "г. Москва, ул. Садовая, д. 15, кв. 48",
                (FixedMeter("DEMO-0002", ("общая",), capacity=5),),
                "overdue_30",
            ),
            FixedAccount(
                "6900000003",
                "100003",
                "69",
                "Тверская область, г. Ржев, ул. Заречная, д. 7",
                (FixedMeter("DEMO-0003", ("сутки",), capacity=5),),
                "overdue_90_plus",
            ),
        ),
        "one phone → two accounts (flat: debt ≤30 days; country house: debt >90 days)",
    ),
    FixedConsumer(
        "Сидоров Павел Андреевич",
        (),
        (
            FixedAccount(
                "5400000004",
                "100004",
                "54",
                "г. Новосибирск, ул. Кирова, д. 9, кв. 31",
                (FixedMeter("DEMO-0004", ("общая",)),),
                "on_time",
            ),
        ),
        "account known by number and IVR code only, no linked phone",
    ),
    FixedConsumer(
        "Кузнецова Мария Олеговна",
        ("+79161234503",),
        (
            FixedAccount(
                "6600000005",
                "100005",
                "66",
                "г. Екатеринбург, пр-т Ленина, д. 50, кв. 12",
                (FixedMeter("DEMO-0005", ("день", "ночь"), remote_read=True),),
                "on_time",
            ),
        ),
        "remote-read (АСКУЭ) meter: manual readings are refused",
    ),
    FixedConsumer(
        "Смирнов Алексей Викторович",
        ("+79161234504",),
        (
            FixedAccount(
                "2500000006",
                "100006",
                "25",
                "г. Владивосток, ул. Светланская, д. 10, кв. 5",
                (FixedMeter("DEMO-0006", ("пик", "полупик", "ночь"), capacity=7),),
                "on_time",
            ),
        ),
        "three-zone meter (пик/полупик/ночь), Vladivostok time",
    ),
)

_REGION_BY_CODE = {r.code: r for r in REGIONS}


# --------------------------------------------------------------------------- generation


def _months_before(as_of: date, count: int = 12) -> list[date]:
    """First days of the ``count`` whole months before the month of ``as_of``, oldest first."""
    months: list[date] = []
    year, month = as_of.year, as_of.month
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        months.append(date(year, month, 1))
    return list(reversed(months))


def _due_date(period: date) -> date:
    """Bills for a month are due on the 10th of the next month (domain.md §1.1)."""
    if period.month == 12:
        return date(period.year + 1, 1, 10)
    return date(period.year, period.month + 1, 10)


def _money(kopecks: int) -> Decimal:
    return Decimal(kopecks).scaleb(-2)


def female_surname(surname: str) -> str:
    """The feminine form of a Russian surname (Иванов → Иванова, Островский → Островская)."""
    if surname.endswith(("ский", "цкий")):
        return surname[:-2] + "ая"
    if surname.endswith("ой"):
        return surname[:-2] + "ая"
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    return surname


@dataclass
class _Rows:
    """Rows generated for one chunk, by table, plus the next free id of each table."""

    next_id: dict[str, int]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> int:
        ident = self.next_id[table]
        self.next_id[table] = ident + 1
        row["id"] = ident
        self.tables.setdefault(table, []).append(row)
        return ident

    def add_link(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)


class DemoGenerator:
    """Produces demo rows consumer by consumer from one seeded random generator."""

    def __init__(self, seed: int, as_of: date, next_id: dict[str, int], used_phones: set[str]):
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
        self.as_of = as_of
        self.stamp = datetime.combine(as_of, time(0, 0), tzinfo=UTC)
        self.months = _months_before(as_of)
        self.due_dates = [_due_date(m) for m in self.months]
        self.rows = _Rows(dict(next_id))
        self.used_phones = used_phones
        self.account_seq = 1000
        self._region_cum = _cumulative([r.weight for r in REGIONS])
        self._zone_cum = _cumulative(ZONE_SET_WEIGHTS)
        self._reading_cum = _cumulative(READING_CHANNEL_WEIGHTS)
        self._payment_cum = _cumulative(PAYMENT_CHANNEL_WEIGHTS)
        self._behaviour_cum = _cumulative(BEHAVIOUR_WEIGHTS)
        self.behaviour_counts: dict[str, int] = dict.fromkeys(BEHAVIOURS, 0)
        # Bills are issued on the 1st at 03:00 UTC; payments arrive 0–9 days before the due date.
        self._billed_at = [
            datetime.combine(due - timedelta(days=9), time(3, 0), tzinfo=UTC)
            for due in self.due_dates
        ]
        self._paid = [
            [
                (due - timedelta(days=d), datetime.combine(due - timedelta(days=d), time(9), UTC))
                for d in range(10)
            ]
            for due in self.due_dates
        ]

    # ---- small helpers (random.random() arithmetic: randrange is several times slower)
    def _pick(self, cum: list[int]) -> int:
        return bisect.bisect_right(cum, self.rng.random() * cum[-1])

    def _one(self, options: Sequence[str]) -> str:
        return options[int(self.rng.random() * len(options))]

    def _int(self, low: int, high: int) -> int:
        """A random integer in ``[low, high]``."""
        return low + int(self.rng.random() * (high - low + 1))

    def take_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Hand over the rows generated so far (and start a new chunk)."""
        tables = self.rows.tables
        self.rows.tables = {}
        return tables

    def _mobile(self) -> str:
        rng = self.rng
        while True:
            code = MOBILE_CODES[int(rng.random() * len(MOBILE_CODES))]
            number = f"+7{code}{int(rng.random() * 10**7):07d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def _person_name(self) -> str:
        rng = self.rng
        surname = self._one(SURNAMES)
        male, female = PATRONYMICS[int(rng.random() * len(PATRONYMICS))]
        if rng.random() < 0.5:
            return f"{surname} {self._one(MALE_NAMES)} {male}"
        first = self._one(FEMALE_NAMES)
        return f"{female_surname(surname)} {first} {female}"

    def _org_name(self) -> str:
        word = self._one(ORG_WORDS_A) + self._one(ORG_WORDS_B)
        return f"{self._one(ORG_FORMS)} «{word}»"

    def _address(self, region: Region) -> str:
        rng = self.rng
        city = self._one(region.cities)
        street = self._one(STREETS)
        house = self._int(1, 120)
        prefix = "" if region.name == "Москва" else f"{region.name}, "
        if rng.random() < 0.8:
            return f"{prefix}г. {city}, {street}, д. {house}, кв. {self._int(1, 280)}"
        return f"{prefix}г. {city}, {street}, д. {house}"

    def _ivr_code(self, seq: int) -> str:
        # A bijection of the sequence onto 8-digit codes: unique, but not guessable in order.
        return str(10_000_000 + (seq * 7919 + 1_234_567) % 90_000_000)

    # ---- entities
    def consumer(self) -> None:
        """Generate one random consumer with its accounts, phones, meters and ledger."""
        rng = self.rng
        is_org = rng.random() < 0.03
        name = self._org_name() if is_org else self._person_name()
        consumer_id = self._consumer_row(name, "organization" if is_org else "person")
        region = REGIONS[self._pick(self._region_cum)]
        roll = rng.random()
        phones = (
            []
            if roll < 0.08
            else [self._mobile()]
            if roll < 0.95
            else [self._mobile(), self._mobile()]
        )
        phone_ids = [self._phone_row(p) for p in phones]
        for index in range(2 if rng.random() < 0.08 else 1):
            self.account_seq += 1
            seq = self.account_seq
            account_region = region if index == 0 else REGIONS[self._pick(self._region_cum)]
            number = f"{account_region.code}{seq:08d}"
            account_id = self._account_row(
                consumer_id,
                number,
                self._ivr_code(seq),
                account_region,
                self._address(account_region),
            )
            for phone_id in phone_ids:
                self.rows.add_link(
                    "account_phones",
                    {"account_id": account_id, "phone_id": phone_id},
                )
            meters = []
            for m in range(2 if rng.random() < 0.05 else 1):
                zones, split = ZONE_SETS[self._pick(self._zone_cum)]
                capacity = (5, 5, 6, 6, 6, 7)[int(rng.random() * 6)]
                serial = f"{self._one(('ЦЭ', 'СЕ', 'МИР', 'НЕВА'))}-{seq:08d}{m}"
                meters.append((serial, zones, split, capacity, rng.random() < 0.05))
            behaviour = BEHAVIOURS[self._pick(self._behaviour_cum)]
            scale = 4.0 if is_org else 1.0
            self._account_usage(account_id, account_region, meters, behaviour, scale)

    def fixed(self, spec: FixedConsumer) -> None:
        """Generate one of :data:`FIXED_CONSUMERS` (its ledger still comes from the seed)."""
        consumer_id = self._consumer_row(spec.full_name, "person")
        phone_ids = []
        for phone in spec.phones:
            self.used_phones.add(phone)
            phone_ids.append(self._phone_row(phone, verified=True))
        for acc in spec.accounts:
            region = _REGION_BY_CODE[acc.region_code]
            account_id = self._account_row(
                consumer_id, acc.number, acc.ivr_code, region, acc.address
            )
            for phone_id in phone_ids:
                self.rows.add_link(
                    "account_phones",
                    {"account_id": account_id, "phone_id": phone_id},
                )
            meters = []
            for meter in acc.meters:
                split = next(s for z, s in ZONE_SETS if z == meter.zones)
                meters.append((meter.serial, meter.zones, split, meter.capacity, meter.remote_read))
            self._account_usage(account_id, region, meters, acc.behaviour, 1.0)

    def _consumer_row(self, name: str, kind: str) -> int:
        return self.rows.add(
            "consumers",
            {
                "kind": kind,
                "full_name": name,
            },
        )

    def _phone_row(self, e164: str, *, verified: bool = False) -> int:
        return self.rows.add(
            "phone_numbers",
            {
                "e164": e164,
                "verified": verified or self.rng.random() < 0.6,
            },
        )

    def _account_row(
        self, consumer_id: int, number: str, ivr_code: str, region: Region, address: str
    ) -> int:
        return self.rows.add(
            "accounts",
            {
                "consumer_id": consumer_id,
                "number_raw": number,
                "number": number,
                "ivr_code": ivr_code,
                "service_address": address,
                "region": region.name,
                "timezone": region.timezone,
                "status": "active",
                "e_receipt": self.rng.random() < 0.2,
            },
        )

    def _account_usage(
        self,
        account_id: int,
        region: Region,
        meters: list[tuple[str, tuple[str, ...], tuple[float, ...], int, bool]],
        behaviour: str,
        scale: float,
    ) -> None:
        rng = self.rng
        bills = [0] * len(self.months)  # kopecks per month
        base = rng.lognormvariate(5.4, 0.45) * scale  # median ≈ 220 kWh per month
        for serial, zones, split, capacity, remote in meters:
            installed = self.as_of - timedelta(days=self._int(400, 5000))
            verification_due = installed + timedelta(days=16 * 365)
            if rng.random() < 0.06:  # a few meters are due (or overdue) for verification
                verification_due = self.as_of + timedelta(days=self._int(-60, 90))
            meter_id = self.rows.add(
                "meters",
                {
                    "account_id": account_id,
                    "serial": serial,
                    "capacity": capacity,
                    "zones": list(zones),
                    "remote_read": remote,
                    "verification_due": verification_due,
                    "installed_at": installed,
                },
            )
            self._readings(meter_id, region, zones, split, capacity, remote, base, bills)
        self._ledger(account_id, bills, behaviour)

    def _readings(
        self,
        meter_id: int,
        region: Region,
        zones: tuple[str, ...],
        split: tuple[float, ...],
        capacity: int,
        remote: bool,
        base: float,
        bills: list[int],
    ) -> None:
        rnd = self.rng.random
        # The hottest loop of the seed: ids and appends inlined instead of self.rows.add().
        append = self.rows.tables.setdefault("meter_readings", []).append
        next_id = self.rows.next_id["meter_readings"]
        channel_cum, channel_total = self._reading_cum, self._reading_cum[-1]
        modulo = 10**capacity
        values = [int(rnd() * (modulo // 2)) for _ in zones]
        last_stored: list[int | None] = [None] * len(zones)
        tariffs = [TARIFF_KOPECKS[zone] for zone in zones]
        offset = timedelta(hours=region.utc_offset)
        for index, period in enumerate(self.months):
            usage = base * SEASON[period.month - 1] * (0.85 + 0.3 * rnd())
            submitted = remote or rnd() < 0.85
            confidence: float | None = None
            if remote:
                source, day, hour, minute = "ami", 1, 3, 0
            else:
                source = READING_CHANNELS[bisect.bisect_right(channel_cum, rnd() * channel_total)]
                if source == "ivr_voice":
                    confidence = round(0.72 + 0.27 * rnd(), 2)
                # Minutes in 5-minute steps: fewer distinct timestamps to convert on insert.
                day, hour, minute = 15 + int(rnd() * 11), 8 + int(rnd() * 14), 5 * int(rnd() * 12)
            at = datetime(period.year, period.month, day, hour, minute, tzinfo=UTC) - offset
            for z, zone in enumerate(zones):
                kwh = round(usage * split[z])
                bills[index] += kwh * tariffs[z]
                raw = values[z] + kwh
                values[z] = raw % modulo
                if not submitted:
                    continue
                previous = last_stored[z]
                consumption = None
                if previous is not None:
                    consumption = values[z] - previous + (modulo if values[z] < previous else 0)
                last_stored[z] = values[z]
                append(
                    {
                        "id": next_id,
                        "meter_id": meter_id,
                        "zone": zone,
                        "value": values[z],
                        "period": period,
                        "source": source,
                        "confidence": confidence,
                        "rollover": raw >= modulo,
                        "consumption": consumption,
                        "submitted_at": at,
                    }
                )
                next_id += 1
        self.rows.next_id["meter_readings"] = next_id

    def _ledger(self, account_id: int, bills: list[int], behaviour: str) -> None:
        rnd = self.rng.random
        tables, ids = self.rows.tables, self.rows.next_id
        append_charge = tables.setdefault("charges", []).append
        charge_id = ids["charges"]
        for index, amount in enumerate(bills):
            append_charge(
                {
                    "id": charge_id,
                    "account_id": account_id,
                    "period": self.months[index],
                    "amount": _money(amount),
                    "due_date": self.due_dates[index],
                    "created_at": self._billed_at[index],
                }
            )
            charge_id += 1
        ids["charges"] = charge_id
        past_due = [i for i, due in enumerate(self.due_dates) if due < self.as_of]
        unpaid = self._unpaid_count(behaviour, past_due)
        self.behaviour_counts[behaviour] += 1
        paid_indexes = past_due[: len(past_due) - unpaid] if unpaid else past_due
        append_payment = tables.setdefault("payments", []).append
        payment_id = ids["payments"]
        channel_cum, channel_total = self._payment_cum, self._payment_cum[-1]
        for i in paid_indexes:
            amount = bills[i]
            if behaviour == "partial":
                amount = amount * self._int(55, 90) // 100
            paid_on, received_at = self._paid[i][int(rnd() * 10)]
            if amount <= 0:
                continue
            append_payment(
                {
                    "id": payment_id,
                    "account_id": account_id,
                    "amount": _money(amount),
                    "paid_on": paid_on,
                    "channel": PAYMENT_CHANNELS[
                        bisect.bisect_right(channel_cum, rnd() * channel_total)
                    ],
                    "created_at": received_at,
                }
            )
            payment_id += 1
        ids["payments"] = payment_id

    def _unpaid_count(self, behaviour: str, past_due: list[int]) -> int:
        """How many of the newest past-due bills stay unpaid to land in the behaviour's bucket."""
        bucket = AGING_BUCKETS.get(behaviour)
        if bucket is None:
            return 0
        low, high = bucket
        choices = []
        for k in range(1, len(past_due) + 1):
            age = (self.as_of - self.due_dates[past_due[-k]]).days
            if low <= age <= high:
                choices.append(k)
        if not choices:
            return 0
        if behaviour == "overdue_90_plus":
            return choices[int(self.rng.random() * min(len(choices), 6))]
        return choices[int(self.rng.random() * len(choices))]


# --------------------------------------------------------------------------- writing

# Tables in foreign-key order.
DEMO_TABLES = (
    "consumers",
    "accounts",
    "phone_numbers",
    "account_phones",
    "meters",
    "meter_readings",
    "charges",
    "payments",
)
_ID_TABLES = tuple(name for name in DEMO_TABLES if name != "account_phones")
CHUNK_CONSUMERS = 2000
SQLITE_SEED_CACHE_KIB = 256 * 1024
INSERT_CHUNK_ROWS = 20000


@dataclass
class SeedResult:
    """What :func:`seed_demo` did: counts per table, time taken, the fixed consumers."""

    consumers: int
    seed: int
    as_of: date
    skipped: bool = False
    existing_consumers: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    behaviours: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The result as printable lines (supervisors' CLI: English)."""
        if self.skipped:
            return [
                (
                    f"demo seed skipped: the database already has {self.existing_consumers} "
                    "consumers (--if-empty)"
                )
            ]
        out = [
            (
                f"demo data seeded: {self.consumers} random consumers + "
                f"{len(FIXED_CONSUMERS)} fixed (seed {self.seed}, as of "
                f"{self.as_of.isoformat()}) in {self.seconds:.1f} s"
            ),
            "rows: " + ", ".join(f"{name} {count}" for name, count in self.counts.items()),
            "payment behaviour of accounts: "
            + ", ".join(f"{name} {count}" for name, count in self.behaviours.items()),
            "note: demo rows are bulk-inserted and bypass the audit log.",
            "fixed demo consumers:",
        ]
        for spec in FIXED_CONSUMERS:
            phones = ", ".join(spec.phones) or "no phone"
            out.append(f"  {spec.full_name} ({phones}): {spec.purpose}")
            for acc in spec.accounts:
                meters = "; ".join(
                    f"{m.serial} [{'/'.join(m.zones)}, {m.capacity} digits"
                    + (", remote-read" if m.remote_read else "")
                    + "]"
                    for m in acc.meters
                )
                out.append(
                    f"    account {acc.number}, IVR code {acc.ivr_code}, {acc.address}, "
                    f"{_REGION_BY_CODE[acc.region_code].timezone}, "
                    f"{acc.behaviour.replace('_', ' ')}; meters: {meters}"
                )
        return out


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    constants: Mapping[str, Any] | None = None,
    caches: dict[tuple[str, str], dict[Any, Any]] | None = None,
) -> None:
    """Insert ``rows`` (dicts with identical keys) with one Core ``insert()`` executemany.

    ``constants`` are column values shared by every row (kept out of the dicts to save
    memory and time); ``caches`` keeps converted values across calls (SQLite only).

    On SQLite the statement is compiled once and the rows go to the driver's
    ``executemany`` after the column types' own bind processors ran (the same conversion
    SQLAlchemy applies, without its per-row bookkeeping, see :func:`sqlite_parameters`);
    elsewhere they go through ``Connection.execute(insert(table), rows)`` (insertmanyvalues
    batching).
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        shared = dict(constants or {})
        conn.execute(insert(table), [{**row, **shared} for row in rows] if shared else rows)
        return
    sql, parameters = sqlite_parameters(conn.dialect, table, rows, constants, caches)
    conn.exec_driver_sql(sql, parameters)


def sqlite_parameters(
    dialect: Dialect,
    table: Table,
    rows: list[dict[str, Any]],
    constants: Mapping[str, Any] | None = None,
    caches: dict[tuple[str, str], dict[Any, Any]] | None = None,
) -> tuple[str, list[tuple[Any, ...]]]:
    """The SQLite ``INSERT`` statement for ``rows`` and its driver-ready parameter tuples.

    Every value goes through its column type's SQLAlchemy bind processor, exactly what
    ``Connection.execute(insert(table), rows)`` would store; needs no connection, so the
    demo seed runs it in its generator process.
    """
    shared = dict(constants or {})
    row_keys = list(rows[0])
    compiled = insert(table).compile(dialect=dialect, column_keys=[*row_keys, *shared])
    # Transpose once in C (itemgetter + zip) instead of one Python pass per column.
    if len(row_keys) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        by_key = {row_keys[0]: tuple(row[row_keys[0]] for row in rows)}
    else:
        transposed = zip(*map(itemgetter(*row_keys), rows), strict=True)
        by_key = dict(zip(row_keys, transposed, strict=True))
    columns: list[Sequence[Any]] = []
    for key in compiled.positiontup or [*row_keys, *shared]:
        process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if key in shared:
            value = shared[key]
            columns.append([process(value) if process else value] * len(rows))
            continue
        values: Sequence[Any] = by_key[key]
        if process is not None and isinstance(table.c[key].type, Numeric):
            values = list(map(process, values))  # money: nearly every value is distinct
        elif process is not None:
            converted = caches.setdefault((table.name, key), {}) if caches is not None else {}
            try:
                # Demo columns repeat values a lot (dates, flags): convert each value once.
                for value in set(values).difference(converted):
                    converted[value] = process(value)
                values = list(map(converted.__getitem__, values))
            except TypeError:  # unhashable (JSON lists)
                values = [process(value) for value in values]
        columns.append(values)
    return str(compiled), list(zip(*columns, strict=True))


def _constants(stamp: datetime) -> dict[str, dict[str, Any]]:
    """Column values every demo row of a table shares (all rows are created at ``stamp``)."""
    created = {"created_at": stamp}
    return {
        "consumers": {"inn": None, "email": None, "created_at": stamp, "updated_at": stamp},
        "accounts": {"created_at": stamp, "updated_at": stamp},
        "phone_numbers": {"source": "demo", "created_at": stamp},
        "account_phones": created,
        "meters": created,
        "meter_readings": {
            "audio_ref": None,
            "anomaly": False,
            "override": False,
            "interaction_id": None,
        },
        "charges": {"source": "demo", "external_key": None, "stated_balance": None},
        "payments": {"external_id": None},
    }


#: One generated chunk ready to write: per table (in foreign-key order) its name, the SQLite
#: ``INSERT`` with driver-ready tuples, or (other databases) ``None`` with row dicts.
PreparedChunk = list[tuple[str, str | None, list[Any]]]


def _prepare(
    dialect: Dialect,
    tables: dict[str, list[dict[str, Any]]],
    constants: dict[str, dict[str, Any]],
    caches: dict[tuple[str, str], dict[Any, Any]],
) -> PreparedChunk:
    """Turn one chunk of generated rows into what :func:`_write` hands to the driver."""
    prepared: PreparedChunk = []
    for name in DEMO_TABLES:
        table = Base.metadata.tables[name]
        rows = tables.get(name, [])
        for start in range(0, len(rows), INSERT_CHUNK_ROWS):
            chunk = rows[start : start + INSERT_CHUNK_ROWS]
            if dialect.name == "sqlite":
                sql, parameters = sqlite_parameters(dialect, table, chunk, constants[name], caches)
                prepared.append((name, sql, parameters))
            else:
                shared = constants[name]
                prepared.append((name, None, [{**row, **shared} for row in chunk]))
    return prepared


def _write(conn: Connection, chunk: PreparedChunk, counts: dict[str, int]) -> None:
    """Insert one prepared chunk in the caller's transaction and count its rows."""
    for name, sql, rows in chunk:
        if sql is None:
            conn.execute(insert(Base.metadata.tables[name]), rows)
        else:
            conn.exec_driver_sql(sql, rows)
        counts[name] = counts.get(name, 0) + len(rows)


def _generate(
    generator: DemoGenerator,
    consumers: int,
    dialect: Dialect,
    constants: dict[str, dict[str, Any]],
    emit: Callable[[PreparedChunk], None],
) -> None:
    """Generate every demo row, handing each prepared chunk of consumers to ``emit``."""
    caches: dict[tuple[str, str], dict[Any, Any]] = {}
    for spec in FIXED_CONSUMERS:
        generator.fixed(spec)
    for done in range(consumers):
        generator.consumer()
        if (done + 1) % CHUNK_CONSUMERS == 0:
            emit(_prepare(dialect, generator.take_rows(), constants, caches))
    emit(_prepare(dialect, generator.take_rows(), constants, caches))


def _send(channel: PipeConnection, message: tuple[str, Any]) -> None:
    channel.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _producer_main(
    channel: PipeConnection,
    generator: DemoGenerator,
    consumers: int,
    dialect: Dialect,
    constants: dict[str, dict[str, Any]],
) -> None:
    """Body of the generator process: chunks, then the behaviour counts or the error.

    The process is forked from the seeding one, so it shares the generator's state as it
    was at the fork and never touches the parent's database connection (a forked process
    ends with ``os._exit``, so nothing is closed or rolled back on its way out).
    """
    try:
        _generate(generator, consumers, dialect, constants, lambda c: _send(channel, ("chunk", c)))
    except BaseException as exc:  # noqa: BLE001 - reported to the seeding process, raised there
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot cross processes
            exc = DemoSeedError(f"demo data generation failed: {exc!r}")
        _send(channel, ("error", exc))
        return
    _send(channel, ("done", generator.behaviour_counts))
    channel.close()


def _generate_and_write(
    conn: Connection,
    generator: DemoGenerator,
    consumers: int,
    constants: dict[str, dict[str, Any]],
    counts: dict[str, int],
) -> dict[str, int]:
    """Write every demo row in the caller's transaction; return the behaviour counts.

    The rows are generated (and converted for the driver) in a forked process while this
    one inserts, so the two cores work at once: a single sequential producer keeps the data
    deterministic, and the pipe holds at most about one chunk, so memory stays flat. An
    error on either side ends both and is raised here, so the caller's transaction rolls
    everything back. Without ``fork`` (not POSIX) the rows are generated in this process.
    """
    dialect = conn.dialect
    if "fork" not in multiprocessing.get_all_start_methods():
        _generate(generator, consumers, dialect, constants, lambda c: _write(conn, c, counts))
        return generator.behaviour_counts
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(
        target=_producer_main,
        args=(writer, generator, consumers, dialect, constants),
        name="demo-seed-generator",
        daemon=True,
    )
    process.start()
    writer.close()
    try:
        while True:
            try:
                kind, payload = pickle.loads(reader.recv_bytes())  # noqa: S301 - our own child
            except EOFError:
                process.join()
                raise DemoSeedError(
                    f"the demo data generator process ended unexpectedly "
                    f"(exit code {process.exitcode})"
                ) from None
            if kind == "chunk":
                _write(conn, payload, counts)
            elif kind == "error":
                raise payload
            else:
                return dict(payload)
    finally:
        reader.close()
        if process.is_alive():
            process.kill()
        process.join()


def _drop_secondary_indexes(conn: Connection) -> list[str]:
    """Drop the demo tables' named indexes (SQLite); the CREATE statements to rebuild them.

    Building an index once over the loaded rows costs less than updating it row by row.
    This runs inside the seed's transaction, so other connections never see the tables
    without their indexes, and a failed seed rolls the drop back too. Indexes that back
    UNIQUE or PRIMARY KEY constraints (``sqlite_autoindex_*``, no SQL) cannot be dropped
    and stay.
    """
    if not getattr(conn.connection.dbapi_connection, "in_transaction", True):
        # The sqlite3 driver opens its implicit transaction only before DML, and DDL run
        # outside a transaction is committed at once: begin explicitly, so the drop is part
        # of the seed's transaction (the driver's commit/rollback then end this one).
        conn.exec_driver_sql("BEGIN")
    rows = [
        (name, sql)
        for name, table, sql in conn.exec_driver_sql(
            "SELECT name, tbl_name, sql FROM sqlite_master "
            "WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        )
        if table in DEMO_TABLES
    ]
    for name, _sql in rows:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in rows]


def _seed(
    conn: Connection, result: SeedResult, seed: int, day: date, consumers: int, if_empty: bool
) -> dict[str, int] | None:
    """Generate and write everything in the caller's transaction; behaviour counts.

    ``None``: skipped (``if_empty`` and consumers exist).
    """
    meta = Base.metadata.tables
    existing = conn.scalar(select(func.count()).select_from(meta["consumers"])) or 0
    if existing:
        if if_empty:
            result.skipped = True
            result.existing_consumers = existing
            return None
        raise DemoSeedError(
            f"the database already has {existing} consumers; seed an empty database "
            "(or pass --if-empty to skip)"
        )
    next_id = {
        name: (conn.scalar(select(func.max(meta[name].c.id))) or 0) + 1 for name in _ID_TABLES
    }
    used = set(conn.scalars(select(meta["phone_numbers"].c.e164)))
    generator = DemoGenerator(seed, day, next_id, used)
    deferred = _drop_secondary_indexes(conn) if conn.dialect.name == "sqlite" else []
    behaviours = _generate_and_write(
        conn, generator, consumers, _constants(generator.stamp), result.counts
    )
    for ddl in deferred:
        conn.exec_driver_sql(ddl)
    if conn.dialect.name == "postgresql":
        for name in _ID_TABLES:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - table names are our constants
                    f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"
                )
            )
    return behaviours


def seed_demo(
    db: Database,
    *,
    consumers: int,
    seed: int = 1,
    as_of: date | None = None,
    if_empty: bool = False,
) -> SeedResult:
    """Write the fixed demo consumers and ``consumers`` random ones in one transaction.

    ``as_of`` (default: today, UTC) is the date the year of history ends at. With
    ``if_empty`` nothing happens when consumers already exist; without it such a database
    raises :class:`DemoSeedError` (the fixed account numbers would collide).
    """
    if consumers < 0:
        raise DemoSeedError("the number of consumers cannot be negative")
    day = as_of or datetime.now(UTC).date()
    result = SeedResult(consumers=consumers, seed=seed, as_of=day)
    started = monotonic_time.perf_counter()
    with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Foreign-key checks cost an index probe per inserted row; the generator assigns
            # consistent ids itself (the tests run PRAGMA foreign_key_check on its output).
            # The pragma only works outside a transaction, hence the explicit commit.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # A big page cache keeps the growing indexes in memory during one large
            # transaction (the default 2 MB makes 100k consumers markedly superlinear).
            cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_SEED_CACHE_KIB}")
            conn.commit()
        # Millions of short-lived dicts make the cyclic GC rescan the live rows again and
        # again; the seed creates no reference cycles, so reference counting frees it all.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with conn.begin():
                behaviours = _seed(conn, result, seed, day, consumers, if_empty)
        finally:
            if gc_was_enabled:
                gc.enable()
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.exec_driver_sql(f"PRAGMA cache_size={int(cache_size or -2000)}")
                conn.commit()
    if behaviours is None:
        return result
    result.behaviours = behaviours
    result.seconds = monotonic_time.perf_counter() - started
    logger.info(
        "demo seed: %d consumers (seed %d, as of %s) in %.1f s: %s",
        consumers,
        seed,
        day,
        result.seconds,
        result.counts,
    )
    return result
