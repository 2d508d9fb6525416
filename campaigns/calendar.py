"""The Russian production calendar, as campaigns use it.

The calendar itself lives in the foundation module :mod:`contactcenter.calendar_ru` (the
hotline's operator hours need it too, and ivr must not import campaigns); this module
re-exports it for the campaign code and its callers.
"""

from __future__ import annotations

from contactcenter.calendar_ru import (
    DEFAULT_CALENDAR_PATH,
    STATUTORY_HOLIDAYS,
    CalendarError,
    ProductionCalendar,
    calendar_from_mapping,
    default_calendar,
    load_calendar,
    non_working_days,
)

__all__ = [
    "DEFAULT_CALENDAR_PATH",
    "STATUTORY_HOLIDAYS",
    "CalendarError",
    "ProductionCalendar",
    "calendar_from_mapping",
    "default_calendar",
    "load_calendar",
    "non_working_days",
]
