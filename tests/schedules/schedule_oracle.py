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

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from portico_rx.schedule.cron_expression import CronExpression
from portico_rx.schedule.dst import DstPolicy


def _month(day: date) -> list[date]:
    first = day.replace(day=1)
    days = [first]
    while (days[-1] + timedelta(days=1)).month == first.month:
        days.append(days[-1] + timedelta(days=1))
    return days


def month_rule_matches(fields: CronExpression, day: date) -> tuple[bool, bool]:
    """Whether the month-relative items match ``day``: (day-of-month side, day-of-week
    side). Brute force over the month's days, by the definitions, not the engine's code."""
    rules = fields.month_rules
    month = _month(day)
    weekdays_in_month = [d for d in month if d.isoweekday() <= 5]
    dom = any(day == month[-1] - timedelta(days=n) for n in rules.last_offsets)
    for target in rules.nearest_weekdays:
        if target <= len(month):
            nearest = min(weekdays_in_month, key=lambda d: abs(d.day - target))
            dom = dom or day == nearest
    if rules.last_weekday:
        dom = dom or day == weekdays_in_month[-1]
    sunday_based = day.isoweekday() % 7
    same = [d for d in month if d.isoweekday() % 7 == sunday_based]
    dow = any(
        sunday_based == weekday and same.index(day) + 1 == n for weekday, n in rules.nth_weekdays
    )
    dow = dow or any(sunday_based == w and day == same[-1] for w in rules.last_weekdays)
    return dom, dow


def wall_matches(fields: CronExpression, wall: datetime) -> bool:
    if wall.month not in fields.months:
        return False
    if wall.hour not in fields.hours or wall.minute not in fields.minutes:
        return False
    if wall.second not in fields.seconds:
        return False
    return day_matches(fields, wall.date())


@lru_cache(maxsize=4096)
def day_matches(fields: CronExpression, day: date) -> bool:
    """The calendar-day part of the match (crontab(5) rule, month items included)."""
    if day.month not in fields.months:
        return False
    in_month_days = day.day in fields.days
    in_week_days = (day.isoweekday() % 7) in fields.weekdays
    if fields.month_rules:
        by_month, by_week = month_rule_matches(fields, day)
        in_month_days = in_month_days or by_month
        in_week_days = in_week_days or by_week
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
