"""Keyset pages for lists read by people and programs (the REST API, the console).

A list is ordered by a unique key (e.g. ``(started_at, id)`` newest first); a page holds
``limit`` rows and, when more follow, an opaque ``next_cursor``: the key of its last row,
encoded. The next page is the rows strictly after that key, so a page never skips or
repeats a row while rows are added, and a deep page costs what the first one does (an
index range scan, no ``OFFSET``).

:func:`after` builds the WHERE clause "after this key" for a key of one or more columns,
:func:`page_of` cuts ``limit + 1`` fetched rows into a :class:`KeysetPage`; cursors are URL-safe
base64 of a JSON list, decoded by :func:`decode_cursor` with the key's types, and a cursor
that does not decode is :class:`~crm_store.errors.InvalidInput` ("invalid page cursor").
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from crm_store.errors import InvalidInput

#: The largest page a list gives, and the page size when none is asked for.
MAX_LIMIT = 200
DEFAULT_LIMIT = 50

T = TypeVar("T")
KeyValue = int | str | date | datetime
KeyType = type[int] | type[str] | type[date] | type[datetime]


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    """One page of a list; ``next_cursor`` fetches the next one (None: this is the last)."""

    items: list[T]
    next_cursor: str | None


def check_limit(limit: int) -> int:
    """``limit`` when it is within 1..:data:`MAX_LIMIT`, else :class:`InvalidInput`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}")
    return limit


def _plain(value: KeyValue) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    return value


def encode_cursor(key: Sequence[KeyValue]) -> str:
    """The opaque cursor of the position just after ``key`` (a row's sort key)."""
    raw = json.dumps([_plain(v) for v in key], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _typed(value: Any, kind: KeyType) -> KeyValue:
    if kind is datetime:
        moment = datetime.fromisoformat(value["t"])
        if moment.tzinfo is None:
            raise ValueError("naive time in a cursor")
        return moment
    if kind is date:
        return date.fromisoformat(value["d"])
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"not a {kind.__name__}")


def decode_cursor(cursor: str, kinds: Sequence[KeyType]) -> tuple[KeyValue, ...]:
    """The key encoded in ``cursor``, checked against ``kinds`` (the key's column types)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        values = json.loads(raw)
        # zip(strict=True) refuses a key of another length with a ValueError
        return tuple(_typed(v, k) for v, k in zip(values, kinds, strict=True))
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid page cursor") from None


def after(
    columns: Sequence[Any], key: Sequence[KeyValue], *, descending: bool = True
) -> ColumnElement[bool]:
    """The rows strictly after ``key`` in the order of ``columns`` (all descending, or all
    ascending): ``(a, b) < (ka, kb)`` spelt out, so every database and index understands it.
    The first column's plain range (``a <= ka``) comes first, for the planner."""
    terms: list[ColumnElement[bool]] = []
    for n, column in enumerate(columns):
        equal = [columns[i] == key[i] for i in range(n)]
        beyond = column < key[n] if descending else column > key[n]
        terms.append(and_(*equal, beyond) if equal else beyond)
    first = columns[0] <= key[0] if descending else columns[0] >= key[0]
    return and_(first, or_(*terms))


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[KeyValue]]) -> KeysetPage[T]:
    """A page of the first ``limit`` of ``rows`` (fetched with ``limit + 1``, so one more
    row means a next page, whose cursor is the key of the page's last row)."""
    items = list(rows[:limit])
    more = len(rows) > limit and bool(items)
    return KeysetPage(items, encode_cursor(key(items[-1])) if more else None)
