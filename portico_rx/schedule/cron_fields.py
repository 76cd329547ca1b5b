"""Parsing one cron field: values, ranges (wrap-around too), steps, lists, hashed ``H``
and the month-relative day items ``L``, ``L-n``, ``nW``, ``LW``, ``n#k`` and ``nL``.

Used by :func:`portico_rx.schedule.cron_expression.parse_cron`; errors name the whole
expression, the field and the fix.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass, field

from portico_rx.errors import InvalidCronError

__all__ = [
    "DOM",
    "DOW",
    "HOUR",
    "MINUTE",
    "MONTH",
    "SECOND",
    "FieldParser",
    "FieldSpec",
    "MonthRules",
    "RuleItems",
]

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

_ITEM = re.compile(
    r"^(?:(?P<star>[*?])|(?P<lo>[a-z0-9]+)(?:-(?P<hi>[a-z0-9]+))?)(?:/(?P<step>\d+))?$"
)
_HASHED = re.compile(r"^h(?:\((?P<lo>\d+)-(?P<hi>\d+)\))?(?:/(?P<step>\d+))?$")
_LAST_DAY = re.compile(r"^l(?:-(?P<offset>\d+))?$")
_NEAREST = re.compile(r"^(?P<day>\d+)w$")
_NTH = re.compile(r"^(?P<day>[a-z0-9]+)#(?P<n>\d+)$")
_LAST_OF = re.compile(r"^(?P<day>[a-z0-9]+)l$")
_LOOKS_SPECIAL = re.compile(r"(\d*|[a-z]{3})l(-\d+)?|\d+w|lw|[a-z0-9]*#\d*|h.*")
_SPECIAL_HINT = (
    "L, W and # belong in the day-of-month (L, L-3, 15W, LW) or day-of-week (5#2, 5L) "
    "fields, H alone or as H/n, H(a-b), H(a-b)/n"
)


@dataclass(frozen=True)
class FieldSpec:
    """One cron field: its name, range, names and the range ``H`` draws from."""

    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)
    hash_low: int | None = None
    hash_high: int | None = None
    cycle: int | None = None  # the modulus of a wrap-around range (day of week: 7)


SECOND = FieldSpec("second", 0, 59)
MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DOM = FieldSpec("day-of-month", 1, 31, hash_high=28)  # H: 1-28, in every month (Jenkins)
MONTH = FieldSpec("month", 1, 12, _MONTHS)
DOW = FieldSpec("day-of-week", 0, 7, _DAYS, hash_high=6, cycle=7)


@dataclass(frozen=True)
class MonthRules:
    """Day items that depend on the month: evaluated per (year, month).

    Attributes:
        last_offsets: ``L`` (0) and ``L-n`` (n): the last day of the month minus n.
        nearest_weekdays: ``nW``: the weekday (Mon-Fri) nearest day n, in the same month.
        last_weekday: ``LW``: the last weekday (Mon-Fri) of the month.
        nth_weekdays: ``d#k``: the k-th day-of-week d of the month, as ``(d, k)``.
        last_weekdays: ``dL``: the last day-of-week d of the month.
    """

    last_offsets: tuple[int, ...] = ()
    nearest_weekdays: tuple[int, ...] = ()
    last_weekday: bool = False
    nth_weekdays: tuple[tuple[int, int], ...] = ()
    last_weekdays: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.last_offsets
            or self.nearest_weekdays
            or self.last_weekday
            or self.nth_weekdays
            or self.last_weekdays
        )

    def day_of_month_days(self, year: int, month: int) -> frozenset[int]:
        """Days of the month matched by the day-of-month items (``L``, ``L-n``, ``nW``,
        ``LW``)."""
        first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
        found: set[int] = {length - n for n in self.last_offsets if length - n >= 1}

        def is_weekday(day: int) -> bool:
            return (first_weekday + day - 1) % 7 < 5

        for day in self.nearest_weekdays:
            if day > length:
                continue
            if is_weekday(day):
                found.add(day)
            elif (first_weekday + day - 1) % 7 == 5:  # Saturday: Friday, or Monday the 3rd
                found.add(day - 1 if day > 1 else day + 2)
            else:  # Sunday: Monday, or Friday when it is the last day
                found.add(day + 1 if day < length else day - 2)
        if self.last_weekday:
            day = length
            while not is_weekday(day):
                day -= 1
            found.add(day)
        return frozenset(found)

    def day_of_week_days(self, year: int, month: int) -> frozenset[int]:
        """Days of the month matched by the day-of-week items (``d#k``, ``dL``)."""
        first_weekday, length = calendar.monthrange(year, month)
        first_sunday_based = (first_weekday + 1) % 7  # weekday of the 1st, 0 = Sunday
        found: set[int] = set()
        for weekday, n in self.nth_weekdays:
            day = 1 + (weekday - first_sunday_based) % 7 + 7 * (n - 1)
            if day <= length:
                found.add(day)
        for weekday in self.last_weekdays:
            last_weekday = (first_sunday_based + length - 1) % 7
            found.add(length - (last_weekday - weekday) % 7)
        return frozenset(found)


@dataclass
class RuleItems:
    """The month-relative items found while parsing (collected into a MonthRules)."""

    last_offsets: set[int] = field(default_factory=set)
    nearest_weekdays: set[int] = field(default_factory=set)
    last_weekday: bool = False
    nth_weekdays: set[tuple[int, int]] = field(default_factory=set)
    last_weekdays: set[int] = field(default_factory=set)

    def rules(self) -> MonthRules:
        return MonthRules(
            last_offsets=tuple(sorted(self.last_offsets)),
            nearest_weekdays=tuple(sorted(self.nearest_weekdays)),
            last_weekday=self.last_weekday,
            nth_weekdays=tuple(sorted(self.nth_weekdays)),
            last_weekdays=tuple(sorted(self.last_weekdays)),
        )


def fail(expression: str, message: str) -> InvalidCronError:
    return InvalidCronError(f"invalid cron expression {expression!r}: {message}")


def _value(expression: str, spec: FieldSpec, text: str) -> int:
    if text.isdigit():
        number = int(text)
    elif text in spec.names:
        number = spec.names[text]
    else:
        hint = f"use a number {spec.low}-{spec.high}" + (
            " or a name like " + "/".join(list(spec.names)[:3]).upper() if spec.names else ""
        )
        if _LOOKS_SPECIAL.fullmatch(text):
            hint = _SPECIAL_HINT
        raise fail(expression, f"{spec.name} field has {text!r}, which is not a value: {hint}")
    if not spec.low <= number <= spec.high:
        raise fail(
            expression,
            f"{spec.name} value {number} is out of range: use {spec.low}-{spec.high}",
        )
    return number


def _hash(key: str, spec: FieldSpec) -> int:
    digest = hashlib.sha256(f"{key}\0{spec.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _stepped(low: int, high: int, step: int, spec: FieldSpec) -> range | list[int]:
    """``low`` to ``high`` by ``step``; a range that runs backwards wraps around the field
    (``FRI-MON``, ``NOV-FEB``, ``22-2``), the step carrying across the wrap."""
    if low <= high:
        return range(low, high + 1, step)
    size = spec.cycle or spec.high - spec.low + 1
    base = spec.low if spec.cycle is None else 0
    low_position, high_position = low - base, high - base + size
    return [base + (p % size) for p in range(low_position, high_position + 1, step)]


class FieldParser:
    """Parses the fields of one expression (knows the expression and the ``H`` key)."""

    def __init__(self, expression: str, hash_key: str | None) -> None:
        self.expression = expression
        self.hash_key = hash_key

    def parse(self, spec: FieldSpec, text: str, rules: RuleItems) -> set[int]:
        """Values allowed by one field; month-relative items are appended to ``rules``."""
        values: set[int] = set()
        for item in text.split(","):
            if self._special(spec, text, item, rules):
                continue
            hashed = _HASHED.match(item)
            if hashed is not None:
                values.update(self._hashed(spec, text, item, hashed))
                continue
            values.update(self._plain(spec, text, item))
        return values

    def _step(self, spec: FieldSpec, text: str, step_text: str | None) -> int:
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise fail(self.expression, f"{spec.name} field {text!r}: a step must be 1 or more")
        return step

    def _plain(self, spec: FieldSpec, text: str, item: str) -> range | list[int]:
        match = _ITEM.match(item)
        if match is None:
            fix = (
                _SPECIAL_HINT
                if _LOOKS_SPECIAL.fullmatch(item)
                else "use *, a value, a range a-b, a step */n or a-b/n, or a list"
            )
            raise fail(self.expression, f"{spec.name} field {text!r} has item {item!r}: {fix}")
        step = self._step(spec, text, match["step"])
        if match["star"]:
            return range(spec.low, spec.high + 1, step)
        low = _value(self.expression, spec, match["lo"])
        if match["hi"] is not None:
            high = _value(self.expression, spec, match["hi"])
        elif match["step"] is not None:
            high = spec.high
        else:
            high = low
        return _stepped(low, high, step, spec)

    def _hashed(self, spec: FieldSpec, text: str, item: str, match: re.Match[str]) -> range:
        """Jenkins' ``H``: one value drawn from the schedule's name, stable everywhere."""
        if self.hash_key is None:
            raise fail(
                self.expression,
                f"{spec.name} field {text!r} uses H, which is drawn from the schedule's "
                "name: give the schedule a name (ScheduleConfig does: name or job_type), "
                "or hash_key='...' to parse_cron / sources.cron",
            )
        low = spec.low if spec.hash_low is None else spec.hash_low
        high = spec.high if spec.hash_high is None else spec.hash_high
        if match["lo"] is not None:
            low = _value(self.expression, spec, match["lo"])
            high = _value(self.expression, spec, match["hi"])
            if high < low:
                raise fail(
                    self.expression,
                    f"{spec.name} field {text!r}: H({low}-{high}) runs backwards; "
                    f"write H({high}-{low})",
                )
        drawn = _hash(self.hash_key, spec)
        if match["step"] is None:
            value = low + drawn % (high - low + 1)
            return range(value, value + 1)
        step = self._step(spec, text, match["step"])
        return range(low + drawn % min(step, high - low + 1), high + 1, step)

    def _special(self, spec: FieldSpec, text: str, item: str, rules: RuleItems) -> bool:
        if spec is DOM:
            return self._day_of_month_item(text, item, rules)
        if spec is DOW:
            return self._day_of_week_item(text, item, rules)
        return False

    def _day_of_month_item(self, text: str, item: str, rules: RuleItems) -> bool:
        if item == "lw":
            rules.last_weekday = True
            return True
        last = _LAST_DAY.match(item)
        if last is not None:
            offset = int(last["offset"] or 0)
            if offset > 30:
                raise fail(self.expression, f"day-of-month {item!r}: use L-0 to L-30")
            rules.last_offsets.add(offset)
            return True
        nearest = _NEAREST.match(item)
        if nearest is not None:
            rules.nearest_weekdays.add(_value(self.expression, DOM, nearest["day"]))
            return True
        return False

    def _day_of_week_item(self, text: str, item: str, rules: RuleItems) -> bool:
        if item == "l":
            raise fail(
                self.expression,
                f"day-of-week field {text!r}: L alone is ambiguous (Quartz reads Saturday); "
                "write 6 or SAT, or 5L for the month's last Friday",
            )
        nth = _NTH.match(item)
        if nth is not None:
            weekday = _value(self.expression, DOW, nth["day"]) % 7
            n = int(nth["n"])
            if not 1 <= n <= 5:
                raise fail(
                    self.expression,
                    f"day-of-week {item!r}: a month has a 1st to 5th of each day: use #1-#5",
                )
            rules.nth_weekdays.add((weekday, n))
            return True
        last = _LAST_OF.match(item)
        if last is not None and (last["day"].isdigit() or last["day"] in DOW.names):
            rules.last_weekdays.add(_value(self.expression, DOW, last["day"]) % 7)
            return True
        return False
