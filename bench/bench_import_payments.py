"""Benchmark: the payments registry import against a bare executemany of the same rows.

Writes a deterministic registry of ``--rows`` payments (cp1251, ``;``, decimal commas,
non-breaking spaces as thousands separators, ``DD.MM.YYYY HH:MM:SS``, five agents) over
``--accounts`` accounts, then in a fresh migrated database holding those accounts runs
:func:`crm_store.import_payments.import_payments` on the file **in a child process** (its wall
time and peak RSS, ``VmHWM``). The baseline inserts the same payments, already as driver
values, into the ``payments`` table of another fresh database with the same accounts by the
driver's bare ``executemany`` (one transaction; only the ``executemany`` calls and the commit
are timed), once before and once after the import; the ratio import / baseline is the figure.
``--memory`` repeats the import for other file sizes and reports each peak RSS (flat memory:
the import streams the file and holds one batch).

    .venv/bin/python -m bench import_payments --rows 1000000 --memory 100000,1000000
    # PostgreSQL: --admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from bench.bench_interactions import fresh_database
from crm_store.db import Database
from crm_store.import_payments import import_payments
from crm_store.migrate import upgrade
from crm_store.models import Account, Consumer

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
MOSCOW = ZoneInfo("Europe/Moscow")
AGENTS = ("ПАО Сбербанк", "СБП", "Почта России", "Эквайринг карт", "ВТБ")
CHANNELS = ("bank", "sbp", "cash", "card", "bank")
CHUNK = 2000
NBSP = "\u00a0"


def registry_rows(rows: int, accounts: int, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    """``(n, account number, amount, paid at (Moscow), agent index)`` for every payment."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 0, 0, tzinfo=MOSCOW)
    for n in range(rows):
        account = rng.randrange(1, accounts + 1)
        amount = Decimal(rng.randrange(1_000, 2_500_000)) / 100
        moment = start + timedelta(seconds=rng.randrange(0, 30 * 86400))
        yield n, f"{account:09d}", amount, moment, n % len(AGENTS)


def _money(amount: Decimal) -> str:
    whole, _, cents = f"{amount:,.2f}".partition(".")
    return whole.replace(",", NBSP) + "," + cents


def write_registry(path: Path, rows: int, accounts: int) -> int:
    """Write the registry file; its size in bytes."""
    with path.open("w", encoding="cp1251", newline="") as fh:
        fh.write("Реестр платежей за ноябрь 2026\r\n")
        fh.write("Лицевой счёт;ФИО;Сумма, руб.;Дата платежа;Номер платежа;Агент\r\n")
        for n, account, amount, moment, agent in registry_rows(rows, accounts):
            fh.write(
                f"{account};Иванов И.И.;{_money(amount)};{moment:%d.%m.%Y %H:%M:%S};"
                f"P{n:010d};{AGENTS[agent]}\r\n"
            )
    return path.stat().st_size


def seed_accounts(url: str, accounts: int) -> None:
    """Bulk-insert ``accounts`` consumers with one account each (numbers ``000000001``…)."""
    db = Database(url)
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    chunk = 20_000
    with db.engine.begin() as conn:
        for begin in range(1, accounts + 1, chunk):
            ids = range(begin, min(begin + chunk, accounts + 1))
            conn.execute(insert(Consumer), [
                {"id": i, "full_name": f"Абонент {i}", "kind": "person", "created_at": stamp,
                 "updated_at": stamp} for i in ids])  # fmt: skip
            conn.execute(insert(Account), [
                {"id": i, "consumer_id": i, "number_raw": f"{i:09d}", "number": f"{i:09d}",
                 "timezone": "Europe/Moscow", "region": "", "service_address": "",
                 "status": "active", "e_receipt": False, "created_at": stamp,
                 "updated_at": stamp} for i in ids])  # fmt: skip
    db.dispose()


