"""England and Wales working days, in Europe/London, from a maintained bank-holiday calendar.

The policies issue fixes the meaning of the two deadlines used by the rules:
- "within N working days of t": before the end (23:59:59.999 London time) of the N-th working
  day after the calendar day of t;
- "before the next school day": before 09:00 London time on the first working day after the
  calendar day of t.
Times are converted to London time before taking the calendar day, so clock changes (GMT/BST)
are handled by zoneinfo, not by arithmetic on offsets.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")
END_OF_DAY = time(23, 59, 59, 999000)
SCHOOL_DAY_START = time(9, 0)


@cache
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


@cache
def load() -> None:
    """Load the bank-holiday calendar now, not at the first deadline a rule asks for: the
    ``holidays`` package imports every country's module on its first lookup (~0.08 CPU s),
    which a projector otherwise paid inside its first batch (~2% of the main process of a
    10,000-event replay, issue 13, tenth round). A start-up cost, like an import: a long-lived
    ``policies.engine.Evaluator`` (one per projecting process) calls it when it is made. Each
    year's holidays are still made when first asked (~0.5 ms)."""
    holidays.country_holidays("GB", subdiv="ENG", years=())


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def london_day(t: datetime) -> date:
    """The calendar day of ``t`` in London."""
    return t.astimezone(LONDON).date()


@lru_cache(maxsize=1 << 16)
def nth_working_day_after(day: date, n: int) -> date:
    """The n-th working day strictly after ``day`` (n >= 1).

    Cached: every rule asks it for every fact it judges, about a few hundred distinct days, and
    walking the calendar day by day was a third of evaluation time (bench/policies.py)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    current = day
    counted = 0
    while counted < n:
        current += timedelta(days=1)
        if is_working_day(current):
            counted += 1
    return current


def working_days_deadline(t: datetime, n: int) -> datetime:
    """End of the n-th working day after the calendar day of ``t`` (London): the last instant
    that is still "within n working days". A gap is due just after it."""
    day = nth_working_day_after(london_day(t), n)
    return datetime.combine(day, END_OF_DAY, tzinfo=LONDON)


def next_school_day_start(t: datetime) -> datetime:
    """09:00 London time on the first working day after the calendar day of ``t``."""
    day = nth_working_day_after(london_day(t), 1)
    return datetime.combine(day, SCHOOL_DAY_START, tzinfo=LONDON)
