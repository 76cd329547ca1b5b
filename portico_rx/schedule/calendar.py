"""Calendars: days and windows a schedule does not fire on (holidays, maintenance).

A schedule's ``exclude=`` (dates, inclusive date ranges, half-open datetime windows) and
``calendar=`` (anything with ``excludes(day) -> bool``, e.g. :class:`Holidays`) are
applied to its fire times by :class:`CalendarPlan`, in the schedule's time zone: the
live timer, catch-up after downtime, ``upcoming``, ``preview`` and ``backfill`` all read
the same plan, so they agree on every excluded run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from portico_rx.errors import InvalidScheduleError, require
from portico_rx.schedule.fire_plan import FirePlan
from portico_rx.schedule.timer import to_micros

__all__ = ["Calendar", "CalendarPlan", "Dates", "Holidays", "check_exclude"]

_MICROS = 1_000_000


@runtime_checkable
class Calendar(Protocol):
    """Days a schedule skips. ``day`` is the fire time's date in the schedule's zone."""

    def excludes(self, day: date) -> bool: ...


class Dates:
    """A fixed set of excluded days: dates and inclusive ``(first, last)`` date ranges.

    Example:
        >>> Dates([date(2025, 12, 25), (date(2025, 12, 29), date(2025, 12, 31))]).excludes(
        ...     date(2025, 12, 30))
        True
    """

    def __init__(self, days: Iterable[date | tuple[date, date]] = ()) -> None:
        self.days: set[date] = set()
        self.ranges: list[tuple[date, date]] = []
        for item in days:
            if isinstance(item, tuple):
                self.ranges.append(item)
            else:
                self.days.add(item)

    def excludes(self, day: date) -> bool:
        return day in self.days or any(first <= day <= last for first, last in self.ranges)

    def __repr__(self) -> str:
        return f"Dates(days={sorted(self.days)!r}, ranges={self.ranges!r})"


class Holidays:
    """Public holidays of a country (and region) from the ``holidays`` package
    (extra ``calendar``): ``Holidays("DE", subdiv="BY")``, ``Holidays("US", subdiv="NY")``.

    Raises:
        MissingDependencyError: ``holidays`` is not installed.
        InvalidScheduleError: an unknown country or region.
    """

    def __init__(self, country: str, subdiv: str | None = None, **options: Any) -> None:
        holidays: Any = require("holidays", "calendar")
        try:
            self.table = holidays.country_holidays(country, subdiv=subdiv, **options)
        except NotImplementedError as exc:
            raise InvalidScheduleError(
                f"Holidays({country!r}, subdiv={subdiv!r}): {exc}; use an ISO 3166 country "
                "code such as 'DE' or 'US' and one of its subdivisions (holidays package)"
            ) from None
        self.country, self.subdiv = country, subdiv

    def excludes(self, day: date) -> bool:
        return day in self.table

    def name(self, day: date) -> str | None:
        """The holiday's name, or ``None``."""
        found = self.table.get(day)
        return None if found is None else str(found)

    def __repr__(self) -> str:
        return f"Holidays({self.country!r}, subdiv={self.subdiv!r})"


Window = tuple[datetime, datetime]


def check_exclude(
    exclude: Sequence[Any], calendar: Any, tz: ZoneInfo
) -> tuple[Dates, list[tuple[int, int]], Calendar | None]:
    """``exclude=`` split into excluded days and datetime windows (epoch µs), and the
    ``calendar=`` checked.

    Raises:
        InvalidScheduleError: an item that is not a date, a date range, a datetime
            window, or a calendar without ``excludes(day)``.
    """
    days: list[date | tuple[date, date]] = []
    windows: list[tuple[int, int]] = []
    for item in exclude:
        if isinstance(item, date) and not isinstance(item, datetime):
            days.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and _all_dates(item):
            if item[1] < item[0]:
                raise InvalidScheduleError(
                    f"exclude item {item!r}: the range ends before it starts; give (first, last)"
                )
            days.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and _all_datetimes(item):
            low, high = (_aware(moment, tz) for moment in item)
            if high <= low:
                raise InvalidScheduleError(
                    f"exclude window {item!r}: the end is not after the start"
                )
            windows.append((low, high))
        else:
            raise InvalidScheduleError(
                f"exclude item {item!r}: give a date, a (first, last) date range (inclusive) "
                "or a (start, end) datetime window, e.g. date(2025, 12, 25)"
            )
    if calendar is not None and not isinstance(calendar, Calendar):
        raise InvalidScheduleError(
            f"calendar={calendar!r}: give an object with excludes(day) -> bool, e.g. "
            "Holidays('DE', subdiv='BY') or Dates([...])"
        )
    return Dates(days), windows, calendar


def _all_dates(item: tuple[Any, ...]) -> bool:
    return all(isinstance(v, date) and not isinstance(v, datetime) for v in item)


def _all_datetimes(item: tuple[Any, ...]) -> bool:
    return all(isinstance(v, datetime) for v in item)


def _aware(moment: datetime, tz: ZoneInfo) -> int:
    from portico_rx.schedule.window import to_instant

    return to_micros(to_instant(moment, tz, "exclude"))


class CalendarPlan:
    """A fire plan without the runs on excluded days (in ``tz``) or inside excluded
    windows. An excluded day is skipped whole: the inner plan is asked again from the
    next local midnight, so an every-second schedule does not walk a holiday."""

    __slots__ = ("calendar", "days", "expression", "inner", "kind", "tz", "windows")

    def __init__(
        self,
        inner: FirePlan,
        tz: ZoneInfo,
        days: Dates,
        windows: list[tuple[int, int]],
        calendar: Calendar | None,
    ) -> None:
        self.inner, self.tz, self.days, self.windows = inner, tz, days, windows
        self.calendar = calendar
        self.kind, self.expression = inner.kind, inner.expression

    def _excluded_day(self, day: date) -> bool:
        if self.days.excludes(day):
            return True
        return self.calendar is not None and bool(self.calendar.excludes(day))

    def _next_midnight(self, day: date) -> int:
        following = day + timedelta(days=1)
        local = datetime(following.year, following.month, following.day, tzinfo=self.tz)
        return to_micros(local)

    def iter_from(self, start_us: int, end_us: int | None = None) -> Iterator[int]:
        cursor = self.inner.iter_from(start_us, end_us)
        day_low = day_high = 0
        day_excluded = False
        while True:
            fire = next(cursor, None)
            if fire is None:
                return
            if not day_low <= fire < day_high:  # a new local day: decide once for it
                day = datetime.fromtimestamp(fire / _MICROS, self.tz).date()
                midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
                day_low, day_high = to_micros(midnight), self._next_midnight(day)
                day_excluded = self._excluded_day(day)
            if day_excluded:
                cursor = self.inner.iter_from(day_high, end_us)
                continue
            if any(low <= fire < high for low, high in self.windows):
                continue
            yield fire
