"""Schedule expressions in the EventBridge dialect Image Builder uses: ``cron(...)`` with six
fields (minute hour day-of-month month day-of-week year; ``?``, ``L``, ``W``, ``#``, ranges,
lists, steps, month and day names) and ``rate(<n> <unit>)``, and their fire times in an IANA
time zone.

This module is the one reading of the dialect: the API validates with it, GetImagePipeline
shows ``dateNextRun`` from it, and the Temporal schedule spec is translated from its parsed
form (engine/pipelines/temporal_spec.py). Fire times are computed here independently of that
translation, so each checks the other.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # cron day 1 = Sunday
FIRST_YEAR, LAST_YEAR = 1970, 2199
SUNDAY, MONDAY, FRIDAY, SATURDAY = 1, 2, 6, 7
RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class ScheduleExpressionError(ValueError):
    """A schedule expression that is not valid, with a message that says why in the caller's terms."""


@dataclass(frozen=True)
class DayOfMonth:
    """The day-of-month field: plain days, ``L`` (last day), ``LW`` (last weekday) and ``nW``
    (the weekday nearest the n-th, never leaving the month)."""

    days: frozenset[int] = frozenset()
    last: bool = False
    last_weekday: bool = False
    nearest_weekday: frozenset[int] = frozenset()

    def matches(self, day: date) -> bool:
        length = calendar.monthrange(day.year, day.month)[1]
        if day.day in self.days or (self.last and day.day == length):
            return True
        if self.last_weekday and day.day == last_weekday(day.year, day.month):
            return True
        return any(nearest_weekday(day.year, day.month, n) == day.day for n in self.nearest_weekday)


