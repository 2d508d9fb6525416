"""The interaction-search benchmark runs end to end on a tiny table (PostgreSQL only)."""

from __future__ import annotations

import os

import pytest

from bench import bench_interactions

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("TEST_DB", "sqlite") != "postgresql",
        reason="the benchmark measures PostgreSQL indexes",
    ),
]


def test_benchmark_measures_every_kind_with_and_without_indexes() -> None:
    figures = bench_interactions.run(2000, repeat=2, baseline_repeat=1, admin_url=PG_ADMIN_URL)
    names = [k["kind"] for k in figures["kinds"]]
    assert names == [k.name for k in bench_interactions.kinds(100, 200, 2000)]
    for kind in figures["kinds"]:
        assert kind["plan"], kind
        assert kind["p50_ms"] > 0
        assert kind["no_index_p50_ms"] > 0
    by_name = {k["kind"]: k for k in figures["kinds"]}
    assert by_name["account"]["rows_median"] > 0  # the seed links interactions to accounts
    assert by_name["text: common word"]["rows_median"] == 51  # a full page + 1
    assert figures["pk_lookup_p50_ms"] > 0