def _stamp(moment: datetime, sqlite: bool) -> Any:
    """A UTC moment as the driver receives it (SQLite stores text, psycopg takes datetimes)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else utc


def baseline_seconds(url: str, rows: int, accounts: int) -> tuple[float, float]:
    """Wall and CPU seconds of a bare ``executemany`` of the same payments (one commit).

    Only the ``executemany`` calls and the commit are timed, not making the values. The CPU
    figure is this process's (SQLite runs in it; for PostgreSQL the server's is not counted).
    """
    db = Database(url)
    sqlite = url.startswith("sqlite")
    statement = (
        "INSERT INTO payments (account_id, amount, paid_on, paid_at, channel, agent, "
        "external_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    if not sqlite:
        statement = statement.replace("?", "%s")
    created = _stamp(NOW, sqlite)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        elapsed = cpu = 0.0
        chunk: list[tuple[Any, ...]] = []
        for n, account, amount, moment, agent in registry_rows(rows, accounts):
            paid_on = moment.date()
            chunk.append(
                (
                    int(account),
                    str(amount) if sqlite else amount,
                    paid_on.isoformat() if sqlite else paid_on,
                    _stamp(moment, sqlite),
                    CHANNELS[agent],
                    AGENTS[agent],
                    f"P{n:010d}",
                    created,
                )
            )
            if len(chunk) == CHUNK:
                started, cpu_started = time.perf_counter(), time.process_time()
                cur.executemany(statement, chunk)
                elapsed += time.perf_counter() - started
                cpu += time.process_time() - cpu_started
                chunk = []
        started, cpu_started = time.perf_counter(), time.process_time()
        if chunk:
            cur.executemany(statement, chunk)
        raw.commit()
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        return elapsed, cpu
    finally:
        raw.close()
        db.dispose()


def _proc_status_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process, in MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_child(url: str, path: str) -> None:
    """In a fresh process: import the registry; print seconds, counts and RSS as JSON."""
    db = Database(url)
    before = _proc_status_mib("VmRSS")
    started = time.perf_counter()
    cpu = time.process_time()
    report = import_payments(db, Path(path), now=NOW)
    elapsed = time.perf_counter() - started
    figures = {
        "import_s": round(elapsed, 2),
        "import_cpu_s": round(time.process_time() - cpu, 2),
        "recorded": report.recorded,
        "rejected": report.rows_rejected,
        "batches": report.batches_committed,
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(_proc_status_mib("VmHWM"), 1),
    }
    db.dispose()
    print(json.dumps(figures))


def _child(url: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_import_payments", "--import-child", url, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


@contextmanager
def _database(workdir: Path, name: str, admin_url: str | None) -> Iterator[str]:
    """A fresh migrated database: SQLite in ``workdir``, or one on ``admin_url``'s server."""
    if admin_url:
        with fresh_database(admin_url, keep=False) as url:
            yield url
        return
    path = workdir / f"{name}.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    try:
        yield url
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _baseline(
    workdir: Path, name: str, admin_url: str | None, rows: int, accounts: int
) -> tuple[float, float]:
    with _database(workdir, name, admin_url) as url:
        seed_accounts(url, accounts)
        return baseline_seconds(url, rows, accounts)


def measure(rows: int, accounts: int, workdir: Path, admin_url: str | None) -> dict[str, Any]:
    """The import of ``rows`` payments against the bare baseline, same run."""
    path = workdir / f"registry-{rows}.csv"
    size = write_registry(path, rows, accounts)
    before = _baseline(workdir, "baseline1", admin_url, rows, accounts)
    with _database(workdir, "import", admin_url) as url:
        seed_accounts(url, accounts)
        load_before = os.getloadavg()[0]
        child = _child(url, path)
        load_after = os.getloadavg()[0]
    after = _baseline(workdir, "baseline2", admin_url, rows, accounts)
    path.unlink()
    baseline = (before[0] + after[0]) / 2
    baseline_cpu = (before[1] + after[1]) / 2
    return {
        "rows": rows,
        "accounts": accounts,
        "file_mib": round(size / 2**20, 1),
        **child,
        "rows_per_s": round(rows / child["import_s"]),
        "baseline_s": round(baseline, 2),
        "baseline_runs_s": [round(before[0], 2), round(after[0], 2)],
        "baseline_cpu_s": round(baseline_cpu, 2),
        "ratio": round(child["import_s"] / baseline, 2) if baseline else None,
        "cpu_ratio": round(child["import_cpu_s"] / baseline_cpu, 2) if baseline_cpu else None,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
    }


def memory(
    sizes: list[int], accounts: int, workdir: Path, admin_url: str | None
) -> list[dict[str, Any]]:
    """Peak RSS of the import for each file size (one child process each)."""
    out = []
    for size in sizes:
        path = workdir / f"memory-{size}.csv"
        write_registry(path, size, accounts)
        with _database(workdir, f"memory-{size}", admin_url) as url:
            seed_accounts(url, accounts)
            child = _child(url, path)
        path.unlink()
        child["rows"] = size
        child["rss_growth_mib"] = round(child["rss_peak_mib"] - child["rss_before_mib"], 1)
        out.append(child)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (``--json`` for machine-readable)."""
    parser = argparse.ArgumentParser(prog="bench import_payments", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="payments in the file")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts in the CRM")
    parser.add_argument("--memory", default="", help="other file sizes for peak RSS, e.g. 100000")
    parser.add_argument("--admin-url", default=None, help="PostgreSQL admin URL (default SQLite)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--import-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.import_child:
        import_child(*args.import_child)
        return 0
    sizes = [int(x) for x in args.memory.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-payments-") as tmp:
        workdir = Path(tmp)
        result = {
            "database": "postgresql" if args.admin_url else "sqlite",
            "run": measure(args.rows, args.accounts, workdir, args.admin_url),
            "memory": memory(sizes, args.accounts, workdir, args.admin_url),
            "cpus": os.cpu_count(),
            "date": datetime.now(UTC).date().isoformat(),
        }
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    run = result["run"]
    print(
        f"payments import ({result['database']}), {run['rows']} rows over {run['accounts']} "
        f"accounts ({run['file_mib']} MiB): {run['import_s']} s (CPU {run['import_cpu_s']} s, "
        f"{run['rows_per_s']} rows/s, {run['batches']} batches), peak RSS {run['rss_peak_mib']} MiB"
    )
    print(
        f"baseline bare executemany of the same rows: {run['baseline_s']} s "
        f"{run['baseline_runs_s']} (CPU {run['baseline_cpu_s']} s) -> ratio {run['ratio']}, "
        f"CPU ratio {run['cpu_ratio']} (load {run['load_average_1min']})"
    )
    for row in result["memory"]:
        print(
            f"memory: {row['rows']} rows -> peak RSS {row['rss_peak_mib']} MiB "
            f"(+{row['rss_growth_mib']} MiB over {row['rss_before_mib']} MiB), {row['import_s']} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
