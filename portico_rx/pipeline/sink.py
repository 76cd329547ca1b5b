"""JobSink: the end of every pipeline. Creates jobs, retries, settles, records health."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from reactivex.abc import SchedulerBase

from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobRequest, request_claim
from portico_rx.pipeline import clock
from portico_rx.pipeline.dead_letter import DeadLetter
from portico_rx.pipeline.delivery import Claim, Delivery
from portico_rx.pipeline.health import HealthCounters
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.outcomes import (
    DEAD_LETTERED,
    DROPPED,
    REQUEUED,
    STALE,
    OutcomeRecorder,
)
from portico_rx.pipeline.provenance import Provenance
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    dead_letter_store_of,
    letters_entry,
)
from portico_rx.ports.job_creator import CreatedJob, JobCreator, batch_entry, request_entry

__all__ = [
    "DEFAULT_MAX_PENDING",
    "LETTER_BATCH",
    "MAX_BATCH",
    "AlertHook",
    "CreateStep",
    "DeadLetterHook",
    "JobSink",
    "OverflowPolicy",
    "StalePolicy",
]

logger = get_logger("portico_rx.pipeline.sink")

AlertHook = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]
"""``alert(level, message, context)``, called when a job could not be created."""
DeadLetterHook = Callable[[DeadLetter], Awaitable[None] | None]
"""``on_dead_letter(dead_letter)``, called for every dead-lettered event."""
OverflowPolicy = Literal["dead_letter", "drop"]
"""What the sink does with a request that arrives while ``max_pending`` are pending."""
StalePolicy = Literal["dead_letter", "create"]
"""What the sink does with an event older than ``max_age``: dead-letter it (stage
``"stale"``) or create its job anyway (marked ``stale: true`` in its metadata)."""

MAX_BATCH = 64
"""Most queued requests one worker hands the creator in one batch (one store call).

Larger batches hold their jobs alive across more of CPython's young-generation
collections, which then promote them: at 256 a burst through the memory store cost ~10%
more CPU than one request at a time, at 64 ~10% less (bench_pipeline). Several workers'
batches of one instant still share one SQLite transaction (its group commit)."""
LETTER_BATCH = 256
"""Most dead letters the sink's writer hands its store in one ``add_dead_letters`` call."""
DEFAULT_MAX_PENDING = 100_000
"""Requests a sink holds (queued + being created) before it overflows (~1 KB each)."""
_OVERFLOW_POLICIES = ("dead_letter", "drop")
CreateStep = Callable[[JobRequest, dict[str, Any]], Awaitable[Job | None]]
"""``create(request, metadata)``: a trigger's own create step, called (and retried,
dead-lettered, counted) by the sink instead of ``job_creator.create_job``. It may return
``None`` when it has no ``Job`` to report (the spec's ``_create_scheduled_job`` override)."""


