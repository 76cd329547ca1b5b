"""Overlap policies: what a schedule's new run does while its previous run's job is still
pending or running (Temporal's overlap policies, Kubernetes' concurrencyPolicy).

* ``allow`` (default): create it anyway;
* ``skip``: drop it (the run's delivery settles as dropped; counted and logged);
* ``buffer_one``: hold it until the previous job finishes, then create it; a further run
  arriving while one is held is dropped;
* ``buffer_all``: hold every such run, and create them one after another, each once the
  one before it has finished;
* ``cancel_other``: cancel the previous job if it has not finished, then create the new
  run at once: a job still waiting becomes ``CANCELLED`` (``JobQueue.cancel``: no worker
  runs it); a job a worker is running is marked failed in the store
  (``error="cancelled: ..."``), the worker itself is not interrupted.

The decision reads the previous run's job status from the job store, so it holds across
restarts and replicas sharing the store. The gate is an operator in the trigger's own
pipeline, in the documented form for operators that hold events: it claims the run's
delivery, decides asynchronously, and re-emits the run inside :func:`activate` (then to
``to_job`` and the sink, like every run) or resolves its claim as dropped.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.models import JobStatus
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Claim, Delivery, activate, current_delivery
from portico_rx.ports.job_queue import JobQueue

__all__ = ["OverlapGate", "OverlapPolicy", "OverlapStats"]

logger = get_logger("portico_rx.schedule.overlap")

OverlapPolicy = Literal["allow", "skip", "buffer_one", "buffer_all", "cancel_other"]
_UNFINISHED = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING})


@dataclass(slots=True)
class OverlapStats:
    """Per-schedule counts, shown in the trigger's health details."""

    skipped: int = 0
    buffered: int = 0
    cancelled: int = 0


