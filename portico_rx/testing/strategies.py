"""Hypothesis strategies for property-testing triggers and pipelines.

>>> from hypothesis import given
>>> from portico_rx.testing.strategies import cron_expressions, event_streams
>>> @given(cron_expressions(), event_streams(max_gap=60))
... def test_my_trigger(expression, events): ...

Needs ``hypothesis`` (``pip install 'portico_rx[testing]'``).
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from portico_rx.errors import ConfigurationError, require
from portico_rx.models import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    Job,
    JobRequest,
    JobStatus,
    RunState,
    TriggerHealth,
)

require("hypothesis", "testing")

from hypothesis import strategies as st  # noqa: E402

__all__ = [
    "CRON_ALIASES",
    "DST_ZONES",
    "cron_expressions",
    "event_streams",
    "job_requests",
    "job_types",
    "jobs",
    "payloads",
    "queue_names",
    "timezones",
    "trigger_healths",
]

CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
"""The crontab(5) aliases that name a time (``@reboot`` does not)."""

DST_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Europe/London",
    "Asia/Kolkata",
    "UTC",
)
"""Zones that make schedules work hard: DST both ways, a 30-minute DST, odd offsets."""

_NOT_CIVIL = ("right/", "posix/", "posixrules", "localtime", "Factory")
_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _field(low: int, high: int, names: tuple[str, ...] | None = None) -> st.SearchStrategy[str]:
    """One crontab field over ``low..high``: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` or a
    comma list of those (numbers or, where the field has them, names)."""

    def value(number: int, use_name: bool) -> str:
        if names is not None and use_name:
            return names[(number - low) % len(names)]
        return str(number)

    numbers = st.integers(low, high)
    single = st.builds(value, numbers, st.booleans())

    @st.composite
    def span(draw: st.DrawFn) -> str:
        start = draw(st.integers(low, high))
        end = draw(st.integers(start, high))
        use_name = draw(st.booleans())
        text = f"{value(start, use_name)}-{value(end, use_name)}"
        if draw(st.booleans()):
            text += f"/{draw(st.integers(1, max(1, high - low)))}"
        return text

    step = st.integers(1, max(1, high - low)).map(lambda n: f"*/{n}")
    part = st.one_of(single, span(), step)
    return st.one_of(
        st.just("*"),
        part,
        st.lists(st.one_of(single, span()), min_size=2, max_size=4).map(",".join),
    )


def cron_expressions(
    seconds: bool | Literal["first", "last"] = False,
    aliases: bool = True,
    names: bool = True,
) -> st.SearchStrategy[str]:
    """Valid crontab(5) expressions: ``"*/5 * * * *"``, ``"0 9-17 * * MON-FRI"``, …

    Every field is drawn from ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` and comma lists.
    Day-of-month stays within 1-28 when the month is restricted, so every expression
    fires at least once a year (no ``30 2``).

    Args:
        seconds: ``False`` (default) for 5 fields; ``True`` or ``"first"`` for 6 fields
            with seconds first (Quartz/APScheduler order); ``"last"`` for seconds last
            (croniter's order).
        aliases: also draw ``@hourly``, ``@daily``, … (default yes; never with seconds).
        names: allow month and weekday names (``JAN``, ``MON``) (default yes).

    Raises:
        ConfigurationError: ``seconds`` is not one of the values above.
    """
    if seconds not in (False, True, "first", "last"):
        raise ConfigurationError(f"seconds={seconds!r}: use False, True, 'first' or 'last'")

    @st.composite
    def expression(draw: st.DrawFn) -> str:
        month = draw(_field(1, 12, _MONTHS if names else None))
        day_high = 31 if month == "*" else 28
        fields = [
            draw(_field(0, 59)),
            draw(_field(0, 23)),
            draw(_field(1, day_high)),
            month,
            draw(_field(0, 6, _DAYS if names else None)),
        ]
        if seconds in (True, "first"):
            fields.insert(0, draw(_field(0, 59)))
        elif seconds == "last":
            fields.append(draw(_field(0, 59)))
        return " ".join(fields)

    if aliases and seconds is False:
        return st.one_of(st.sampled_from(CRON_ALIASES), expression())
    return expression()


def timezones(dst_heavy: bool = True) -> st.SearchStrategy[ZoneInfo]:
    """IANA time zones as ``ZoneInfo``; with ``dst_heavy`` (default) the zones of
    :data:`DST_ZONES` are drawn often, so DST bugs show up early."""
    every = st.timezones().filter(lambda zone: not zone.key.startswith(_NOT_CIVIL))
    if not dst_heavy:
        return every
    return st.one_of(st.sampled_from(DST_ZONES).map(ZoneInfo), every)


def payloads(max_leaves: int = 20) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects ``json.dumps`` accepts (``allow_nan=False``): string keys; values
    null, booleans, 64-bit integers, finite floats, text, lists and objects. Text has no
    NUL character (PostgreSQL ``jsonb`` rejects it), so every job queue can store them."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(_TEXT, max_size=20),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(_TEXT, max_size=10), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )
    return st.dictionaries(st.text(_TEXT, max_size=10), values, max_size=6)


def job_types() -> st.SearchStrategy[str]:
    """Valid job types: ``report.daily``, ``email:send``, … (see ``portico_rx.models``)."""
    first = string.ascii_letters + string.digits + "_"
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(first),
        st.text(alphabet=first + ".:-", max_size=30),
    )


def queue_names() -> st.SearchStrategy[str]:
    """Valid queue names: ``default``, ``emails``, ``q-1.high``, …"""
    first = string.ascii_letters + string.digits + "_"
    return st.one_of(
        st.just("default"),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from(first),
            st.text(alphabet=first + ".-", max_size=30),
        ),
    )


def job_requests(
    job_type: st.SearchStrategy[str] | None = None,
    payload: st.SearchStrategy[dict[str, Any]] | None = None,
) -> st.SearchStrategy[JobRequest]:
    """Valid :class:`~portico_rx.models.JobRequest` values (optionally with your own
    strategies for ``job_type`` and ``payload``)."""
    return st.builds(
        JobRequest,
        job_type=job_type if job_type is not None else job_types(),
        payload=payload if payload is not None else payloads(),
        queue_name=queue_names(),
        priority=st.integers(PRIORITY_MIN, PRIORITY_MAX),
        metadata=st.one_of(st.just({}), payloads(max_leaves=5)),
        idempotency_key=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    )


def _aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware instants (UTC) between 2000 and 2100, at microsecond resolution."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )


def jobs(
    job_type: st.SearchStrategy[str] | None = None,
    payload: st.SearchStrategy[dict[str, Any]] | None = None,
    status: st.SearchStrategy[JobStatus] | None = None,
) -> st.SearchStrategy[Job]:
    """Valid :class:`~portico_rx.models.Job` values in any status (optionally with your
    own strategies for ``job_type``, ``payload`` and ``status``)."""
    optional_time = st.one_of(st.none(), _aware_datetimes())
    return st.builds(
        Job,
        id=st.uuids(),
        job_type=job_type if job_type is not None else job_types(),
        queue_name=queue_names(),
        payload=payload if payload is not None else payloads(),
        priority=st.integers(PRIORITY_MIN, PRIORITY_MAX),
        metadata=st.one_of(st.just({}), payloads(max_leaves=5)),
        status=status if status is not None else st.sampled_from(JobStatus),
        attempts=st.integers(0, 10),
        max_retries=st.integers(0, 10),
        created_at=_aware_datetimes(),
        scheduled_at=optional_time,
        started_at=optional_time,
        completed_at=optional_time,
        idempotency_key=st.one_of(st.none(), st.text(_TEXT, min_size=1, max_size=40)),
        result=st.one_of(st.none(), payloads(max_leaves=5)),
        error=st.one_of(st.none(), st.text(_TEXT, max_size=60)),
    )


def trigger_healths() -> st.SearchStrategy[TriggerHealth]:
    """Valid :class:`~portico_rx.models.TriggerHealth` values (counts never negative)."""
    counts = st.integers(0, 10**9)
    return st.builds(
        TriggerHealth,
        is_running=st.booleans(),
        last_job_created=st.one_of(st.none(), _aware_datetimes()),
        jobs_created_count=counts,
        errors_count=counts,
        name=st.text(_TEXT, max_size=30),
        state=st.sampled_from(RunState),
        healthy=st.booleans(),
        events_seen=counts,
        in_flight=st.integers(0, 10**4),
        dead_lettered_count=counts,
        retries_count=counts,
        restarts_count=counts,
        untracked_count=counts,
        last_error=st.one_of(st.none(), st.text(_TEXT, max_size=60)),
        last_error_at=st.one_of(st.none(), _aware_datetimes()),
        details=st.one_of(st.just({}), payloads(max_leaves=5)),
    )


def event_streams(
    of: st.SearchStrategy[Any] | None = None,
    *,
    max_gap: float = 60.0,
    min_gap: float = 0.0,
    min_size: int = 0,
    max_size: int = 50,
    resolution: float = 0.001,
) -> st.SearchStrategy[list[tuple[float, Any]]]:
    """Timestamped events: ``[(seconds, event), …]`` sorted by time, starting at 0 or
    later, consecutive events ``min_gap`` to ``max_gap`` seconds apart.

    Times are multiples of ``resolution`` (default 1 ms), so they are exact in a
    virtual-time scheduler (whose clock counts microseconds). Feed them to
    :func:`~portico_rx.testing.run_pipeline` as ``events=``.

    Args:
        of: strategy for the events (default :func:`payloads`).
        max_gap: largest gap between consecutive events, seconds (default 60).
        min_gap: smallest gap (default 0: simultaneous events happen).
        min_size: fewest events (default 0).
        max_size: most events (default 50).
        resolution: time grid in seconds (default 0.001).

    Raises:
        ConfigurationError: a negative or inconsistent gap, size or resolution.
    """
    if resolution <= 0 or not math.isfinite(resolution):
        raise ConfigurationError(f"resolution={resolution!r}: use a positive number of seconds")
    if min_gap < 0 or max_gap < min_gap:
        raise ConfigurationError(
            f"min_gap={min_gap!r}, max_gap={max_gap!r}: use 0 <= min_gap <= max_gap"
        )
    if min_size < 0 or max_size < min_size:
        raise ConfigurationError(
            f"min_size={min_size!r}, max_size={max_size!r}: use 0 <= min_size <= max_size"
        )
    low = math.ceil(min_gap / resolution - 1e-9)
    high = math.floor(max_gap / resolution + 1e-9)
    if high < low:
        raise ConfigurationError(
            f"min_gap={min_gap!r}, max_gap={max_gap!r}: no multiple of resolution="
            f"{resolution!r} lies between them"
        )
    events = of if of is not None else payloads()
    steps = st.lists(
        st.tuples(st.integers(low, high), events), min_size=min_size, max_size=max_size
    )

    def timestamped(drawn: list[tuple[int, Any]]) -> list[tuple[float, Any]]:
        stream: list[tuple[float, Any]] = []
        ticks = 0
        for index, (gap, event) in enumerate(drawn):
            ticks += gap if index else 0
            stream.append((round(ticks * resolution, 9), event))
        return stream

    return steps.map(timestamped)


def _register_type_strategies() -> None:
    """``st.from_type`` for the models, as hypothesis' entry point does (the same code):
    importing this module is enough where the entry point did not run (an install
    without its metadata, ``HYPOTHESIS_NO_PLUGINS``)."""
    from _portico_rx_plugins.hypothesis_types import register_strategies
    from portico_rx import models

    register_strategies(models)


_register_type_strategies()
