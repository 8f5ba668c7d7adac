"""A parsed schedule expression as a Temporal ScheduleSpec that fires at exactly the same times.

Temporal's calendar spec has ranges, steps and lists per field, a time zone, and matches a
time only when every field matches (day of month AND day of week). That is enough to say every
EventBridge day rule exactly, as a union of calendars:

- ``d#n`` (n-th weekday d): day of week d on days 7n-6..7n.
- ``L``, ``LW``, ``dL`` and ``nW`` depend on the month's length, so they become one calendar per
  month length (31-day months, 30-day months, February in leap and in common years), e.g. ``L``
  is day 31 of Jan, Mar, ...; day 30 of Apr, ...; day 29 of February in leap years; day 28 of
  February in common years.
- ``nW`` (weekday nearest the n-th) is "the n-th if it is Monday-Friday; the (n-1)-th if that is
  a Friday (the n-th is a Saturday); the (n+1)-th if that is a Monday (the n-th is a Sunday)",
  with the month-boundary cases (1st a Saturday: Monday the 3rd; last day a Sunday: Friday).

Temporal's calendar knows the years 2000-2100 only, so a schedule stops firing after 2100
although the dialect allows years up to 2199.

A rate is an interval whose offset puts its ticks at anchor + k * rate, so it counts from when
the schedule was set, as EventBridge rates do.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import ScheduleCalendarSpec, ScheduleIntervalSpec, ScheduleRange, ScheduleSpec

from engine.pipelines.schedule_expr import (
    Cron,
    DayOfMonth,
    DayOfWeek,
    Expression,
    Rate,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALL_MONTHS = frozenset(range(1, 13))
ALL_DAYS = frozenset(range(1, 32))
ALL_WEEKDAYS = frozenset(range(0, 7))  # Temporal: 0 = Sunday
MON_FRI = frozenset(range(1, 6))
MONDAY, FRIDAY = 1, 5
#: The years Temporal's calendar accepts (the dialect allows 1970-2199; earlier years are past).
TEMPORAL_YEARS = frozenset(range(2000, 2101))
LEAP_YEARS = frozenset(y for y in TEMPORAL_YEARS if calendar.isleap(y))
COMMON_YEARS = TEMPORAL_YEARS - LEAP_YEARS


@dataclass(frozen=True)
class _MonthGroup:
    """Months that share a length: the unit the length-dependent rules are spelled per."""

    months: frozenset[int]
    years: frozenset[int] | None  # None: any year
    length: int


_GROUPS = (
    _MonthGroup(frozenset({1, 3, 5, 7, 8, 10, 12}), None, 31),
    _MonthGroup(frozenset({4, 6, 9, 11}), None, 30),
    _MonthGroup(frozenset({2}), LEAP_YEARS, 29),
    _MonthGroup(frozenset({2}), COMMON_YEARS, 28),
)


@dataclass(frozen=True)
class _Days:
    """One calendar's day part: months, years, days of month and Temporal days of week that
    must all match."""

    months: frozenset[int]
    years: frozenset[int] | None
    days: frozenset[int]
    weekdays: frozenset[int]


def to_spec(expression: Expression, zone: str, anchor: datetime) -> ScheduleSpec:
    if isinstance(expression, Rate):
        every = expression.every
        offset = (anchor.astimezone(UTC) - EPOCH) % every
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)])
    return ScheduleSpec(calendars=calendars(expression), time_zone_name=zone)


def calendars(cron: Cron) -> list[ScheduleCalendarSpec]:
    out = []
    for part in _merge(_day_parts(cron)):
        months = part.months & cron.months
        years = _intersect(part.years, None if cron.years is None else cron.years & TEMPORAL_YEARS)
        if not months or (years is not None and not years) or not part.days or not part.weekdays:
            continue
        out.append(
            ScheduleCalendarSpec(
                second=[ScheduleRange(0)],
                minute=ranges(cron.minutes),
                hour=ranges(cron.hours),
                day_of_month=ranges(part.days),
                month=ranges(months),
                year=ranges(years) if years is not None else [],
                day_of_week=ranges(part.weekdays),
            )
        )
    return out


def _intersect(a: frozenset[int] | None, b: frozenset[int] | None) -> frozenset[int] | None:
    if a is None:
        return b
    return a if b is None else a & b


def _day_parts(cron: Cron) -> list[_Days]:
    if cron.day_of_month is not None:
        return _day_of_month(cron.day_of_month)
    assert cron.day_of_week is not None
    return _day_of_week(cron.day_of_week)


def _day_of_month(dom: DayOfMonth) -> list[_Days]:
    parts = []
    if dom.days:
        parts.append(_Days(ALL_MONTHS, None, dom.days, ALL_WEEKDAYS))
    for g in _GROUPS:
        if dom.last:
            parts.append(_Days(g.months, g.years, frozenset({g.length}), ALL_WEEKDAYS))
        if dom.last_weekday:
            n = g.length
            parts += [
                _Days(g.months, g.years, frozenset({n}), MON_FRI),
                _Days(g.months, g.years, frozenset({n - 1}), frozenset({FRIDAY})),  # the last day is a Saturday
                _Days(g.months, g.years, frozenset({n - 2}), frozenset({FRIDAY})),  # the last day is a Sunday
            ]
        for n in sorted(dom.nearest_weekday):
            if n > g.length:
                continue
            parts.append(_Days(g.months, g.years, frozenset({n}), MON_FRI))
            saturday = _Days(
                g.months, g.years, frozenset({3 if n == 1 else n - 1}), frozenset({MONDAY if n == 1 else FRIDAY})
            )
            sunday = (
                _Days(g.months, g.years, frozenset({n - 2}), frozenset({FRIDAY}))
                if n == g.length
                else _Days(g.months, g.years, frozenset({n + 1}), frozenset({MONDAY}))
            )
            parts += [saturday, sunday]
    return parts


def _day_of_week(dow: DayOfWeek) -> list[_Days]:
    parts = []
    if dow.days:
        parts.append(_Days(ALL_MONTHS, None, ALL_DAYS, frozenset(d - 1 for d in dow.days)))
    for day, n in sorted(dow.nth):
        parts.append(_Days(ALL_MONTHS, None, frozenset(range(7 * n - 6, min(7 * n, 31) + 1)), frozenset({day - 1})))
    for day in sorted(dow.last_of):
        for g in _GROUPS:
            parts.append(_Days(g.months, g.years, frozenset(range(g.length - 6, g.length + 1)), frozenset({day - 1})))
    return parts


def _merge(parts: Iterable[_Days]) -> list[_Days]:
    """One calendar per distinct (years, days, weekdays), with the months of all that share it
    (the per-month-length rules agree for 31- and 30-day months more often than not)."""
    merged: dict[tuple[frozenset[int] | None, frozenset[int], frozenset[int]], frozenset[int]] = {}
    for p in parts:
        key = (p.years, p.days, p.weekdays)
        merged[key] = merged.get(key, frozenset()) | p.months
    return [_Days(months, years, days, weekdays) for (years, days, weekdays), months in merged.items()]


def ranges(values: Iterable[int]) -> list[ScheduleRange]:
    """A set of numbers as few ScheduleRanges as a greedy search finds: each range the longest
    arithmetic run from the smallest number left (leap years are one range, 0/15 is one)."""
    left = sorted(set(values))
    out = []
    while left:
        first, rest = left[0], set(left[1:])
        best = [first]
        for other in left[1:64]:
            step = other - first
            run = [first]
            while run[-1] + step in rest:
                run.append(run[-1] + step)
            if len(run) > len(best):
                best = run
        step = best[1] - best[0] if len(best) > 1 else 0
        out.append(ScheduleRange(best[0], best[-1] if len(best) > 1 else 0, step if step > 1 else 0))
        taken = set(best)
        left = [v for v in left if v not in taken]
    return out


def describe_spec(spec: ScheduleSpec) -> str:
    """A short readable form for logs."""
    if spec.intervals:
        return f"every {spec.intervals[0].every} offset {spec.intervals[0].offset or timedelta(0)}"
    return f"{len(spec.calendars)} calendar(s) in {spec.time_zone_name}"
