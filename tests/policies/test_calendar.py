"""policies.calendar: England and Wales working days in Europe/London (issue 3, "Working days")."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from policies.calendar import (
    LONDON,
    is_working_day,
    london_day,
    next_school_day_start,
    nth_working_day_after,
    working_days_deadline,
)
from policies.facts import due_after_working_days
from tests.policies.helpers import t


@pytest.mark.parametrize(
    "day",
    [
        date(2019, 12, 25),  # Christmas Day
        date(2019, 12, 26),  # Boxing Day
        date(2020, 1, 1),  # New Year's Day
        date(2020, 4, 10),  # Good Friday
        date(2020, 4, 13),  # Easter Monday
        date(2020, 5, 8),  # early May bank holiday moved to VE Day
        date(2020, 8, 31),  # summer bank holiday
        date(2020, 12, 28),  # substitute for Boxing Day on a Saturday
        date(2022, 9, 19),  # state funeral of Queen Elizabeth II
        date(2020, 3, 7),  # Saturday
        date(2020, 3, 8),  # Sunday
    ],
)
def test_not_working_days(day: date) -> None:
    assert not is_working_day(day)


@pytest.mark.parametrize(
    "day",
    [
        date(2019, 12, 24),  # Christmas Eve
        date(2019, 12, 27),
        date(2020, 1, 2),  # a Scottish bank holiday, not an English one
        date(2020, 5, 4),  # the usual early May Monday, moved in 2020
        date(2020, 11, 30),  # St Andrew's Day (Scotland only)
        date(2020, 3, 17),  # St Patrick's Day (Northern Ireland only)
        date(2020, 3, 2),
    ],
)
def test_working_days(day: date) -> None:
    assert is_working_day(day)


def test_london_day_follows_british_summer_time() -> None:
    assert london_day(t("2020-06-01T23:30:00Z")) == date(2020, 6, 2)
    assert london_day(t("2020-06-01T22:59:59Z")) == date(2020, 6, 1)
    assert london_day(t("2020-01-06T23:30:00Z")) == date(2020, 1, 6)
    assert london_day(t("2020-01-07T00:30:00+01:00")) == date(2020, 1, 6)


def test_nth_working_day_after() -> None:
    assert nth_working_day_after(date(2020, 3, 2), 1) == date(2020, 3, 3)
    assert nth_working_day_after(date(2020, 3, 6), 1) == date(2020, 3, 9)  # Friday -> Monday
    assert nth_working_day_after(date(2020, 3, 7), 1) == date(2020, 3, 9)  # Saturday -> Monday
    assert nth_working_day_after(date(2020, 3, 2), 5) == date(2020, 3, 9)
    assert nth_working_day_after(date(2019, 12, 24), 1) == date(2019, 12, 27)
    assert nth_working_day_after(date(2019, 12, 23), 5) == date(2020, 1, 2)
    assert nth_working_day_after(date(2020, 4, 9), 1) == date(2020, 4, 14)
    assert nth_working_day_after(date(2020, 4, 9), 10) == date(2020, 4, 27)


def test_nth_working_day_after_a_holiday_counts_from_the_next_working_day() -> None:
    assert nth_working_day_after(date(2019, 12, 25), 1) == date(2019, 12, 27)


@pytest.mark.parametrize("n", [0, -1])
def test_nth_working_day_needs_a_positive_n(n: int) -> None:
    with pytest.raises(ValueError):
        nth_working_day_after(date(2020, 3, 2), n)


def test_deadline_is_the_last_millisecond_of_the_day_in_london() -> None:
    winter = working_days_deadline(t("2020-03-02T10:00:00Z"), 1)
    assert winter == t("2020-03-03T23:59:59.999Z")
    assert winter.tzinfo == LONDON
    summer = working_days_deadline(t("2020-06-01T10:00:00Z"), 1)
    assert summer == t("2020-06-02T22:59:59.999Z")
    assert summer.utcoffset() == timedelta(hours=1)


def test_deadline_uses_the_london_day_of_t() -> None:
    # 23:30Z on Monday 1 June is Tuesday in London: one working day runs to Wednesday.
    assert working_days_deadline(t("2020-06-01T23:30:00Z"), 1) == t("2020-06-03T22:59:59.999Z")
    # Same hour in winter is still Monday.
    assert working_days_deadline(t("2020-03-02T23:30:00Z"), 1) == t("2020-03-03T23:59:59.999Z")
    # An offset in the input does not change the instant.
    assert working_days_deadline(t("2020-03-03T00:30:00+01:00"), 1) == t("2020-03-03T23:59:59.999Z")


def test_deadline_across_clock_changes() -> None:
    assert working_days_deadline(t("2020-03-27T12:00:00Z"), 1) == t("2020-03-30T22:59:59.999Z")
    assert working_days_deadline(t("2020-10-23T12:00:00Z"), 1) == t("2020-10-26T23:59:59.999Z")
    # On the day of the change itself (Sunday 29 March 2020, 01:30 BST).
    assert working_days_deadline(t("2020-03-29T00:30:00Z"), 1) == t("2020-03-30T22:59:59.999Z")


def test_due_is_one_millisecond_after_the_deadline() -> None:
    assert due_after_working_days(t("2020-03-02T10:00:00Z"), 1) == t("2020-03-04T00:00:00Z")
    assert due_after_working_days(t("2020-03-02T10:00:00Z"), 5) == t("2020-03-10T00:00:00Z")
    assert due_after_working_days(t("2020-06-01T10:00:00Z"), 1) == t("2020-06-02T23:00:00Z")


def test_next_school_day_start() -> None:
    assert next_school_day_start(t("2020-03-02T18:00:00Z")) == t("2020-03-03T09:00:00Z")
    assert next_school_day_start(t("2020-03-06T18:00:00Z")) == t("2020-03-09T09:00:00Z")  # Friday
    assert next_school_day_start(t("2020-03-08T20:00:00Z")) == t("2020-03-09T09:00:00Z")  # Sunday
    assert next_school_day_start(t("2019-12-24T18:00:00Z")) == t("2019-12-27T09:00:00Z")
    assert next_school_day_start(t("2020-04-09T18:00:00Z")) == t("2020-04-14T08:00:00Z")  # BST
    # Sunday 23:30Z in summer is Monday in London: the next school day is Tuesday.
    assert next_school_day_start(t("2020-06-07T23:30:00Z")) == t("2020-06-09T08:00:00Z")
    # Friday before the clocks go forward: Monday 09:00 BST.
    assert next_school_day_start(t("2020-03-27T18:00:00Z")) == t("2020-03-30T08:00:00Z")
    # Early morning: still the next working day, not the same one.
    assert next_school_day_start(t("2020-03-03T06:00:00Z")) == t("2020-03-04T09:00:00Z")


def test_results_are_instants_independent_of_the_input_offset() -> None:
    a = working_days_deadline(datetime(2020, 6, 1, 23, 30, tzinfo=LONDON), 1)
    b = working_days_deadline(t("2020-06-01T22:30:00Z"), 1)
    assert a == b == t("2020-06-02T22:59:59.999Z")


def test_london_midnight_boundaries() -> None:
    # BST: London midnight is 23:00Z; GMT: 00:00Z. The clocks change at 01:00Z.
    assert london_day(t("2020-06-01T22:59:59Z")) == date(2020, 6, 1)
    assert london_day(t("2020-06-01T23:00:00Z")) == date(2020, 6, 2)
    assert london_day(t("2020-03-01T23:59:59Z")) == date(2020, 3, 1)
    assert london_day(t("2020-03-02T00:00:00Z")) == date(2020, 3, 2)
    # Saturday 24 October 2020 23:30Z is Sunday 00:30 BST; Saturday 28 March 23:30Z is still Saturday.
    assert london_day(t("2020-10-24T23:30:00Z")) == date(2020, 10, 25)
    assert london_day(t("2020-03-28T23:30:00Z")) == date(2020, 3, 28)


def test_deadline_from_a_weekend_or_holiday_counts_from_the_next_working_day() -> None:
    assert working_days_deadline(t("2020-03-07T12:00:00Z"), 1) == t("2020-03-09T23:59:59.999Z")  # Saturday
    assert working_days_deadline(t("2019-12-25T12:00:00Z"), 1) == t("2019-12-27T23:59:59.999Z")
    # Sunday 23:30Z in summer is Monday in London: one working day runs to Tuesday.
    assert working_days_deadline(t("2020-06-07T23:30:00Z"), 1) == t("2020-06-09T22:59:59.999Z")


def test_a_long_lived_evaluator_loads_the_calendar_when_it_is_made() -> None:
    """The ``holidays`` package imports every country's module on its first lookup (~0.08 s):
    a projector pays it when its ``Evaluator`` is made, not inside its first batch. In a fresh
    process, since this one has the calendar loaded already."""
    import subprocess
    import sys

    script = (
        "import sys; import policies.engine as engine\n"
        "assert 'holidays.countries.united_kingdom' not in sys.modules\n"
        "engine.Evaluator()\n"
        "assert 'holidays.countries.united_kingdom' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
