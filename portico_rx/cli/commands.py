"""The ``portico-rx`` subcommands, as async functions returning an exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from portico_rx.cli.app_file import AppFile, check_app_path, load_app_file
from portico_rx.cli.status import status_table
from portico_rx.cli.store import job_queue_for, parse_store
from portico_rx.cli.tables import listing
from portico_rx.errors import ConfigurationError, TriggerStartError
from portico_rx.kits.job.job_service import JobService
from portico_rx.kits.job.worker import JobWorker
from portico_rx.logs import get_logger
from portico_rx.models import JobStatus
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.job_trigger import JobTrigger

__all__ = ["cancel_job", "list_jobs", "run_app", "run_worker"]

logger = get_logger("portico_rx.cli")


# -- waiting for the end -------------------------------------------------------------


class _Shutdown:
    """SIGINT/SIGTERM, owned by the command from its first line.

    A signal that arrives while triggers or the web server are still starting is kept:
    the command finishes starting, then stops gracefully. A second signal falls through
    to Python (forced exit).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.reason = "duration"
        for sig in self.SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, signum: signal.Signals) -> None:
        self.reason = signum.name
        self._event.set()
        self.remove()

    def remove(self) -> None:
        """Give the signals back to Python."""
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)

    async def wait(self, duration: float | None, also: asyncio.Future[Any] | None) -> str:
        """Wait for a signal, ``duration`` seconds, or ``also`` to finish; say which."""
        stopper = asyncio.ensure_future(self._event.wait())
        waiters: set[asyncio.Future[Any]] = {stopper}
        if also is not None:
            waiters.add(also)
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            self.remove()
        if also is not None and also in done:
            return "server_exited"
        if self._event.is_set():
            logger.info(
                "shutdown_requested", signal=self.reason, hint="press Ctrl-C again to force"
            )
            return self.reason
        return "duration"


def _console() -> Console:
    """stdout console; wide when piped, so tables are not squeezed to 80 columns."""
    return Console() if sys.stdout.isatty() else Console(width=160)


@contextlib.contextmanager
def _live(console: Console, render: Any, enabled: bool) -> Iterator[None]:
    if not enabled or not console.is_terminal:
        yield
        return
    with Live(get_renderable=render, console=console, refresh_per_second=2, transient=True):
        yield


