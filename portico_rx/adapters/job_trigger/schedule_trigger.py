"""ScheduleTrigger: the spec's cron trigger — many schedules, one timer, exact keys.

``ScheduleTrigger(job_creator=job_service, schedules=[ScheduleConfig(cron="0 9 * * *",
job_type="report.daily", payload={...}, queue_name="reports", priority=5)])`` creates
a job at every fire time. Each job's idempotency key is
``{trigger name}:{schedule name}:{UTC fire time}`` (the schedule name defaults to the job
type), so replicas sharing a job store create each run once, and a restart finds the
last run in the store and catches up missed runs by the misfire policy.

The trigger is a :class:`~portico_rx.pipeline.PipelineTrigger` whose pipeline is the
schedules' runner as a source (one timer, each run emitted with its delivery) mapped to
job requests like ``to_job`` does; the sink creates them (retries, dead letters, health).
A subclass overriding ``_create_scheduled_job`` (the spec's FAQ pattern) replaces only
the sink's create step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import reactivex
from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, InvalidScheduleError, TriggerNotRunningError
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobRequest, check_job_fields, trusted_request
from portico_rx.pipeline import PipelineTrigger, clock
from portico_rx.pipeline.delivery import Outcome, current_delivery
from portico_rx.pipeline.provenance import run_now_key, schedule_key, schedule_key_prefix
from portico_rx.pipeline.sink import JobSink
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.schedule_store import ScheduleStore, StoredSchedule
from portico_rx.schedule.backfill import BackfillReport, Progress, existing_keys, planned_runs
from portico_rx.schedule.backfill import check_window as check_backfill_window
from portico_rx.schedule.calendar import CalendarPlan, check_exclude
from portico_rx.schedule.cron_expression import CronExpression, parse_cron
from portico_rx.schedule.dst import DstPolicy, resolve_zone
from portico_rx.schedule.fire_plan import CronPlan, FirePlan, IntervalPlan, OncePlan
from portico_rx.schedule.misfire import DEFAULT_GRACE_TIME, MisfirePolicy
from portico_rx.schedule.overlap import OverlapGate, OverlapPolicy
from portico_rx.schedule.preview import PlannedJob, preview_plans
from portico_rx.schedule.runner import ScheduleRunner, ScheduleSpec
from portico_rx.schedule.tick import from_micros, key_time
from portico_rx.schedule.timer import DEFAULT_SPIN, to_micros
from portico_rx.schedule.window import check_spin, check_window, seconds_to_micros, to_instant

if TYPE_CHECKING:
    import pandas

__all__ = ["ScheduleConfig", "ScheduleTrigger"]

logger = get_logger("portico_rx.schedule_trigger")

_KEY_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


_DEFAULT_DST = DstPolicy()


class ScheduleConfig(BaseModel):
    """One schedule: when (``cron``, ``every`` or ``at``) and which job to create.

    Validated at construction: a bad expression raises ``InvalidCronError`` naming the
    field; an unknown ``tz``, ``end`` before ``start`` or a negative ``jitter`` raise
    ``InvalidScheduleError``; bad job fields raise ``InvalidJobError``.

    Args:
        cron: a cron expression (5 fields, 6 with a seconds field, or an ``@alias``; ``L``,
            ``W``, ``#``, wrap-around ranges and ``H`` drawn from the schedule's name:
            see ``docs/schedules.md``).
        seconds: where a six-field ``cron`` has its seconds: ``"first"`` (Quartz, Spring)
            or ``"last"`` (croniter); needed only when both readings are valid and differ.
        every: instead of ``cron``: a fixed period in seconds (grid from the Unix epoch).
        at: instead of ``cron``: one fire time.
        job_type, payload, queue_name, priority: the job to create (defaults: ``{}``,
            ``"default"``, ``0``).
        name: the schedule's name in keys, logs and control calls (default: ``job_type``;
            give distinct names to two schedules of one job type).
        tz: time zone for ``cron`` (default: the trigger's ``tz``).
        start, end: only fire inside this window (naive = in ``tz``).
        jitter: random delay of up to this many seconds per run (keys stay nominal).
        dst: daylight-saving policy (default: shift missing times, run repeated ones once).
        exclude: days and windows without runs, in the schedule's zone: dates,
            ``(first, last)`` date ranges (inclusive) and ``(start, end)`` datetime windows.
        overlap: what a run does while the previous run's job is pending or running:
            ``"allow"`` (default), ``"skip"``, ``"buffer_one"``, ``"buffer_all"`` or
            ``"cancel_other"`` (see ``portico_rx.schedule.overlap``).
        calendar: an object with ``excludes(day) -> bool`` (e.g.
            ``portico_rx.schedule.calendar.Holidays("DE", subdiv="BY")``, extra
            ``calendar``); its days have no runs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str | None = None
    seconds: Literal["first", "last"] | None = None
    every: float | None = None
    at: datetime | None = None
    job_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    queue_name: str = "default"
    priority: int = 0
    name: str | None = None
    tz: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    jitter: float | None = None
    dst: DstPolicy = _DEFAULT_DST
    exclude: list[Any] = Field(default_factory=list)
    calendar: Any = None
    overlap: OverlapPolicy = "allow"

    @classmethod
    def from_stored(cls, form: dict[str, Any]) -> ScheduleConfig:
        """The config from the form a schedule store keeps (``model_dump(mode="json")``):
        validated like a new one; ``exclude`` items written as ISO strings and two-item
        lists are read back as dates, datetimes and tuples."""
        data = dict(form)
        if isinstance(data.get("exclude"), list):
            data["exclude"] = [_exclude_item(item) for item in data["exclude"]]
        return cls.model_validate(data)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        chosen = [k for k in ("cron", "every", "at") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise InvalidScheduleError(
                f"ScheduleConfig for job_type={self.job_type!r} has "
                f"{' and '.join(chosen) or 'no schedule'}: give exactly one of cron=, every= "
                "or at="
            )
        if self.cron is not None:
            self.parsed_cron  # noqa: B018  parsed (and checked) once, here
        elif self.seconds is not None:
            raise InvalidScheduleError(
                f"seconds={self.seconds!r} is for a six-field cron=; this schedule has none"
            )
        if self.every is not None:
            seconds_to_micros(self.every, "every", positive=True)
        zone = resolve_zone(self.tz) if self.tz is not None else ZoneInfo("UTC")
        check_window(self.start, self.end, zone)
        if self.exclude or self.calendar is not None:
            check_exclude(self.exclude, self.calendar, zone)
        seconds_to_micros(self.jitter, "jitter", positive=False)
        check_job_fields(self.job_type, self.payload or None, self.queue_name, self.priority)
        if self.name is not None and (not self.name or ":" in self.name):
            raise ConfigurationError(
                f"name={self.name!r}: give a non-empty schedule name without ':'"
            )

    @functools.cached_property
    def parsed_cron(self) -> CronExpression | None:
        """The parsed ``cron`` (parsed once, at construction), or ``None``."""
        if self.cron is None:
            return None
        return parse_cron(self.cron, seconds=self.seconds, hash_key=self.schedule_name)

    @property
    def schedule_name(self) -> str:
        """``name``, or the job type when no name was given."""
        return self.name or self.job_type

    @property
    def when(self) -> str:
        """The schedule in words: the cron expression, ``every Ns`` or ``at …``."""
        if self.cron is not None:
            return self.cron
        if self.every is not None:
            return f"every {self.every:g}s"
        assert self.at is not None
        return f"at {self.at.isoformat()}"


_WRITE_SLICE = 500
"""Schedules written per store call (between two turns of the loop) by a start-up's
background write."""


def _exclude_item(item: Any) -> Any:
    if isinstance(item, str):
        try:
            return (date if len(item) == 10 else datetime).fromisoformat(item)
        except ValueError:
            return item  # not ISO: check_exclude names it
    if isinstance(item, list) and len(item) == 2:
        return tuple(_exclude_item(part) for part in item)
    return item


def _resolve_store(
    store: ScheduleStore | Literal[False] | None, job_creator: JobCreator
) -> ScheduleStore | None:
    """The trigger's schedule store: the given one, else the creator's (its
    ``schedule_store``, as ``JobService`` offers, or its job queue when that offers the
    port); ``False``: none."""
    if store is False:
        return None
    if store is None:
        for found in (getattr(job_creator, name, None) for name in ("schedule_store", "job_queue")):
            if isinstance(found, ScheduleStore):
                return found
        return None
    if not isinstance(store, ScheduleStore):
        raise ConfigurationError(
            f"schedule_store={store!r}: give a ScheduleStore (e.g. the SQLiteJobQueue your "
            "JobService uses), or False to keep the schedules in code only"
        )
    return store


def _parse_key_time(text: str) -> int | None:
    if not _KEY_TIME.match(text):
        return None
    return to_micros(datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC))


class ScheduleTrigger(PipelineTrigger):
    """Create jobs on schedules: the spec's ``ScheduleTrigger``, on one timer.

    Args:
        job_creator: where jobs are created (``JobService`` or any ``JobCreator``).
        schedules: the :class:`ScheduleConfig` list (more can be added while running).
        name: the trigger's name, first part of every key (default ``"schedules"``);
            replicas must share it.
        tz: default time zone of the cron schedules (default ``"UTC"``).
        misfire_grace_time: seconds a missed run may be late and still run (default
            86400, one day; ``None``: no limit).
        coalesce: missed runs to catch up: ``"latest"`` (default), ``"earliest"``,
            ``"all"`` or ``"skip"``.
        max_catchup: most missed runs caught up per schedule with ``"all"`` (default 100).
        seed: seed for jitter (default unseeded).
        timer_spin: seconds before a fire time at which the asyncio timer wakes and yields
            to the loop until the exact microsecond (default 0.002; at most 1% of the time
            between wake-ups). ``0`` relies on the loop's timer, which wakes 1-2 ms late.
        overlap_poll: seconds between looks at the previous job of a run held by a
            ``buffer_one``/``buffer_all`` overlap policy (default 1.0).
        scheduler: Rx scheduler (default ``AsyncIOScheduler`` on the running loop).
        schedule_store: where the schedules are kept and changed at runtime (a
            :class:`~portico_rx.ports.schedule_store.ScheduleStore`); default: the job
            creator's job queue when it offers the port (the memory, SQLite, PostgreSQL
            and Redis queues do); ``False``: keep the schedules in this process only.
        schedule_poll: seconds between looks at the store for changes made elsewhere
            (another replica, the CLI, a dashboard), in scheduler time (default 1.0).
        reconcile: at start, for a schedule both the code and the store hold:
            ``"code_wins"`` (default: the code's config is written to the store) or
            ``"store_wins"`` (the stored config, and a removal, stand). See
            ``docs/schedules.md``, "Schedules in the store".
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger` (``retry``,
            ``max_concurrency``, ``alert``, ``stop_timeout``, …).

    Raises:
        ConfigurationError: two schedules share a name; InvalidScheduleError: bad tz or
            misfire settings.
    """

    def __init__(
        self,
        job_creator: JobCreator,
        schedules: Iterable[ScheduleConfig] = (),
        *,
        name: str = "schedules",
        tz: str = "UTC",
        misfire_grace_time: float | None = DEFAULT_GRACE_TIME,
        coalesce: Literal["latest", "earliest", "all", "skip"] = "latest",
        max_catchup: int = 100,
        seed: int | None = None,
        timer_spin: float = DEFAULT_SPIN,
        overlap_poll: float = 1.0,
        scheduler: abc.SchedulerBase | None = None,
        schedule_store: ScheduleStore | Literal[False] | None = None,
        schedule_poll: float = 1.0,
        reconcile: Literal["code_wins", "store_wins"] = "code_wins",
        **options: Any,
    ) -> None:
        self.tz = tz
        self.schedule_store = _resolve_store(schedule_store, job_creator)
        if isinstance(schedule_poll, bool) or not (
            isinstance(schedule_poll, int | float) and schedule_poll > 0
        ):
            raise ConfigurationError(
                f"schedule_poll={schedule_poll!r}: give the seconds between looks at the "
                "schedule store, e.g. 1.0"
            )
        if reconcile not in ("code_wins", "store_wins"):
            raise ConfigurationError(
                f"reconcile={reconcile!r}: use 'code_wins' (the code's schedules are written "
                "to the store at start) or 'store_wins' (the stored ones stand)"
            )
        self.schedule_poll = float(schedule_poll)
        self.reconcile = reconcile
        self._store_revision = 0
        self._store_errors = 0
        self._local_changes = 0
        self._last_write: asyncio.Task[None] | None = None
        self._own_rows: dict[str, int] = {}  # schedule -> revision this process wrote
        self._poll_task: asyncio.Task[None] | None = None
        if isinstance(overlap_poll, bool) or not (
            isinstance(overlap_poll, int | float) and overlap_poll > 0
        ):
            raise InvalidScheduleError(
                f"overlap_poll={overlap_poll!r}: give the seconds between looks at a held "
                "run's previous job, e.g. 1.0"
            )
        self._overlap = OverlapGate(
            job_creator, self._overlap_policy, self._run_key, float(overlap_poll)
        )
        self.timer_spin = check_spin(timer_spin)
        self.zone = resolve_zone(tz)
        try:
            self.misfire = MisfirePolicy(
                grace_time=misfire_grace_time, coalesce=coalesce, max_catchup=max_catchup
            )
        except ValueError as exc:
            raise InvalidScheduleError(
                f"misfire_grace_time={misfire_grace_time!r}, coalesce={coalesce!r}, "
                f"max_catchup={max_catchup!r}: grace time >= 0 or None, coalesce one of "
                f"latest/earliest/all/skip, max_catchup >= 0 ({exc.errors()[0]['msg']})"  # type: ignore[attr-defined]
            ) from None
        self.seed = seed
        self._configs: dict[str, ScheduleConfig] = {}
        self._plans: dict[str, ScheduleSpec] = {}
        self._paused_schedules: set[str] = set()
        self._runner: ScheduleRunner | None = None
        self._last_fired: dict[str, int] = {}
        for config in schedules:
            self._register(config)
        super().__init__(self._pipeline(), job_creator, name=name, scheduler=scheduler, **options)

    # -- configuration ---------------------------------------------------------------

    def _register(self, config: ScheduleConfig) -> ScheduleSpec:
        if not isinstance(config, ScheduleConfig):
            raise ConfigurationError(
                f"schedules item {config!r}: give ScheduleConfig(cron=..., job_type=...)"
            )
        name = config.schedule_name
        if name in self._configs:
            raise ConfigurationError(
                f"two schedules are named {name!r}: give one of them name='...' "
                "(the name is part of every job's idempotency key)"
            )
        zone = resolve_zone(config.tz) if config.tz is not None else self.zone
        plan: FirePlan
        parsed = config.parsed_cron
        if config.cron is not None and (parsed is None or parsed.expression != config.cron):
            # a model_copy(update=...) is not validated and keeps the copied parse
            parsed = parse_cron(config.cron, seconds=config.seconds, hash_key=name)
        if parsed is not None:
            plan = CronPlan(parsed, zone, config.dst)
        elif config.every is not None:
            plan = IntervalPlan(seconds_to_micros(config.every, "every", positive=True))
        else:
            assert config.at is not None
            moment = to_instant(config.at, zone, "at")
            plan = OncePlan(to_micros(moment), f"at {moment.isoformat()}")
        if config.exclude or config.calendar is not None:
            plan = CalendarPlan(plan, zone, *check_exclude(config.exclude, config.calendar, zone))
        start_us, end_us = check_window(config.start, config.end, zone)
        spec = ScheduleSpec(
            name=name,
            plan=plan,
            tz=zone,
            misfire=self.misfire,
            start_us=start_us,
            end_us=end_us,
            jitter_us=seconds_to_micros(config.jitter, "jitter", positive=False),
        )
        self._configs[name] = config
        self._plans[name] = spec
        return spec

    @property
    def schedules(self) -> list[ScheduleConfig]:
        """The schedules, in the order they were added."""
        return list(self._configs.values())

    def key_prefix(self, schedule: str) -> str:
        """The idempotency-key prefix of a schedule's jobs: ``{trigger}:{schedule}:``."""
        return schedule_key_prefix(self.name, schedule)

    def _config(self, name: str) -> ScheduleConfig:
        config = self._configs.get(name)
        if config is None:
            raise ConfigurationError(
                f"schedule={name!r} is not in trigger {self.name!r}: use one of "
                f"{sorted(self._configs)}"
            )
        return config

    # -- the pipeline ----------------------------------------------------------------

    def _pipeline(self) -> Observable[JobRequest]:
        """The runner as a source, the overlap gate, then the runs mapped to job requests."""
        runs: Observable[ScheduleSpec] = reactivex.create(self._subscribe_runs)
        return runs.pipe(self._overlap, self._to_job)

    def _overlap_policy(self, name: str) -> OverlapPolicy:
        config = self._configs.get(name)
        return config.overlap if config is not None else "allow"

    def _run_key(self, name: str, delivery: Any) -> str:
        return schedule_key(self.name, name, delivery.idempotency_key)

    def _to_job(self, runs: Observable[ScheduleSpec]) -> Observable[JobRequest]:
        """``to_job`` for schedule runs: each run's request, with the run's key and a
        claim on its delivery.

        The schedule's fields were checked once, by its ``ScheduleConfig`` (with
        ``check_job_fields``, as ``to_job`` checks constant fields once), so each run is
        built by the trusted constructor with nothing validated again: the timer hands
        the pipeline hundreds of runs per wake-up.
        """
        configs = self._configs

        def subscribe(
            observer: abc.ObserverBase[JobRequest], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            emit = observer.on_next
            trigger = self.name

            def on_next(spec: ScheduleSpec) -> None:
                name = spec.name
                config = configs.get(name)
                delivery = current_delivery()
                if config is None or delivery is None:  # removed while its run was emitted
                    return
                key = delivery.idempotency_key
                assert key is not None  # the runner keys every run with its fire time
                emit(
                    trusted_request(
                        job_type=config.job_type,
                        payload=config.payload.copy(),
                        queue_name=config.queue_name,
                        priority=config.priority,
                        metadata={},
                        idempotency_key=schedule_key(trigger, name, key),
                        claim=delivery.claim(),
                        delivery=delivery,
                    )
                )

            return runs.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    def _subscribe_runs(
        self, observer: abc.ObserverBase[ScheduleSpec], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        """The source: every schedule on one runner, from the last runs known (missed runs
        are caught up per the misfire policy); each run is its ``ScheduleSpec``, emitted
        with its delivery (key: the UTC fire time)."""
        runner = ScheduleRunner(
            observer,
            clock.resolve_scheduler(scheduler),
            seed=self.seed,
            spin=self.timer_spin,
            ticks=False,
        )
        self._runner = runner
        missed = dict(self._last_fired)
        for name, spec in self._plans.items():
            if name not in missed and isinstance(spec.plan, OncePlan):
                missed[name] = spec.plan.when_us - 1  # a one-shot already past is missed
        runner.add_many(
            [s for n, s in self._plans.items() if n not in self._paused_schedules], missed
        )

        def dispose() -> None:
            for name, stats in runner.stats.items():
                if stats.last_scheduled_us is not None:
                    self._last_fired[name] = max(
                        self._last_fired.get(name, stats.last_scheduled_us),
                        stats.last_scheduled_us,
                    )
            runner.dispose()
            if self._runner is runner:
                self._runner = None

        return Disposable(dispose)

    # -- the create step -------------------------------------------------------------

    def _overrides_create(self) -> bool:
        return type(self)._create_scheduled_job is not ScheduleTrigger._create_scheduled_job

    def _new_sink(self, scheduler: abc.SchedulerBase) -> JobSink:
        # A subclass's override becomes the sink's create step (the one retry loop).
        sink = super()._new_sink(scheduler)
        if self._overrides_create():
            sink.create_step = self._create_run
        return sink

    async def _create_run(self, request: JobRequest, metadata: dict[str, Any]) -> Job | None:
        """The sink's create step when a subclass overrides ``_create_scheduled_job``:
        the override, called with the run's schedule, inside the sink's retry loop."""
        name = metadata.get("schedule")
        config = self._configs.get(name) if isinstance(name, str) else None
        if config is None:
            raise ConfigurationError(
                f"schedule={name!r} was removed from trigger {self.name!r} before its run "
                f"{request.idempotency_key!r} was created; nothing to pass to "
                "_create_scheduled_job"
            )
        result = await self._create_scheduled_job(config)
        return result if isinstance(result, Job) else None  # the spec's return None

    async def _create_scheduled_job(self, config: ScheduleConfig) -> Job | None:
        """Create the job for one run of ``config`` (the spec's override hook).

        Not called by default: each run's request (with its key and provenance) is
        created by the sink. A subclass that overrides it replaces the sink's create
        step: the override is called once per run, and a run whose override raises is
        retried per ``retry``, then dead-lettered, like any job request. It may return
        ``None`` (the spec's examples do) or the ``Job`` it created.
        """
        return await self.job_creator.create_job(
            job_type=config.job_type,
            payload=config.payload,
            queue_name=config.queue_name,
            priority=config.priority,
        )

    # -- lifecycle hooks -------------------------------------------------------------

    async def _before_start(self) -> None:
        await self.job_creator.open()
        if self.schedule_store is not None:
            await self._reconcile(self.schedule_store)
        for name, (last, key) in (await self._last_runs_in_store(list(self._configs))).items():
            if last > self._last_fired.get(name, last - 1):
                self._last_fired[name] = last
            if key > self._overlap.previous.get(name, ""):
                self._overlap.previous[name] = key

    async def _after_start(self) -> None:
        await super()._after_start()
        if self.schedule_store is not None:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_store())

    async def _before_stop(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._last_write is not None:
            await asyncio.wait([self._last_write])
        await super()._before_stop()

    async def _last_runs_in_store(self, names: list[str]) -> dict[str, tuple[int, str]]:
        """The last run of each schedule in the job store, by its key: one lookup in the
        store's key index for all of them (``JobQueue.greatest_keys``) when the creator
        has a job queue, else one ``find_jobs`` per schedule."""
        prefixes = {self.key_prefix(name): name for name in names}
        queue = getattr(self.job_creator, "job_queue", None)
        found: dict[str, tuple[int, str]] = {}
        if isinstance(queue, JobQueue):
            for prefix, key in (await queue.greatest_keys(list(prefixes))).items():
                moment = _parse_key_time(key[len(prefix) :])
                if moment is not None:
                    found[prefixes[prefix]] = (moment, key)
            return found
        for prefix, name in prefixes.items():
            for job in await self.job_creator.find_jobs(key_prefix=prefix, limit=20):
                key = job.idempotency_key or ""
                moment = _parse_key_time(key[len(prefix) :])
                if moment is not None:
                    found[name] = (moment, key)
                    break
        return found

    # -- control ---------------------------------------------------------------------

    # ``pause()`` / ``resume()`` / ``paused`` / ``held`` are PipelineTrigger's, with the
    # same meaning on every trigger: runs keep firing and their job requests are held
    # (created, in order, on resume). To stop a schedule firing, pause the schedule.

    def pause_schedule(self, schedule: str) -> None:
        """Stop firing one schedule until :meth:`resume_schedule`.

        A paused schedule makes no runs, and the runs it would have made are not caught
        up on resume (unlike :meth:`pause`, which holds the runs' jobs). Works before
        ``start()`` too (the schedule then starts paused). Pausing a paused schedule
        does nothing. With a schedule store the pause is written to it, so every
        replica pauses the schedule within ``schedule_poll``.

        Raises:
            ConfigurationError: no schedule has this name.
        """
        config = self._config(schedule)
        self._pause_here(schedule)
        if self._stored_form(config) is not None:
            self._persist(lambda store: store.set_schedule_paused(self.name, schedule, True))

    def _pause_here(self, schedule: str) -> None:
        if schedule in self._paused_schedules:
            return
        self._paused_schedules.add(schedule)
        if self._runner is not None:
            self._runner.remove(schedule)
        logger.info("schedule_paused", trigger=self.name, schedule=schedule)

    def resume_schedule(self, schedule: str) -> bool:
        """Fire a paused schedule again, from now (missed runs are not caught up).

        With a schedule store the resume is written to it (every replica resumes).

        Returns:
            ``True`` if the schedule was paused, ``False`` if it was firing already.

        Raises:
            ConfigurationError: no schedule has this name.
        """
        config = self._config(schedule)
        if schedule not in self._paused_schedules:
            return False
        self._resume_here(schedule)
        if self._stored_form(config) is not None:
            self._persist(lambda store: store.set_schedule_paused(self.name, schedule, False))
        return True

    def _resume_here(self, schedule: str) -> None:
        if schedule not in self._paused_schedules:
            return
        self._paused_schedules.discard(schedule)
        if self._runner is not None:
            self._runner.add(self._plans[schedule])
        logger.info("schedule_resumed", trigger=self.name, schedule=schedule)

    @property
    def paused_schedules(self) -> list[str]:
        """Names of the schedules paused with :meth:`pause_schedule`, in schedule order."""
        return [name for name in self._configs if name in self._paused_schedules]

    def add_schedule(self, config: ScheduleConfig) -> None:
        """Add a schedule; it starts firing at once if the trigger runs (and, with a
        schedule store, on every replica within ``schedule_poll``).

        Raises:
            ConfigurationError: a schedule with this name exists.
        """
        form = self._stored_form(config) if self._store_live() else None
        spec = self._register(config)
        if self._runner is not None:
            self._runner.add(spec)
        logger.info("schedule_added", trigger=self.name, schedule=spec.name, when=config.when)
        if form is not None:
            self._persist(lambda store: store.save_schedule(self.name, spec.name, form))

    def update_schedule(self, config: ScheduleConfig) -> ScheduleConfig:
        """Replace the schedule named like ``config`` (``config.schedule_name``) and
        return the old config. It fires by the new config from now; runs keep their keys
        (``{trigger}:{schedule}:{fire time}``), so a run the old config already created
        is never created again. A paused schedule stays paused. With a schedule store
        the change is written to it (every replica applies it).

        Raises:
            ConfigurationError: no schedule has this name.
        """
        old = self._config(config.schedule_name)
        form = self._stored_form(config) if self._store_live() else None
        self._replace_here(config)
        if form is not None:
            name = config.schedule_name
            self._persist(lambda store: store.save_schedule(self.name, name, form))
        return old

    def _replace_here(self, config: ScheduleConfig) -> None:
        name = config.schedule_name
        old_config, old_plan = self._configs.pop(name), self._plans.pop(name)
        try:
            spec = self._register(config)
        except Exception:
            self._configs[name], self._plans[name] = old_config, old_plan
            raise
        if self._runner is not None:
            self._runner.remove(name)
            if name not in self._paused_schedules:
                self._runner.add(spec)
        logger.info("schedule_changed", trigger=self.name, schedule=name, when=config.when)

    def remove_schedule(self, schedule: str) -> ScheduleConfig:
        """Remove a schedule (it stops firing at once) and return its config. With a
        schedule store it is removed there too (on every replica).

        Raises:
            ConfigurationError: no schedule has this name.
        """
        config = self._config(schedule)
        self._remove_here(schedule)
        if self._stored_form(config) is not None:
            self._persist(lambda store: store.delete_schedule(self.name, schedule))
        return config

    def _remove_here(self, schedule: str) -> None:
        if self._runner is not None:
            self._runner.remove(schedule)
        del self._configs[schedule]
        del self._plans[schedule]
        self._paused_schedules.discard(schedule)
        logger.info("schedule_removed", trigger=self.name, schedule=schedule)

    # -- the schedule store ----------------------------------------------------------

    @staticmethod
    def _stored_form(config: ScheduleConfig) -> dict[str, Any] | None:
        """The config as the store keeps it (``model_dump(mode="json")``), or ``None``
        for a schedule with a ``calendar=`` object: no store can serialise one, so such a
        schedule lives in code only (this process; pausing it is local)."""
        if config.calendar is not None:
            return None
        return config.model_dump(mode="json")

    def _store_live(self) -> bool:
        """Changes are written to the store now (it is set and the trigger runs); before
        start they are written by the reconciliation."""
        return self.schedule_store is not None and self._poll_task is not None

    def _persist(self, write: Callable[[ScheduleStore], Awaitable[Any]]) -> None:
        """Write one local change to the store, after the changes before it (in order).

        A failed write is logged and counted (``health_details()["schedule_store"]``);
        the next poll brings this process back to what the store holds.
        """
        self._local_changes += 1
        store = self.schedule_store
        if store is None or not self._store_live():
            return
        previous = self._last_write

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await write(store)
            except Exception as exc:
                self._store_errors += 1
                logger.error("schedule_store_write_failed", trigger=self.name, error=repr(exc))

        self._last_write = asyncio.get_running_loop().create_task(run())

    async def sync_schedules(self) -> int:
        """Wait for this process's writes to reach the store, then apply every change
        made elsewhere since the last look (what each poll does). Returns the number of
        changes read. Does nothing without a schedule store.
        """
        store = self.schedule_store
        if store is None:
            return 0
        if self._last_write is not None:
            await asyncio.wait([self._last_write])
        changes = self._local_changes
        rows = await store.list_schedules(self.name, since=self._store_revision)
        if changes != self._local_changes:
            return 0  # changed here meanwhile: read again next time, after that write
        for row in rows:
            if self._own_rows.pop(row.name, None) != row.revision:  # not our own write
                self._apply_stored(row)
            self._store_revision = max(self._store_revision, row.revision)
        return len(rows)

    def _apply_stored(self, row: StoredSchedule, form: dict[str, Any] | None = None) -> None:
        """Make this process's schedule ``row.name`` what the store says (no write).

        ``form``: this process's config of the schedule as already serialised (the
        start-up's reconciliation has it), so it is not serialised again."""
        name = row.name
        local = self._configs.get(name)
        if local is not None and local.calendar is not None:  # code only (_stored_form)
            logger.warning(
                "schedule_store_row_ignored",
                trigger=self.name,
                schedule=name,
                reason="this process's schedule of that name has a calendar= object and "
                "lives in code only",
            )
            return
        if row.removed:
            if name in self._configs:
                self._remove_here(name)
            return
        if (
            name in self._configs
            and (form if form is not None else self._stored_form(self._configs[name])) == row.config
        ):
            pass
        else:
            try:
                config = ScheduleConfig.from_stored(row.config)
                if config.schedule_name != name:
                    raise ConfigurationError(
                        f"its config is named {config.schedule_name!r}, the row {name!r}"
                    )
            except (ValueError, ConfigurationError) as exc:
                self._store_errors += 1
                logger.error(
                    "schedule_store_row_invalid",
                    trigger=self.name,
                    schedule=name,
                    revision=row.revision,
                    error=str(exc),
                )
                return
            if name in self._configs:
                self._replace_here(config)
            else:
                spec = self._register(config)
                if self._runner is not None and not row.paused:
                    self._runner.add(spec)
                elif row.paused:
                    self._paused_schedules.add(name)
                logger.info("schedule_added", trigger=self.name, schedule=name, when=config.when)
        if row.paused:
            self._pause_here(name)
        else:
            self._resume_here(name)

    async def _reconcile(self, store: ScheduleStore) -> None:
        """At start: the code's schedules and the store's, made one (``reconcile``).

        A code schedule the store has never held (every schedule at a first start) is
        armed from the code at once and written to the store in the background, in one
        batch, before any later write of this process: start-up does not wait for (or
        serialise) a hundred thousand rows. The rest is decided here, before arming."""
        rows = {row.name: row for row in await store.list_schedules(self.name, since=0)}
        seen = max((row.revision for row in rows.values()), default=0)
        forms: dict[str, dict[str, Any]] = {}  # each code schedule serialised once
        writes: list[tuple[str, dict[str, Any], bool | None]] = []
        new: list[tuple[str, ScheduleConfig]] = []  # never stored: written in the background
        for name, config in list(self._configs.items()):
            if config.calendar is not None:  # code only (_stored_form)
                rows.pop(name, None)
                continue
            row = rows.get(name)
            if row is None:
                new.append((name, config))
                continue
            form = forms[name] = self._stored_form(config) or {}
            paused_here = name in self._paused_schedules
            if self.reconcile == "store_wins":
                if paused_here and not row.paused and not row.removed:
                    writes.append((name, row.config, True))
                continue
            if row.removed or row.config != form or (paused_here and not row.paused):
                writes.append((name, form, True if paused_here else None))
        for written in await store.save_schedules(self.name, writes) if writes else ():
            rows[written.name] = written
        for row in sorted(rows.values(), key=lambda r: r.revision):
            self._apply_stored(row, forms.get(row.name))
        if new:
            self._last_write = asyncio.get_running_loop().create_task(self._write_new(store, new))
        self._store_revision = seen  # our writes are read back once: no-ops
        logger.info(
            "schedule_store_reconciled",
            trigger=self.name,
            reconcile=self.reconcile,
            schedules=len(self._configs),
            paused=len(self._paused_schedules),
        )

    async def _write_new(self, store: ScheduleStore, new: list[tuple[str, ScheduleConfig]]) -> None:
        """Write the code schedules the store has never held (see :meth:`_reconcile`):
        in slices of ``_WRITE_SLICE`` (one ``save_schedules`` call each; SQLite: one
        transaction each), between which the loop runs, so the timer keeps firing on
        time while a hundred thousand rows are written. The rows are this process's own:
        the next poll reads them back without applying them again."""
        for start in range(0, len(new), _WRITE_SLICE):
            entries = [
                (
                    name,
                    self._stored_form(config) or {},
                    True if name in self._paused_schedules else None,
                )
                for name, config in new[start : start + _WRITE_SLICE]
            ]
            try:
                written = await store.save_schedules(self.name, entries)
            except Exception as exc:
                self._store_errors += 1
                logger.error("schedule_store_write_failed", trigger=self.name, error=repr(exc))
                return
            self._own_rows.update((row.name, row.revision) for row in written)
            await asyncio.sleep(0)

    async def _poll_store(self) -> None:
        scheduler = self.scheduler
        assert scheduler is not None
        while True:
            await clock.sleep(scheduler, self.schedule_poll)
            try:
                await self.sync_schedules()
            except Exception as exc:  # the store is down: keep the plan, look again
                self._store_errors += 1
                logger.warning("schedule_store_poll_failed", trigger=self.name, error=repr(exc))

    async def run_now(self, schedule: str) -> Job | None:
        """Run ``schedule`` once, now, outside its plan (a dashboard's "run now").

        The run goes down the trigger's own pipeline like a timer's run (overlap policy,
        sink: retries, dead letters, health, outcomes), with ``run_now: true`` in its
        metadata. Its key is ``{trigger}:{schedule}:+run-now:{UTC time}:{token}``
        (:func:`~portico_rx.pipeline.provenance.run_now_key`): never a fire time's key,
        so the next regular run is still created, and not taken for the schedule's last
        fire time after a restart. Each call makes its own run. A paused schedule can
        be run now; it stays paused.

        Returns:
            The run's job once created; ``None`` when the run created none: the
            trigger is paused (the run is held, created on resume) or the schedule's
            overlap policy dropped it.

        Raises:
            ConfigurationError: no schedule has this name. TriggerNotRunningError: the
                trigger is not running (a run goes through its pipeline).
        """
        self._config(schedule)
        runner = self._runner
        if runner is None:
            raise TriggerNotRunningError(
                f"trigger {self.name!r} is not running: start() it first (a run-now goes "
                "through its pipeline)"
            )
        key = run_now_key(key_time(runner.now_us()), uuid.uuid4().hex[:12])
        held = self.paused
        delivery = runner.run_now(self._plans[schedule], key)
        logger.info("schedule_run_now", trigger=self.name, schedule=schedule, key=key)
        if held or await delivery.wait_settled() is not Outcome.CREATED:
            return None
        found = await self.job_creator.find_jobs(
            key_prefix=schedule_key(self.name, schedule, key), limit=1
        )
        return found[0] if found else None

    async def backfill(
        self,
        schedule: str,
        start: datetime,
        end: datetime,
        *,
        dry_run: bool = False,
        max_runs: int = 10_000,
        on_progress: Progress | None = None,
    ) -> BackfillReport:
        """Create the runs of ``schedule`` in the past window ``[start, end)``.

        Each run gets its normal key (``{trigger}:{schedule}:{fire time}``) and goes down
        the trigger's own pipeline (delivery -> to_job -> the sink: retries, dead letters,
        health), with ``backfill: true`` in its metadata. Runs already in the store are
        left alone, so backfilling a window twice creates nothing new. The schedule's
        own ``start``/``end`` bound the window too; a paused schedule can be backfilled.

        Args:
            schedule: the schedule's name.
            start, end: the window; naive datetimes are local time in the schedule's
                zone. ``end`` may not be in the future.
            dry_run: only plan: which runs the window has and which already exist (the
                preview); works on a stopped trigger.
            max_runs: refuse a window with more runs than this (default 10,000).
            on_progress: ``on_progress(done, total)`` as runs are settled.

        Returns:
            A :class:`~portico_rx.schedule.backfill.BackfillReport` (``.runs``,
            ``.created``, ``.existing``, ``.failed``, ``.to_frame()``).

        Raises:
            ConfigurationError: unknown schedule, or ``max_runs`` exceeded.
            InvalidScheduleError: a bad window. TriggerNotRunningError: not started
                (without ``dry_run``).
        """
        self._config(schedule)
        spec = self._plans[schedule]
        low = to_micros(to_instant(start, spec.tz, "start"))
        high = to_micros(to_instant(end, spec.tz, "end"))
        check_backfill_window(from_micros(low), from_micros(high), self._now(None))
        if not dry_run and self._runner is None:
            raise TriggerNotRunningError(
                f"trigger {self.name!r} is not running: start() it first (a backfill's runs "
                "go through its pipeline), or pass dry_run=True for the preview"
            )
        bounded_low = low if spec.start_us is None else max(low, spec.start_us)
        bounded_high = high if spec.end_us is None else min(high, spec.end_us)
        nominals: list[int] = []
        for nominal in spec.plan.iter_from(bounded_low, bounded_high):
            if len(nominals) == max_runs:
                raise ConfigurationError(
                    f"the window {from_micros(low).isoformat()} .. {from_micros(high).isoformat()} "
                    f"of schedule {schedule!r} has more than max_runs={max_runs} runs: "
                    "backfill a shorter window or raise max_runs"
                )
            nominals.append(nominal)
        keys = [schedule_key(self.name, schedule, key_time(n)) for n in nominals]
        runs = planned_runs(nominals, keys, await existing_keys(self.job_creator, keys))
        report = BackfillReport(schedule, from_micros(low), from_micros(high), dry_run, runs)
        if not dry_run:
            await self._run_backfill(spec, report, on_progress)
        logger.info("schedule_backfill", trigger=self.name, summary=str(report))
        return report

    async def _run_backfill(
        self, spec: ScheduleSpec, report: BackfillReport, on_progress: Progress | None
    ) -> None:
        todo = [i for i, run in enumerate(report.runs) if not run.existed]
        done = 0
        for offset in range(0, len(todo), 500):  # bounded: the sink's queue stays small
            chunk = todo[offset : offset + 500]
            runner = self._runner
            if runner is None:
                raise TriggerNotRunningError(
                    f"trigger {self.name!r} stopped during the backfill of {spec.name!r}; "
                    f"{done} of {len(todo)} runs were settled: run it again to finish"
                )
            nominals = [to_micros(report.runs[i].scheduled_at) for i in chunk]
            deliveries = runner.backfill(spec, nominals)
            outcomes = await asyncio.gather(*(d.wait_settled() for d in deliveries))
            for index, outcome in zip(chunk, outcomes, strict=True):
                run = report.runs[index]
                failed = outcome is Outcome.FAILED
                report.runs[index] = dataclasses.replace(
                    run, outcome="failed" if failed else "created"
                )
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(todo))

    def _now(self, after: datetime | None) -> datetime:
        if after is not None:
            if after.tzinfo is None:
                raise InvalidScheduleError(f"after={after!r}: give a timezone-aware datetime")
            return after
        scheduler = self.scheduler
        if scheduler is not None:
            return clock.now(scheduler)
        return datetime.now(UTC)  # not started, no scheduler: the wall clock

    def upcoming(self, n: int = 5, *, after: datetime | None = None) -> dict[str, list[datetime]]:
        """The next ``n`` fire times of each schedule, from ``after`` (default: now).

        Times are tz-aware in each schedule's zone; paused schedules are included.
        """
        if n < 0:
            raise ConfigurationError(f"n={n!r}: use 0 or more")
        start = to_micros(self._now(after))
        result: dict[str, list[datetime]] = {}
        for name, spec in self._plans.items():
            low = start if spec.start_us is None else max(start, spec.start_us)
            times: list[datetime] = []
            for nominal in spec.plan.iter_from(low, spec.end_us):
                if len(times) >= n:
                    break
                times.append(from_micros(nominal).astimezone(spec.tz))
            result[name] = times
        return result

    def preview(self, start: datetime, end: datetime) -> pandas.DataFrame:
        """The jobs this trigger would create in ``[start, end)``; creates nothing.

        Returns:
            A DataFrame (columns ``scheduled_at``, ``job_type``, ``payload``,
            ``queue_name``, ``priority``, ``idempotency_key``, ``schedule``) sorted by
            time. Paused schedules are included (they are paused, not removed).
        """
        planned = [
            PlannedJob(
                schedule=name,
                plan=spec.plan,
                job_type=config.job_type,
                payload=config.payload,
                queue_name=config.queue_name,
                priority=config.priority,
                key_prefix=self.key_prefix(name),
                start_us=spec.start_us,
                end_us=spec.end_us,
            )
            for name, spec in self._plans.items()
            for config in (self._configs[name],)
        ]
        return preview_plans(planned, start, end)

    # -- health ----------------------------------------------------------------------

    def health_details(self) -> dict[str, Any]:
        runner = self._runner
        stats = runner.stats if runner is not None else {}
        next_due = [s.next_due_us for s in stats.values() if s.next_due_us is not None]
        details: dict[str, Any] = {
            "schedules": len(self._configs),
            "paused_schedules": self.paused_schedules,
            "held": self.held,
            "tz": self.tz,
            "misfire_grace_time": self.misfire.grace_time,
            "coalesce": self.misfire.coalesce,
            "max_catchup": self.misfire.max_catchup,
            "next_fire_at": from_micros(min(next_due)).isoformat() if next_due else None,
            "timer_wakeups": runner.timer.wakeups if runner is not None else 0,
            "misfires_skipped": sum(s.misfires_skipped for s in stats.values()),
            "misfires_dropped": sum(s.misfires_dropped for s in stats.values()),
            "schedule_store": None
            if self.schedule_store is None
            else {
                "store": type(self.schedule_store).__name__,
                "revision": self._store_revision,
                "poll_s": self.schedule_poll,
                "reconcile": self.reconcile,
                "errors": self._store_errors,
            },
        }
        if len(self._configs) <= 100:
            per_schedule: dict[str, Any] = {}
            for name, config in self._configs.items():
                stat = stats.get(name)
                last = stat.last_scheduled_us if stat is not None else None
                per_schedule[name] = {
                    "when": config.when,
                    "fired": stat.fired if stat else 0,
                    "caught_up": stat.caught_up if stat else 0,
                    "misfires_skipped": stat.misfires_skipped if stat else 0,
                    "misfires_dropped": stat.misfires_dropped if stat else 0,
                    "backfilled": stat.backfilled if stat else 0,
                    "run_now": stat.run_now if stat else 0,
                    "last_scheduled_at": from_micros(last).isoformat() if last else None,
                    "last_lateness_s": stat.last_lateness_s if stat else None,
                }
            for name, overlap in self._overlap.stats.items():
                if name in per_schedule:
                    per_schedule[name]["overlap"] = {
                        "policy": self._overlap_policy(name),
                        "skipped": overlap.skipped,
                        "buffered": overlap.buffered,
                        "cancelled": overlap.cancelled,
                    }
            details["per_schedule"] = per_schedule
        return details

    def __repr__(self) -> str:
        return (
            f"ScheduleTrigger(name={self.name!r}, state={self.state.value}, "
            f"schedules={len(self._configs)}, tz={self.tz!r}, "
            f"misfire_grace_time={self.misfire.grace_time!r}, "
            f"coalesce={self.misfire.coalesce!r}, max_catchup={self.misfire.max_catchup}, "
            f"jobs_created={self.counters.jobs_created})"
        )
