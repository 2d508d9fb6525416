"""Benchmark: interaction search on PostgreSQL, with and without its indexes.

Creates a fresh database, migrates it, seeds ``--rows`` interactions (default 1,000,000)
server-side with ``generate_series`` (deterministic: ``setseed``), then for every search
kind (each filter alone, the usual combinations, text searches, a deep keyset page):

* prints the plan's scans (``EXPLAIN``) and fails when the interactions table is read by a
  sequential scan,
* times the exact statement :func:`crm_store.interactions.search_statement` builds (first
  page of 50) ``--repeat`` times with varying parameters: p50 and p95,
* times the same statements once the table's secondary indexes are dropped inside a
  transaction that is rolled back afterwards (the baseline "same query, same table, no
  index"; ``--baseline-repeat`` runs each), and a primary-key lookup for scale.

Run (a PostgreSQL server with pg_trgm; the admin URL may be set with ``--admin-url`` or
``BENCH_PG_ADMIN_URL``):

    .venv/bin/python -m bench interactions --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, select, text

from crm_store.db import make_engine
from crm_store.interactions import InteractionQuery, encode_cursor, search_statement
from crm_store.migrate import upgrade
from crm_store.models import Interaction

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
T_END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 365
WORDS = (
    "показания",
    "счётчик",
    "долг",
    "оплата",
    "звонок",
    "абонент",
    "напоминание",
    "задолженность",
    "перерасчёт",
    "тариф",
    "ночь",
    "день",
    "квитанция",
    "пени",
    "адрес",
    "оператор",
    "обращение",
    "перезвонить",
    "согласие",
    "отказ",
    "автоответчик",
    "занято",
    "передал",
    "подтвердил",
    "уточнил",
    "сообщил",
    "просит",
    "платёж",
    "срок",
    "ответил",
)
RARE_WORD = "переподключение"  # in about 0.1 % of the summaries
OUTCOMES = ("human", "no_answer", "busy", "voicemail", "promise_to_pay", "reading_taken")

SEED_SQL = """
INSERT INTO consumers (id, kind, full_name, created_at, updated_at)
SELECT g, 'person', 'Абонент ' || g, now(), now() FROM generate_series(1, :accounts) g;
INSERT INTO accounts (id, consumer_id, number_raw, number, service_address, region, timezone,
                      status, e_receipt, created_at, updated_at)
SELECT g, g, lpad(g::text, 10, '0'), lpad(g::text, 10, '0'), '', '', 'Europe/Moscow',
       'active', false, now(), now()
FROM generate_series(1, :accounts) g;
INSERT INTO interactions (account_id, consumer_id, phone, channel, direction, started_at,
                          ended_at, status, outcome, summary, search_text, data)
SELECT r.account, r.account, r.phone, r.channel, r.direction, r.started, r.started + interval
       '2 minutes', 'completed', r.outcome, r.summary, lower(r.summary), '{}'::jsonb
