"""Interaction text search over ``search_text``; keyset pages under concurrent inserts."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from crm_store import migrate
from crm_store.db import Database, make_engine
from crm_store.interactions import (
    InteractionQuery,
    add_transcript,
    finish_interaction,
    search_interactions,
    start_interaction,
    update_interaction,
)
from crm_store.models import Interaction

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _found(db: Database, words: str) -> set[str | None]:
    with db.transaction() as s:
        page = search_interactions(s, InteractionQuery(text=words), limit=100)
        return {r.provider_sid for r in page.items}


def test_search_text_follows_summary_and_transcripts(db: Database) -> None:
    with db.transaction() as s:
        row = start_interaction(s, channel="voice", direction="inbound", provider_sid="CA1")
        add_transcript(s, "CA1", "menu", "Хочу передать ПОКАЗАНИЯ", confidence=0.8)
        add_transcript(s, "CA1", "reading", "двенадцать тысяч", confidence=0.7)
        finish_interaction(s, "CA1", summary="Передал показания: Ёлкин")
        assert row.search_text == (
            "передал показания: ёлкин\nхочу передать показания\nдвенадцать тысяч"
        )
    assert _found(db, "ЁЛКИН") == {"CA1"}
    assert _found(db, "хочу передать") == {"CA1"}
    assert _found(db, "двенадцать") == {"CA1"}
    with db.transaction() as s:
        update_interaction(s, "CA1", summary="Другое")
    assert _found(db, "ёлкин") == set()  # the old summary is no longer searchable
    assert _found(db, "двенадцать") == {"CA1"}  # transcripts still are
    assert _found(db, "другое") == {"CA1"}


def test_text_filter_treats_wildcards_literally(db: Database) -> None:
    with db.transaction() as s:
        start_interaction(s, channel="sms", direction="inbound", provider_sid="SM1")
        finish_interaction(s, "SM1", summary="оплата 100% долга")
        start_interaction(s, channel="sms", direction="inbound", provider_sid="SM2")
        finish_interaction(s, "SM2", summary="оплата 1000 долга")
    assert _found(db, "100%") == {"SM1"}
    assert _found(db, "1_0") == set()
    assert _found(db, "  ОПЛАТА  ") == {"SM1", "SM2"}  # trimmed, case-insensitive


def test_keyset_pages_are_stable_under_concurrent_inserts(db: Database) -> None:
    """Rows committed by another transaction between page reads never shift a page.

    New rows newer than the first page (calls arriving while someone pages) and rows in the
    region already read never appear; rows in the region not read yet appear exactly once;
    every original row is seen exactly once, in order.
    """
    with db.transaction() as s:
        original = [
            start_interaction(
                s, channel="voice", direction="inbound", started_at=T0 + timedelta(minutes=i)
            ).id
            for i in range(30)
        ]
    expected = list(reversed(original))
    seen: list[int] = []
    cursor: str | None = None
    inserted_ahead: list[int] = []
    step = 0
    while True:
        with db.transaction() as s:
            page = search_interactions(s, limit=7, cursor=cursor)
        seen.extend(r.id for r in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        step += 1
        # Another writer commits: one brand-new call, one in the region already read (same
        # start time as the last row seen — the tie goes by id, which is larger, so it sorts
        # before the cursor), and one older than everything not read yet.
        with db.transaction() as other:
            start_interaction(
                other, channel="voice", direction="inbound", started_at=T0 + timedelta(days=1)
            )
            start_interaction(
                other, channel="voice", direction="inbound", started_at=page.items[-1].started_at
            )
            inserted_ahead.append(
                start_interaction(
                    other,
                    channel="sms",
                    direction="outbound",
                    started_at=T0 - timedelta(hours=step),
                ).id
            )
    assert seen[: len(expected)] == expected
    assert seen[len(expected) :] == inserted_ahead  # older rows, newest first, once each
    assert len(seen) == len(set(seen))


def test_migration_backfills_search_text(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0002")
    engine = make_engine(empty_database_url)
    stamp = {"t": "2026-03-01 00:00:00+00:00"}
    with engine.begin() as conn:
        for ident, summary in ((1, "Звонок ПО ДОЛГУ"), (2, ""), (3, "")):
            conn.execute(
                text(
                    "INSERT INTO interactions (id, channel, direction, started_at, status, "
                    "summary, data) VALUES (:id, 'voice', 'inbound', :t, 'completed', :s, '{}')"
                ),
                {"id": ident, "s": summary, **stamp},
            )
        for ident, interaction, said in ((1, 1, "Оплачу"), (2, 2, "ЗАВТРА"), (3, 1, "сегодня")):
            conn.execute(
                text(
                    "INSERT INTO transcripts (id, interaction_id, step, text, at) "
                    "VALUES (:id, :i, 'ask', :x, :t)"
                ),
                {"id": ident, "i": interaction, "x": said, **stamp},
            )
    engine.dispose()
    migrate.upgrade(empty_database_url)
    migrate.check(empty_database_url)
    database = Database(empty_database_url)
    try:
        with database.transaction() as s:
            texts = {i: t for i, t in s.execute(select(Interaction.id, Interaction.search_text))}
        assert texts == {1: "звонок по долгу\nоплачу\nсегодня", 2: "\nзавтра", 3: ""}
        assert _found(database, "по долгу") == {None}
    finally:
        database.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(
    os.environ.get("TEST_DB", "sqlite") != "postgresql", reason="pg_trgm is PostgreSQL only"
)
def test_migration_without_pg_trgm_rights_fails_clearly(empty_database_url: str) -> None:
    """A role that may not create pg_trgm gets a message saying what to run, not a trace."""
    role = "cc_no_ext_" + empty_database_url.rsplit("_", 1)[1]
    database = empty_database_url.rsplit("/", 1)[1]
    admin = create_engine(empty_database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
            conn.execute(text(f'GRANT ALL ON SCHEMA public TO "{role}"'))
        url = empty_database_url.replace("postgres@", f"{role}@", 1)
        with pytest.raises(RuntimeError, match=database + r".*CREATE EXTENSION pg_trgm;"):
            migrate.upgrade(url)
        with admin.connect() as conn:
            conn.execute(text("CREATE EXTENSION pg_trgm"))
        migrate.upgrade(url)  # once the extension is there, the role can finish the job
        migrate.check(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
        admin.dispose()
        server = create_engine(
            empty_database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        server.dispose()
