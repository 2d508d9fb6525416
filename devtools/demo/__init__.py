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

The package: :mod:`devtools.demo.reference` (regions, names, tariffs, the fixed consumers),
:mod:`devtools.demo.generator` (the seeded row generator) and :mod:`devtools.demo.seeder`
(the multi-process bulk writer and :func:`seed_demo`).
"""

from devtools.demo.reference import FIXED_CONSUMERS, FixedAccount, FixedConsumer, FixedMeter
from devtools.demo.seeder import DEMO_TABLES, DemoSeedError, SeedResult, seed_demo

__all__ = [
    "DEMO_TABLES",
    "FIXED_CONSUMERS",
    "DemoSeedError",
    "FixedAccount",
    "FixedConsumer",
    "FixedMeter",
    "SeedResult",
    "seed_demo",
]
