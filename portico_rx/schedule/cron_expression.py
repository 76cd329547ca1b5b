"""Our own cron parser: crontab(5) fields, names, aliases, Quartz/croniter day items,
Jenkins' hashed values and an optional seconds field.

Grammar (case-insensitive)::

    expression  = alias | [second] minute hour day-of-month month day-of-week [second]
    alias       = @yearly | @annually | @monthly | @weekly | @daily | @midnight | @hourly
    field       = item ("," item)*
    item        = ("*" | "?" | value | value "-" value) ["/" step]
                | "H" ["(" value "-" value ")"] ["/" step]
    value       = number | JAN..DEC (month) | SUN..SAT (day of week)
    day-of-month item also: L | L-n | nW | LW
    day-of-week item also:  d#k | dL

* **Six fields** are read seconds first or seconds last only when that cannot be
  mistaken: ``seconds="first"`` (Quartz, Spring) or ``seconds="last"`` (croniter), or an
  expression only one reading accepts (``0 30 9 * * MON``), or one both read alike
  (``* * * * * *``). Otherwise (``* * * * * */15``: croniter every 15 s; seconds first
  every second on Sundays) it is an error naming both readings.
* Day of week is 0-7, 0 and 7 both Sunday; ``?`` is a synonym of ``*`` (Quartz habit).
* ``N-N`` is the single value N (croniter reads it as ``*``); ``a/n`` means ``a-max/n``.
* A range that runs backwards wraps around: ``FRI-MON`` is Fri, Sat, Sun, Mon;
  ``NOV-FEB`` is Nov-Feb; ``22-2`` (hours) is 22, 23, 0, 1, 2; a step carries across.
* ``L``: the month's last day; ``L-3``: three days before it; ``15W``: the weekday
  (Mon-Fri) nearest the 15th, in the same month (Saturday -> Friday, Sunday -> Monday;
  ``1W`` on a Saturday is Monday the 3rd); ``LW``: the month's last weekday;
  ``5#2``/``FRI#2``: the second Friday; ``5L``/``FRIL``: the last Friday (Quartz; croniter
  writes ``L5``). ``L`` alone in day-of-week is rejected (Quartz reads Saturday).
* ``H`` (Jenkins): a value drawn from the schedule's name, the same on every replica and
  restart, so many schedules spread over the hour: ``H`` one value of the field (1-28
  in day-of-month), ``H/15`` every 15 from an offset below 15, ``H(0-29)`` one value in
  0-29, ``H(0-29)/10`` every 10 in 0-29 from a drawn offset.
* crontab(5) day rule: when **both** day-of-month and day-of-week are restricted (neither
  field starts with ``*``) a day matches if either does; otherwise both must match. So
  ``0 0 */5 * 1`` fires on every fifth day *that is a Monday* (croniter: either).
* ``@reboot`` and years are rejected with an :class:`~portico_rx.errors.InvalidCronError`
  that names the field and the fix; so is an expression that can never fire
  (``0 0 30 2 *``, ``0 0 L-30 2 *``).
"""

from __future__ import annotations

import calendar
import functools
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Literal

from portico_rx.errors import InvalidCronError
from portico_rx.schedule.cron_fields import (
    DOM,
    DOW,
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    FieldParser,
    MonthRules,
    RuleItems,
    fail,
)

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

_DAY_RULES: dict[tuple[object, ...], int] = {}
_NO_RULES = MonthRules()


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
        month_rules: the month-relative day items (``L``, ``15W``, ``5#2``, ``5L``, …).
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
    month_rules: MonthRules = _NO_RULES

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
            self.month_rules,
        )
        return _DAY_RULES.setdefault(key, len(_DAY_RULES))

    @functools.cached_property
    def _day_sets(self) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        return frozenset(self.days), frozenset(self.months), frozenset(self.weekdays)

    def matches_day(self, month: int, day: int, weekday: int, year: int = 2001) -> bool:
        """Whether a calendar day matches (``weekday``: 0 = Sunday), by the crontab(5) rule.

        ``year`` matters only to month-relative items (``L``, ``W``, ``#``): give it."""
        days, months, weekdays = self._day_sets
        if month not in months:
            return False
        in_dom = day in days
        in_dow = weekday in weekdays
        if self.month_rules:
            in_dom = in_dom or day in _rule_days(self.month_rules, year, month, True)
            in_dow = in_dow or day in _rule_days(self.month_rules, year, month, False)
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_dom or in_dow
        return in_dom and in_dow


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
        raise fail(
            expression,
            f"character {lead + found.start() + 1} is U+{ord(char):04X} ({name}), which does not "
            "separate cron fields: separate the fields with plain spaces",
        )


@functools.lru_cache(maxsize=8192)
def _rule_days(rules: MonthRules, year: int, month: int, month_side: bool) -> frozenset[int]:
    if month_side:
        return rules.day_of_month_days(year, month)
    return rules.day_of_week_days(year, month)


_FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")


def _reading(parts: list[str], order: str) -> str:
    named = parts if order == "first" else [parts[5], *parts[:5]]
    return ", ".join(f"{name} {text!r}" for name, text in zip(_FIELD_NAMES, named, strict=True))


def _same_schedule(a: CronExpression, b: CronExpression) -> bool:
    ignored = {"expression", "has_seconds"}
    return all(getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.name not in ignored)


