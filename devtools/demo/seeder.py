"""Writing the demo data: bulk inserts, a forked generator process, :func:`seed_demo`.

:func:`seed_demo` writes everything in one transaction: the rows are generated (and
converted for the driver) in a forked process while this one inserts them with SQLAlchemy
Core ``insert()`` executemany (SQLite: the compiled statement straight to the driver); the
SQLite indexes are dropped and rebuilt around the load. Bulk inserts bypass the ORM, so the
demo data is **not** written to the audit log.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import pickle
import time as monotonic_time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection as PipeConnection
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Numeric, Table, func, insert, inspect, select, text
from sqlalchemy.engine import Dialect

from crm_store.db import Database
from crm_store.models import Base
from devtools.demo.generator import DemoGenerator
from devtools.demo.reference import FIXED_CONSUMERS, REGION_BY_CODE

logger = logging.getLogger(__name__)


class DemoSeedError(RuntimeError):
    """The demo data cannot be written (e.g. the database already holds consumers)."""


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
    #: Rows deleted first by ``reset``, per table.
    deleted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The result as printable lines (supervisors' CLI: English)."""
        if self.skipped:
            return [
                (
                    f"demo seed skipped: the database already has {self.existing_consumers} "
                    "consumers (--if-empty)"
                )
            ]
        out = (
            ["reset: deleted " + ", ".join(f"{n} {c}" for n, c in self.deleted.items())]
            if self.deleted
            else []
        )
        out += [
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
                    f"{REGION_BY_CODE[acc.region_code].timezone}, "
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
            "(or pass --if-empty to skip, --reset to replace them)"
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


def _require_schema(db: Database) -> None:
    """Raise :class:`DemoSeedError` naming the fix when the database is not migrated."""
    present = set(inspect(db.engine).get_table_names())
    missing = [name for name in DEMO_TABLES if name not in present]
    if missing:
        raise DemoSeedError(
            f"the database has no {', '.join(missing)} table{'s' if len(missing) > 1 else ''}:"
            " run `contactcenter db upgrade` first"
        )


def reset_tables() -> list[Table]:
    """The tables ``--reset`` empties: the demo tables and every table referring to them
    (directly or not: interactions, campaign targets …), children first."""
    chosen = set(DEMO_TABLES)
    tables = Base.metadata.sorted_tables
    changed = True
    while changed:
        changed = False
        for table in tables:
            if table.name in chosen:
                continue
            if any(fk.column.table.name in chosen for fk in table.foreign_keys):
                chosen.add(table.name)
                changed = True
    return [t for t in reversed(tables) if t.name in chosen]


def _reset(conn: Connection) -> dict[str, int]:
    """Delete the rows of :func:`reset_tables` in the caller's transaction; counts."""
    deleted: dict[str, int] = {}
    for table in reset_tables():
        count = conn.execute(table.delete()).rowcount
        if count:
            deleted[table.name] = count
    return deleted


def seed_demo(
    db: Database,
    *,
    consumers: int,
    seed: int = 1,
    as_of: date | None = None,
    if_empty: bool = False,
    reset: bool = False,
) -> SeedResult:
    """Write the fixed demo consumers and ``consumers`` random ones in one transaction.

    ``as_of`` (default: today, UTC) is the date the year of history ends at. With
    ``if_empty`` nothing happens when consumers already exist; without it such a database
    raises :class:`DemoSeedError` (the fixed account numbers would collide). ``reset``
    first deletes the existing data (:func:`reset_tables`) in the same transaction. A
    database without the schema raises :class:`DemoSeedError` saying to migrate it.
    """
    if consumers < 0:
        raise DemoSeedError("the number of consumers cannot be negative")
    if reset and if_empty:
        raise DemoSeedError("--reset and --if-empty exclude each other")
    _require_schema(db)
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
                if reset:
                    result.deleted = _reset(conn)
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
