"""Our own cron parser: crontab(5) fields, names, aliases and an optional seconds field.

Grammar (case-insensitive)::

    expression  = alias | [second] minute hour day-of-month month day-of-week
    alias       = @yearly | @annually | @monthly | @weekly | @daily | @midnight | @hourly
    field       = item ("," item)*
    item        = ("*" | "?" | value | value "-" value) ["/" step]
    value       = number | JAN..DEC (month) | SUN..SAT (day of week)

* Six fields put **seconds first** (``"*/10 * * * * *"``: every 10 seconds).
* Day of week is 0-7, 0 and 7 both Sunday; ``?`` is a synonym of ``*`` (Quartz habit).
* ``N-N`` is the single value N (croniter reads it as ``*``); ``a/n`` means ``a-max/n``.
* crontab(5) day rule: when **both** day-of-month and day-of-week are restricted (neither
  field starts with ``*``) a day matches if either does; otherwise both must match. So
  ``0 0 */5 * 1`` fires on every fifth day *that is a Monday* (croniter: either).
* ``L``, ``W``, ``#``, ``@reboot``, years and wrap-around ranges (``FRI-MON``) are rejected
  with an :class:`~portico_rx.errors.InvalidCronError` that names the field and the fix.
* An expression that can never fire (``0 0 30 2 *``) is rejected too.
"""

from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from dataclasses import dataclass, field

from portico_rx.errors import InvalidCronError

__all__ = ["ALIASES", "CronExpression", "parse_cron"]

ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_SPECIAL = re.compile(r"\d*l|\d+w|lw|[a-z0-9]*#\d*|l-\d+")
_ITEM = re.compile(
    r"^(?:(?P<star>[*?])|(?P<lo>[a-z0-9]+)(?:-(?P<hi>[a-z0-9]+))?)(?:/(?P<step>\d+))?$"
)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DOW = _Field("day-of-week", 0, 7, _DAYS)


_DAY_RULES: dict[tuple[object, ...], int] = {}


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression: the set of values each field allows.

    Attributes:
        expression: the text as given (aliases kept).
        seconds, minutes, hours, days, months, weekdays: sorted allowed values
            (``weekdays``: 0 = Sunday … 6 = Saturday; 7 is folded into 0).
        day_of_month_restricted / day_of_week_restricted: the field does not start with
            ``*`` (crontab(5)); when both are, a day matches if either field does.
        has_seconds: the expression had six fields.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    day_of_month_restricted: bool
    day_of_week_restricted: bool
    has_seconds: bool

    def __str__(self) -> str:
        return self.expression

    @functools.cached_property
    def day_seconds(self) -> tuple[int, ...]:
        """Every matching time of day, as seconds after midnight, ascending."""
        return tuple(
            h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds
        )

    @functools.cached_property
    def day_rule(self) -> int:
        """A small number naming the day fields (days, months, weekdays, restrictions):
        expressions that differ only in their times of day share it."""
        key = (
            self.days,
            self.months,
            self.weekdays,
            self.day_of_month_restricted,
            self.day_of_week_restricted,
        )
        return _DAY_RULES.setdefault(key, len(_DAY_RULES))

    @functools.cached_property
    def _day_sets(self) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        return frozenset(self.days), frozenset(self.months), frozenset(self.weekdays)

    def matches_day(self, month: int, day: int, weekday: int) -> bool:
        """Whether a calendar day matches (``weekday``: 0 = Sunday), by the crontab(5) rule."""
        days, months, weekdays = self._day_sets
        if month not in months:
            return False
        in_dom = day in days
        in_dow = weekday in weekdays
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_dom or in_dow
        return in_dom and in_dow


def _fail(expression: str, message: str) -> InvalidCronError:
    return InvalidCronError(f"invalid cron expression {expression!r}: {message}")


def _value(expression: str, spec: _Field, text: str) -> int:
    if text.isdigit():
        number = int(text)
    elif text in spec.names:
        number = spec.names[text]
    else:
        hint = f"use a number {spec.low}-{spec.high}" + (
            " or a name like " + "/".join(list(spec.names)[:3]).upper() if spec.names else ""
        )
        raise _fail(expression, f"{spec.name} field has {text!r}, which is not a value: {hint}")
    if not spec.low <= number <= spec.high:
        raise _fail(
            expression,
            f"{spec.name} value {number} is out of range: use {spec.low}-{spec.high}",
        )
    return number


