"""Keyset pages (:mod:`crm_store.paging`): cursors, the "after" clause, page cutting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_store.db import Database
from crm_store.errors import InvalidInput
from crm_store.models import Interaction
from crm_store.paging import after, check_limit, decode_cursor, encode_cursor, page_of

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_a_cursor_round_trips_its_typed_key() -> None:
    key = (T0, date(2026, 11, 1), 42, "анна")
    cursor = encode_cursor(key)
    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor, (datetime, date, int, str)) == key


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",
        encode_cursor((1,)) + "x",
        encode_cursor((1, 2)),  # too long a key
        encode_cursor(("1",)),  # a string where an int is
        encode_cursor((True,)),
        "e30",  # {} in base64
    ],
)
def test_a_bad_cursor_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="invalid page cursor"):
        decode_cursor(cursor, (int,))


def test_a_naive_time_in_a_cursor_is_refused() -> None:
    naive = encode_cursor((T0.replace(tzinfo=None),))
    with pytest.raises(InvalidInput):
        decode_cursor(naive, (datetime,))


def test_limits() -> None:
    assert check_limit(1) == 1
    assert check_limit(200) == 200
    for bad in (0, 201, -5):
        with pytest.raises(InvalidInput, match=r"1\.\.200"):
            check_limit(bad)


def test_pages_walk_ties_without_skipping_or_repeating(db: Database) -> None:
    with db.transaction() as s:
        for n in range(7):
            # Pairs of rows share a start time: the id breaks the tie.
            s.add(
                Interaction(
                    channel="voice", direction="inbound", started_at=T0 + timedelta(minutes=n // 2)
                )
            )
    columns = (Interaction.started_at, Interaction.id)
    seen: list[int] = []
    cursor = None
    with db.transaction() as s:
        everything = [
            r.id for r in s.scalars(select(Interaction).order_by(*(c.desc() for c in columns)))
        ]
        for _ in range(10):
            query = select(Interaction).order_by(*(c.desc() for c in columns)).limit(3)
            if cursor is not None:
                query = query.where(after(columns, decode_cursor(cursor, (datetime, int))))
            rows = list(s.scalars(query))
            page = page_of(rows, 2, lambda r: (r.started_at, r.id))
            seen.extend(r.id for r in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == everything
    assert len(seen) == 7


def test_an_ascending_key() -> None:
    clause = after((Interaction.id,), (5,), descending=False)
    assert "interactions.id >=" in str(clause)
    assert "interactions.id >" in str(clause)
