"""JobWorker: runs handlers for the jobs in a JobQueue, with bounded concurrency and retries."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from portico_rx.adapters.job_queue.base import check_queue_names
from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.models import Job, RunState, utcnow
from portico_rx.pipeline import instrument
from portico_rx.pipeline.lifecycle import Lifecycle
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.job_handler import JobHandler
from portico_rx.ports.job_queue import JobQueue

__all__ = ["HandlerFunction", "JobWorker", "WorkerHealth"]

logger = get_logger("portico_rx.worker")

HandlerFunction = Callable[[Job], Any]
"""A handler given as a function: ``async def handle(job) -> result`` (or a plain
function, which runs in a thread so it cannot block the event loop)."""


class WorkerHealth(BaseModel):
    """A worker's counters and state, as returned by :meth:`JobWorker.get_health`."""

    model_config = ConfigDict(frozen=True)

    name: str
    state: RunState
    is_running: bool
    healthy: bool
    concurrency: int
    in_flight: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    retries_scheduled: int = 0
    errors_count: int = 0
    last_job_finished: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class JobWorker:
    """Takes jobs from ``job_queue`` and runs the handler registered for their type.

    * At most ``concurrency`` jobs run at once.
    * A handler that raises fails the attempt: the job is rescheduled after a backoff
      (``retry``) while it has retries left (``job.max_retries``), then marked failed.
    * A job whose type has no handler is marked failed at once with an error that names
      the type and the registered ones.
    * ``stop()`` takes no new jobs and waits up to ``stop_timeout`` for running ones;
      those still running then are cancelled and rescheduled to run again at once.

    It mirrors the trigger lifecycle (``start()``, ``stop()``, ``is_running``,
    ``get_health()``), but consumes jobs instead of creating them.

    Args:
        job_queue: where jobs are taken from (``SQLiteJobQueue``, ``MemoryJobQueue`` …).
        handlers: ``{job_type: handler}``; a handler is a
            :class:`~portico_rx.ports.job_handler.JobHandler`, an ``async def (job)``
            function, or a plain function (run in a thread). Its return value becomes the
            job's ``result`` (JSON values).
        queue_names: queues to take jobs from (default ``None``: every queue, by
            priority then age, so the jobs of a trigger with its own default queue, such
            as ``FileTrigger``'s ``file_processing``, are never left pending).
        concurrency: jobs running at once (default 4).
        retry: backoff between attempts of a failing job (default
            ``RetryPolicy(initial_delay=1, max_delay=300)``); how many attempts a job
            gets is its own ``max_retries`` + 1.
        poll_interval: most seconds between looks at an empty queue (default 0.5;
            queues that signal new work wake the worker sooner).
        job_timeout: seconds one attempt may run before it fails (default: no limit).
        stop_timeout: seconds ``stop()`` waits for running jobs (default 30).
        name: the worker's name in logs and health (default ``"worker"``).

    Raises:
        ConfigurationError: an argument is invalid (at construction).

    Example:
        >>> async def send_email(job):  # doctest: +SKIP
        ...     return {"sent_to": job.payload["user"]}
        >>> worker = JobWorker(queue, {"email.welcome": send_email})  # doctest: +SKIP
        >>> await worker.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        job_queue: JobQueue,
        handlers: Mapping[str, JobHandler | HandlerFunction],
        *,
        queue_names: Sequence[str] | None = None,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        poll_interval: float = 0.5,
        job_timeout: float | None = None,
        stop_timeout: float = 30.0,
        name: str = "worker",
    ) -> None:
        if not isinstance(handlers, Mapping):
            raise ConfigurationError(
                f"handlers={handlers!r}: use a dict of job_type -> handler, "
                "e.g. {'email.send': send_email}"
            )
        for job_type, handler in handlers.items():
            if not (isinstance(handler, JobHandler) or callable(handler)):
                raise ConfigurationError(
                    f"handlers[{job_type!r}]={handler!r}: use a JobHandler or an async "
                    "function taking the job"
                )
        if concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency!r}: use 1 or more")
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval={poll_interval!r}: use a positive number")
        if job_timeout is not None and job_timeout <= 0:
            raise ConfigurationError(f"job_timeout={job_timeout!r}: use a positive number")
        if stop_timeout < 0:
            raise ConfigurationError(f"stop_timeout={stop_timeout!r}: use 0 or more seconds")
        self.job_queue = instrument.hooks.wrap_store(job_queue)  # timed under telemetry
        self.handlers: dict[str, JobHandler | HandlerFunction] = dict(handlers)
        self.queue_names = check_queue_names(queue_names)
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy(initial_delay=1.0, max_delay=300.0)
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.stop_timeout = stop_timeout
        self.name = name
        self._lifecycle = Lifecycle.of(self, name, kind="worker")
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], Job] = {}
        self._slots: asyncio.Semaphore | None = None
        self._stopping: asyncio.Event | None = None
        self._completed = 0
        self._failed = 0
        self._retries = 0
        self._errors = 0
        self._dequeue_failures = 0
        self._last_finished: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"JobWorker(name={self.name!r}, state={self.state.value}, "
            f"completed={self._completed}, failed={self._failed}, in_flight={len(self._running)})"
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._lifecycle.is_running

    @property
    def state(self) -> RunState:
        return self._lifecycle.state

    async def start(self) -> None:
        """Open the queue and start taking jobs. A second call logs and does nothing.

        Raises:
            QueueUnavailableError: the queue cannot be opened; the worker stays stopped.
        """
        await self._lifecycle.start()

    async def stop(self) -> None:
        """Stop taking jobs; wait up to ``stop_timeout`` for running ones. Idempotent.

        Jobs still running at the timeout are cancelled and rescheduled (``fail`` with
        ``retry_at`` = now), so another worker picks them up.
        """
        await self._lifecycle.stop(self.stop_timeout)

    # -- the lifecycle's steps (see portico_rx.pipeline.lifecycle) ---------------------

    async def _on_start(self) -> None:
        await self.job_queue.open()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._stopping = asyncio.Event()
        self._dispatcher = asyncio.ensure_future(self._dispatch())

    async def _on_running(self) -> None:
        logger.info(
            "worker_started",
            worker=self.name,
            queue_names=list(self.queue_names) if self.queue_names is not None else "every queue",
            job_types=sorted(self.handlers),
            concurrency=self.concurrency,
        )

    async def _on_stopping(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _on_drain(self) -> None:
        # asyncio.wait: a cancelled drain (the stop timeout) cancels neither the
        # dispatcher nor the jobs; the teardown does, and reschedules the jobs
        if self._dispatcher is not None:
            await asyncio.wait({self._dispatcher})
        if self._running:
            await asyncio.wait(set(self._running))

    async def _on_teardown(self) -> int:
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None and not dispatcher.done():
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
        pending = set(self._running)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    def _lifecycle_stats(self) -> dict[str, Any]:
        return {
            "in_flight": len(self._running),
            "jobs_completed": self._completed,
            "jobs_failed": self._failed,
        }

    async def run_until_idle(self, timeout: float = 60.0) -> int:
        """Process due jobs until none is left, then return how many finished.

        For scripts, tests and notebooks: no background task, no polling. Uses the same
        concurrency, retry and failure rules as a started worker (a job rescheduled into
        the future is left for later).
        """
        finished_before = self._completed + self._failed + self._retries
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def drain() -> None:
            while True:
                await slots.acquire()
                job = await self.job_queue.dequeue(self.queue_names)
                if job is None:
                    slots.release()
                    if not tasks:
                        return
                    await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
                    continue
                task = asyncio.ensure_future(self._run_job(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t: slots.release())

        await asyncio.wait_for(drain(), timeout)
        return self._completed + self._failed + self._retries - finished_before

    def get_health(self) -> WorkerHealth:
        """Counters and state; cheap and synchronous."""
        running = self.is_running
        return WorkerHealth(
            name=self.name,
            state=self.state,
            is_running=running,
            healthy=running and self._dequeue_failures == 0,
            concurrency=self.concurrency,
            in_flight=len(self._running),
            jobs_completed=self._completed,
            jobs_failed=self._failed,
            retries_scheduled=self._retries,
            errors_count=self._errors,
            last_job_finished=self._last_finished,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    async def __aenter__(self) -> JobWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- the loop --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        assert self._slots is not None and self._stopping is not None
        stopping = self._stopping
        while not stopping.is_set():
            await self._slots.acquire()
            if stopping.is_set():
                self._slots.release()
                return
            try:
                job = await self.job_queue.dequeue(self.queue_names)
            except Exception as exc:
                self._slots.release()
                self._dequeue_failures += 1
                self._record_error(f"dequeue: {type(exc).__name__}: {exc}")
                delay = self.retry.delay(self._dequeue_failures)
                logger.error("worker_dequeue_failed", worker=self.name, error=str(exc))
                await self._pause(delay)
                continue
            self._dequeue_failures = 0
            if job is None:
                self._slots.release()
                await self._pause(self.poll_interval, wake_on_work=True)
                continue
            task = asyncio.ensure_future(self._run_job(job))
            self._running[task] = job
            task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if self._slots is not None:
            self._slots.release()

    async def _pause(self, seconds: float, *, wake_on_work: bool = False) -> None:
        assert self._stopping is not None
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stopping.wait())]
        if wake_on_work:
            waiters.append(asyncio.ensure_future(self.job_queue.wait_for_jobs(seconds)))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    # -- one job ---------------------------------------------------------------------

    async def _call_handler(self, handler: JobHandler | HandlerFunction, job: Job) -> Any:
        if isinstance(handler, JobHandler):
            call: Awaitable[Any] = handler.handle(job)
        elif inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        ):
            call = handler(job)
        else:
            call = asyncio.to_thread(handler, job)

        async def invoke() -> Any:
            result = await call
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                result = await result
            return result

        run: Awaitable[Any] = invoke()
        traced = instrument.hooks.job  # a span around the handler (portico_rx.telemetry)
        if traced is not None:
            run = traced(job, self.name, run)
        if self.job_timeout is not None:
            return await asyncio.wait_for(run, self.job_timeout)
        return await run

    async def _run_job(self, job: Job) -> None:
        log = logger.bind(worker=self.name, job_id=str(job.id), job_type=job.job_type)
        handler = self.handlers.get(job.job_type)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            error = (
                f"no handler for job_type {job.job_type!r} (registered: {known}); "
                "add it to JobWorker(handlers={...})"
            )
            await self._settle(job, log, error=error, permanent=True)
            return
        log.info("job_started", attempt=job.attempts)
        try:
            result = await self._call_handler(handler, job)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.job_queue.fail(
                    job.id, "the worker stopped before the job finished", retry_at=utcnow()
                )
            log.warning("job_interrupted", attempt=job.attempts)
            raise
        except TimeoutError:
            await self._settle(
                job, log, error=f"TimeoutError: the job ran longer than {self.job_timeout}s"
            )
            return
        except Exception as exc:
            await self._settle(job, log, error=f"{type(exc).__name__}: {exc}")
            return
        try:
            await self.job_queue.complete(job.id, result)
        except ConfigurationError as exc:  # e.g. a result that is not JSON
            await self._settle(job, log, error=str(exc), permanent=True)
            return
        except Exception as exc:
            self._record_error(f"complete: {type(exc).__name__}: {exc}")
            log.error("job_complete_failed", error=str(exc))
            return
        self._completed += 1
        self._last_finished = utcnow()
        log.info("job_completed", attempt=job.attempts)

    async def _settle(self, job: Job, log: Any, *, error: str, permanent: bool = False) -> None:
        self._record_error(error)
        retry = not permanent and job.attempts <= job.max_retries
        try:
            if retry:
                delay = self.retry.delay(max(1, job.attempts))
                retry_at = utcnow() + timedelta(seconds=delay)
                await self.job_queue.fail(job.id, error, retry_at=retry_at)
                self._retries += 1
                log.warning(
                    "job_retry_scheduled",
                    attempt=job.attempts,
                    max_retries=job.max_retries,
                    delay_s=round(delay, 3),
                    error=error,
                )
            else:
                await self.job_queue.fail(job.id, error)
                self._failed += 1
                self._last_finished = utcnow()
                log.error("job_failed", attempts=job.attempts, error=error)
        except Exception as exc:
            log.error("job_fail_record_failed", error=str(exc))

    def _record_error(self, error: str) -> None:
        self._errors += 1
        self._last_error = error
        self._last_error_at = utcnow()