FROM (
  SELECT g,
         CASE WHEN random() < 0.8 THEN 1 + floor(random() * :accounts)::int END AS account,
         '+7916' || lpad((1 + floor(random() * :phones))::int::text, 7, '0') AS phone,
         (ARRAY['voice','voice','voice','sms','sms','email'])[1 + floor(random() * 6)::int]
           AS channel,
         CASE WHEN random() < 0.3 THEN 'inbound' ELSE 'outbound' END AS direction,
         CAST(:t_end AS timestamptz) - random() * interval '365 days' AS started,
         (CAST(:outcomes AS text[]))[1 + floor(random() * :n_outcomes)::int] AS outcome,
         (SELECT string_agg((CAST(:words AS text[]))[1 + floor(random() * :n_words)::int], ' ')
            FROM generate_series(1, 6 + 0 * g))
           || CASE WHEN random() < 0.001 THEN ' ' || :rare ELSE '' END
           || ' №' || g AS summary
  FROM generate_series(1, :rows) g
) r;
"""


@dataclass(frozen=True)
class Kind:
    """One search kind: a name and a factory of varied queries (with an optional cursor)."""

    name: str
    make: Callable[[random.Random], tuple[InteractionQuery, str | None]]


def _day(rng: random.Random) -> datetime:
    return T_END - timedelta(days=rng.randrange(1, DAYS))


def kinds(accounts: int, phones: int, rows: int) -> list[Kind]:
    """The search kinds measured, each with varied parameters."""

    def q(**kw: Any) -> Callable[[random.Random], tuple[InteractionQuery, str | None]]:
        def make(rng: random.Random) -> tuple[InteractionQuery, str | None]:
            values = {k: (v(rng) if callable(v) else v) for k, v in kw.items()}
            return InteractionQuery(**values), None

        return make

    def account(rng: random.Random) -> int:
        return rng.randrange(1, accounts + 1)

    def phone(rng: random.Random) -> str:
        return f"+7916{rng.randrange(1, phones + 1):07d}"

    def since(rng: random.Random) -> datetime:
        return _day(rng)

    def deep_page(rng: random.Random) -> tuple[InteractionQuery, str | None]:
        at = T_END - timedelta(days=rng.randrange(30, 300), seconds=rng.randrange(86400))
        return InteractionQuery(), encode_cursor(at, 2**62)

    def window(rng: random.Random) -> InteractionQuery:
        start = _day(rng)
        return InteractionQuery(since=start, until=start + timedelta(days=1))

    return [
        Kind("account", q(account_id=account)),
        Kind("phone", q(phone=phone)),
        Kind("date range (1 day)", lambda rng: (window(rng), None)),
        Kind("channel (email)", q(channel="email")),
        Kind("outcome", lambda rng: (InteractionQuery(outcome=rng.choice(OUTCOMES)), None)),
        Kind("text: unique token", q(text=lambda rng: f"№{rng.randrange(1, rows + 1)}")),
        Kind("text: rare word", q(text=RARE_WORD)),
        Kind("text: common word", q(text=lambda rng: rng.choice(WORDS))),
        Kind(
            "account + date range",
            q(account_id=account, since=since, until=lambda rng: T_END),
        ),
        Kind("phone + channel", q(phone=phone, channel="voice")),
        Kind("account + text", q(account_id=account, text=lambda rng: rng.choice(WORDS))),
        Kind(
            "channel + outcome + date range",
            lambda rng: (
                InteractionQuery(
                    channel="sms",
                    outcome=rng.choice(OUTCOMES),
                    since=(start := _day(rng)),
                    until=start + timedelta(days=7),
                ),
                None,
            ),
        ),
        Kind(
            "text + date range",
            lambda rng: (
                InteractionQuery(
                    text=RARE_WORD, since=(start := _day(rng)), until=start + timedelta(days=30)
                ),
                None,
            ),
        ),
        Kind("no filter, deep page (cursor)", deep_page),
    ]


def _compiled(conn: Connection, query: InteractionQuery, cursor: str | None) -> Any:
    return search_statement(query, limit=50, cursor=cursor).compile(bind=conn)


def plan_scans(conn: Connection, query: InteractionQuery, cursor: str | None) -> list[str]:
    """The scan nodes of the statement's plan, e.g. ``Index Scan ix_interactions_started``."""
    compiled = _compiled(conn, query, cursor)
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params)
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node.get("Node Type", "")
        if "Scan" in kind:
            found.append(f"{kind} {node.get('Index Name') or node.get('Relation Name', '')}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan.scalar_one()[0]["Plan"])
    return found


def time_queries(
    conn: Connection, kind: Kind, repeat: int, seed: int
) -> tuple[list[float], list[int]]:
    """Seconds per execution (first page, fetched) and the row counts, ``repeat`` runs."""
    rng = random.Random(seed)
    seconds: list[float] = []
    counts: list[int] = []
    for _ in range(repeat):
        query, cursor = kind.make(rng)
        stmt = search_statement(query, limit=50, cursor=cursor)
        started = time.perf_counter()
        rows = conn.execute(stmt).all()
        seconds.append(time.perf_counter() - started)
        counts.append(len(rows))
    return seconds, counts


def pk_lookup_seconds(conn: Connection, rows: int, repeat: int) -> list[float]:
    """Seconds per primary-key lookup of one interaction."""
    rng = random.Random(7)
    out = []
    for _ in range(repeat):
        ident = rng.randrange(1, rows + 1)
        started = time.perf_counter()
        conn.execute(select(Interaction).where(Interaction.id == ident)).all()
        out.append(time.perf_counter() - started)
    return out


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the interactions table's indexes that back no constraint."""
    rows = conn.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'interactions' "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = indexname)"
        )
    )
    return [(name, ddl) for name, ddl in rows]


