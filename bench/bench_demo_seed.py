"""Benchmark: ``demo seed`` on SQLite against a bare executemany baseline.

Seeds ``--consumers`` (default 100,000) into a fresh, migrated SQLite database and times it.
The baseline inserts the same number of rows with the driver's bare ``executemany`` into a
trivial two-column table of another fresh SQLite database (same engine settings: WAL,
synchronous=NORMAL), measured before and after the seed; the ratio seed / baseline is the
figure to compare across machines and load. The seed's CPU seconds are reported for the
writer (this process) and the generator (its forked child): on an idle two-core machine
the wall time approaches the larger of the two, not their sum. Run:

    .venv/bin/python bench/bench_demo_seed.py --consumers 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from crm_store.db import Database, make_engine
from crm_store.migrate import upgrade
from devtools.demo import seed_demo

AS_OF = date(2026, 11, 29)
CHUNK = 20_000


def baseline_seconds(path: Path, rows: int) -> float:
    """Seconds to insert ``rows`` (id, value) rows with bare executemany in one transaction."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("CREATE TABLE trivial (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
            raw.commit()
            started = time.perf_counter()
            for start in range(0, rows, CHUNK):
                stop = min(start + CHUNK, rows)
                cur.executemany(
                    "INSERT INTO trivial (id, value) VALUES (?, ?)",
                    [(i + 1, i) for i in range(start, stop)],
                )
            raw.commit()
            return time.perf_counter() - started
        finally:
            raw.close()
    finally:
        engine.dispose()


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished, waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(consumers: int, seed: int = 1) -> dict[str, object]:
    """Run the benchmark and return its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'demo.db'}"
        upgrade(url)
        db = Database(url)
        load_before = os.getloadavg()[0]
        cpu_started = time.process_time()
        children_started = _children_cpu()
        try:
            result = seed_demo(db, consumers=consumers, seed=seed, as_of=AS_OF)
        finally:
            writer_cpu = time.process_time() - cpu_started
            generator_cpu = _children_cpu() - children_started
            db.dispose()
        load_after = os.getloadavg()[0]
        rows = sum(result.counts.values())
        before = baseline_seconds(folder / "baseline1.db", rows)
        after = baseline_seconds(folder / "baseline2.db", rows)
    baseline = (before + after) / 2
    return {
        "consumers": consumers,
        "seed": seed,
        "rows": rows,
        "rows_by_table": result.counts,
        "seed_seconds": round(result.seconds, 2),
        "seed_cpu_seconds": round(writer_cpu + generator_cpu, 2),
        "writer_cpu_seconds": round(writer_cpu, 2),
        "generator_cpu_seconds": round(generator_cpu, 2),
        "rows_per_second": round(rows / result.seconds),
        "baseline_seconds": round(baseline, 2),
        "ratio": round(result.seconds / baseline, 2),
        "cpus": os.cpu_count(),
        "load_average_1min_before_seed": round(load_before, 2),
        "load_average_1min_after_seed": round(load_after, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints a summary (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.consumers, args.seed)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"demo seed, {figures['consumers']} consumers: {figures['seed_seconds']} s "
        f"(CPU {figures['seed_cpu_seconds']} s = writer {figures['writer_cpu_seconds']} s + "
        f"generator process {figures['generator_cpu_seconds']} s; {figures['rows']} rows, "
        f"{figures['rows_per_second']} rows/s)"
    )
    print(
        f"baseline bare executemany of {figures['rows']} rows: {figures['baseline_seconds']} s"
        f" -> ratio {figures['ratio']}"
    )
    print(
        f"cpus {figures['cpus']}, load average (1 min) before the seed "
        f"{figures['load_average_1min_before_seed']}, after it "
        f"{figures['load_average_1min_after_seed']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
