"""The Russian production calendar: which local dates are working days.

It is a foundation module: the hotline (operator hours) and campaigns (contact windows) both
use it. The calendar is a YAML file (``contactcenter/data/production_calendar_ru.yaml`` by
default) listing, per year, the non-working weekdays (holidays and days moved by decree) and the
working weekend days. For a year the file does not cover, the calendar falls back to the
weekday plus the statutory holidays of ст. 112 ТК РФ — the conservative reading, since a
non-working day only narrows the calling window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


class CalendarError(ValueError):
    """The production-calendar file is missing or malformed; the message locates the error."""


DEFAULT_CALENDAR_PATH = Path(__file__).resolve().parent / "data" / "production_calendar_ru.yaml"

# (month, day) of the statutory non-working holidays (ст. 112 ТК РФ).
STATUTORY_HOLIDAYS: frozenset[tuple[int, int]] = frozenset(
    [(1, d) for d in range(1, 9)] + [(2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)]
)


class _DatesAsTextLoader(yaml.SafeLoader):
    """A safe loader that leaves ``2026-01-01`` as text, so bad dates get our message."""


_DatesAsTextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class ProductionCalendar:
    """Working and non-working days for the years the file covers."""

    non_working: frozenset[dt.date] = field(default_factory=frozenset)
    working: frozenset[dt.date] = field(default_factory=frozenset)
    uncertain: frozenset[dt.date] = field(default_factory=frozenset)
    years: frozenset[int] = field(default_factory=frozenset)

    def covers(self, year: int) -> bool:
        """True when the file lists ``year`` (otherwise the statutory fallback is used)."""
        return year in self.years

    def is_working_day(self, day: dt.date) -> bool:
        """True if ``day`` is a working day (a weekday, or a weekend day moved to work)."""
        if day.year in self.years:
            if day in self.working:
                return True
            if day in self.non_working:
                return False
            return day.weekday() < 5
        if (day.month, day.day) in STATUTORY_HOLIDAYS:
            return False
        return day.weekday() < 5

    def is_uncertain(self, day: dt.date) -> bool:
        """True if the file marks ``day`` as a best guess to be checked against the decree."""
        return day in self.uncertain


def _dates(value: Any, where: str) -> list[dt.date]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CalendarError(f"{where}: must be a list of dates")
    out: list[dt.date] = []
    for i, item in enumerate(value):
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            out.append(item)
        elif isinstance(item, str):
            try:
                out.append(dt.date.fromisoformat(item))
            except ValueError:
                raise CalendarError(f"{where}[{i}]: {item!r} is not a YYYY-MM-DD date") from None
        else:
            raise CalendarError(f"{where}[{i}]: {item!r} is not a YYYY-MM-DD date")
    return out


def calendar_from_mapping(
    data: Mapping[str, Any], *, source: str = "<calendar>"
) -> ProductionCalendar:
    """Build a calendar from the parsed YAML structure, validating every date."""
    years = data.get("years") if isinstance(data, Mapping) else None
    if not isinstance(years, Mapping):
        raise CalendarError(f"{source}: top-level 'years' mapping is missing")
    non_working: set[dt.date] = set()
    working: set[dt.date] = set()
    uncertain: set[dt.date] = set()
    covered: set[int] = set()
    for year_key, body in years.items():
        try:
            year = int(year_key)
        except (TypeError, ValueError):
            raise CalendarError(f"{source}: years.{year_key}: not a year") from None
        if not isinstance(body, Mapping):
            raise CalendarError(f"{source}: years.{year}: must be a mapping")
        covered.add(year)
        for key, target in (("non_working", non_working), ("working", working)):
            for day in _dates(body.get(key), f"{source}: years.{year}.{key}"):
                if day.year != year:
                    raise CalendarError(f"{source}: years.{year}.{key}: {day} is not in {year}")
                target.add(day)
        uncertain.update(_dates(body.get("uncertain"), f"{source}: years.{year}.uncertain"))
    both = non_working & working
    if both:
        first = min(both)
        raise CalendarError(f"{source}: {first} is listed as both working and non-working")
    return ProductionCalendar(
        non_working=frozenset(non_working),
        working=frozenset(working),
        uncertain=frozenset(uncertain),
        years=frozenset(covered),
    )


def load_calendar(path: str | Path) -> ProductionCalendar:
    """Load and validate a production-calendar YAML file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalendarError(f"{file}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_DatesAsTextLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CalendarError(f"{file}: not valid YAML ({exc})") from None
    return calendar_from_mapping(data or {}, source=str(file))


@lru_cache(maxsize=4)
def _cached(path: str) -> ProductionCalendar:
    return load_calendar(path)


def default_calendar() -> ProductionCalendar:
    """The shipped Russian calendar (loaded once per process, on first use)."""
    return _cached(str(DEFAULT_CALENDAR_PATH))


def non_working_days(calendar: ProductionCalendar, days: Iterable[dt.date]) -> list[dt.date]:
    """The non-working days among ``days`` (a helper for previews and tests)."""
    return [d for d in days if not calendar.is_working_day(d)]