SecondsPosition = Literal["first", "last"]


def parse_cron(
    expression: str,
    *,
    seconds: SecondsPosition | None = None,
    hash_key: str | None = None,
) -> CronExpression:
    """Parse a cron expression (5 fields, 6 with a seconds field, or an ``@alias``).

    Args:
        expression: the expression (see the module docs for the dialect).
        seconds: where a six-field expression has its seconds: ``"first"`` (Quartz,
            Spring), ``"last"`` (croniter); default: whichever reading is unambiguous.
        hash_key: what ``H`` values are drawn from (a schedule's name); required by ``H``.

    Returns:
        The parsed :class:`CronExpression` (cached: equal inputs share one object).

    Raises:
        InvalidCronError: wrong field count, a value out of range, a word that is not cron,
            an ambiguous six-field expression, ``H`` without a ``hash_key``, or an
            expression that never fires; the message names the expression and the field.
    """
    if not isinstance(expression, str):
        raise InvalidCronError(
            f"invalid cron expression {expression!r}: give a string such as '0 9 * * *'"
        )
    if seconds not in (None, "first", "last"):
        raise InvalidCronError(
            f"seconds={seconds!r}: use 'first' (Quartz, Spring), 'last' (croniter) or None"
        )
    if hash_key is not None and "h" not in expression.lower():
        hash_key = None  # no H: every schedule with this text shares one parse
    return _parse(expression, seconds, hash_key)


@functools.lru_cache(maxsize=4096)
def _parse(
    expression: str, seconds: SecondsPosition | None, hash_key: str | None
) -> CronExpression:
    _check_separators(expression)
    text = " ".join(expression.lower().split())
    if text.startswith("@"):
        if text not in ALIASES:
            raise fail(expression, f"unknown alias {text!r}: use one of {', '.join(ALIASES)}")
        text = ALIASES[text]
    parts = text.split(" ") if text else []
    parser = FieldParser(expression, hash_key)
    if len(parts) == 5:
        return _build(parser, ["0", *parts], has_seconds=False)
    if len(parts) != 6:
        raise fail(
            expression,
            f"it has {len(parts)} fields: use 5 (minute hour day-of-month month day-of-week) "
            "or 6 (with seconds), e.g. '0 9 * * *'",
        )
    if seconds is not None:
        ordered = parts if seconds == "first" else [parts[5], *parts[:5]]
        return _build(parser, ordered, has_seconds=True)
    return _six_fields(parser, parts)


def _six_fields(parser: FieldParser, parts: list[str]) -> CronExpression:
    expression = parser.expression
    readings: dict[str, CronExpression | InvalidCronError] = {}
    for order, ordered in (("first", parts), ("last", [parts[5], *parts[:5]])):
        try:
            readings[order] = _build(parser, ordered, has_seconds=True)
        except InvalidCronError as exc:
            readings[order] = exc
    first, last = readings["first"], readings["last"]
    if isinstance(first, CronExpression) and isinstance(last, CronExpression):
        if _same_schedule(first, last):
            return first
        raise fail(
            expression,
            "six fields can be read two ways: seconds first (Quartz, Spring): "
            f"{_reading(parts, 'first')}; or seconds last (croniter): "
            f"{_reading(parts, 'last')}. Say which with seconds='first' or seconds='last'",
        )
    if isinstance(first, CronExpression):
        return first
    if isinstance(last, CronExpression):
        return last
    raise first


def _build(parser: FieldParser, parts: list[str], *, has_seconds: bool) -> CronExpression:
    """The expression from six fields in seconds-first order."""
    expression = parser.expression
    rules = RuleItems()
    seconds = parser.parse(SECOND, parts[0], rules)
    minutes = parser.parse(MINUTE, parts[1], rules)
    hours = parser.parse(HOUR, parts[2], rules)
    days = parser.parse(DOM, parts[3], rules)
    months = parser.parse(MONTH, parts[4], rules)
    weekdays = parser.parse(DOW, parts[5], rules)
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    month_rules = rules.rules()
    cron = CronExpression(
        expression=expression,
        seconds=tuple(sorted(seconds)),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(days)),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(weekdays)),
        day_of_month_restricted=not parts[3].startswith(("*", "?")),
        day_of_week_restricted=not parts[5].startswith(("*", "?")),
        has_seconds=has_seconds,
        month_rules=month_rules or _NO_RULES,
    )
    if not _can_fire(cron):
        raise fail(
            expression,
            "it never fires: no month in the month field has such a day-of-month",
        )
    return cron


def _can_fire(cron: CronExpression) -> bool:
    both = cron.day_of_month_restricted and cron.day_of_week_restricted
    rules = cron.month_rules
    if both and (cron.weekdays or rules.nth_weekdays or rules.last_weekdays):
        return True  # every month has each weekday, and a first and last of each
    if not cron.month_rules:
        if cron.day_of_month_restricted and cron.day_of_week_restricted:
            return bool(cron.days)
        longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in cron.months}
        return any(d <= longest[m] for m in cron.months for d in cron.days)
    # 28 years hold every (leap year, weekday of the 1st) pair of each month
    return any(
        cron.matches_day(month, day, (calendar.weekday(year, month, day) + 1) % 7, year)
        for year in range(2000, 2028)
        for month in cron.months
        for day in range(1, calendar.monthrange(year, month)[1] + 1)
    )
