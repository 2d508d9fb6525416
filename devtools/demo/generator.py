"""The demo row generator: consumers, accounts, phones, meters, readings, charges, payments.

:class:`DemoGenerator` produces rows consumer by consumer from one seeded random generator,
so the same seed and date always give the same rows; ids are assigned here, consistent across
tables, so the rows can be bulk-inserted without the ORM. An account's grid link comes from
its city and street (:func:`grid_link`), not from the random generator.
"""

from __future__ import annotations

import bisect
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from crm_store.addresses import settlement_key, street_key
from devtools.demo.reference import (
    AGING_BUCKETS,
    BEHAVIOUR_WEIGHTS,
    BEHAVIOURS,
    FEMALE_NAMES,
    MALE_NAMES,
    MOBILE_CODES,
    ORG_FORMS,
    ORG_WORDS_A,
    ORG_WORDS_B,
    PATRONYMICS,
    PAYMENT_CHANNEL_WEIGHTS,
    PAYMENT_CHANNELS,
    READING_CHANNEL_WEIGHTS,
    READING_CHANNELS,
    REGION_BY_CODE,
    REGIONS,
    SEASON,
    STREETS,
    SURNAMES,
    TARIFF_KOPECKS,
    ZONE_SET_WEIGHTS,
    ZONE_SETS,
    FixedConsumer,
    Region,
    cumulative,
)

#: The substations of a demo city («ПС Ржев-Северная»); a street hangs on one of them.
SUBSTATION_SIDES = ("Северная", "Южная", "Центральная")
#: Feeders per demo substation («Ржев-Северная Ф-7»).
FEEDERS_PER_SUBSTATION = 8


@cache
def grid_link(city: str, street: str) -> tuple[str, str]:
    """``(feeder, substation)`` of the houses of ``street`` in ``city``: three substations
    per city, a feeder per street (fixed by the names, so every seed agrees)."""
    digest = zlib.crc32(f"{settlement_key(city)}|{'|'.join(street_key(street))}".encode())
    side = SUBSTATION_SIDES[digest % len(SUBSTATION_SIDES)]
    feeder = digest // len(SUBSTATION_SIDES) % FEEDERS_PER_SUBSTATION + 1
    return f"{city}-{side} Ф-{feeder}", f"ПС {city}-{side}"


def _address_grid(address: str) -> tuple[str, str]:
    """:func:`grid_link` of a fixed demo address («…, г. Москва, ул. Ленина, д. 1, кв. 2»)."""
    parts = address.split(", ")
    at = next(i for i, part in enumerate(parts) if part.startswith("г. "))
    return grid_link(parts[at].removeprefix("г. "), parts[at + 1])


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
        self._region_cum = cumulative([r.weight for r in REGIONS])
        self._zone_cum = cumulative(ZONE_SET_WEIGHTS)
        self._reading_cum = cumulative(READING_CHANNEL_WEIGHTS)
        self._payment_cum = cumulative(PAYMENT_CHANNEL_WEIGHTS)
        self._behaviour_cum = cumulative(BEHAVIOUR_WEIGHTS)
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

    def _address(self, region: Region) -> tuple[str, tuple[str, str]]:
        """A random address in ``region`` and its grid link (:func:`grid_link`)."""
        rng = self.rng
        city = self._one(region.cities)
        street = self._one(STREETS)
        house = self._int(1, 120)
        prefix = "" if region.name == "Москва" else f"{region.name}, "
        if rng.random() < 0.8:
            address = f"{prefix}г. {city}, {street}, д. {house}, кв. {self._int(1, 280)}"
        else:
            address = f"{prefix}г. {city}, {street}, д. {house}"
        return address, grid_link(city, street)

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
            address, grid = self._address(account_region)
            account_id = self._account_row(
                consumer_id, number, self._ivr_code(seq), account_region, address, grid
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
            region = REGION_BY_CODE[acc.region_code]
            account_id = self._account_row(
                consumer_id,
                acc.number,
                acc.ivr_code,
                region,
                acc.address,
                _address_grid(acc.address),
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
        self,
        consumer_id: int,
        number: str,
        ivr_code: str,
        region: Region,
        address: str,
        grid: tuple[str, str],
    ) -> int:
        feeder, substation = grid
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
                "feeder": feeder,
                "substation": substation,
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