class _WorkQueue:
    """The sink's FIFO: ``asyncio.Queue`` (unbounded) minus its generic bookkeeping.

    The timer of a schedule trigger hands the sink hundreds of requests in one wake-up;
    each put and get here is a deque operation plus, only while workers wait, one future.
    """

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._joiners: list[asyncio.Future[None]] = []
        self._unfinished = 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._unfinished += 1
        if self._getters:
            self._wake_getter()

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def get_nowait(self) -> Any:
        return self._items.popleft()  # IndexError when empty, like QueueEmpty

    async def get(self) -> Any:
        items = self._items
        while not items:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
                if items and not getter.cancelled():
                    self._wake_getter()  # it was woken for an item it will not take
                raise
        return items.popleft()

    def task_done(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._unfinished = 0
            joiners, self._joiners = self._joiners, []
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished > 0:
            joiner = asyncio.get_running_loop().create_future()
            self._joiners.append(joiner)
            await joiner


class _JobLog:
    """The jobs created (or found: duplicates) in one loop iteration, as their log line
    tells them."""

    __slots__ = ("attempt", "duplicates", "first", "first_duplicate", "job_types", "last")

    def __init__(self, first: Job, attempt: int, duplicate: bool) -> None:
        self.first = first
        self.first_duplicate = duplicate
        self.attempt = attempt  # of ``first``: a line for one job says its attempt
        self.last: Job | None = None  # set once a second job joins the batch
        self.job_types = {first.job_type: 1}
        self.duplicates = 1 if duplicate else 0


def check_pending(max_pending: object, overflow: object) -> None:
    """Raise ``ConfigurationError`` for a bad ``max_pending`` or ``overflow``."""
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ConfigurationError(
            f"max_pending={max_pending!r}: use a whole number of requests, 1 or more "
            f"(default {DEFAULT_MAX_PENDING})"
        )
    if overflow not in _OVERFLOW_POLICIES:
        raise ConfigurationError(f"overflow={overflow!r}: use 'dead_letter' or 'drop'")


def check_staleness(max_age: object, stale: object) -> float | None:
    """``max_age`` in seconds (``None``: no limit); ``ConfigurationError`` if it or
    ``stale`` is bad."""
    if stale not in ("dead_letter", "create"):
        raise ConfigurationError(f"stale={stale!r}: use 'dead_letter' or 'create'")
    if max_age is None:
        return None
    if isinstance(max_age, timedelta):
        seconds = max_age.total_seconds()
    elif isinstance(max_age, int | float) and not isinstance(max_age, bool):
        seconds = float(max_age)
    else:
        raise ConfigurationError(
            f"max_age={max_age!r}: use a timedelta or a number of seconds (or None)"
        )
    if not seconds > 0:
        raise ConfigurationError(
            f"max_age={max_age!r}: use a positive age, e.g. timedelta(hours=1)"
        )
    return seconds


class JobSink:
    """Creates a job for each request it is given, with bounded concurrency and retries.

    ``submit`` is synchronous and never raises (it is called from Rx ``on_next``);
    ``max_concurrency`` workers call ``JobCreator.create_job``. ``await create(request)``
    runs the same creation in the caller's task, for a caller that waits for the job
    anyway (a webhook answering its HTTP request). A failing call is retried
    per ``retry`` (exponential backoff with jitter, sleeping in scheduler time);
    invalid requests (``ConfigurationError``) are not retried. A request out of retries
    calls ``alert``, is dead-lettered and its delivery is nacked. Created jobs resolve
    their delivery claim ``ok``.

    At most ``max_pending`` requests are pending (queued or being created). A request
    that arrives beyond that overflows, per ``overflow``:

    * ``"dead_letter"`` (default): it is dead-lettered with stage ``"overflow"`` and its
      delivery nacked with ``requeue=True``, so a broker redelivers it later;
    * ``"drop"``: it is dropped and its delivery nacked without requeue (a broker
      dead-letters or discards it per its own configuration).

    Either way the overflow is counted (``counters.overflowed``, in health as
    ``details["sink"]["overflowed"]``) and logged: ``sink_overflow`` when an overflow
    starts, ``sink_overflow_ended`` (with how many overflowed) when a request is accepted
    again. A broker source bounds itself (prefetch) long before this; a hot ``Subject``
    cannot be back-pressured, so for it this bound is the only one.
    ``create_step`` (settable per trigger, before the first request): a :data:`CreateStep`
    called instead of the creator, inside the same retry loop.

    Jobs are created through the creator's :meth:`~JobCreator.create_from_request`
    (:func:`~portico_rx.ports.job_creator.request_entry` says which one: a creator that
    overrides only ``create_job`` gets the spec's ``create_job`` call).

    Dead letters go to ``dead_letters`` (the recent ones, in memory) and, with a
    ``dead_letter_store`` (default: the creator's, see
    :func:`~portico_rx.ports.dead_letter_store.dead_letter_store_of`), are written there
    by the sink's one writer: a letter joins its queue, one task writes the queue in
    order, up to :data:`LETTER_BATCH` letters per ``add_dead_letters`` call (only the
    dead-letter path pays; :meth:`close` waits until the queue is written). A write
    that fails is logged (``dead_letter_not_stored``, with the letter), counted
    (``counters.dead_letters_unstored``) and the letter stays in memory.
    """

    def __init__(
        self,
        job_creator: JobCreator,
        *,
        name: str,
        scheduler: SchedulerBase,
        counters: HealthCounters,
        retry: RetryPolicy,
        max_concurrency: int = 16,
        alert: AlertHook | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        dead_letters: deque[DeadLetter] | None = None,
        on_job: Callable[[Job], None] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: OverflowPolicy = "dead_letter",
        create_step: CreateStep | None = None,
        recorder: OutcomeRecorder | None = None,
        max_age: timedelta | float | None = None,
        stale: StalePolicy = "dead_letter",
        dead_letter_store: DeadLetterStore | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency={max_concurrency!r}: use 1 or more")
        check_pending(max_pending, overflow)
        self.max_pending = max_pending
        self.overflow = overflow
        self._overflow_error = f"{max_pending} requests were pending (max_pending)"
        self._overflowing = 0
        self.job_creator = job_creator
        self.name = name
        self.scheduler = scheduler
        self.counters = counters
        self.retry = retry
        self.max_concurrency = max_concurrency
        self.alert = alert
        self.on_dead_letter = on_dead_letter
        self.dead_letters: deque[DeadLetter] = (
            dead_letters if dead_letters is not None else deque(maxlen=1000)
        )
        self.on_job = on_job
        self.dead_letter_store = (
            dead_letter_store
            if dead_letter_store is not None
            else dead_letter_store_of(job_creator)
        )
        # the dead-letter writer: letters not written yet, and the task writing them
        self._unwritten: deque[DeadLetter] = deque()
        self._writer: asyncio.Future[None] | None = None
        self.create_step = create_step
        self.recorder = recorder if recorder is not None else OutcomeRecorder(name, size=0)
        self.max_age_s = check_staleness(max_age, stale)
        self.stale = stale
        self._entry = request_entry(job_creator)
        self._many = batch_entry(job_creator)
        self._now = clock.reader(scheduler)
        self._queue = _WorkQueue()
        self._provenance = Provenance(name)
        self._workers: list[asyncio.Task[None]] = []
        self._hook_tasks: set[asyncio.Task[Any]] = set()
        self._cancelled = 0
        self._direct = 0  # creations running in callers' tasks (``create``)
        self._direct_idle: asyncio.Future[None] | None = None
        # The per-job log line is the hot path: bind once, and skip building its fields
        # when INFO is filtered out (configure logging before starting a trigger: each
        # start builds its sink).
        self._log = logger.bind(trigger=name)
        is_enabled_for = getattr(self._log, "is_enabled_for", None)
        self._log_jobs = True if is_enabled_for is None else bool(is_enabled_for(logging.INFO))
        self._job_log: _JobLog | None = None

    # -- intake (sync) -------------------------------------------------------------

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.ensure_future(self._work()) for _ in range(self.max_concurrency)
            ]

    def submit(self, item: JobRequest | EventFailed | Any) -> None:
        """Accept one pipeline item. Never raises."""
        counters = self.counters
        counters.events_seen += 1
        # ``type(...) is`` first: isinstance on a pydantic model class is an ABC check.
        if type(item) is JobRequest or isinstance(item, JobRequest):
            if counters.in_flight >= self.max_pending:
                self._overflow(item)
                return
            if self._overflowing:
                self._overflow_ended()
            counters.in_flight += 1
            self._queue.put_nowait(item)
        elif isinstance(item, EventFailed):
            self.counters.record_error(str(item), clock.now(self.scheduler))
            logger.error(
                "pipeline_event_failed",
                trigger=self.name,
                stage=item.stage,
                error=str(item.error),
                error_type=type(item.error).__name__,
            )
            self.dead_letter(
                stage=item.stage,
                error=f"{type(item.error).__name__}: {item.error}",
                event=item.event,
                claim=item.claim,
                delivery=item.claim.deliveries[0] if item.claim and item.claim.deliveries else None,
            )
        else:
            error = (
                f"the pipeline emitted {type(item).__name__} {item!r:.80}, not a JobRequest; "
                "end the pipeline with portico_rx.to_job(...)"
            )
            self.counters.record_error(error, clock.now(self.scheduler))
            logger.error("pipeline_emitted_non_request", trigger=self.name, error=error)
            self.dead_letter(stage="pipeline", error=error, event=item)

    def _overflow(self, request: JobRequest) -> None:
        self.counters.overflowed += 1
        self._overflowing += 1
        if self._overflowing == 1:
            logger.warning(
                "sink_overflow",
                trigger=self.name,
                max_pending=self.max_pending,
                policy=self.overflow,
            )
        claim, delivery = request_claim(request)
        if self.overflow == "drop":
            if claim is not None:
                self.recorder.watch_claim(claim)
                for each in claim.deliveries:
                    each.note_failure(DROPPED, "overflow", "dropped: max_pending reached")
                claim.resolve(False, requeue=False)
            else:
                self.recorder.record(DROPPED, stage="overflow", source="observable")
            return
        self.dead_letter(
            stage="overflow",
            error=self._overflow_error,
            request=request,
            claim=claim,
            delivery=delivery,
            requeue=True,
            log=False,
        )

    def _overflow_ended(self) -> None:
        logger.warning(
            "sink_overflow_ended",
            trigger=self.name,
            overflowed=self._overflowing,
            policy=self.overflow,
        )
        self._overflowing = 0

    async def create(self, request: JobRequest) -> Job | None:
        """Create ``request``'s job in the caller's task and return it.

        The same creation, retries, dead letters, settlement and health as a submitted
        request (``_create``), minus the hop through the work queue and a worker: for a
        caller that waits for the job anyway. ``drain`` waits for these creations too.

        Returns:
            The job, or ``None`` when it could not be created (it was dead-lettered and
            its delivery nacked).
        """
        self.counters.events_seen += 1
        self.counters.in_flight += 1
        self._direct += 1
        try:
            return await self._create(request)
        except asyncio.CancelledError:
            self._abandon(request)
            raise
        finally:
            self._direct -= 1
            idle = self._direct_idle
            if self._direct == 0 and idle is not None and not idle.done():
                idle.set_result(None)

    # -- draining ------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.counters.in_flight

    async def drain(self, timeout: float) -> int:
        """Wait (at most ``timeout`` s) for queued and running creations, then :meth:`close`.

        Returns:
            How many requests were still unfinished at ``timeout`` (see :meth:`close`).
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.join(), timeout)
        return await self.close()

    async def join(self) -> None:
        """Wait until every request is created or dead-lettered: the submitted ones and
        those running in a caller's task (``create``)."""
        await self._idle()

    async def close(self) -> int:
        """Stop the workers; abandon what is left.

        Returns:
            How many requests were unfinished: queued ones are cancelled, their
            deliveries nacked with ``requeue=True`` and dead-lettered as ``"stop"``;
            those running in a caller's task (``create``) finish there.
        """
        if self._overflowing:
            self._overflow_ended()
        unfinished = self._direct
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._queue.task_done()
            if isinstance(item, JobRequest):
                unfinished += 1
                self._abandon(item)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        self._flush_job_log()
        if self._hook_tasks:  # the hooks' tasks, and the dead-letter writer's
            await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        cancelled, self._cancelled = self._cancelled, 0
        return unfinished + cancelled

    async def _idle(self) -> None:
        await self._queue.join()
        while self._direct:
            self._direct_idle = asyncio.get_running_loop().create_future()
            await self._direct_idle
        self._direct_idle = None

    def _abandon(self, request: JobRequest) -> None:
        self.counters.in_flight -= 1
        claim, delivery = request_claim(request)
        self.dead_letter(
            stage="stop",
            error="the trigger stopped before the job was created",
            request=request,
            claim=claim,
            delivery=delivery,
            requeue=True,
        )

    # -- workers -------------------------------------------------------------------

    async def _work(self) -> None:
        """One worker: takes the next request, or (when the creator can create many at
        once, see :func:`~portico_rx.ports.job_creator.batch_entry`) every request queued
        behind it too, up to :data:`MAX_BATCH`, and creates them in one creator call."""
        queue = self._queue
        items = queue._items
        while True:
            request = items.popleft() if items else await queue.get()
            if items and self._many is not None and self.create_step is None:
                batch = [request]
                while items and len(batch) < MAX_BATCH:
                    batch.append(items.popleft())
                try:
                    await self._create_batch(batch)
                finally:
                    for _ in batch:
                        queue.task_done()
                continue
            try:
                await self._create(request)
            except asyncio.CancelledError:
                self._cancelled += 1
                self._abandon(request)
                queue.task_done()
                raise
            queue.task_done()

    async def _create_batch(self, batch: list[JobRequest]) -> None:
        """``_create`` for many requests: one creator call for their first attempt; each
        request that failed in it (alone, or with the whole call) goes through the one
        retry loop (``_retry``) on its own, at most ``max_concurrency`` at a time. Every
        request ends created or dead-lettered once; cancelled, the unfinished ones are
        abandoned (dead-lettered as ``"stop"``, requeued) as ``_work`` does for one."""
        assert self._many is not None
        claims: list[Claim | None] = []
        entries: list[tuple[JobRequest, dict[str, Any]]] = []
        for request in batch:
            claim, delivery = request_claim(request)
            metadata = self._prepare(request, claim, delivery)
            if metadata is not None:  # else: stale, dead-lettered already
                claims.append(claim)
                entries.append((request, metadata))
        if not entries:
            return
        batch = [request for request, _ in entries]
        done = [False] * len(batch)
        try:
            try:
                outcomes: list[CreatedJob | Exception] = await self._many(entries)
                if len(outcomes) != len(batch):
                    raise RuntimeError(
                        f"create_many_from_requests returned {len(outcomes)} outcomes "
                        f"for {len(batch)} requests"
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcomes = [exc] * len(batch)
            failed: list[int] = []
            at = self._now()  # when these jobs were created: one store call
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, BaseException):
                    failed.append(index)
                    continue
                done[index] = True
                self._created(outcome.job, outcome.created, claims[index], 1, batch[index], at)
            if failed:
                await self._retry_each(entries, outcomes, failed, done)
        except asyncio.CancelledError:
            for index, request in enumerate(batch):
                if not done[index]:
                    self._cancelled += 1
                    self._abandon(request)
            raise

    async def _retry_each(
        self,
        entries: list[tuple[JobRequest, dict[str, Any]]],
        outcomes: list[Any],
        failed: list[int],
        done: list[bool],
    ) -> None:
        slots = asyncio.Semaphore(self.max_concurrency)

        async def retry(index: int) -> None:
            request, metadata = entries[index]
            claim, delivery = request_claim(request)
            async with slots:
                await self._retry(request, metadata, outcomes[index], claim, delivery)
            done[index] = True

        await asyncio.gather(*(retry(index) for index in failed))

    def _prepare(
        self, request: JobRequest, claim: Claim | None, delivery: Delivery | None
    ) -> dict[str, Any] | None:
        """Before a request's first attempt: record its outcome when it settles, build its
        job's metadata; ``None`` when it is stale and was dead-lettered (``max_age``)."""
        if claim is not None:
            self.recorder.watch_claim(claim)
        metadata = self._provenance.metadata(
            request.job_type, request.metadata, request.idempotency_key, delivery
        )
        if (
            self.max_age_s is not None
            and delivery is not None
            and self._is_stale(request, metadata, claim, delivery)
        ):
            return None
        return metadata

    async def _create(self, request: JobRequest) -> Job | None:
        claim: Claim | None
        delivery: Delivery | None
        claim, delivery = request_claim(request)
        metadata = self._prepare(request, claim, delivery)
        if metadata is None:
            return None
        job: Job | None
        try:
            if self.create_step is None:  # the common case, without the indirection
                job, created = await self._entry(request, metadata)
            else:
                job, created = await self._stepped(request, metadata)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._retry(request, metadata, exc, claim, delivery)
        self._created(job, created, claim, 1, request)
        return job

    def _is_stale(
        self,
        request: JobRequest,
        metadata: dict[str, Any],
        claim: Claim | None,
        delivery: Delivery,
    ) -> bool:
        """Count an event older than ``max_age``; ``True`` if it was dead-lettered."""
        lateness = metadata.get("lateness_s", 0.0)
        max_age = self.max_age_s
        if max_age is None or lateness <= max_age:
            return False
        self.counters.stale += 1
        if self.stale == "create":
            Provenance.mark_stale(metadata)
            return False
        self.counters.in_flight -= 1
        self.dead_letter(
            stage="stale",
            error=f"the event was {lateness:.3f} s old when seen, over max_age={max_age:g} s",
            request=request,
            claim=claim,
            delivery=delivery,
            metadata=metadata,
        )
        return True

    def _call_creator(
        self, request: JobRequest, metadata: dict[str, Any]
    ) -> Awaitable[tuple[Job | None, bool | None]]:
        """An awaitable of ``(job, created)``: the creator's, or the create step's."""
        if self.create_step is not None:
            return self._stepped(request, metadata)
        return self._entry(request, metadata)

    async def _stepped(
        self, request: JobRequest, metadata: dict[str, Any]
    ) -> tuple[Job | None, bool | None]:
        assert self.create_step is not None
        return await self.create_step(request, metadata), None

    async def _retry(
        self,
        request: JobRequest,
        metadata: dict[str, Any],
        exc: Exception,
        claim: Claim | None,
        delivery: Delivery | None,
    ) -> Job | None:
        """After a failed first attempt: back off and try again, per the retry policy."""
        attempt = 1
        while True:
            permanent = isinstance(exc, ConfigurationError)
            if permanent or attempt >= self.retry.max_attempts:
                await self._give_up(request, metadata, exc, attempt, claim, delivery)
                return None
            self.counters.retries += 1
            delay = self.retry.delay(attempt)
            logger.warning(
                "job_creation_retry",
                trigger=self.name,
                job_type=request.job_type,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=str(exc),
            )
            await clock.sleep(self.scheduler, delay)
            attempt += 1
            try:
                job, created = await self._call_creator(request, metadata)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                exc = error
                continue
            self._created(job, created, claim, attempt, request)
            return job

    def _created(
        self,
        job: Job | None,
        created: bool | None,
        claim: Claim | None,
        attempt: int,
        request: JobRequest,
        at: datetime | None = None,
    ) -> None:
        """Count, settle and log a created job (``at``: when; default now)."""
        counters = self.counters
        counters.in_flight -= 1
        duplicate = created is False
        if duplicate:
            counters.record_duplicate()
        else:
            counters.record_job(self._now() if at is None else at)
        if claim is None:
            self._record_bare(job, duplicate, request)
        if job is None:  # a create step with no Job to report (see CreateStep)
            if claim is not None:
                claim.resolve(True, made=True)
            if self._log_jobs:
                self._log.info(
                    "job_created",
                    job_id=None,
                    job_type=request.job_type,
                    queue_name=request.queue_name,
                    attempt=attempt,
                )
            return
        if claim is not None:
            claim.resolve(True, job_id=str(job.id), existing=duplicate)
        if self._log_jobs:
            self._log_job(job, attempt, duplicate)
        if self.on_job is not None and not duplicate:
            self.on_job(job)

    def _record_bare(self, job: Job | None, duplicate: bool, request: JobRequest) -> None:
        """The outcome of a request that came without a delivery (see ``outcomes``)."""
        self.recorder.record(
            "duplicate" if duplicate else "created",
            seen_at=clock.now(self.scheduler),
            source=request.metadata.get("source", "observable"),
            job_id=str(job.id) if job is not None else None,
            key=request.idempotency_key,
        )

    def _log_job(self, job: Job, attempt: int, duplicate: bool = False) -> None:
        """Log ``job_created`` once the loop iteration that created ``job`` ends.

        A job created alone gets its own ``job_created`` line; jobs created in the same
        loop iteration (a burst over a fast store) share one ``jobs_created`` line with
        their count per job type, so a burst does not pay one rendered line per job.
        The batch keeps only what its line says (the first and last job, a count per
        job type), not every job: a burst of created jobs is not held alive until the
        iteration ends.
        """
        batch = self._job_log
        if batch is None:
            self._job_log = _JobLog(job, attempt, duplicate)
            asyncio.get_running_loop().call_soon(self._flush_job_log)
        else:
            batch.last = job
            counts = batch.job_types
            job_type = job.job_type
            counts[job_type] = counts.get(job_type, 0) + 1
            if duplicate:
                batch.duplicates += 1

    def _flush_job_log(self) -> None:
        batch, self._job_log = self._job_log, None
        if batch is None:
            return
        first, last = batch.first, batch.last
        if last is None:
            self._log.info(
                "job_duplicate" if batch.first_duplicate else "job_created",
                job_id=str(first.id),
                job_type=first.job_type,
                queue_name=first.queue_name,
                attempt=batch.attempt,
            )
            return
        total = sum(batch.job_types.values())
        self._log.info(
            "jobs_created",
            count=total - batch.duplicates,
            duplicates=batch.duplicates,
            job_types=batch.job_types,
            first_job_id=str(first.id),
            last_job_id=str(last.id),
        )

    async def _give_up(
        self,
        request: JobRequest,
        metadata: dict[str, Any],
        exc: Exception,
        attempts: int,
        claim: Claim | None,
        delivery: Delivery | None,
    ) -> None:
        self.counters.in_flight -= 1
        self.counters.consecutive_failures += 1
        error = f"{type(exc).__name__}: {exc}"
        self.counters.record_error(error, clock.now(self.scheduler))
        logger.error(
            "job_creation_failed",
            trigger=self.name,
            job_type=request.job_type,
            attempts=attempts,
            error=str(exc),
            idempotency_key=metadata.get("idempotency_key"),
        )
        if self.alert is not None:
            await self._call_hook(
                self.alert,
                "error",
                f"Failed to create job {request.job_type!r} from trigger {self.name!r}",
                {"error": error, "attempts": attempts, "job_type": request.job_type},
            )
        self.dead_letter(
            stage="create_job",
            error=error,
            request=request,
            claim=claim,
            delivery=delivery,
            attempts=attempts,
            metadata=metadata,
        )

    # -- dead letters --------------------------------------------------------------

    def dead_letter(
        self,
        *,
        stage: str,
        error: str,
        request: JobRequest | None = None,
        event: Any = None,
        claim: Claim | None = None,
        delivery: Delivery | None = None,
        requeue: bool = False,
        attempts: int = 0,
        log: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> DeadLetter:
        """Record a dead letter, nack its delivery, store it and call ``on_dead_letter``.

        ``metadata``: the job's metadata when the sink built it already (else it is
        built here, from the request and the delivery). ``log=False`` skips the
        per-letter log line (an overflow logs once per burst).
        """
        if metadata is None:
            if request is not None:
                metadata = self._provenance.metadata(
                    request.job_type, request.metadata, request.idempotency_key, delivery
                )
            elif delivery is not None and delivery.attributes:
                metadata = dict(delivery.attributes)
        if event is None and delivery is not None:
            event = delivery.event
        letter = DeadLetter(
            trigger=self.name,
            stage=stage,
            error=error,
            at=clock.now(self.scheduler),
            request=request,
            event=event,
            source=delivery.source if delivery else None,
            event_id=delivery.event_id if delivery else None,
            attempts=attempts,
            provenance=metadata or {},
            requeued=requeue,
        )
        self.counters.dead_lettered += 1
        self.dead_letters.append(letter)
        if self.dead_letter_store is not None:
            self._unwritten.append(letter)
            if self._writer is None or self._writer.done():  # (done: cancelled unstarted)
                self._writer = self._background(self._write_letters(self.dead_letter_store))
        # the event's outcome: given back to its source (stop, overflow), else dead
        kind = STALE if stage == "stale" else (REQUEUED if requeue else DEAD_LETTERED)
        if claim is not None:
            self.recorder.watch_claim(claim)
            for each in claim.deliveries:
                each.note_failure(kind, stage, error)
            claim.resolve(False, requeue=requeue)
        elif delivery is None or delivery.settled:
            self.recorder.record(kind, seen_at=letter.at, stage=stage, error=error)
        if log:
            logger.warning(
                "event_dead_lettered",
                trigger=self.name,
                stage=stage,
                error=error,
                source=letter.source,
                event_id=letter.event_id,
                dead_letter_id=str(letter.id),
            )
        if self.on_dead_letter is not None:
            result = self._safe_call(self.on_dead_letter, letter)
            if inspect.isawaitable(result):
                self._background(result)
        return letter

    def _background(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``work`` (a hook, the dead-letter writer) as a task :meth:`close` waits for."""
        task = asyncio.ensure_future(work)
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)
        return task

    async def _write_letters(self, store: DeadLetterStore) -> None:
        """The dead-letter writer: write the queued letters to ``store`` in order, up to
        :data:`LETTER_BATCH` per call, until none is left (then the next letter starts
        it again). Each letter's record is built here, when it is written."""
        unwritten = self._unwritten
        add_many = letters_entry(store)
        try:
            while unwritten:
                batch = [unwritten.popleft() for _ in range(min(len(unwritten), LETTER_BATCH))]
                await self._write_batch(store, add_many, batch)
                await asyncio.sleep(0)  # a store that never waits must not hold the loop
        finally:
            self._writer = None

    async def _write_batch(
        self,
        store: DeadLetterStore,
        add_many: Callable[[list[DeadLetterRecord]], Awaitable[Any]],
        batch: list[DeadLetter],
    ) -> None:
        """Write ``batch`` in one call; if that fails, each letter again on its own
        (adding a stored id again keeps it), so each one is counted stored or not stored
        as it is. A failure is logged and counted, and the letter stays in memory
        (``dead_letters``)."""
        letters: list[DeadLetter] = []
        records: list[DeadLetterRecord] = []
        for letter in batch:
            try:
                records.append(letter.record())
            except Exception as exc:
                self._not_stored(letter, exc)
            else:
                letters.append(letter)
        if not records:
            return
        try:
            await add_many(records)
        except Exception as exc:
            if len(records) == 1:
                self._not_stored(letters[0], exc)
                return
        else:
            self.counters.dead_letters_stored += len(records)
            return
        for letter, record in zip(letters, records, strict=True):
            try:
                await store.add_dead_letter(record)
            except Exception as exc:
                self._not_stored(letter, exc)
            else:
                self.counters.dead_letters_stored += 1

    def _not_stored(self, letter: DeadLetter, exc: Exception) -> None:
        self.counters.dead_letters_unstored += 1
        logger.error(
            "dead_letter_not_stored",
            trigger=self.name,
            dead_letter_id=str(letter.id),
            stage=letter.stage,
            error=letter.error,
            store_error=f"{type(exc).__name__}: {exc}",
            source=letter.source,
            event_id=letter.event_id,
            idempotency_key=letter.provenance.get("idempotency_key"),
            request=None if letter.request is None else letter.request.model_dump(),
        )

    def _safe_call(self, hook: Callable[..., Any], *args: Any) -> Any:
        try:
            return hook(*args)
        except Exception as exc:
            logger.error("trigger_hook_failed", trigger=self.name, error=str(exc))
            return None

    async def _call_hook(self, hook: Callable[..., Any], *args: Any) -> None:
        result = self._safe_call(hook, *args)
        if inspect.isawaitable(result):
            try:
                await result
            except Exception as exc:
                logger.error("trigger_hook_failed", trigger=self.name, error=str(exc))
