"""Demo data: fixed consumers, determinism, realism (phones, zones, aging), --if-empty."""

from __future__ import annotations

import gc
import os
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from contactcenter.phones import is_russian_mobile, normalize_phone
from crm_store import migrate
from crm_store.accounts import accounts_for_phone, normalize_account_number, phones_for_account
from crm_store.db import Database
from crm_store.importer import RUSSIAN_TIMEZONES
from crm_store.ledger import balance, compute_balance
from crm_store.models import (
    Account,
    AuditLog,
    Base,
    Charge,
    Consumer,
    Interaction,
    Meter,
    MeterReading,
    Payment,
    PhoneNumber,
)
from devtools.cli import demo_group, simulate
from devtools.demo import (
    DEMO_TABLES,
    FIXED_CONSUMERS,
    DemoSeedError,
    seed_demo,
    seeder,
)
from devtools.demo.generator import DemoGenerator, female_surname
from devtools.demo.seeder import bulk_insert

AS_OF = date(2026, 11, 29)


def _dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.engine.connect() as conn:
        out = {}
        for name in DEMO_TABLES:
            table = Base.metadata.tables[name]
            out[name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]
        return out


def _clear(db: Database) -> None:
    with db.engine.begin() as conn:
        for name in reversed(DEMO_TABLES):
            conn.execute(Base.metadata.tables[name].delete())


def test_same_seed_gives_identical_data(db: Database) -> None:
    seed_demo(db, consumers=30, seed=5, as_of=AS_OF)
    first = _dump(db)
    _clear(db)
    seed_demo(db, consumers=30, seed=5, as_of=AS_OF)
    assert _dump(db) == first
    _clear(db)
    seed_demo(db, consumers=30, seed=6, as_of=AS_OF)
    assert _dump(db)["consumers"] != first["consumers"]


def test_fixed_consumers(db: Database) -> None:
    result = seed_demo(db, consumers=5, seed=1, as_of=AS_OF)
    output = "\n".join(result.lines())
    for spec in FIXED_CONSUMERS:
        assert spec.full_name in output
        for acc in spec.accounts:
            assert f"account {acc.number}, IVR code {acc.ivr_code}" in output
    assert "bypass the audit log" in output
    with db.transaction() as s:
        (one,) = accounts_for_phone(s, "+79161234501")
        assert [m.zones for m in one.meters] == [["день", "ночь"]]
        assert balance(s, one.id, AS_OF).aging_bucket == "31-90"

        two = accounts_for_phone(s, "+79161234502")
        assert [a.number for a in two] == ["7700000002", "6900000003"]
        assert [balance(s, a.id, AS_OF).aging_bucket for a in two] == ["1-30", "91+"]

        silent = s.scalars(select(Account).where(Account.ivr_code == "100004")).one()
        assert silent.number == "5400000004"
        assert phones_for_account(s, silent.id) == []

        remote = s.scalars(select(Meter).where(Meter.serial == "DEMO-0005")).one()
        assert remote.remote_read
        sources = set(
            s.scalars(select(MeterReading.source).where(MeterReading.meter_id == remote.id))
        )
        assert sources == {"ami"}

        three = s.scalars(select(Meter).where(Meter.serial == "DEMO-0006")).one()
        assert three.zones == ["пик", "полупик", "ночь"]
        assert three.account.timezone == "Asia/Vladivostok"