# -- serving routes --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _serve(
    app_file: AppFile, host: str, port: int, always: bool = False
) -> AsyncIterator[asyncio.Future[None] | None]:
    """Serve the triggers' routes (and ``/health/triggers``, ``/outcomes``) with uvicorn;
    the app's lifespan starts and stops the triggers. Yields the server task, or ``None``
    when nothing has routes and ``always`` is false (then the triggers are started and
    stopped here)."""
    served = [t for t in app_file.triggers if getattr(t, "router", None) is not None]
    if not (served or app_file.routers or always):
        started: list[JobTrigger] = []
        try:
            for trigger in app_file.triggers:
                await trigger.start()
                started.append(trigger)
            yield None
        finally:
            for trigger in reversed(started):
                try:
                    await trigger.stop()
                except Exception as exc:
                    logger.error("trigger_stop_failed", trigger=repr(trigger), error=str(exc))
        return

    import uvicorn

    from portico_rx.web import create_app

    class _Server(uvicorn.Server):  # type: ignore[misc]
        """The CLI owns SIGINT/SIGTERM; uvicorn must not take them."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def install_signal_handlers(self) -> None:  # uvicorn < 0.29
            return None

    web_app = create_app(app_file.triggers, routers=app_file.routers)
    server = _Server(uvicorn.Config(web_app, host=host, port=port, log_level="warning"))

    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits the process when it cannot bind
            logger.error("web_server_exited", code=exc.code, host=host, port=port)

    task: asyncio.Future[None] = asyncio.ensure_future(serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    if not server.started:
        with contextlib.suppress(BaseException):
            await task
        raise TriggerStartError(
            f"the web server on {host}:{port} did not start (a trigger failed to start, or "
            "the port is taken): see the log above; pick another --port if it is in use"
        )
    logger.info("serving_routes", url=f"http://{host}:{port}", health="/health/triggers")
    try:
        yield task
    finally:
        server.should_exit = True
        with contextlib.suppress(BaseException):
            await task


# -- run -------------------------------------------------------------------------------


def _worker_for(
    queue: JobQueue, app_file: AppFile, queue_names: Sequence[str] | None, concurrency: int
) -> JobWorker:
    # default: every queue of the CLI's own store, so whatever queues the file's
    # triggers create into (FileTrigger's "file_processing" …) are consumed
    names = queue_names or getattr(app_file.module, "queue_names", None)
    return JobWorker(
        queue,
        app_file.handlers,
        queue_names=list(names) if names else None,
        concurrency=concurrency,
        poll_interval=0.2,
    )


async def run_app(
    file: str,
    *,
    store: str = "portico.db",
    duration: float | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    live: bool = True,
    worker: bool = True,
    queue_names: Sequence[str] | None = None,
    concurrency: int = 4,
    visibility_timeout: float = 300.0,
    serve: bool = False,
) -> int:
    """``portico-rx run``: run the file's triggers (and handlers) on the job store
    ``store`` (a ``--store`` value: see :mod:`portico_rx.cli.store`). ``serve``: serve
    ``/health/triggers`` and ``/outcomes`` on ``host:port`` even without webhook routes.

    ``visibility_timeout`` is the lease of the jobs this process claims: a job whose
    worker died is run again after it.

    Returns:
        The exit code: 0 after a graceful stop, 1 if the web server ended by itself.

    Raises:
        PorticoError: the queue cannot be opened, the file defines nothing to run, a
            trigger cannot start.
    """
    check_app_path(file)
    where = parse_store(store)
    queue = job_queue_for(where, visibility_timeout=visibility_timeout)
    label = where.label
    console = _console()
    shutdown = _Shutdown()
    service = JobService(queue)
    try:
        await service.open()
    except BaseException:
        shutdown.remove()
        raise
    try:
        app_file = await load_app_file(file, service)
        if not app_file.triggers and not app_file.handlers:
            raise ConfigurationError(
                f"{file} defines no triggers and no handlers: define build(service) returning "
                "triggers, a triggers list, or a handlers dict"
            )
        job_worker = (
            _worker_for(queue, app_file, queue_names, concurrency)
            if app_file.handlers and worker
            else None
        )
        workers = [job_worker] if job_worker is not None else []

        def render() -> Table:
            return status_table(
                app_file.triggers, workers, title=f"portico-rx run {file}  ({label})"
            )

        reason = "duration"
        if job_worker is not None:
            await job_worker.start()
        try:
            async with _serve(app_file, host, port, serve) as server_task:
                logger.info(
                    "portico_running",
                    file=file,
                    store=label,
                    triggers=len(app_file.triggers),
                    worker=job_worker is not None,
                    **({"duration_s": duration} if duration else {"hint": "press Ctrl-C to stop"}),
                )
                with _live(console, render, live):
                    reason = await shutdown.wait(duration, server_task)
        finally:  # triggers stopped first (no new jobs), then the worker finishes its jobs
            if job_worker is not None:
                await job_worker.stop()
        console.print(render())
        logger.info("portico_stopped", reason=reason)
        return 1 if reason == "server_exited" else 0
    finally:
        shutdown.remove()
        await service.close()


async def run_worker(
    file: str,
    *,
    store: str = "portico.db",
    duration: float | None = None,
    live: bool = True,
    queue_names: Sequence[str] | None = None,
    concurrency: int = 4,
    visibility_timeout: float = 300.0,
) -> int:
    """``portico-rx worker``: run the file's ``handlers`` on the job store ``store``
    (jobs are claimed with a lease of ``visibility_timeout`` seconds).

    Returns:
        The exit code (0 after a graceful stop).

    Raises:
        PorticoError: the queue cannot be opened or the file defines no handlers.
    """
    check_app_path(file)
    where = parse_store(store)
    queue = job_queue_for(where, visibility_timeout=visibility_timeout)
    label = where.label
    console = _console()
    shutdown = _Shutdown()
    service = JobService(queue)
    try:
        await service.open()
    except BaseException:
        shutdown.remove()
        raise
    try:
        app_file = await load_app_file(file, service)
        if not app_file.handlers:
            raise ConfigurationError(
                f"{file} defines no handlers: add handlers = {{'job.type': async_function}}"
            )
        job_worker = _worker_for(queue, app_file, queue_names, concurrency)

        def render() -> Table:
            return status_table([], [job_worker], title=f"portico-rx worker {file}  ({label})")

        await job_worker.start()
        try:
            with _live(console, render, live):
                reason = await shutdown.wait(duration, None)
        finally:
            await job_worker.stop()
        console.print(render())
        logger.info("portico_stopped", reason=reason)
        return 0
    finally:
        shutdown.remove()
        await service.close()


# -- jobs ------------------------------------------------------------------------------


def _jobs_table(jobs: Sequence[Any], title: str) -> Table:
    columns = ("id", "type", "queue", "status", "prio", "tries", "created", "key")
    table = listing(title, columns, "result / error")  # the whole id: `jobs cancel` takes it
    for job in jobs:
        outcome = job.error if job.error else ("" if job.result is None else json.dumps(job.result))
        table.add_row(
            str(job.id),
            job.job_type,
            job.queue_name,
            job.status.value,
            str(job.priority),
            str(job.attempts),
            job.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            job.idempotency_key or "",
            outcome,
        )
    return table


async def list_jobs(
    *,
    store: str = "portico.db",
    status: str | None = None,
    job_type: str | None = None,
    queue_name: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """``portico-rx jobs``: print the newest jobs of the store as a table (or JSON lines
    with ``as_json``).

    Returns:
        The exit code (0).

    Raises:
        ConfigurationError: a SQLite file that does not exist (listing creates none).
        QueueUnavailableError: the store cannot be read.
    """
    where = parse_store(store)
    queue = job_queue_for(where, must_exist=True)
    await queue.open()
    try:
        jobs = await queue.list(
            status=JobStatus(status) if status else None,
            job_type=job_type,
            queue_name=queue_name,
            limit=limit,
        )
        count = getattr(queue, "count", None)  # only SQLite counts without a scan
        total = await count() if count is not None else None
    finally:
        await queue.close()
    if as_json:
        for job in jobs:
            sys.stdout.write(job.model_dump_json() + "\n")
        return 0
    shown = f"{len(jobs)} of {total}" if total is not None else f"the newest {len(jobs)}"
    title = f"{shown} jobs in {where.label} (newest first)"
    _console().print(_jobs_table(jobs, title))
    return 0


async def cancel_job(job_id: str, *, store: str = "portico.db", as_json: bool = False) -> int:
    """``portico-rx jobs cancel JOB_ID``: a pending or scheduled job becomes
    ``cancelled`` and no worker runs it.

    Returns:
        The exit code (0).

    Raises:
        ConfigurationError: not a UUID, or the job is not pending or scheduled (the
            message names its status); a SQLite file that does not exist.
        JobNotFoundError: the store holds no job with this id.
    """
    where = parse_store(store)
    async with JobService(job_queue_for(where, must_exist=True)) as service:
        job = await service.cancel_job(job_id)
    if as_json:
        sys.stdout.write(job.model_dump_json() + "\n")
    else:
        _console().print(f"cancelled job {job.id} ({job.job_type}) in {where.label}")
    return 0
