"""Fire times of a cron expression in a time zone, fast: whole days at a time.

For each local day that matches, the fire times are the expression's times of day
(precomputed once per expression) plus the day's UTC offset — integer arithmetic, no
datetime per fire. Only the days on which the zone's offset changes take the careful
path that applies the :class:`~portico_rx.schedule.dst.DstPolicy` time by time. This is
what lets a preview of a year of 100 hourly schedules take well under a second.

Times are integer seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import bisect
import functools
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from portico_rx.schedule.cron_expression import CronExpression
from portico_rx.schedule.dst import DstPolicy

__all__ = ["FireTimes"]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_HORIZON_DAYS = 366 * 400  # the Gregorian calendar repeats every 400 years
_NEXT_DAY: dict[tuple[int, int, int], int | None] = {}
_UNKNOWN = object()
_UTC = ZoneInfo("UTC")


@functools.lru_cache(maxsize=65536)
def _midnight_offset(tz: ZoneInfo, ordinal: int) -> int:
    """UTC offset (seconds) at local 00:00 of a day; shared by every schedule in ``tz``."""
    day = date.fromordinal(ordinal)
    value = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
    return int(value.total_seconds()) if value is not None else 0


class FireTimes:
    """The fire times of ``cron`` in ``tz`` under ``dst``, as epoch seconds (UTC).

    Example:
        >>> from portico_rx.schedule.cron_expression import parse_cron
        >>> times = FireTimes(parse_cron("30 2 * * *"), ZoneInfo("Europe/Berlin"))
        >>> start = int(datetime(2025, 10, 25, tzinfo=_UTC).timestamp())
        >>> fires = times.between(start, start + 3 * 86400)
        >>> [datetime.fromtimestamp(t, _UTC).isoformat() for t in fires]
        ['2025-10-25T00:30:00+00:00', '2025-10-26T00:30:00+00:00', '2025-10-27T01:30:00+00:00']
    """

    __slots__ = ("cron", "dst", "tz")

    def __init__(self, cron: CronExpression, tz: ZoneInfo, dst: DstPolicy | None = None) -> None:
        self.cron = cron
        self.tz = tz
        self.dst = dst or DstPolicy()

    def _offset_at_midnight(self, ordinal: int) -> int:
        """UTC offset (seconds) at local 00:00 of the day (first offset if ambiguous)."""
        return _midnight_offset(self.tz, ordinal)

    def day(self, ordinal: int) -> tuple[bool, int, list[int]]:
        """One local day: ``(simple, base, times)``.

        ``simple``: the offset does not change that day, and its fire times are ``base + s``
        for ``s`` in ``cron.day_seconds`` (``times`` is empty). Otherwise ``times`` holds the
        day's fire times, sorted and unique, with the DST policy applied.
        """
        offset = self._offset_at_midnight(ordinal)
        base = (ordinal - _EPOCH_ORDINAL) * 86400 - offset
        if offset == self._offset_at_midnight(ordinal + 1):
            return True, base, []
        return False, base, self._transition_day(ordinal)

    def _transition_day(self, ordinal: int) -> list[int]:
        day = date.fromordinal(ordinal)
        midnight = datetime(day.year, day.month, day.day)
        tz = self.tz
        found: set[int] = set()
        transition: int | None = None
        for second in self.cron.day_seconds:
            wall = midnight + timedelta(seconds=second)
            first = int(wall.replace(tzinfo=tz, fold=0).timestamp())
            second_ = int(wall.replace(tzinfo=tz, fold=1).timestamp())
            if first == second_:
                found.add(first)
            elif first < second_:  # happens twice (fall back)
                found.add(first)
                if self.dst.ambiguous == "both":
                    found.add(second_)
            elif self.dst.nonexistent == "shift":  # does not exist (spring forward)
                if transition is None or not second_ < transition <= first:
                    transition = self._transition_between(second_, first)
                found.add(transition)
        return sorted(found)

    def _transition_between(self, low: int, high: int) -> int:
        """First epoch second in ``(low, high]`` with the offset ``high`` has."""
        tz = self.tz

        def offset(t: int) -> object:
            return datetime.fromtimestamp(t, tz).utcoffset()

        target = offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if offset(middle) == target:
                high = middle
            else:
                low = middle
        return high

    def next_matching_day(self, ordinal: int, limit: int) -> int | None:
        """The first day ``>= ordinal`` (and ``< limit``) the expression matches.

        Skips whole months that do not match, and straight to the next listed
        day-of-month when only that field restricts the day. Memoised by the day fields:
        ten thousand schedules started together mostly share a few day rules.
        """
        key = (self.cron.day_rule, ordinal, limit)
        found = _NEXT_DAY.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            if len(_NEXT_DAY) >= 4096:
                _NEXT_DAY.clear()
            found = _NEXT_DAY[key] = self._next_matching_day(ordinal, limit)
        return found  # type: ignore[return-value]

    def _next_matching_day(self, ordinal: int, limit: int) -> int | None:
        cron = self.cron
        month_days, months, _ = cron._day_sets
        only_month_days = (
            cron.day_of_month_restricted
            and not cron.day_of_week_restricted
            and not cron.month_rules
        )
        days = cron.days
        matches_day = cron.matches_day
        while ordinal < limit:
            day = date.fromordinal(ordinal)
            month = day.month
            if month not in months:
                year = day.year + (month == 12)
                ordinal = date(year, month % 12 + 1, 1).toordinal()
                continue
            if only_month_days and day.day not in month_days:
                position = bisect.bisect_right(days, day.day)
                length = _month_length(day.year, month)
                if position < len(days) and days[position] <= length:
                    ordinal += days[position] - day.day
                else:
                    ordinal += length - day.day + 1
                continue
            if matches_day(month, day.day, ordinal % 7, day.year):
                return ordinal
            ordinal += 1
        return None

    def iter_from(self, start: int, end: int | None = None, *, scale: int = 1) -> FireCursor:
        """Fire times ``>= start`` (and ``< end`` if given), ascending, lazily, times ``scale``.

        Stops after 400 years without a fire (only an expression that can never match).
        """
        return FireCursor(self, start, end, scale)

    def between(self, start: int, end: int) -> list[int]:
        """Fire times in ``[start, end)``, ascending."""
        return list(self.iter_from(start, end))

    def between_array(self, start: int, end: int) -> Any:
        """Fire times in ``[start, end)`` as a sorted numpy ``int64`` array (for previews).

        Whole days at once: the matching days' bases plus the times of day, vectorised.
        """
        import numpy as np

        cron = self.cron
        bases: list[int] = []
        irregular: list[int] = []
        first = datetime.fromtimestamp(start, self.tz).toordinal() - 1
        last = datetime.fromtimestamp(end, self.tz).toordinal() + 1
        for ordinal in range(first, last + 1):
            day = date.fromordinal(ordinal)
            if cron.matches_day(day.month, day.day, ordinal % 7, day.year):
                simple, base, times = self.day(ordinal)
                if simple:
                    bases.append(base)
                else:
                    irregular.extend(times)
        day_seconds = np.asarray(cron.day_seconds, dtype=np.int64)
        regular = (np.asarray(bases, dtype=np.int64)[:, None] + day_seconds[None, :]).ravel()
        fires = regular
        if irregular:
            fires = np.concatenate([regular, np.asarray(irregular, dtype=np.int64)])
            fires.sort(kind="stable")
        return fires[(fires >= start) & (fires < end)]

    def count_between(self, start: int, end: int) -> int:
        """How many fire times lie in ``[start, end)``: whole days counted at once."""
        if end <= start:
            return 0
        day_seconds = self.cron.day_seconds
        ordinal = datetime.fromtimestamp(start, self.tz).toordinal() - 1
        limit = datetime.fromtimestamp(end, self.tz).toordinal() + 2
        total = 0
        while True:
            found = self.next_matching_day(ordinal, limit)
            if found is None:
                return total
            simple, base, times = self.day(found)
            if simple:
                low = bisect.bisect_left(day_seconds, start - base)
                high = bisect.bisect_left(day_seconds, end - base)
            else:
                low, high = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
            total += high - low
            ordinal = found + 1

    def next_after(self, start: int) -> int | None:
        """The first fire time ``>= start`` (``None`` if there is none in 400 years)."""
        return next(self.iter_from(start), None)


_MONTH_LENGTHS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_length(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_LENGTHS[month - 1]


_LAST_ORDINAL: list[tuple[int, ZoneInfo, int]] = [(0, _UTC, _EPOCH_ORDINAL)]


def _local_ordinal(moment: int, tz: ZoneInfo) -> int:
    """The local day (ordinal) of an epoch second; remembers the last answer, as ten
    thousand schedules started together all ask about the same second."""
    last_moment, last_tz, ordinal = _LAST_ORDINAL[0]
    if last_moment != moment or last_tz is not tz:
        ordinal = datetime.fromtimestamp(moment, tz).toordinal()
        _LAST_ORDINAL[0] = (moment, tz, ordinal)
    return ordinal


class FireCursor:
    """The fire times of one schedule from a start, one day at a time (an iterator).

    Small and flat on purpose: the timer keeps one per schedule, ten thousand of them.
    """

    __slots__ = ("_base", "_end", "_index", "_ordinal", "_scale", "_sequence", "_start", "_times")

    def __init__(self, times: FireTimes, start: int, end: int | None, scale: int = 1) -> None:
        self._times = times
        self._start = start
        self._end = end
        self._scale = scale
        self._ordinal = _local_ordinal(start, times.tz) - 1
        self._sequence: tuple[int, ...] | list[int] = ()
        self._index = 0
        self._base = 0

    def __iter__(self) -> FireCursor:
        return self

    def __next__(self) -> int:
        while True:
            sequence = self._sequence
            if self._index < len(sequence):
                fire = self._base + sequence[self._index]
                self._index += 1
                if self._end is not None and fire >= self._end:
                    self._exhaust()
                return fire * self._scale
            self._load_next_day()

    def _exhaust(self) -> None:
        self._sequence = ()
        self._index = 0
        self._ordinal = -1
        raise StopIteration

    def _load_next_day(self) -> None:
        if self._ordinal < 0:
            raise StopIteration
        times = self._times
        limit = self._ordinal + _HORIZON_DAYS
        if self._end is not None:
            limit = min(limit, self._end // 86400 + _EPOCH_ORDINAL + 2)
        ordinal = times.next_matching_day(self._ordinal, limit)
        if ordinal is None:
            self._exhaust()
        assert ordinal is not None
        simple, base, explicit = times.day(ordinal)
        if simple:
            sequence: tuple[int, ...] | list[int] = times.cron.day_seconds
        else:
            sequence, base = explicit, 0
        self._sequence = sequence
        self._base = base
        self._index = bisect.bisect_left(sequence, self._start - base)
        self._ordinal = ordinal + 1