def test_data_is_realistic(db: Database) -> None:
    seed_demo(db, consumers=400, seed=3, as_of=AS_OF)
    with db.transaction() as s:
        phones = list(s.scalars(select(PhoneNumber.e164)))
        assert len(phones) > 350
        assert set(s.scalars(select(PhoneNumber.source))) == {"demo"}
        assert set(s.scalars(select(Charge.source))) == {"demo"}
        assert s.scalar(select(func.count()).where(Charge.external_key.is_not(None))) == 0
        assert all(normalize_phone(p) == p and is_russian_mobile(p) for p in phones)

        zones = {z for z in s.scalars(select(Account.timezone)) if z is not None}
        assert s.scalar(select(func.count()).where(Account.timezone.is_(None))) == 0
        assert zones <= RUSSIAN_TIMEZONES
        offsets = {datetime(2026, 1, 1, tzinfo=ZoneInfo(z)).utcoffset() for z in zones}
        assert len(offsets) == 11  # every Russian zone, Kaliningrad (UTC+2) to Kamchatka (+12)

        numbers = list(s.scalars(select(Account.number)))
        assert all(normalize_account_number(n) == n for n in numbers)

        zone_sets = {tuple(z) for z in s.scalars(select(Meter.zones))}
        assert {("день", "ночь"), ("пик", "полупик", "ночь")} <= zone_sets
        assert zone_sets & {("общая",), ("сутки",)}

        charges: dict[int, list[tuple[date, Decimal]]] = {}
        payments: dict[int, list[tuple[date, Decimal]]] = {}
        for account_id, due, amount in s.execute(
            select(Charge.account_id, Charge.due_date, Charge.amount)
        ):
            charges.setdefault(account_id, []).append((due, amount))
        for account_id, paid_on, amount in s.execute(
            select(Payment.account_id, Payment.paid_on, Payment.amount)
        ):
            payments.setdefault(account_id, []).append((paid_on, amount))
        buckets = {
            compute_balance(a, charges[a], payments.get(a, []), AS_OF).aging_bucket
            for a in s.scalars(select(Account.id))
        }
        assert buckets == {"current", "1-30", "31-90", "91+"}

        names = list(s.scalars(select(Consumer.full_name)))
        assert all(len(n.split()) == 3 or n.startswith(("ООО", "АО", "ТСЖ", "СНТ")) for n in names)

        meters = {m.id: m for m in s.scalars(select(Meter))}
        per_meter: dict[int, list[MeterReading]] = {}
        for reading in s.scalars(select(MeterReading)):
            per_meter.setdefault(reading.meter_id, []).append(reading)
        assert len(per_meter) == len(meters)  # every meter has readings
        for meter_id, readings in per_meter.items():
            meter = meters[meter_id]
            assert {r.zone for r in readings} <= set(meter.zones)
            assert all(0 <= r.value < 10**meter.capacity for r in readings)
            assert len(readings) <= 12 * len(meter.zones)
            assert max(r.period for r in readings) <= date(2026, 10, 1)
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 0


def test_database_constraints_hold(db: Database) -> None:
    seed_demo(db, consumers=50, seed=2, as_of=AS_OF)
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            assert list(conn.execute(text("PRAGMA foreign_key_check"))) == []
    # New rows after the seed get fresh ids (PostgreSQL sequences were advanced).
    with db.transaction() as s:
        consumer = Consumer(full_name="Новый Потребитель Иванович")
        s.add(consumer)
        s.flush()
        assert consumer.id > 55


def test_if_empty_and_non_empty_database(db: Database) -> None:
    seed_demo(db, consumers=3, seed=1, as_of=AS_OF)
    skipped = seed_demo(db, consumers=3, seed=1, as_of=AS_OF, if_empty=True)
    assert skipped.skipped
    assert skipped.lines() == [
        "demo seed skipped: the database already has 8 consumers (--if-empty)"
    ]
    with pytest.raises(DemoSeedError, match="already has 8 consumers"):
        seed_demo(db, consumers=3, seed=1, as_of=AS_OF)


def test_cli_seed(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["seed", "--consumers", "4", "--seed", "9", "--as-of", "2026-11-29"]
    result = runner.invoke(demo_group, args)
    assert result.exit_code == 0, result.output
    assert "+79161234501" in result.output
    assert "account 5400000004, IVR code 100004" in result.output
    result = runner.invoke(demo_group, [*args, "--if-empty"])
    assert result.exit_code == 0
    assert "skipped" in result.output
    result = runner.invoke(demo_group, args)
    assert result.exit_code == 1
    assert "demo seed failed" in result.output


def test_female_surnames() -> None:
    assert female_surname("Иванов") == "Иванова"
    assert female_surname("Соловьёв") == "Соловьёва"
    assert female_surname("Островский") == "Островская"
    assert female_surname("Толстой") == "Толстая"
    assert female_surname("Шевченко") == "Шевченко"
    assert female_surname("Ким") == "Ким"


def test_a_failed_write_rolls_everything_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_write = seeder._write

    def failing_write(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real_write(*args)

    monkeypatch.setattr(seeder, "CHUNK_CONSUMERS", 10)
    monkeypatch.setattr(seeder, "_write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        seed_demo(db, consumers=60, seed=1, as_of=AS_OF)
    assert all(not rows for rows in _dump(db).values())
    assert gc.isenabled()  # the seed switches the cyclic GC off only while it runs


def test_bulk_insert_handles_constants_and_single_columns(db: Database) -> None:
    consumers = Base.metadata.tables["consumers"]
    stamp = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))
    with db.engine.begin() as conn:
        bulk_insert(
            conn,
            consumers,
            [{"id": 1, "full_name": "Иванов Иван Иванович"}, {"id": 2, "full_name": "ООО «Юг»"}],
            {"kind": "person", "created_at": stamp, "updated_at": stamp},
        )
        bulk_insert(
            conn,
            Base.metadata.tables["phone_numbers"],
            [{"e164": "+79031234567"}],
            {"source": "import", "verified": False, "created_at": stamp},
        )
    with db.transaction() as s:
        names = list(s.scalars(select(Consumer.full_name).order_by(Consumer.id)))
        assert names == ["Иванов Иван Иванович", "ООО «Юг»"]
        assert s.scalars(select(Consumer.created_at)).first() == stamp
        assert list(s.scalars(select(PhoneNumber.e164))) == ["+79031234567"]


def test_seed_rebuilds_the_indexes_it_defers(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_demo(db, consumers=20, seed=2, as_of=AS_OF)
    migrate.check(database_url)  # every index of the models is back after the seed
    _clear(db)

    def broken(self: DemoGenerator) -> None:
        raise RuntimeError("generator failed")

    monkeypatch.setattr(DemoGenerator, "consumer", broken)
    with pytest.raises(RuntimeError, match="generator failed"):
        seed_demo(db, consumers=5, seed=2, as_of=AS_OF)
    migrate.check(database_url)  # the failed seed rolled its index drop back too
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Consumer)) == 0


