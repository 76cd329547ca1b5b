"""An independent oracle for cron fire times: brute force, minute by minute (second by
second for six fields), in the zone, under the DST policy. It reads only the parsed field
sets; it does not call croniter, FireTimes or any other fast path.

Policy as documented in docs/schedules.md:
* a local time matched by the fields fires at the UTC instant that shows it, once
  (the first occurrence) unless ``ambiguous="both"``;
* local times skipped by a spring-forward gap fire once, at the first instant after the
  gap, if ``nonexistent="shift"`` (merged with a match of that instant itself).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from portico_rx.schedule.cron_expression import CronExpression
from portico_rx.schedule.dst import DstPolicy


def wall_matches(fields: CronExpression, wall: datetime) -> bool:
    if wall.month not in fields.months:
        return False
    if wall.hour not in fields.hours or wall.minute not in fields.minutes:
        return False
    if wall.second not in fields.seconds:
        return False
    in_month_days = wall.day in fields.days
    in_week_days = (wall.isoweekday() % 7) in fields.weekdays
    if fields.day_of_month_restricted and fields.day_of_week_restricted:
        return in_month_days or in_week_days
    return in_month_days and in_week_days


def oracle_fires(
    fields: CronExpression,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    policy: DstPolicy | None = None,
) -> list[datetime]:
    """Fire instants (UTC) in ``[start, end)``."""
    policy = policy or DstPolicy()
    step = timedelta(seconds=1 if fields.has_seconds else 60)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = -(-(start - epoch) // step)
    instant = epoch + steps * step
    previous_wall = (instant - step).astimezone(tz).replace(tzinfo=None)
    fires: list[datetime] = []
    while instant < end:
        local = instant.astimezone(tz)
        wall = local.replace(tzinfo=None)
        fire = wall_matches(fields, wall) and (policy.ambiguous == "both" or local.fold == 0)
        if not fire and policy.nonexistent == "shift" and wall > previous_wall + step:
            skipped = previous_wall + step
            while skipped < wall:
                if wall_matches(fields, skipped):
                    fire = True
                    break
                skipped += step
        if fire:
            fires.append(instant)
        previous_wall = wall
        instant += step
    return fires


@lru_cache(maxsize=512)
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants (to the second) at which the zone's offset changes in ``year``."""
    tz = ZoneInfo(zone)
    found = []
    day = datetime(year, 1, 1, 12, tzinfo=UTC)
    previous = day.astimezone(tz).utcoffset()
    for _ in range(366):
        low, day = day, day + timedelta(days=1)
        offset = day.astimezone(tz).utcoffset()
        if offset != previous:
            high = day
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == offset:
                    high = middle
                else:
                    low = middle
            found.append(high)
        previous = offset
    return tuple(found)