class OverlapGate:
    """Decides each run of the schedules whose policy is not ``allow``.

    Args:
        job_creator: where the previous run's job is read (its ``job_queue`` by key, or
            ``find_jobs``; ``cancel_other`` needs a job queue).
        policy_of: the schedule's policy (``"allow"`` for unknown names).
        key_of: the job key of a run, from the schedule's name and the run's delivery.
        poll: seconds between looks at a held run's previous job (scheduler time).
    """

    def __init__(
        self,
        job_creator: Any,
        policy_of: Callable[[str], OverlapPolicy],
        key_of: Callable[[str, Delivery], str],
        poll: float,
    ) -> None:
        self.job_creator = job_creator
        self.policy_of = policy_of
        self.key_of = key_of
        self.poll = poll
        self.previous: dict[str, str] = {}  # schedule -> key of its last admitted run
        self.stats: dict[str, OverlapStats] = {}
        self._admitted_here: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._held: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the store -------------------------------------------------------------------

    def _queue(self) -> JobQueue | None:
        queue = getattr(self.job_creator, "job_queue", None)
        return queue if isinstance(queue, JobQueue) else None

    async def _job(self, key: str) -> Any:
        queue = self._queue()
        if queue is not None:
            return await queue.get_by_key(key)
        for job in await self.job_creator.find_jobs(key_prefix=key, limit=5):
            if job.idempotency_key == key:
                return job
        return None

    async def _busy(self, schedule: str) -> Any:
        """The previous run's job if it has not finished (or, admitted here, is not in
        the store yet), else ``None``."""
        key = self.previous.get(schedule)
        if key is None:
            return None
        job = await self._job(key)
        if job is None:
            return key if key in self._admitted_here else None
        return job if job.status in _UNFINISHED else None

    # -- the operator ----------------------------------------------------------------

    def __call__(self, runs: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            chosen = clock.resolve_scheduler(scheduler)

            def on_next(spec: Any) -> None:
                delivery = current_delivery()
                if delivery is None or self.policy_of(spec.name) == "allow":
                    observer.on_next(spec)
                    return
                claim = delivery.claim()
                task = asyncio.ensure_future(self._decide(spec, delivery, claim, observer, chosen))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            inner = runs.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

            def dispose() -> None:
                inner.dispose()
                for task in list(self._tasks):
                    task.cancel()

            return Disposable(dispose)

        return reactivex.create(subscribe)

    async def _decide(
        self,
        spec: Any,
        delivery: Delivery,
        claim: Claim,
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase,
    ) -> None:
        name = spec.name
        policy = self.policy_of(name)
        stats = self.stats.setdefault(name, OverlapStats())
        try:
            admit = await self._admit(name, policy, stats, scheduler, delivery)
        except asyncio.CancelledError:
            claim.resolve(False, requeue=True)
            logger.warning("schedule_overlap_held_run_dropped_on_stop", schedule=name)
            raise
        except Exception as exc:  # the store failed: create the run (the sink retries)
            logger.warning("schedule_overlap_check_failed", schedule=name, error=str(exc))
            admit = True
        if admit:
            key = self.key_of(name, delivery)
            self.previous[name] = key
            self._admitted_here.add(key)  # "not finished" until its delivery settles
            with activate(delivery):
                observer.on_next(spec)
        claim.resolve(True)
        if admit:  # created (then the store has it) or given up: no longer in flight
            delivery.add_done_callback(functools.partial(self._settled, key))

    def _settled(self, key: str, _delivery: Delivery) -> None:
        self._admitted_here.discard(key)

    async def _admit(
        self,
        name: str,
        policy: OverlapPolicy,
        stats: OverlapStats,
        scheduler: abc.SchedulerBase,
        delivery: Delivery,
    ) -> bool:
        lock = self._locks.setdefault(name, asyncio.Lock())
        if policy == "buffer_one" and self._held.get(name, 0) >= 1:
            stats.skipped += 1
            logger.info(
                "schedule_overlap_skipped",
                schedule=name,
                policy=policy,
                run=delivery.idempotency_key,
                reason="a run is already held",
            )
            return False
        buffering = policy.startswith("buffer")
        self._held[name] = self._held.get(name, 0) + buffering
        queued = buffering and lock.locked()  # held behind a run that is itself held
        if queued:
            stats.buffered += 1
        try:
            async with lock:  # runs of one schedule are decided in order
                busy = await self._busy(name)
                if busy is None:
                    return True
                if policy == "skip":
                    stats.skipped += 1
                    logger.info(
                        "schedule_overlap_skipped",
                        schedule=name,
                        policy=policy,
                        run=delivery.idempotency_key,
                        previous=self.previous[name],
                    )
                    return False
                if policy == "cancel_other":
                    await self._cancel(name, busy, stats)
                    return True
                stats.buffered += not queued
                logger.info(
                    "schedule_overlap_buffered",
                    schedule=name,
                    policy=policy,
                    run=delivery.idempotency_key,
                    previous=self.previous[name],
                )
                while await self._busy(name) is not None:
                    await clock.sleep(scheduler, self.poll)
                return True
        finally:
            self._held[name] -= buffering

    async def _cancel(self, name: str, busy: Any, stats: OverlapStats) -> None:
        queue = self._queue()
        if queue is None or isinstance(busy, str):
            logger.warning(
                "schedule_overlap_cancel_impossible",
                schedule=name,
                previous=self.previous[name],
                reason="no job queue, or no job yet",
            )
            return
        if busy.status in (JobStatus.PENDING, JobStatus.SCHEDULED):
            try:
                await queue.cancel(busy.id)
            except ConfigurationError:  # a worker claimed it meanwhile: it runs, fail it
                await self._fail_running(queue, name, busy)
        else:
            await self._fail_running(queue, name, busy)
        stats.cancelled += 1
        logger.info("schedule_overlap_cancelled", schedule=name, job_id=str(busy.id))

    @staticmethod
    async def _fail_running(queue: Any, name: str, busy: Any) -> None:
        await queue.fail(
            busy.id, f"cancelled: a newer run of schedule {name!r} started (overlap='cancel_other')"
        )