def test_a_dead_generator_process_fails_the_seed_and_rolls_back(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_generate = seeder._generate

    def dying_generate(
        generator: Any, consumers: int, dialect: Any, constants: Any, emit: Any
    ) -> None:
        calls = {"n": 0}

        def emit_then_die(chunk: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                os._exit(3)  # the generator process is killed mid-seed
            emit(chunk)

        real_generate(generator, consumers, dialect, constants, emit_then_die)

    monkeypatch.setattr(seeder, "CHUNK_CONSUMERS", 10)
    monkeypatch.setattr(seeder, "_generate", dying_generate)
    with pytest.raises(DemoSeedError, match=r"ended unexpectedly \(exit code 3\)"):
        seed_demo(db, consumers=60, seed=1, as_of=AS_OF)
    assert all(not rows for rows in _dump(db).values())


def test_prepared_rows_read_back_as_the_orm_stores_them(db: Database) -> None:
    # The generator process pre-converts values for SQLite (dates, timestamps, money, JSON);
    # reading the rows back through the ORM gives the generated Python values.
    seed_demo(db, consumers=0, seed=1, as_of=AS_OF)
    with db.transaction() as s:
        meter = s.scalars(select(Meter).where(Meter.serial == "DEMO-0006")).one()
        assert meter.zones == ["пик", "полупик", "ночь"]
        assert isinstance(meter.verification_due, date)
        charge = s.scalars(select(Charge).order_by(Charge.id)).first()
        assert charge is not None
        assert isinstance(charge.amount, Decimal)
        assert charge.amount == charge.amount.quantize(Decimal("0.01"))
        assert charge.created_at.utcoffset() == timedelta(0)
        reading = s.scalars(select(MeterReading).order_by(MeterReading.id)).first()
        assert reading is not None
        assert reading.submitted_at.utcoffset() is not None
        assert isinstance(reading.period, date)
        assert reading.anomaly is False


def test_seed_on_an_unmigrated_database_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    result = CliRunner().invoke(demo_group, ["seed", "--consumers", "2"])
    assert result.exit_code == 1
    assert "run `contactcenter db upgrade`" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_reset_replaces_existing_demo_data(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    seed_demo(db, consumers=3, seed=1, as_of=AS_OF)
    first = _dump(db)
    with db.transaction() as session:  # something referring to the demo data goes too
        account = session.scalars(select(Account)).first()
        assert account is not None
        session.add(Interaction(channel="voice", direction="inbound", account_id=account.id))
    runner = CliRunner()
    args = ["seed", "--consumers", "3", "--seed", "1", "--as-of", "2026-11-29"]
    assert runner.invoke(demo_group, args).exit_code == 1
    result = runner.invoke(demo_group, [*args, "--reset"])
    assert result.exit_code == 0, result.output
    assert "reset: deleted" in result.output
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Consumer)) == 8
        assert session.scalar(select(func.count()).select_from(Interaction)) == 0
    # The same data again (ids continue, the content is the same).
    assert {k: len(v) for k, v in _dump(db).items()} == {k: len(v) for k, v in first.items()}
    assert "--if-empty" in runner.invoke(demo_group, [*args, "--reset", "--if-empty"]).output


@pytest.mark.parametrize(
    ("group", "args", "code"),
    [
        ("demo", ["users"], 1),
        ("simulate", ["call", "--from", "+79161234501", "--press", "1"], 2),
    ],
)
def test_other_commands_on_an_unmigrated_database_say_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str, args: list[str], code: int
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    command = demo_group if group == "demo" else simulate
    result = CliRunner().invoke(command, args)
    assert result.exit_code == code, result.output
    assert "the database is not migrated: run `contactcenter db upgrade` first" in result.output
    assert "Traceback" not in result.output


def test_a_database_behind_the_migrations_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")
    problem = migrate.schema_problem(url)
    assert problem is not None
    assert "is at migration 0001" in problem
    assert f"needs {migrate.head()}" in problem
    migrate.upgrade(url)
    assert migrate.schema_problem(url) is None