@contextmanager
def fresh_database(admin_url: str, keep: bool) -> Iterator[str]:
    """A new, migrated database on the server of ``admin_url``; dropped afterwards."""
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        if keep:
            print(f"kept database {url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(engine: Engine, rows: int, accounts: int, phones: int) -> float:
    """Seed the tables (indexes dropped during the load, then rebuilt); seconds taken."""
    started = time.perf_counter()
    with engine.begin() as conn:
        indexes = secondary_indexes(conn)
        for name, _ddl in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text("SELECT setseed(0.42)"))
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(
                    text(statement),
                    {
                        "rows": rows,
                        "accounts": accounts,
                        "phones": phones,
                        "t_end": T_END,
                        "outcomes": list(OUTCOMES),
                        "n_outcomes": len(OUTCOMES),
                        "words": list(WORDS),
                        "n_words": len(WORDS),
                        "rare": RARE_WORD,
                    },
                )
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for _name, ddl in indexes:
            conn.execute(text(ddl))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE interactions"))
        conn.execute(text("ANALYZE accounts"))
    return time.perf_counter() - started


def run(
    rows: int, repeat: int, baseline_repeat: int, admin_url: str, keep: bool = False
) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict (``failures`` lists seq-scan plans)."""
    accounts = max(1, rows // 20)
    phones = max(1, rows // 10)
    out: dict[str, Any] = {"rows": rows, "accounts": accounts, "phones": phones, "kinds": []}
    with fresh_database(admin_url, keep) as url:
        engine = make_engine(url)
        try:
            out["seed_seconds"] = round(seed(engine, rows, accounts, phones), 1)
            measured = kinds(accounts, phones, rows)
            failures: list[str] = []
            with engine.connect() as conn:
                pk = pk_lookup_seconds(conn, rows, repeat)
                out["pk_lookup_p50_ms"] = _ms(pk, 0.5)
                for index, kind in enumerate(measured):
                    query, cursor = kind.make(random.Random(index))
                    scans = plan_scans(conn, query, cursor)
                    if any(s.startswith("Seq Scan") and "interactions" in s for s in scans):
                        failures.append(f"{kind.name}: {scans}")
                    time_queries(conn, kind, 3, seed=1000 + index)  # warm the cache
                    seconds, counts = time_queries(conn, kind, repeat, seed=index)
                    out["kinds"].append(
                        {
                            "kind": kind.name,
                            "plan": scans,
                            "p50_ms": _ms(seconds, 0.5),
                            "p95_ms": _ms(seconds, 0.95),
                            "rows_median": statistics.median(counts),
                        }
                    )
                conn.rollback()
                # Baseline: the same statements with the secondary indexes gone (rolled back).
                trans = conn.begin()
                try:
                    for name, _ddl in secondary_indexes(conn):
                        conn.execute(text(f'DROP INDEX "{name}"'))
                    for index, (kind, figures) in enumerate(
                        zip(measured, out["kinds"], strict=True)
                    ):
                        seconds, _counts = time_queries(conn, kind, baseline_repeat, seed=index)
                        figures["no_index_p50_ms"] = _ms(seconds, 0.5)
                        figures["ratio"] = round(
                            figures["no_index_p50_ms"] / max(figures["p50_ms"], 0.01), 1
                        )
                finally:
                    trans.rollback()
            out["failures"] = failures
        finally:
            engine.dispose()
    out["cpus"] = os.cpu_count()
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints a table (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per kind")
    parser.add_argument("--baseline-repeat", type=int, default=5, help="runs without indexes")
    parser.add_argument(
        "--admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    if not args.admin_url.startswith("postgresql"):
        parser.error("this benchmark needs PostgreSQL (--admin-url postgresql+psycopg://...)")
    figures = run(args.rows, args.repeat, args.baseline_repeat, args.admin_url, args.keep)
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
    else:
        print(
            f"{figures['rows']} interactions ({figures['accounts']} accounts, "
            f"{figures['phones']} phones), seeded in {figures['seed_seconds']} s; "
            f"primary-key lookup p50 {figures['pk_lookup_p50_ms']} ms"
        )
        print(f"{'kind':32} {'p50 ms':>8} {'p95 ms':>8} {'no-index p50':>13} {'ratio':>7}  plan")
        for k in figures["kinds"]:
            print(
                f"{k['kind']:32} {k['p50_ms']:8} {k['p95_ms']:8} {k['no_index_p50_ms']:13} "
                f"{k['ratio']:7}  {', '.join(k['plan'])}"
            )
        print(f"cpus {figures['cpus']}, load average (1 min) {figures['load_average_1min']}")
    for failure in figures["failures"]:
        print(f"SEQUENTIAL SCAN: {failure}", file=sys.stderr)
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
