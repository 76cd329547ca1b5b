"""Schedule sources: ``cron``, ``interval`` and ``at`` emit a :class:`Tick` when due.

Each subscription runs one :class:`~portico_rx.schedule.timer.ScheduleTimer` on the Rx
scheduler (``scheduler=``, else the one given to ``subscribe``, else an
``AsyncIOScheduler`` on the running loop), so the same pipeline runs live or in virtual
time. Every tick is emitted with a delivery whose idempotency key is the scheduled time
in UTC (``2025-01-01T09:00:00Z``): a ``PipelineTrigger`` turns it into the job key
``{trigger}:{job_type}:{time}``, identical on every replica.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.pipeline import clock
from portico_rx.schedule.cron_expression import parse_cron
from portico_rx.schedule.dst import DstPolicy, resolve_zone
from portico_rx.schedule.fire_plan import CronPlan, FirePlan, IntervalPlan, OncePlan
from portico_rx.schedule.misfire import MisfirePolicy
from portico_rx.schedule.runner import ScheduleRunner, ScheduleSpec
from portico_rx.schedule.tick import Tick
from portico_rx.schedule.timer import DEFAULT_SPIN, to_micros
from portico_rx.schedule.window import check_spin, check_window, seconds_to_micros, to_instant

__all__ = ["Tick", "at", "cron", "interval"]


def _windowed_spec(
    plan: FirePlan,
    zone: ZoneInfo,
    misfire: MisfirePolicy | None,
    start: datetime | None,
    end: datetime | None,
    jitter: float | timedelta | None,
) -> ScheduleSpec:
    """The spec of a recurring source (cron, interval): its plan inside ``start``/``end``
    (checked in ``zone``), with its misfire policy and jitter."""
    start_us, end_us = check_window(start, end, zone)
    return ScheduleSpec(
        name=plan.expression,
        plan=plan,
        tz=zone,
        misfire=misfire or MisfirePolicy(),
        start_us=start_us,
        end_us=end_us,
        jitter_us=seconds_to_micros(jitter, "jitter", positive=False),
    )


def _source(
    spec: ScheduleSpec,
    scheduler: abc.SchedulerBase | None,
    seed: int | None,
    missed_from: int | None = None,
    spin: float = DEFAULT_SPIN,
) -> Observable[Tick]:
    spin = check_spin(spin)

    def subscribe(
        observer: abc.ObserverBase[Tick], subscribe_scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        chosen = clock.resolve_scheduler(scheduler or subscribe_scheduler)
        runner = ScheduleRunner(
            observer, chosen, seed=seed, on_exhausted=observer.on_completed, spin=spin
        )
        runner.add(
            spec,
            missed_after_us=missed_from,
            missed_single_on_time=missed_from is not None,
        )
        return Disposable(runner.dispose)

    return reactivex.create(subscribe)


def cron(
    expr: str,
    tz: str | ZoneInfo = "UTC",
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    jitter: float | timedelta | None = None,
    dst: DstPolicy | None = None,
    misfire: MisfirePolicy | None = None,
    seed: int | None = None,
    timer_spin: float = DEFAULT_SPIN,
    seconds: Literal["first", "last"] | None = None,
    hash_key: str | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[Tick]:
    """Emit a :class:`Tick` at every fire time of a cron expression.

    Args:
        expr: 5 fields (``"0 9 * * MON-FRI"``), 6 with a seconds field
            (``"*/10 * * * * *"`` with ``seconds="first"``) or an alias (``"@hourly"``,
            ``"@daily"``, ``"@weekly"``, ``"@monthly"``, ``"@yearly"``); crontab(5)
            semantics plus ``L``, ``W``, ``#``, wrap-around ranges and ``H`` (see
            ``docs/schedules.md``).
        tz: IANA time zone the expression is read in (default ``"UTC"``).
        start: no tick before this time (default: from subscription); naive = in ``tz``.
        end: no tick at or after this time; the observable completes after the last one.
        jitter: add a random delay of up to this many seconds to each fire (default none);
            the tick's scheduled time and idempotency key stay the nominal time.
        dst: daylight-saving policy (default ``DstPolicy()``: a missing local time runs
            once at the end of the gap, a repeated one runs once).
        misfire: what to do with ticks a late timer missed (default ``MisfirePolicy()``).
        seed: seed for the jitter (default unseeded).
        timer_spin: seconds before a fire time at which the asyncio timer wakes and
            yields to the loop until the exact microsecond (default 0.002, at most 1% of
            the time between wake-ups; 0: rely on the loop's timer, 1-2 ms late).
        seconds: where a six-field ``expr`` has its seconds: ``"first"`` or ``"last"``
            (croniter); needed only when both readings are valid and differ.
        hash_key: what ``H`` values are drawn from (e.g. the job's name); needed by ``H``.
        scheduler: Rx scheduler (default: the subscriber's, else asyncio on the loop).

    Returns:
        A cold observable; each subscription runs its own timer.

    Raises:
        InvalidCronError: the expression does not parse (names the field).
        InvalidScheduleError: unknown ``tz``, ``end`` not after ``start``, negative jitter.

    Marble::

        cron("0 * * * *"):  --t(01:00)------t(02:00)------t(03:00)--->

    Example:
        >>> from datetime import UTC, datetime
        >>> from reactivex.scheduler import HistoricalScheduler
        >>> vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
        >>> seen = []
        >>> _ = cron("0 */6 * * *", scheduler=vt).subscribe(lambda t: seen.append(t.key))
        >>> vt.advance_to(datetime(2025, 1, 1, 13, tzinfo=UTC))
        >>> seen
        ['2025-01-01T00:00:00Z', '2025-01-01T06:00:00Z', '2025-01-01T12:00:00Z']
    """
    parsed = parse_cron(expr, seconds=seconds, hash_key=hash_key)
    zone = resolve_zone(tz)
    spec = _windowed_spec(CronPlan(parsed, zone, dst), zone, misfire, start, end, jitter)
    return _source(spec, scheduler, seed, spin=timer_spin)


def interval(
    every: float | timedelta,
    anchor: datetime | None = None,
    *,
    tz: str | ZoneInfo = "UTC",
    start: datetime | None = None,
    end: datetime | None = None,
    jitter: float | timedelta | None = None,
    misfire: MisfirePolicy | None = None,
    seed: int | None = None,
    timer_spin: float = DEFAULT_SPIN,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[Tick]:
    """Emit a :class:`Tick` every ``every`` seconds, on the grid ``anchor + k * every``.

    Args:
        every: the period (seconds or a timedelta; positive).
        anchor: one instant on the grid (default: the Unix epoch, so every replica and
            every restart shares the same fire times and idempotency keys).
        tz: zone of the ticks' ``scheduled_at`` (default ``"UTC"``).
        start, end, jitter, misfire, seed, timer_spin, scheduler: as for :func:`cron`.

    Raises:
        InvalidScheduleError: ``every`` not positive, bad window, negative jitter.

    Marble::

        interval(10):  t(0s)------t(10s)------t(20s)--->

    Example:
        >>> from datetime import UTC, datetime
        >>> from reactivex.scheduler import HistoricalScheduler
        >>> vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
        >>> seen = []
        >>> _ = interval(90, scheduler=vt).subscribe(lambda t: seen.append(t.key))
        >>> vt.advance_to(datetime(2025, 1, 1, 0, 4, tzinfo=UTC))
        >>> seen
        ['2025-01-01T00:00:00Z', '2025-01-01T00:01:30Z', '2025-01-01T00:03:00Z']
    """
    zone = resolve_zone(tz)
    every_us = seconds_to_micros(every, "every", positive=True)
    anchor_us = to_micros(to_instant(anchor, zone, "anchor")) if anchor is not None else 0
    spec = _windowed_spec(IntervalPlan(every_us, anchor_us), zone, misfire, start, end, jitter)
    return _source(spec, scheduler, seed, spin=timer_spin)


def at(
    when: datetime,
    *,
    tz: str | ZoneInfo = "UTC",
    misfire: MisfirePolicy | None = None,
    timer_spin: float = DEFAULT_SPIN,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[Tick]:
    """Emit one :class:`Tick` at ``when``, then complete.

    A ``when`` already past at subscription fires at once if it is within the misfire
    grace time (default one day), else the observable just completes.

    Args:
        when: the fire time; naive = local time in ``tz``.
        tz: zone for a naive ``when`` and for the tick's ``scheduled_at`` (default UTC).
        misfire: grace for a past ``when`` (default ``MisfirePolicy()``).
        timer_spin, scheduler: as for :func:`cron`.

    Marble::

        at(t):  ------t|

    Example:
        >>> from datetime import UTC, datetime
        >>> from reactivex.scheduler import HistoricalScheduler
        >>> vt = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
        >>> seen = []
        >>> _ = at(datetime(2025, 1, 1, 9, tzinfo=UTC), scheduler=vt).subscribe(
        ...     lambda t: seen.append(t.key), on_completed=lambda: seen.append("done"))
        >>> vt.advance_to(datetime(2025, 1, 2, tzinfo=UTC))
        >>> seen
        ['2025-01-01T09:00:00Z', 'done']
    """
    zone = resolve_zone(tz)
    moment = to_instant(when, zone, "when")
    when_us = to_micros(moment)
    plan = OncePlan(when_us, f"at {moment.isoformat()}")
    spec = ScheduleSpec(
        name=plan.expression, plan=plan, tz=zone, misfire=misfire or MisfirePolicy()
    )
    return _source(spec, scheduler, None, missed_from=when_us - 1, spin=timer_spin)
