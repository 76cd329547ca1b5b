"""Checking and converting the times users give schedules: start, end, jitter, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from portico_rx.errors import InvalidScheduleError
from portico_rx.schedule.timer import to_micros

__all__ = ["check_spin", "check_window", "seconds_to_micros", "to_instant"]


def to_instant(value: datetime, tz: ZoneInfo, argument: str) -> datetime:
    """A tz-aware datetime; a naive one is read as local time in ``tz``.

    A naive time that happens twice (fall back) is its first occurrence unless it has
    ``fold=1``. A naive time that does not exist (inside a spring-forward gap) is an
    error, as in APScheduler: reading it would silently move a window bound by the gap
    and skip or add a run.

    Raises:
        InvalidScheduleError: ``value`` is not a datetime, or is naive and does not exist
            in ``tz``.
    """
    if not isinstance(value, datetime):
        raise InvalidScheduleError(
            f"{argument}={value!r}: give a datetime, e.g. datetime(2025, 1, 1, tzinfo=UTC)"
        )
    if value.tzinfo is None:
        moment = value.replace(tzinfo=tz)
        if moment.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
            raise InvalidScheduleError(_gap_message(value, tz, argument))
        return moment
    return value


def _gap_message(value: datetime, tz: ZoneInfo, argument: str) -> str:
    low = int(value.replace(tzinfo=tz, fold=1).timestamp())  # read with the later offset
    high = int(value.replace(tzinfo=tz, fold=0).timestamp())
    offset = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:  # the first second with the new offset: the gap's end
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    gap_end = datetime.fromtimestamp(high, tz)
    gap_start = datetime.fromtimestamp(low, tz) + timedelta(seconds=1)
    return (
        f"{argument}={value.isoformat()} does not exist in {tz.key}: on "
        f"{value.date().isoformat()} the clocks jump from {gap_start.strftime('%H:%M')} to "
        f"{gap_end.strftime('%H:%M')} (daylight saving). Give a local time outside the gap "
        f"(e.g. {gap_end.replace(tzinfo=None).isoformat()}) or a tz-aware datetime"
    )


def seconds_to_micros(value: float | timedelta | None, argument: str, *, positive: bool) -> int:
    """A duration (seconds or timedelta) as microseconds; ``None`` is 0.

    Raises:
        InvalidScheduleError: negative (or, with ``positive``, zero) or not a number.
    """
    if value is None:
        return 0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidScheduleError(f"{argument}={value!r}: give seconds or a timedelta")
    micros = round(seconds * 1_000_000)
    if micros < 0 or (positive and micros == 0) or seconds != seconds:
        need = "a positive duration" if positive else "zero or a positive duration"
        raise InvalidScheduleError(f"{argument}={value!r}: use {need} (seconds or a timedelta)")
    return micros


def check_window(
    start: datetime | None, end: datetime | None, tz: ZoneInfo
) -> tuple[int | None, int | None]:
    """``start``/``end`` as epoch microseconds.

    Raises:
        InvalidScheduleError: not datetimes, or ``end`` is not after ``start``.
    """
    start_us = to_micros(to_instant(start, tz, "start")) if start is not None else None
    end_us = to_micros(to_instant(end, tz, "end")) if end is not None else None
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidScheduleError(
            f"end={end!r} is not after start={start!r}: give an end later than the start"
        )
    return start_us, end_us


def check_spin(value: object) -> float:
    """The timer's spin (seconds it wakes early to fire on the exact microsecond).

    Raises:
        InvalidScheduleError: not a number, negative, NaN, or more than a second.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidScheduleError(f"timer_spin={value!r}: give seconds, e.g. 0.002 (0: off)")
    if not 0 <= value <= 1:
        raise InvalidScheduleError(
            f"timer_spin={value!r}: use 0 (off) to 1 second; the default 0.002 covers the "
            "1-2 ms an asyncio timer wakes late"
        )
    return float(value)
