"""Migration 0009: accounts get a grid link, outages stored before it get their grid keys."""

from __future__ import annotations

from sqlalchemy import text

from crm_store import migrate
from crm_store.db import make_engine

_OUTAGE = (
    "INSERT INTO outages (id, external_id, kind, source, settlement, street, houses, "
    "settlement_key, street_key, street_type, feeder, substation, starts_at, expected_end_at, "
    "reason, created_at, updated_at) VALUES (:id, :ext, 'emergency', 'import', 'Москва', "
    "'ул. Ленина', '', 'москва', 'ленина', 'ул', :feeder, :substation, :start, :end, '', "
    ":start, :start)"
)


def test_outages_stored_before_get_their_grid_keys(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0008")
    engine = make_engine(empty_database_url)
    moments = {"start": "2026-11-20 07:00:00+00:00", "end": "2026-11-20 13:00:00+00:00"}
    with engine.begin() as conn:
        for ident, feeder, substation in (
            (1, "Фидер 12", "ПС 110 кВ Северная"),
            (2, None, "ТП-245"),
            (3, None, None),
        ):
            conn.execute(
                text(_OUTAGE),
                {"id": ident, "ext": f"G-{ident}", "feeder": feeder, "substation": substation}
                | moments,
            )
    engine.dispose()
    migrate.upgrade(empty_database_url, "0009")
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            keys = conn.execute(
                text("SELECT id, feeder_key, substation_key FROM outages ORDER BY id")
            ).all()
            assert [tuple(row) for row in keys] == [
                (1, "12", "северная"),
                (2, "", "245"),
                (3, "", ""),
            ]
            accounts = conn.execute(text("SELECT feeder, substation FROM accounts")).all()
            assert accounts == []
    finally:
        engine.dispose()
    migrate.downgrade(empty_database_url, "0008")
    migrate.upgrade(empty_database_url)
    migrate.check(empty_database_url)