@dataclass(frozen=True)
class DayOfWeek:
    """The day-of-week field (1 = Sunday ... 7 = Saturday): plain days, ``d#n`` (the n-th such
    day of the month) and ``dL`` (the last such day of the month)."""

    days: frozenset[int] = frozenset()
    nth: frozenset[tuple[int, int]] = frozenset()
    last_of: frozenset[int] = frozenset()

    def matches(self, day: date) -> bool:
        dow = cron_weekday(day)
        if dow in self.days or (dow, (day.day - 1) // 7 + 1) in self.nth:
            return True
        return dow in self.last_of and day.day + 7 > calendar.monthrange(day.year, day.month)[1]


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int] | None  # None: any year
    day_of_month: DayOfMonth | None  # exactly one of the two day fields is set (the other was ?)
    day_of_week: DayOfWeek | None

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        if self.day_of_month is not None:
            return self.day_of_month.matches(day)
        assert self.day_of_week is not None
        return self.day_of_week.matches(day)

    def fire_times(self, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Fire times strictly after `after`, ascending, as aware UTC datetimes.

        Wall-clock times are read in `zone`. A time that a DST change skips (02:30 on the
        spring-forward night in New York) does not fire that day, as in Temporal's calendar,
        which is what fires. A time in the hour a DST change repeats is given once, at its
        first occurrence; Temporal may fire it in both occurrences or only in the second
        (docs/PIPELINES.md).
        """
        after = after.astimezone(UTC)
        day = after.astimezone(zone).date() - timedelta(days=1)  # a day back covers offsets
        last = date(LAST_YEAR if self.years is None else max(self.years), 12, 31)
        while day <= last:
            if day.month not in self.months or (self.years is not None and day.year not in self.years):
                day = _next_month(day)
                continue
            if self.matches_day(day):
                instants = set()
                for hour in self.hours:
                    for minute in self.minutes:
                        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        instant = local.astimezone(UTC)
                        if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
                            instants.add(instant)  # else a time the clock skips (DST): no run that day
                yield from sorted(t for t in instants if t > after)
            day += timedelta(days=1)


@dataclass(frozen=True)
class Rate:
    value: int
    unit: str  # minute, hour or day

    @property
    def every(self) -> timedelta:
        return self.value * RATE_UNITS[self.unit]

    def fire_times(self, after: datetime, anchor: datetime) -> Iterator[datetime]:
        """anchor + k * every for k >= 1, after `after` (a rate counts from when it was set)."""
        after, anchor = after.astimezone(UTC), anchor.astimezone(UTC)
        k = max(1, (after - anchor) // self.every + 1)
        while True:
            yield anchor + k * self.every
            k += 1


Expression = Cron | Rate


def parse(expression: str) -> Expression:
    """A cron(...) or rate(...) expression, or ScheduleExpressionError saying what is wrong."""
    text = expression.strip()
    if text.startswith("rate(") and text.endswith(")"):
        return _rate(text[5:-1])
    if text.startswith("cron(") and text.endswith(")"):
        return _cron(text[5:-1])
    raise ScheduleExpressionError(
        "use cron(<minute> <hour> <day-of-month> <month> <day-of-week> <year>) or rate(<number> <unit>), "
        "e.g. cron(0 9 ? * MON *) or rate(1 day)"
    )


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(
            f"{name!r} is not an IANA time zone (e.g. Etc/UTC, America/Los_Angeles)"
        ) from None


def next_fire_times(
    expression: Expression, after: datetime, zone: str = "UTC", anchor: datetime | None = None, count: int = 1
) -> list[datetime]:
    """The next `count` fire times after `after` (fewer if the expression stops firing)."""
    if isinstance(expression, Rate):
        times: Iterator[datetime] = expression.fire_times(after, anchor or after)
    else:
        times = expression.fire_times(after, check_timezone(zone))
    out = []
    for t in times:
        out.append(t)
        if len(out) == count:
            break
    return out


# --- calendar helpers ---------------------------------------------------------------------------


def cron_weekday(day: date) -> int:
    """1 = Sunday ... 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


def nearest_weekday(year: int, month: int, n: int) -> int | None:
    """The weekday (Mon-Fri) nearest the n-th of the month, within the month: Saturday the 1st
    moves to Monday the 3rd, Sunday the last day to Friday; None if the month has no n-th."""
    length = calendar.monthrange(year, month)[1]
    if n > length:
        return None
    dow = cron_weekday(date(year, month, n))
    if dow == SATURDAY:
        return 3 if n == 1 else n - 1
    if dow == SUNDAY:
        return n - 2 if n == length else n + 1
    return n


def last_weekday(year: int, month: int) -> int:
    length = calendar.monthrange(year, month)[1]
    dow = cron_weekday(date(year, month, length))
    return length - {SATURDAY: 1, SUNDAY: 2}.get(dow, 0)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


# --- parsing ------------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s+([A-Za-z]+)\s*$")


def _rate(inner: str) -> Rate:
    m = _RATE.match(inner)
    if not m:
        raise ScheduleExpressionError("write rate(<number> <unit>), e.g. rate(1 day) or rate(12 hours)")
    value, unit = int(m[1]), m[2].lower()
    if value < 1:
        raise ScheduleExpressionError("the rate must be at least 1")
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise ScheduleExpressionError(f"the unit is minute(s), hour(s) or day(s), not {m[2]!r}")
    if (value == 1) != (unit == singular):
        want = singular if value == 1 else singular + "s"
        raise ScheduleExpressionError(f"write rate({value} {want}): the unit is singular for 1 and plural otherwise")
    return Rate(value, singular)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def number(self, text: str) -> int:
        upper = text.upper()
        if upper in self.names:
            return self.names.index(upper) + self.low
        if not text.isdigit():
            raise ScheduleExpressionError(f"{text!r} is not a {self.name} ({self._allowed()})")
        value = int(text)
        if not self.low <= value <= self.high:
            raise ScheduleExpressionError(f"{text!r} is not a {self.name} ({self._allowed()})")
        return value

    def _allowed(self) -> str:
        named = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{named}"

    def values(self, text: str) -> frozenset[int]:
        """A field of plain items: *, n, a-b, with /step, in a comma-separated list."""
        out: set[int] = set()
        for item in text.split(","):
            out |= self.item(item)
        return frozenset(out)

    def item(self, item: str) -> set[int]:
        if not item:
            raise ScheduleExpressionError(f"an empty entry in the {self.name} list")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleExpressionError(f"{item!r}: the increment after / must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = self.low, self.high
        else:
            start, dash, end = base.partition("-")
            first = self.number(start)
            last = self.number(end) if dash else (self.high if slash else first)
            if last < first:
                raise ScheduleExpressionError(
                    f"{item!r}: the {self.name} range goes backwards; write it as two ranges in a list"
                )
        return set(range(first, last + 1, step))


MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day of month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day of week", 1, 7, DAY_NAMES)
YEAR = _Field("year", FIRST_YEAR, LAST_YEAR)


def _cron(inner: str) -> Cron:
    fields = inner.split()
    if len(fields) != 6:
        raise ScheduleExpressionError(
            "a cron expression has 6 fields (minute hour day-of-month month day-of-week year), "
            f"this one has {len(fields)}"
        )
    minute, hour, dom, month, dow, year = fields
    for text, spec in ((minute, MINUTE), (hour, HOUR), (month, MONTH), (year, YEAR)):
        if "?" in text:
            raise ScheduleExpressionError(f"? is allowed only in day-of-month and day-of-week, not in the {spec.name}")
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(
            "exactly one of day-of-month and day-of-week must be ? (constrain one of them, "
            "e.g. cron(0 8 1 * ? *) or cron(0 8 ? * MON *))"
        )
    return Cron(
        minutes=MINUTE.values(minute),
        hours=HOUR.values(hour),
        months=MONTH.values(month),
        years=None if year == "*" else YEAR.values(year),
        day_of_month=None if dom == "?" else _day_of_month(dom),
        day_of_week=None if dow == "?" else _day_of_week(dow),
    )


def _day_of_month(text: str) -> DayOfMonth:
    days: set[int] = set()
    nearest: set[int] = set()
    last = last_wd = False
    for item in text.split(","):
        upper = item.upper()
        if upper == "L":
            last = True
        elif upper == "LW":
            last_wd = True
        elif upper.endswith("W"):
            if not item[:-1].isdigit():
                raise ScheduleExpressionError(f"{item!r}: W follows one day of the month, e.g. 15W")
            nearest.add(DAY_OF_MONTH.number(item[:-1]))
        elif "L" in upper or "W" in upper or "#" in upper:
            raise ScheduleExpressionError(
                f"{item!r} is not a day of month: use a day 1-31, L (last day), LW (last weekday) or nW (15W)"
            )
        else:
            days |= DAY_OF_MONTH.item(item)
    return DayOfMonth(frozenset(days), last, last_wd, frozenset(nearest))


def _day_of_week(text: str) -> DayOfWeek:
    days: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last_of: set[int] = set()
    for item in text.split(","):
        upper = item.upper()
        if "#" in item:
            day, _, n = item.partition("#")
            if not n.isdigit() or not 1 <= int(n) <= 5:
                raise ScheduleExpressionError(f"{item!r}: the number after # is the week of the month, 1-5")
            nth.add((DAY_OF_WEEK.number(day), int(n)))
        elif upper == "L":
            days.add(SATURDAY)  # L alone: the last day of the week (EventBridge, as in Quartz)
        elif upper.endswith("L") and "-" not in item and "/" not in item:
            last_of.add(DAY_OF_WEEK.number(item[:-1]))  # 6L, FRIL: the last Friday of the month
        elif "W" in upper.replace("WED", "") or "L" in upper:
            raise ScheduleExpressionError(
                f"{item!r} is not a day of week: use 1-7 or SUN-SAT, L, dL (last d of the month) or d#n"
            )
        else:
            days |= DAY_OF_WEEK.item(item)
    return DayOfWeek(frozenset(days), frozenset(nth), frozenset(last_of))
