"""PipelineTrigger: any observable of job requests, run as a JobTrigger."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from reactivex import Observable
from reactivex.abc import DisposableBase, SchedulerBase
from reactivex.disposable import SerialDisposable

from portico_rx.errors import (
    ConfigurationError,
    MissingDependencyError,
    TriggerNotRunningError,
    TriggerStartError,
)
from portico_rx.logs import get_logger
from portico_rx.models import Job, RunState, TriggerHealth
from portico_rx.pipeline import clock, presentation, readiness
from portico_rx.pipeline.dead_letter import DeadLetter, discard, redrive
from portico_rx.pipeline.delivery import current_delivery
from portico_rx.pipeline.health import HealthCounters, job_store_health
from portico_rx.pipeline.lifecycle import Lifecycle
from portico_rx.pipeline.outcomes import DEFAULT_OUTCOMES_SIZE, OutcomeRecorder
from portico_rx.pipeline.retry import RetryPolicy, backoff
from portico_rx.pipeline.sink import (
    DEFAULT_MAX_PENDING,
    AlertHook,
    DeadLetterHook,
    JobSink,
    OverflowPolicy,
    StalePolicy,
    check_pending,
    check_staleness,
)
from portico_rx.pipeline.tracking import Tracker, TrackingScheduler, bind_tracker, unbind_tracker
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    dead_letter_store_of,
)
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_trigger import JobTrigger

if TYPE_CHECKING:  # what history() and outcomes() return (lists with to_frame())
    from portico_rx.frames import JobHistory, OutcomeList

__all__ = ["PipelineTrigger"]

logger = get_logger("portico_rx.pipeline")

_START_ERRORS = (TriggerStartError, ConfigurationError, MissingDependencyError)
"""What a source raises on its first subscription that retrying cannot fix: it fails
``start()`` instead of restarting forever."""


class PipelineTrigger(JobTrigger):
    """Run a pipeline (an observable ending in :func:`~portico_rx.to_job`) as a trigger.

    ``start()`` subscribes, ``stop()`` disposes and drains, ``is_running`` reflects the
    subscription. Every job request the pipeline emits is created through
    ``job_creator`` by a :class:`~portico_rx.pipeline.sink.JobSink`.

    Errors never end the trigger: a request that cannot be created is retried, then
    dead-lettered; a user function that raises inside an operator ends that
    subscription, so the trigger counts the error, dead-letters the event and
    subscribes again — at once if the pipeline had been delivering events, else after a
    backoff (``restart_delay`` doubling up to ``restart_max_delay``, in scheduler time).
    A source that completes is restarted the same way (``on_complete="restart"``) or
    stops the trigger (``on_complete="stop"``, for finite sources such as replays).

    Args:
        pipeline: the observable of job requests.
        job_creator: where jobs are created (a port; ``JobService`` or any other).
        name: the trigger's name: in logs, health, metadata and default idempotency keys.
            Replicas of one trigger must share it.
        scheduler: Rx scheduler for all time (default: ``AsyncIOScheduler`` on the loop).
        max_concurrency: concurrent ``create_job`` calls (default 16).
        retry: retry policy for ``create_job`` (default ``RetryPolicy()``: 5 attempts).
        stop_timeout: seconds ``stop()`` waits for creations in flight (default 30).
        connect_timeout: seconds ``start()`` waits for each connected source in the
            pipeline (a broker consumer, see :mod:`portico_rx.pipeline.readiness`) to
            connect and declare what it consumes (default 15); a source that fails or
            does not connect in time fails ``start()`` with ``TriggerStartError``.
        on_complete: ``"restart"`` (default) or ``"stop"`` when the source completes.
        restart_delay: first backoff before re-subscribing a failing source (default 0.5 s).
        restart_max_delay: cap on that backoff (default 30 s).
        alert: ``alert(level, message, context)``, called when a job could not be created.
        on_dead_letter: called with each :class:`~portico_rx.pipeline.dead_letter.DeadLetter`.
        dead_letter_store: where dead letters are stored durably, a
            :class:`~portico_rx.ports.dead_letter_store.DeadLetterStore` (default
            ``None``: the job creator's, e.g. ``JobService(SQLiteJobQueue(...))``'s
            queue; none when the creator offers none). The recent ones are also kept in
            memory (``dead_letters``); see :meth:`dead_letter_records` and
            ``docs/dead-letters.md``.
        history_size: how many recently created jobs ``history()`` keeps (default 100).
        strict_settlement: refuse an event that reaches ``to_job`` without a live delivery
            (a stock operator held it where the trigger cannot see, see
            :mod:`portico_rx.pipeline.tracking`) to the dead letters instead of creating
            its job (default ``False``: create it, warn and count it in health).
        max_pending: job requests held at once, queued or being created (default
            100,000: about 100 MB at ~1 KB a request). A request beyond that overflows
            per ``overflow``.
        overflow: ``"dead_letter"`` (default: the request is dead-lettered with stage
            ``"overflow"`` and its delivery nacked with requeue, so a broker redelivers
            it) or ``"drop"`` (dropped, its delivery nacked without requeue). Counted in
            ``get_health().details["sink"]["overflowed"]`` and logged once per burst
            (``sink_overflow`` … ``sink_overflow_ended``). A hot ``Subject`` cannot be
            back-pressured: this bound is what keeps its bursts in memory.
        max_age: the oldest an event may be when the trigger sees it (a ``timedelta`` or
            seconds; default ``None``: no limit), measured from the source's own time
            (broker publish time, webhook timestamp, file mtime, fire time; see
            ``lateness_s`` in each job's metadata). Older events are handled per
            ``stale`` and counted in ``get_health().stale_count``.
        stale: ``"dead_letter"`` (default: an event older than ``max_age`` is
            dead-lettered with stage ``"stale"``, its outcome ``stale``) or ``"create"``
            (its job is created anyway, with ``stale: true`` in its metadata).
        outcomes_size: how many recent event outcomes :meth:`outcomes` keeps (default
            1000; 0 keeps only the counts).
        outcome_log_level: the level of the one ``event_outcome`` line per event
            (``"debug"`` default, ``"info"``, ``"warning"``, or ``None`` for none),
            written when the standard ``logging`` logger ``portico_rx.outcomes`` is
            enabled for it when the trigger starts.
    """

    def __init__(
        self,
        pipeline: Observable[Any],
        job_creator: JobCreator,
        *,
        name: str,
        scheduler: SchedulerBase | None = None,
        max_concurrency: int = 16,
        retry: RetryPolicy | None = None,
        stop_timeout: float = 30.0,
        connect_timeout: float = 15.0,
        on_complete: Literal["restart", "stop"] = "restart",
        restart_delay: float = 0.5,
        restart_max_delay: float = 30.0,
        alert: AlertHook | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        history_size: int = 100,
        strict_settlement: bool = False,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: OverflowPolicy = "dead_letter",
        max_age: timedelta | float | None = None,
        stale: StalePolicy = "dead_letter",
        outcomes_size: int = DEFAULT_OUTCOMES_SIZE,
        outcome_log_level: str | None = "debug",
        dead_letter_store: DeadLetterStore | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"name={name!r}: give the trigger a non-empty name")
        if on_complete not in ("restart", "stop"):
            raise ConfigurationError(f"on_complete={on_complete!r}: use 'restart' or 'stop'")
        if not connect_timeout > 0:
            raise ConfigurationError(f"connect_timeout={connect_timeout!r}: use a positive number")
        if stop_timeout < 0 or restart_delay < 0 or restart_max_delay < 0:
            raise ConfigurationError(
                f"stop_timeout={stop_timeout!r}, restart_delay={restart_delay!r}, "
                f"restart_max_delay={restart_max_delay!r}: durations cannot be negative"
            )
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency={max_concurrency!r}: use 1 or more")
        check_pending(max_pending, overflow)
        check_staleness(max_age, stale)
        self.max_age = max_age
        self.stale: StalePolicy = stale
        self.recorder = OutcomeRecorder(name, size=outcomes_size, log_level=outcome_log_level)
        self.pipeline = pipeline
        self.job_creator = job_creator
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_pending = max_pending
        self.overflow: OverflowPolicy = overflow
        self.retry = retry or RetryPolicy()
        self.stop_timeout = stop_timeout
        self.connect_timeout = connect_timeout
        self.on_complete = on_complete
        self.restart_delay = restart_delay
        self.restart_max_delay = restart_max_delay
        self.alert = alert
        self.on_dead_letter = on_dead_letter
        if dead_letter_store is not None and not isinstance(dead_letter_store, DeadLetterStore):
            raise ConfigurationError(
                f"dead_letter_store={dead_letter_store!r} is not a DeadLetterStore: pass a "
                "job queue (SQLiteJobQueue, PostgresJobQueue, RedisJobQueue, MemoryJobQueue) "
                "or leave it None to use the job creator's"
            )
        self.dead_letter_store: DeadLetterStore | None = (
            dead_letter_store
            if dead_letter_store is not None
            else dead_letter_store_of(job_creator)
        )
        """Where dead letters are stored (``None``: in memory only)."""
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)
        self.recent_jobs: deque[Job] = deque(maxlen=history_size)
        self.counters = HealthCounters()
        self.strict_settlement = strict_settlement
        self.tracker = Tracker(name, strict=strict_settlement)
        self.tracker.recorder = self.recorder
        self._scheduler_arg = scheduler
        self._scheduler: SchedulerBase | None = None  # the tracking wrapper, once started
        self._lifecycle = Lifecycle.of(self, name, kind="trigger")
        self._sink: JobSink | None = None
        self._subscription = SerialDisposable()
        self._restart: DisposableBase | None = None
        self._generation = 0
        self._delivered_since_subscribe = False
        self._failures_in_a_row = 0
        self._start_error: BaseException | None = None
        self._starting = False
        self._paused = False
        self._held: list[Any] | None = None
        self._sources: list[Any] = []  # announced on subscribe (pipeline.readiness)

    # -- JobTrigger ------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._lifecycle.is_running

    @property
    def state(self) -> RunState:
        return self._lifecycle.state

    @property
    def scheduler(self) -> SchedulerBase | None:
        """The scheduler in use (``None`` before the first ``start()``)."""
        if self._scheduler is not None:
            return clock.base_scheduler(self._scheduler)
        return self._scheduler_arg

    async def start(self) -> None:
        await self._lifecycle.start()

    async def stop(self) -> None:
        await self._lifecycle.stop(self.stop_timeout)

    # -- the lifecycle's steps (see portico_rx.pipeline.lifecycle) ---------------------

    async def _on_start(self) -> None:
        await presentation.claim_name(self)
        logger.info("starting_trigger", trigger=self.name, trigger_type=type(self).__name__)
        await self._before_start()
        await self.job_creator.open()
        self.recorder.refresh_logging()
        self._scheduler = TrackingScheduler(
            clock.resolve_scheduler(self._scheduler_arg), self.tracker
        )
        self._sink = self._new_sink(self._scheduler)
        self._sink.start()

    def _new_sink(self, scheduler: SchedulerBase) -> JobSink:
        """The trigger's sink: its creator, retries, bounds, hooks and health."""
        return JobSink(
            self.job_creator,
            name=self.name,
            scheduler=scheduler,
            counters=self.counters,
            retry=self.retry,
            max_concurrency=self.max_concurrency,
            alert=self.alert,
            on_dead_letter=self.on_dead_letter,
            dead_letters=self.dead_letters,
            on_job=self.recent_jobs.append,
            max_pending=self.max_pending,
            overflow=self.overflow,
            recorder=self.recorder,
            max_age=self.max_age,
            stale=self.stale,
            dead_letter_store=self.dead_letter_store,
        )

    async def _on_running(self) -> None:
        self._start_error = None
        self._starting = True
        try:
            self._subscribe(initial=True)
            if self._start_error is None:
                await self._wait_sources_ready()
        finally:
            self._starting = False
        if self._start_error is not None:
            raise self._start_error
        await self._after_start()
        logger.info("trigger_started", trigger=self.name, is_running=self.is_running)

    async def _on_stopping(self) -> None:
        if self._sink is not None:
            self._release_held(self._sink.submit)
        await self._before_stop()
        self._unsubscribe()

    async def _on_drain(self) -> None:
        if self._sink is not None:
            await self._sink.join()

    async def _wait_sources_ready(self) -> None:
        """Each connected source of the pipeline has connected (or failed: its error is
        the start error), so ``start()`` reports what is wrong and nothing published
        after it returns is lost."""
        for source in list(self._sources):
            if not isinstance(source, readiness.ConnectedSource):
                continue
            ready = await source.wait_ready(self.connect_timeout)
            if self._start_error is not None:
                return
            if not ready:
                raise TriggerStartError(
                    f"{source!r} did not connect within connect_timeout="
                    f"{self.connect_timeout} s; check that the broker is running and the "
                    "URL is right, or raise connect_timeout"
                )

    async def _close_sources(self) -> None:
        """Wait until the connected sources have closed their connections."""
        sources, self._sources = self._sources, []
        for source in sources:
            if isinstance(source, readiness.ConnectedSource):
                await source.wait_closed(timeout=self.stop_timeout + 10)

    def _unsubscribe(self) -> None:
        self._generation += 1
        if self._restart is not None:
            self._restart.dispose()
            self._restart = None
        self.tracker.abandon(self._dispose_subscription)

    def _dispose_subscription(self) -> None:
        self._subscription.disposable = None

    async def _on_teardown(self) -> int:
        self._unsubscribe()
        unfinished = 0
        if self._sink is not None:
            unfinished = await self._sink.close()
            self._sink = None
        await self._after_stop()
        await self._close_sources()
        self.tracker.close()
        return unfinished

    def _lifecycle_stats(self) -> dict[str, Any]:
        return {"in_flight": self.counters.in_flight, "jobs_created": self.counters.jobs_created}

    def get_health(self) -> TriggerHealth:
        healthy = (
            self.is_running
            and self._failures_in_a_row == 0
            and self.counters.consecutive_failures < 3
        )
        details = self.health_details()
        untracked = self.tracker.untracked
        if untracked:
            details = {**details, "untracked_events": dict(untracked)}
        return self.counters.snapshot(
            name=self.name,
            state=self.state,
            healthy=healthy,
            details={
                **details,
                "sink": self._sink_details(),
                "dead_letters": self._dead_letter_details(),
            },
            job_store=job_store_health(self.job_creator),
            untracked=sum(untracked.values()),
            outcomes=self.recorder.summary(),
        )

    def _sink_details(self) -> dict[str, Any]:
        return {
            "max_pending": self.max_pending,
            "overflow": self.overflow,
            "overflowed": self.counters.overflowed,
        }

    def _dead_letter_details(self) -> dict[str, Any]:
        store = self.dead_letter_store
        return {
            "store": None if store is None else type(store).__name__,
            "stored": self.counters.dead_letters_stored,
            "unstored": self.counters.dead_letters_unstored,
        }

    # -- hooks for named triggers ----------------------------------------------------

    async def _before_start(self) -> None:
        """Check preconditions (paths, URLs) so ``start()`` fails with a clear error."""

    async def _after_start(self) -> None:
        """Runs once subscribed (e.g. serve an HTTP route)."""

    async def _before_stop(self) -> None:
        """Runs before the subscription is disposed."""

    async def _after_stop(self) -> None:
        """Runs after the sink drained (close connections)."""

    def health_details(self) -> dict[str, Any]:
        """Extra, trigger-specific fields for ``TriggerHealth.details``."""
        return {}

    # -- subscription and restarts -----------------------------------------------------

    def _subscribe(self, initial: bool = False) -> None:
        assert self._scheduler is not None
        generation = self._generation
        self._delivered_since_subscribe = False

        def on_next(item: Any) -> None:
            if generation != self._generation or self._sink is None:
                return
            self._delivered_since_subscribe = True
            self._failures_in_a_row = 0
            if not (self._paused and self._hold(item)):
                self._sink.submit(item)

        def on_error(error: Exception) -> None:
            if generation != self._generation:
                return
            if initial and self._starting and isinstance(error, _START_ERRORS):
                self._start_error = error
                return
            self._on_pipeline_error(error)

        def on_completed() -> None:
            if generation != self._generation:
                return
            self._on_pipeline_completed()

        token = bind_tracker(self.tracker)
        try:
            with readiness.collect() as announced:
                self._subscription.disposable = self.pipeline.subscribe(
                    on_next, on_error, on_completed, scheduler=self._scheduler
                )
        finally:
            unbind_tracker(token)
        self._sources += [s for s in announced if all(s is not k for k in self._sources)]

    def _on_pipeline_error(self, error: Exception) -> None:
        assert self._sink is not None and self._scheduler is not None
        # Rx disposes the failed subscription right after this callback: what its stock
        # operators still hold goes back to the source, it is not acked as dropped.
        self.tracker.abandoning = True
        asyncio.get_running_loop().call_soon(setattr, self.tracker, "abandoning", False)
        message = f"{type(error).__name__}: {error}"
        self.counters.record_error(message, clock.now(self._scheduler))
        suspects = self.tracker.suspects(current_delivery())
        for delivery in suspects:
            self._sink.dead_letter(
                stage="pipeline", error=message, claim=delivery.claim(), delivery=delivery
            )
        if not suspects and self._delivered_since_subscribe:
            self._sink.dead_letter(stage="pipeline", error=message)
        logger.error(
            "trigger_pipeline_error",
            trigger=self.name,
            error=str(error),
            error_type=type(error).__name__,
        )
        self._schedule_restart(reason="error")

    def _on_pipeline_completed(self) -> None:
        if self.on_complete == "stop":
            logger.info("trigger_source_completed", trigger=self.name)
            self._generation += 1
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
            return
        logger.warning("trigger_source_completed_unexpectedly", trigger=self.name)
        self._schedule_restart(reason="completed")

    def _schedule_restart(self, reason: str) -> None:
        assert self._scheduler is not None
        self._generation += 1
        self.counters.restarts += 1
        immediate = self._delivered_since_subscribe
        if immediate:
            self._failures_in_a_row = 0
            delay = 0.0
        else:
            self._failures_in_a_row += 1
            delay = backoff(self._failures_in_a_row, self.restart_delay, self.restart_max_delay)
        logger.info("trigger_restarting", trigger=self.name, reason=reason, delay_s=delay)
        self._subscription.disposable = None
        if delay == 0:
            self._subscribe()
            return

        def resubscribe(_scheduler: Any, _state: Any = None) -> None:
            self._restart = None
            if self.is_running:
                self._subscribe()

        self._restart = self._scheduler.schedule_relative(timedelta(seconds=delay), resubscribe)

    # -- conveniences ----------------------------------------------------------------

    def history(self) -> JobHistory:
        """Jobs this trigger created recently, oldest first (``history_size`` at most).

        A ``list`` of ``Job``; with the notebook package (``import portico_rx`` loads it)
        it shows as a table in Jupyter and has ``.to_frame()`` for pandas.
        """
        return presentation.job_history(self.recent_jobs)

    def outcomes(self, outcome: str | None = None, *, limit: int | None = None) -> OutcomeList:
        """What became of the events this trigger received recently, oldest first.

        One :class:`~portico_rx.pipeline.outcomes.EventOutcome` per event (``created``,
        ``duplicate``, ``dropped``, ``stale``, ``dead_lettered``, ``requeued``; see
        :mod:`portico_rx.pipeline.outcomes`), the last ``outcomes_size`` kept. Only
        ``outcome``'s kind when given; the last ``limit`` when given. With the notebook
        package it shows as a table in Jupyter and has ``.to_frame()`` for pandas.

        Raises:
            ConfigurationError: ``outcome`` is not an outcome kind.
        """
        return presentation.outcome_list(self.recorder.outcomes(outcome, limit=limit))

    # -- dead letters --------------------------------------------------------------

    def _letters(self) -> DeadLetterStore:
        if self.dead_letter_store is None:
            raise ConfigurationError(
                f"trigger {self.name!r} stores no dead letters (its job creator "
                f"{self.job_creator!r} offers no dead letter store): pass "
                "dead_letter_store=..., or create jobs through JobService over a job queue; "
                "the recent ones are in trigger.dead_letters"
            )
        return self.dead_letter_store

    async def dead_letter_records(
        self, *, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        """This trigger's stored dead letters, newest first (``status`` ``"open"`` by
        default; ``None`` for every status). They outlive the process, unlike
        :attr:`dead_letters`.

        Raises:
            ConfigurationError: the trigger has no dead letter store, or a bad filter.
        """
        return await self._letters().list_dead_letters(
            trigger=self.name, status=status, limit=limit
        )

    async def redrive_dead_letter(self, letter: DeadLetter | DeadLetterRecord | UUID) -> Job:
        """Create the job of a stored dead letter (one of :attr:`dead_letters` or
        :meth:`dead_letter_records`, or its id) through this trigger's job creator, with
        its original idempotency key, and mark it ``redriven``; redriving it again
        returns the same job (see :func:`portico_rx.pipeline.dead_letter.redrive`).

        Raises:
            ConfigurationError: no dead letter store; the letter is discarded or has no
                job request.
            DeadLetterNotFoundError: the store holds no such letter (yet: letters are
                written in the background; ``stop()`` waits for the writes).
        """
        letter_id = letter if isinstance(letter, UUID) else letter.id
        return await redrive(self._letters(), self.job_creator, letter_id)

    async def discard_dead_letter(
        self, letter: DeadLetter | DeadLetterRecord | UUID
    ) -> DeadLetterRecord:
        """Mark a stored dead letter ``discarded`` (no job is created).

        Raises:
            ConfigurationError: no dead letter store, or the letter is not open.
            DeadLetterNotFoundError: the store holds no such letter.
        """
        letter_id = letter if isinstance(letter, UUID) else letter.id
        return await discard(self._letters(), letter_id)

    def _repr_html_(self) -> str:
        return presentation.trigger_html(self)

    def widget(self, *, jobs: int = 10, refresh: float = 0.5) -> Any:
        """A live ipywidgets panel: status, counters, the last ``jobs`` jobs, buttons.

        See :class:`portico_rx.notebook.widget.TriggerPanel`.
        """
        return presentation.trigger_widget(self, jobs=jobs, refresh=refresh)

    # -- pause -------------------------------------------------------------------------
    #
    # Pause holds the job requests the pipeline emits instead of creating jobs; their
    # events stay unsettled (a queue message is not acked), so nothing is lost.
    # ``resume()`` creates the held jobs in order; ``stop()`` while paused creates them
    # before draining.

    @property
    def paused(self) -> bool:
        """Whether job requests are being held (see :meth:`pause`)."""
        return self._paused

    @property
    def held(self) -> int:
        """How many job requests are held while paused."""
        return len(self._held or ())

    def pause(self) -> None:
        """Hold new job requests instead of creating jobs, until :meth:`resume`.

        Raises:
            TriggerNotRunningError: the trigger is not running (start it first).
        """
        if not self.is_running:
            raise TriggerNotRunningError(
                f"trigger {self.name!r} is not running, so it cannot be paused; start it "
                "with `await trigger.start()` first"
            )
        if self._paused:
            return
        self._paused = True
        self._held = []
        logger.info("trigger_paused", trigger=self.name)

    def resume(self) -> int:
        """Create the held jobs (in order) and take new events again.

        Returns:
            How many held job requests were released.
        """
        if not self._paused:
            return 0
        self._paused = False
        released = self._release_held(self._sink.submit) if self._sink is not None else 0
        logger.info("trigger_resumed", trigger=self.name, released=released)
        return released

    def _hold(self, item: Any) -> bool:
        """Called for every pipeline item: ``True`` if it was held (paused)."""
        if not self._paused or self._held is None:
            return False
        self._held.append(item)
        return True

    def _release_held(self, submit: Callable[[Any], None]) -> int:
        """Un-pause and hand every held item to ``submit``; returns how many."""
        held, self._held = self._held or [], None
        self._paused = False
        for item in held:
            submit(item)
        return len(held)

    async def __aenter__(self) -> PipelineTrigger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        health = self.counters
        return (
            f"{type(self).__name__}(name={self.name!r}, state={self.state.value}, "
            f"jobs_created={health.jobs_created}, errors={health.errors}, "
            f"in_flight={health.in_flight})"
        )