def _parse_field(expression: str, spec: _Field, text: str) -> tuple[set[int], bool]:
    """Values allowed by one field, and whether the field starts with ``*``/``?``."""
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None or _SPECIAL.fullmatch(item):
            fix = (
                "L, W and # are not supported; list the days instead (e.g. 28-31 or 1-7)"
                if _SPECIAL.fullmatch(item)
                else "use *, a value, a range a-b, a step */n or a-b/n, or a list"
            )
            raise _fail(expression, f"{spec.name} field {text!r} has item {item!r}: {fix}")
        step = int(match["step"]) if match["step"] is not None else 1
        if step < 1:
            raise _fail(expression, f"{spec.name} field {text!r}: a step must be 1 or more")
        if match["star"]:
            low, high = spec.low, spec.high
        else:
            low = _value(expression, spec, match["lo"])
            if match["hi"] is not None:
                high = _value(expression, spec, match["hi"])
            elif match["step"] is not None:
                high = spec.high
            else:
                high = low
            if high < low:
                raise _fail(
                    expression,
                    f"{spec.name} range {item!r} runs backwards: write it as two ranges "
                    f"({low}-{spec.high},{spec.low}-{high})",
                )
        values.update(range(low, high + 1, step))
    return values, text.startswith(("*", "?"))


_FOREIGN_SPACE = re.compile(r"[^\S \t]")
_CONTROL_NAMES = {
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR",
    "\x1e": "RECORD SEPARATOR",
    "\x1f": "UNIT SEPARATOR",
    "\x85": "NEXT LINE (NEL)",
}


def _check_separators(expression: str) -> None:
    """Fields are separated by ASCII spaces and tabs only: a no-break space (U+00A0), an
    em space (U+2003), an ideographic space (U+3000), NEL (U+0085) or a line break pasted
    from a document is an error naming the character, never a silent separator."""
    ends = " \t\r\n"  # a trailing newline from a config file is harmless
    lead = len(expression) - len(expression.lstrip(ends))
    found = _FOREIGN_SPACE.search(expression.strip(ends))
    if found is not None:
        char = found.group()
        name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character")
        raise _fail(
            expression,
            f"character {lead + found.start() + 1} is U+{ord(char):04X} ({name}), which does not "
            "separate cron fields: separate the fields with plain spaces",
        )


@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronExpression:
    """Parse a cron expression (5 fields, 6 with seconds first, or an ``@alias``).

    Returns:
        The parsed :class:`CronExpression` (cached: equal texts share one object).

    Raises:
        InvalidCronError: wrong field count, a value out of range, a word that is not cron,
            an unsupported feature (``L``, ``W``, ``#``) or an expression that never fires;
            the message names the expression and the field.
    """
    if not isinstance(expression, str):
        raise InvalidCronError(
            f"invalid cron expression {expression!r}: give a string such as '0 9 * * *'"
        )
    _check_separators(expression)
    text = " ".join(expression.lower().split())
    if text.startswith("@"):
        if text not in ALIASES:
            raise _fail(expression, f"unknown alias {text!r}: use one of {', '.join(ALIASES)}")
        text = ALIASES[text]
    parts = text.split(" ") if text else []
    if len(parts) == 5:
        parts = ["0", *parts]
        has_seconds = False
    elif len(parts) == 6:
        has_seconds = True
    else:
        raise _fail(
            expression,
            f"it has {len(parts)} fields: use 5 (minute hour day-of-month month day-of-week) "
            "or 6 (second first), e.g. '0 9 * * *'",
        )
    seconds, _ = _parse_field(expression, _SECOND, parts[0])
    minutes, _ = _parse_field(expression, _MINUTE, parts[1])
    hours, _ = _parse_field(expression, _HOUR, parts[2])
    days, dom_star = _parse_field(expression, _DOM, parts[3])
    months, _ = _parse_field(expression, _MONTH, parts[4])
    weekdays, dow_star = _parse_field(expression, _DOW, parts[5])
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    dom_restricted, dow_restricted = not dom_star, not dow_star
    if not (dom_restricted and dow_restricted):
        longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in months}
        if not any(d <= longest[m] for m in months for d in days):
            raise _fail(
                expression,
                "it never fires: no month in the month field has such a day-of-month",
            )
    return CronExpression(
        expression=expression,
        seconds=tuple(sorted(seconds)),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(days)),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(weekdays)),
        day_of_month_restricted=dom_restricted,
        day_of_week_restricted=dow_restricted,
        has_seconds=has_seconds,
    )
