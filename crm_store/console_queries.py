"""SQL building blocks the console's pages share: campaign visibility, day bounds, time buckets.

* :func:`campaign_clause` — the campaigns a :class:`~crm_store.access.Scope` sees, as a WHERE
  clause over :class:`~crm_store.models.Campaign` (the SQL form of
  :func:`crm_store.visibility.covers_campaign`): a campaign whose audience names regions, all
  of them the user's; a campaign without regions reaches every region, so only users of all
  regions see it. The regions live in the JSON definition, so the clause is written per
  dialect (``json_each`` on SQLite, ``jsonb`` containment on PostgreSQL).
* :func:`day_bounds` — "today" on a wall clock (the console counts days in Moscow time).
* :func:`epoch_bucket` — a timestamp column cut into buckets of N seconds (charts over time).
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from crm_store.access import Scope
from crm_store.models import SUPPLIER_TIMEZONE, Campaign

#: The JSON path of a campaign definition's audience regions.
REGIONS_PATH = "$.audience.regions"


def campaign_clause(scope: Scope, dialect: str) -> ColumnElement[bool]:
    """Campaigns ``scope`` sees (for a query over :class:`Campaign`), for ``dialect``
    (``session.get_bind().dialect.name``)."""
    if scope.all_regions:
        return true()
    regions = sorted(scope.regions or ())
    if not regions:
        return false()
    if dialect == "postgresql":
        named = Campaign.definition["audience"]["regions"]
        length = case(
            (func.jsonb_typeof(named) == "array", func.jsonb_array_length(named)), else_=0
        )
        allowed = cast(literal(json.dumps(regions, ensure_ascii=False)), JSONB)
        return and_(length > 0, named.op("<@")(allowed))
    each = func.json_each(Campaign.definition, REGIONS_PATH).table_valued("value")
    outside = select(literal(1)).select_from(each).where(each.c.value.not_in(regions))
    return and_(
        func.coalesce(func.json_array_length(Campaign.definition, REGIONS_PATH), 0) > 0,
        ~exists(outside),
    )


def day_bounds(now: datetime, zone: str = SUPPLIER_TIMEZONE) -> tuple[datetime, datetime]:
    """The start and end (UTC) of the calendar day of ``now`` in ``zone``."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz).date()
    start = datetime.combine(local, time(0, 0), tzinfo=tz)
    end = datetime.combine(local + timedelta(days=1), time(0, 0), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def epoch_bucket(column: Any, seconds: int, dialect: str) -> ColumnElement[int]:
    """``column`` (a UTC timestamp) as the number of its ``seconds``-long bucket since the
    epoch: ``bucket * seconds`` is the bucket's start in Unix time."""
    if seconds < 1:
        raise ValueError("a bucket lasts at least one second")
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / seconds), BigInteger)
    # SQLite stores UTC timestamps as text; strftime('%s') reads them as UTC.
    return cast(func.strftime("%s", column), Integer) // seconds
