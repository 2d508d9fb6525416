"""The console/API benchmark runs end to end on a small CRM (PostgreSQL only; no timing
assertions: at this size a request's fixed cost dwarfs its SQL, so the ratio gate is off)."""

from __future__ import annotations

import os
import re

import pytest

from bench import bench_console

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("TEST_DB", "sqlite") != "postgresql",
    reason="the benchmark measures PostgreSQL",
)
@pytest.mark.parametrize("scope", ["region", "all"])
def test_benchmark_prints_every_route_and_passes(
    scope: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--quick",
        "--interactions",
        "20000",
        "--consumer-interactions",
        "1000",
        "--repeat",
        "2",
        "--max-ratio",
        "0",
        "--admin-url",
        PG_ADMIN_URL,
        "--redis-url",
        redis_url,
        *(["--all-regions"] if scope == "all" else []),
    ]
    assert bench_console.main(argv) == 0
    out = capsys.readouterr().out
    assert "20,000 interactions (1,000 of consumer 1)" in out
    header = r"^route +rows +SQL +p50 ms +p95 ms +bare SQL +bare p50 +bare p95 +ratio$"
    assert re.search(header, out, re.MULTILINE)
    for route in bench_console.routes():
        line = next(x for x in out.splitlines() if x.startswith(route.name))
        assert "Seq Scan interactions" not in line
        assert len(line.split()) >= 9


def test_failures_name_sequential_scans_and_ratios_above_the_limit() -> None:
    figures = {
        "routes": [
            {"route": "a", "ratio": 2.5, "seq_scans": []},
            {"route": "b", "ratio": 3.5, "seq_scans": ["Seq Scan accounts"]},
            {"route": "c", "ratio": 1.0, "seq_scans": ["Seq Scan interactions"]},
        ]
    }
    assert bench_console.failures(figures, 3.0) == [
        "b: p95 3.5x the bare SQL (limit 3.0x)",
        "c: sequential scan of interactions",
    ]
    assert bench_console.failures(figures, 0) == ["c: sequential scan of interactions"]
