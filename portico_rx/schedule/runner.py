"""ScheduleRunner: many schedules on one timer, emitting runs with their deliveries.

Used by the ``cron``/``interval``/``at`` sources (one schedule each) and by
``ScheduleTrigger`` (all its schedules on one timer). Each due fire time goes through the
misfire policy; each run is emitted with :func:`~portico_rx.pipeline.delivery.deliver`
and a :class:`~portico_rx.pipeline.delivery.Delivery` whose idempotency key is the UTC
fire time, so replicas and restarts agree on it. The event is a
:class:`~portico_rx.schedule.tick.Tick` (the sources), or the run's
:class:`ScheduleSpec` (``ticks=False``: ``ScheduleTrigger``, whose mapping needs only the
schedule and the delivery).
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from reactivex.abc import DisposableBase, ObserverBase, SchedulerBase

from portico_rx.logs import get_logger
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.schedule.fire_plan import FirePlan, count_fires
from portico_rx.schedule.misfire import MisfirePolicy, select_runs
from portico_rx.schedule.tick import Tick, from_micros, key_time
from portico_rx.schedule.timer import DEFAULT_SPIN, ScheduleTimer, TimerEntry

__all__ = ["ScheduleRunner", "ScheduleSpec", "ScheduleStats"]

logger = get_logger("portico_rx.schedule")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """Everything the runner needs to fire one schedule."""

    name: str
    plan: FirePlan
    tz: ZoneInfo
    misfire: MisfirePolicy
    start_us: int | None = None
    end_us: int | None = None
    jitter_us: int = 0


@dataclass(slots=True)
class ScheduleStats:
    """Per-schedule counters, shown in health details."""

    fired: int = 0
    caught_up: int = 0
    misfires_skipped: int = 0
    """Missed runs left out by the coalesce rule (``latest`` keeps one of many, ...)."""
    misfires_dropped: int = 0
    """Runs dropped because they were older than ``misfire_grace_time``."""
    backfilled: int = 0
    """Runs of a past window emitted by :meth:`ScheduleRunner.backfill`."""
    run_now: int = 0
    """Runs made on request by :meth:`ScheduleRunner.run_now`, outside the plan."""
    last_scheduled_us: int | None = None
    last_lateness_s: float | None = None
    next_due_us: int | None = None


class ScheduleRunner:
    """Runs schedules on one :class:`~portico_rx.schedule.timer.ScheduleTimer`.

    Args:
        observer: receives each run (via ``deliver``, the run's delivery current).
        scheduler: the Rx scheduler for time and timers.
        seed: seed for jitter (default: unseeded).
        on_exhausted: called when the last schedule has no more fire times.
        spin: see :class:`~portico_rx.schedule.timer.ScheduleTimer` (seconds the timer
            wakes early on asyncio to fire on the exact microsecond; 0 turns it off).
        ticks: emit a :class:`~portico_rx.schedule.tick.Tick` per run (default), or
            ``False``: the run's :class:`ScheduleSpec` (its time, key, lateness and
            catch-up flag are in the delivery). ``ScheduleTrigger`` hands the timer
            hundreds of runs per wake-up and needs no Tick.
    """

    def __init__(
        self,
        observer: ObserverBase[Any],
        scheduler: SchedulerBase,
        *,
        seed: int | None = None,
        on_exhausted: Callable[[], None] | None = None,
        spin: float = DEFAULT_SPIN,
        ticks: bool = True,
    ) -> None:
        self.observer = observer
        self._ticks = ticks
        self.scheduler = scheduler
        self.timer = ScheduleTimer(scheduler, spin=spin)
        self.stats: dict[str, ScheduleStats] = {}
        self._entries: dict[str, TimerEntry] = {}
        self._specs: dict[str, ScheduleSpec] = {}
        self._pending: dict[str, DisposableBase] = {}
        self._sequence = 0
        self._random = random.Random(seed)
        self._on_exhausted = on_exhausted
        self._time_cache: dict[tuple[int, ZoneInfo], tuple[datetime, str, str]] = {}
        self._last_time: tuple[int, ZoneInfo | None, tuple[datetime, str, str] | None] = (
            -1,
            None,
            None,
        )
        self._sources: dict[str, str] = {}
        self._fired_us = -1
        self._fired = from_micros(0)
        # One bound method for every timer entry (``self._on_due`` makes a new one on
        # each access: ten thousand schedules held ten thousand of them, long-lived
        # objects that brought CPython's full collection into the first fires).
        self._due_callback = self._on_due

    def now_us(self) -> int:
        """The scheduler's clock in epoch microseconds."""
        return self.timer.now_us()

    def _fires(self, spec: ScheduleSpec, from_us: int) -> Iterator[int]:
        start = from_us if spec.start_us is None else max(from_us, spec.start_us)
        return spec.plan.iter_from(start, spec.end_us)

    def _jitter(self, spec: ScheduleSpec) -> Callable[[], int] | None:
        """Each run's random delay (µs) for a schedule with jitter, else ``None``."""
        if not spec.jitter_us:
            return None
        return functools.partial(self._random.randint, 0, spec.jitter_us)

    def add(
        self,
        spec: ScheduleSpec,
        *,
        missed_after_us: int | None = None,
        missed_single_on_time: bool = False,
    ) -> None:
        """Start firing ``spec`` from now.

        ``missed_after_us``: the last time this schedule ran (from the job store); fire
        times after it and before now are missed runs, caught up per the misfire policy.
        ``missed_single_on_time``: one missed run counts as on time (``at`` in the past).
        """
        self._add(spec, self.now_us(), missed_after_us, missed_single_on_time, arm=True)

    def add_many(self, specs: list[ScheduleSpec], missed_after_us: dict[str, int]) -> None:
        """:meth:`add` for many schedules at once: one clock reading, one timer arming."""
        now = self.now_us()
        for spec in specs:
            self._add(spec, now, missed_after_us.get(spec.name), False, arm=False)
        self.timer.arm()

    def _add(
        self,
        spec: ScheduleSpec,
        now: int,
        missed_after_us: int | None,
        missed_single_on_time: bool,
        *,
        arm: bool,
    ) -> None:
        if spec.name in self._specs:
            self.remove(spec.name)
        self._specs[spec.name] = spec
        stats = self.stats.get(spec.name)
        if stats is None:
            stats = self.stats[spec.name] = ScheduleStats()
        if missed_after_us is not None:
            self._catch_up(spec, missed_after_us, now, single_on_time=missed_single_on_time)
        fires, jitter = self._fires(spec, now), self._jitter(spec)
        entry = self.timer.add(spec.name, fires, self._due_callback, jitter=jitter, arm=arm)
        self._entries[spec.name] = entry
        stats.next_due_us = entry.next_fire[0] if entry.next_fire else None
        if entry.next_fire is None and spec.name not in self._pending:
            self._check_exhausted()

    def remove(self, name: str) -> None:
        """Stop firing a schedule (pending catch-up runs included)."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            self.timer.remove(entry)
        pending = self._pending.pop(name, None)
        if pending is not None:
            pending.dispose()
        self._specs.pop(name, None)
        self._sources.pop(name, None)
        stat = self.stats.get(name)
        if stat is not None:
            stat.next_due_us = None

    def dispose(self) -> None:
        """Stop every schedule and cancel the timer and pending catch-up runs."""
        for pending in self._pending.values():
            pending.dispose()
        self._pending.clear()
        self._entries.clear()
        self.timer.dispose()

    def _catch_up(self, spec: ScheduleSpec, after_us: int, now: int, single_on_time: bool) -> None:
        policy = spec.misfire
        start = after_us + 1
        if spec.start_us is not None:
            start = max(start, spec.start_us)
        end = now if spec.end_us is None else min(now, spec.end_us)
        if start >= end:  # nothing between the last run and now (the usual restart)
            return
        expired = 0
        if policy.grace_time is not None:
            limit = now - int(policy.grace_time * 1_000_000)
            if start < limit:
                expired = count_fires(spec.plan, start, min(limit, end))
                oldest_late = now - start
                start = limit
        first: int | None = None
        last: deque[int] = deque(maxlen=max(1, policy.max_catchup))
        count = 0
        for nominal in spec.plan.iter_from(start, end):
            if first is None:
                first = nominal
            last.append(nominal)
            count += 1
        if expired:
            self._record_dropped(spec, expired, oldest_late, catch_up=True)
        if first is None:
            return
        missed = [first, *last] if first != last[0] else list(last)
        runs = select_runs(missed, now, policy, catch_up=not (single_on_time and count == 1))
        skipped = count - len(runs)
        self.stats[spec.name].misfires_skipped += skipped
        logger.info(
            "schedule_missed_runs",
            schedule=spec.name,
            missed=count + expired,
            running=len(runs),
            skipped=skipped,
            dropped_older_than_grace=expired,
            coalesce=policy.coalesce,
            grace_time=policy.grace_time,
        )
        if not runs:
            return

        def fire(_scheduler: Any = None, _state: Any = None) -> None:
            self._pending.pop(spec.name, None)
            if self._specs.get(spec.name) is not spec:
                return
            now = self.now_us()
            stats = self.stats[spec.name]
            for nominal in runs:
                self._emit(spec, stats, nominal, nominal, True, now)
            entry = self._entries.get(spec.name)
            if entry is None or entry.next_fire is None:
                self._check_exhausted()

        self._pending[spec.name] = self.scheduler.schedule(fire)

    def _on_due(self, entry: TimerEntry, due: list[tuple[int, int]], now: int) -> None:
        spec = self._specs.get(entry.key)
        if spec is None:  # removed (a removed or replaced entry is inactive: not called)
            return
        stats = self.stats[spec.name]
        grace = spec.misfire.grace_time
        if len(due) == 1 and (grace is None or now - due[0][0] <= grace * 1_000_000):
            self._emit(spec, stats, due[0][0], due[0][1], False, now)
        else:
            runs = select_runs([nominal for nominal, _ in due], now, spec.misfire)
            expired = 0
            if grace is not None:
                limit = now - int(grace * 1_000_000)
                expired = sum(1 for nominal, _ in due if nominal < limit)
            if expired:
                self._record_dropped(spec, expired, now - due[0][0], catch_up=False)
            if len(runs) + expired < len(due):
                stats.misfires_skipped += len(due) - len(runs) - expired
                logger.warning(
                    "schedule_misfired",
                    schedule=spec.name,
                    due=len(due),
                    running=len(runs),
                    late_s=round((now - due[0][1]) / 1e6, 3),
                    coalesce=spec.misfire.coalesce,
                )
            planned = dict(due)
            for nominal in runs:
                self._emit(spec, stats, nominal, planned[nominal], len(due) > 1, now)
        stats.next_due_us = entry.next_fire[0] if entry.next_fire else None
        if entry.next_fire is None:
            self._check_exhausted()

    def _record_dropped(
        self, spec: ScheduleSpec, dropped: int, oldest_late_us: int, *, catch_up: bool
    ) -> None:
        """Count and log runs dropped for being older than the grace time: a dropped run
        is never silent."""
        self.stats[spec.name].misfires_dropped += dropped
        logger.warning(
            "schedule_runs_dropped",
            schedule=spec.name,
            dropped=dropped,
            reason="older than misfire_grace_time",
            grace_time=spec.misfire.grace_time,
            oldest_late_s=round(oldest_late_us / 1e6, 3),
            after_downtime=catch_up,
        )

    def _check_exhausted(self) -> None:
        if self._on_exhausted is None or self._pending:
            return
        if all(e.next_fire is None for e in self._entries.values()):
            self._on_exhausted()

    def _times(self, nominal: int, tz: ZoneInfo) -> tuple[datetime, str, str]:
        """The scheduled time in ``tz``, its key form and its UTC ISO form (memoised:
        every schedule due at one instant shares them)."""
        cached = self._time_cache.get((nominal, tz))
        if cached is None:
            scheduled = from_micros(nominal)
            cached = (scheduled.astimezone(tz), key_time(nominal), scheduled.isoformat())
            if len(self._time_cache) > 256:
                self._time_cache.clear()
            self._time_cache[(nominal, tz)] = cached
        return cached

    def _emit(
        self,
        spec: ScheduleSpec,
        stats: ScheduleStats,
        nominal: int,
        planned: int,
        catch_up: bool,
        now: int,
        *,
        backfill: bool = False,
        manual_key: str | None = None,
    ) -> Delivery:
        """Emit one run and return its delivery. ``now`` is when the timer fired: every
        run of one wake-up shares it, so their ``fired_at`` and lateness say when the
        timer fired, not how long the runs before them took. A ``manual_key`` run
        (:meth:`run_now`) is keyed by it and is not a fire time of the plan."""
        if backfill:
            stats.backfilled += 1
        elif manual_key is not None:
            stats.run_now += 1
        else:
            stats.fired += 1
            stats.caught_up += catch_up
            stats.last_scheduled_us = nominal
        # Lateness runs from the fire time itself (the jitter included: a job delayed on
        # purpose is still that late); the jitter is recorded beside it.
        lateness = (now - nominal) / 1_000_000  # whole µs / 1e6: already 6 decimals
        jitter = (planned - nominal) / 1_000_000
        stats.last_lateness_s = lateness
        tz = spec.tz
        last_nominal, last_tz, times = self._last_time
        if last_nominal != nominal or last_tz is not tz or times is None:
            times = self._times(nominal, tz)  # runs of one wake-up mostly share a time
            self._last_time = (nominal, tz, times)
        scheduled, iso, scheduled_iso = times
        if manual_key is not None:
            iso = manual_key
        if now != self._fired_us:
            self._fired_us, self._fired = now, from_micros(now)
        fired = self._fired
        source = self._sources.get(spec.name)
        if source is None:
            source = self._sources[spec.name] = f"{spec.plan.kind}:{spec.plan.expression}"
        delivery = Delivery(
            source=source,
            seen_at=fired,
            event_id=f"{spec.name}:{iso}",
            idempotency_key=iso,
            occurred_at=scheduled,  # the fire time: a jittered run is late by its jitter
            attributes={  # lateness_s: seen_at - occurred_at, by the sink's provenance
                "scheduled_at": scheduled_iso,
                "schedule": spec.name,
                "catch_up": catch_up,
            },
        )
        if spec.jitter_us:
            delivery.attributes["jitter_s"] = jitter
        if backfill:
            delivery.attributes["backfill"] = True
        if manual_key is not None:
            delivery.attributes["run_now"] = True
        if not self._ticks:
            deliver(self.observer, spec, delivery)
            return delivery
        self._sequence += 1
        tick = Tick.trusted(
            scheduled_at=scheduled,
            fired_at=fired,
            lateness_s=lateness,
            jitter_s=jitter,
            expression=spec.plan.expression,
            sequence=self._sequence,
            schedule=spec.name,
            catch_up=catch_up,
            key=iso,
        )
        deliver(self.observer, tick, delivery)
        return delivery

    def backfill(self, spec: ScheduleSpec, nominals: list[int]) -> list[Delivery]:
        """Emit runs of past fire times now, down the same path as the timer's runs (each
        with its usual key, ``backfill: true`` in its provenance); returns their
        deliveries, to await their settlement."""
        stats = self.stats.get(spec.name)
        if stats is None:
            stats = self.stats[spec.name] = ScheduleStats()
        now = self.now_us()
        return [self._emit(spec, stats, n, n, False, now, backfill=True) for n in nominals]

    def run_now(self, spec: ScheduleSpec, key: str) -> Delivery:
        """Emit one run of ``spec`` at the current time, outside its plan, down the same
        path as the timer's runs, keyed ``key`` (the caller makes it one no fire time
        can have) with ``run_now: true`` in its provenance; the schedule's last fire
        time (for catching up after a restart) is left alone."""
        stats = self.stats.get(spec.name)
        if stats is None:
            stats = self.stats[spec.name] = ScheduleStats()
        now = self.now_us()
        return self._emit(spec, stats, now, now, False, now, manual_key=key)
