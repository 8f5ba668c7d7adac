"""Schedule expressions: the documented examples (Image Builder's cron page and EventBridge's)
with their fire times, the special characters, time zones and DST, rates, and bad expressions
with the message that says what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.pipelines.schedule_expr import ScheduleExpressionError, check_timezone, next_fire_times, parse
from engine.pipelines.temporal_spec import LEAP_YEARS, ranges

# Friday 2026-11-27 02:28 UTC: a fixed "now" for every example.
NOW = datetime(2026, 11, 27, 2, 28, tzinfo=UTC)


def fires(expression: str, count: int = 4, zone: str = "UTC", after: datetime = NOW) -> list[str]:
    """Fire times as local wall-clock strings in `zone` (what a user reads the expression as)."""
    times = next_fire_times(parse(expression), after, zone, count=count)
    return [t.astimezone(check_timezone(zone)).strftime("%a %Y-%m-%d %H:%M") for t in times]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Image Builder user guide examples
        ("cron(0 10 ? * 2-6 *)", ["Fri 2026-11-27 10:00", "Mon 2026-11-30 10:00", "Tue 2026-12-01 10:00"]),
        ("cron(0 18 ? * mon-fri *)", ["Fri 2026-11-27 18:00", "Mon 2026-11-30 18:00", "Tue 2026-12-01 18:00"]),
        ("cron(0 8 1 * ? *)", ["Tue 2026-12-01 08:00", "Fri 2027-01-01 08:00", "Mon 2027-02-01 08:00"]),
        ("cron(30 22 ? * tue#2 *)", ["Tue 2026-12-08 22:30", "Tue 2027-01-12 22:30", "Tue 2027-02-09 22:30"]),
        ("cron(0 9 ? * mon *)", ["Mon 2026-11-30 09:00", "Mon 2026-12-07 09:00", "Mon 2026-12-14 09:00"]),
        # EventBridge examples
        ("cron(15 12 * * ? *)", ["Fri 2026-11-27 12:15", "Sat 2026-11-28 12:15", "Sun 2026-11-29 12:15"]),
        ("cron(0/15 * * * ? *)", ["Fri 2026-11-27 02:30", "Fri 2026-11-27 02:45", "Fri 2026-11-27 03:00"]),
        ("cron(0/5 8-17 ? * MON-FRI *)", ["Fri 2026-11-27 08:00", "Fri 2026-11-27 08:05", "Fri 2026-11-27 08:10"]),
        ("cron(0 9 ? * 2#1 *)", ["Mon 2026-12-07 09:00", "Mon 2027-01-04 09:00", "Mon 2027-02-01 09:00"]),
        # L, W, LW, dL, L in day-of-week, years
        ("cron(0 0 L * ? *)", ["Mon 2026-11-30 00:00", "Thu 2026-12-31 00:00", "Sun 2027-01-31 00:00"]),
        ("cron(0 0 L 2 ? 2027-2029)", ["Sun 2027-02-28 00:00", "Tue 2028-02-29 00:00", "Wed 2029-02-28 00:00"]),
        ("cron(0 12 LW * ? *)", ["Mon 2026-11-30 12:00", "Thu 2026-12-31 12:00", "Fri 2027-01-29 12:00"]),
        # 15W: Sun 2027-08-15 moves to Monday the 16th; Sat 2027-05-15 to Friday the 14th.
        ("cron(0 9 15W 5,8 ? 2027)", ["Fri 2027-05-14 09:00", "Mon 2027-08-16 09:00"]),
        # 1W: Saturday the 1st moves to Monday the 3rd (never into the month before).
        ("cron(0 9 1W 5 ? 2027)", ["Mon 2027-05-03 09:00"]),
        # 31W: Sunday the 31st moves back to Friday the 29th; 30-day months have no 31st.
        ("cron(0 9 31W * ? 2027)", ["Fri 2027-01-29 09:00", "Wed 2027-03-31 09:00", "Mon 2027-05-31 09:00"]),
        ("cron(0 6 ? * 6L *)", ["Fri 2026-11-27 06:00", "Fri 2026-12-25 06:00", "Fri 2027-01-29 06:00"]),
        ("cron(0 6 ? * L *)", ["Sat 2026-11-28 06:00", "Sat 2026-12-05 06:00", "Sat 2026-12-12 06:00"]),
        ("cron(0 6 ? * SUN#5 *)", ["Sun 2026-11-29 06:00", "Sun 2027-01-31 06:00", "Sun 2027-05-30 06:00"]),
        ("cron(0 0 1 JAN ? 2030/10)", ["Tue 2030-01-01 00:00", "Sun 2040-01-01 00:00", "Sat 2050-01-01 00:00"]),
    ],
)
def test_documented_examples(expression: str, expected: list[str]) -> None:
    assert fires(expression, len(expected)) == expected


def test_time_zones_and_dst() -> None:
    # 09:00 on weekdays in Los Angeles is 17:00 UTC in winter, 16:00 UTC in summer.
    la = next_fire_times(parse("cron(0 9 ? * MON-FRI *)"), NOW, "America/Los_Angeles", count=1)
    assert la == [datetime(2026, 11, 27, 17, tzinfo=UTC)]
    summer = datetime(2027, 6, 1, tzinfo=UTC)
    assert next_fire_times(parse("cron(0 9 ? * MON-FRI *)"), summer, "America/Los_Angeles") == [
        datetime(2027, 6, 1, 16, tzinfo=UTC)
    ]
    # 02:30 does not exist in New York on 2027-03-14 (spring forward): no run that day.
    got = fires("cron(30 2 * * ? *)", 3, "America/New_York", datetime(2027, 3, 13, tzinfo=UTC))
    assert got == ["Sat 2027-03-13 02:30", "Mon 2027-03-15 02:30", "Tue 2027-03-16 02:30"]
    # Tokyo has no DST; the day is Tokyo's: L is the last day there.
    assert fires("cron(0 1 L * ? *)", 1, "Asia/Tokyo") == ["Mon 2026-11-30 01:00"]
    assert next_fire_times(parse("cron(0 1 L * ? *)"), NOW, "Asia/Tokyo") == [datetime(2026, 11, 29, 16, tzinfo=UTC)]


def test_rates_count_from_when_they_were_set() -> None:
    anchor = datetime(2026, 11, 27, 1, 10, tzinfo=UTC)
    assert next_fire_times(parse("rate(1 hour)"), NOW, anchor=anchor, count=2) == [
        datetime(2026, 11, 27, 3, 10, tzinfo=UTC),
        datetime(2026, 11, 27, 4, 10, tzinfo=UTC),
    ]
    assert next_fire_times(parse("rate(5 minutes)"), anchor, anchor=anchor) == [anchor + timedelta(minutes=5)]
    assert next_fire_times(parse("rate(2 days)"), NOW, anchor=anchor) == [anchor + timedelta(days=2)]
    for valid in ("rate(1 minute)", "rate(1 day)", "rate(5 hours)", "rate(12 hours)", "rate(30 days)"):
        parse(valid)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 2 * * *)", "6 fields"),
        ("cron(0 2 * * ? * *)", "this one has 7"),
        ("cron(0 2 * * MON *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(0 2 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(60 2 * * ? *)", "'60' is not a minute (0-59)"),
        ("cron(0 24 * * ? *)", "'24' is not a hour (0-23)"),
        ("cron(0 0 32 * ? *)", "'32' is not a day of month (1-31)"),
        ("cron(0 0 1 13 ? *)", "'13' is not a month (1-12 or JAN-DEC)"),
        ("cron(0 0 1 FOO ? *)", "'FOO' is not a month"),
        ("cron(0 0 ? * 8 *)", "'8' is not a day of week (1-7 or SUN-SAT)"),
        ("cron(0 0 ? * FRI#6 *)", "the number after # is the week of the month, 1-5"),
        ("cron(0 0 ? * FRI#0 *)", "the number after # is the week of the month, 1-5"),
        ("cron(0 0 1 * ? 1969)", "'1969' is not a year (1970-2199)"),
        ("cron(0/0 * * * ? *)", "the increment after / must be a positive number"),
        ("cron(0 22-2 * * ? *)", "the hour range goes backwards"),
        ("cron(0 0 L-3 * ? *)", "is not a day of month"),
        ("cron(0 0 ? * 2W *)", "is not a day of week"),
        ("cron(0 0 1,,2 * ? *)", "an empty entry in the day of month list"),
        ("cron(0 ? 1 * ? *)", "? is allowed only in day-of-month and day-of-week"),
        ("cron(0 0 W * ? *)", "W follows one day of the month"),
        ("rate(1 days)", "write rate(1 day)"),
        ("rate(3 day)", "write rate(3 days)"),
        ("rate(1 hours)", "write rate(1 hour)"),
        ("rate(5 hour)", "write rate(5 hours)"),
        ("rate(2 weeks)", "the unit is minute(s), hour(s) or day(s)"),
        ("rate(0 minutes)", "at least 1"),
        ("rate(fast)", "write rate(<number> <unit>)"),
        ("0 9 ? * MON *", "use cron("),
        ("daily", "use cron("),
    ],
)
def test_bad_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(ScheduleExpressionError) as err:
        parse(expression)
    assert message in str(err.value), str(err.value)


def test_time_zone_names() -> None:
    check_timezone("Etc/UTC")
    check_timezone("America/Los_Angeles")
    with pytest.raises(ScheduleExpressionError, match="not an IANA time zone"):
        check_timezone("Mars/Olympus")


def test_never_firing_expressions_end() -> None:
    assert next_fire_times(parse("cron(0 0 30 2 ? *)"), NOW) == []
    assert next_fire_times(parse("cron(0 0 1 1 ? 2020)"), NOW) == []


def test_ranges_are_compact() -> None:
    assert [(r.start, r.end, r.step) for r in ranges(LEAP_YEARS)] == [(2000, 2096, 4)]
    assert [(r.start, r.end, r.step) for r in ranges([0, 15, 30, 45])] == [(0, 45, 15)]
    assert [(r.start, r.end, r.step) for r in ranges(range(60))] == [(0, 59, 1)]
    assert [(r.start, r.end, r.step) for r in ranges([5])] == [(5, 5, 1)]
