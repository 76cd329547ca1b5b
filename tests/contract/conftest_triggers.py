"""Trigger cases for the JobTrigger contract: every trigger, on real services.

To add a trigger, write one async context manager factory ``(tmp_path) ->
AsyncIterator[TriggerCase]`` and add it to ``TRIGGER_FACTORIES`` (with the marker of
the service it needs). A case holds:

* ``trigger``: a stopped trigger on unique names, creating jobs through ``creator``;
* ``creator``: a :class:`GatedCreator` (counts every ``create_job`` call, can hold them);
* ``fire(n)``: produce real event number ``n`` (a new one each call): write a file,
  publish a message, POST a request, advance virtual time, insert a row, change an
  HTTP resource;
* ``pump()``: let time pass so a fired event is processed (pollers on virtual clocks
  poll once more; real-time triggers sleep 50 ms);
* ``ready()``: after ``start()``, wait until the trigger listens (e.g. the first poll
  of a changing resource has been taken as the baseline);
* ``check_answer(answer)``: checks what ``fire`` returned (a webhook's HTTP response);
* ``consumers()``: where the service can tell, how many consumers it serves for the
  trigger (``None`` elsewhere: there a second consumer shows as a second
  ``create_job`` call).

The factory stops the trigger and deletes what it created when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.models import Job
from portico_rx.ports.job_trigger import JobTrigger
from portico_rx.testing import RecordingJobCreator, advance, settle

from .brokers import JOB_TYPE, envelope, open_broker

TriggerFactory = Callable[[Path], contextlib.AbstractAsyncContextManager["TriggerCase"]]
START = datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC)  # between two minute boundaries


class GatedCreator(RecordingJobCreator):
    """A RecordingJobCreator whose ``create_job`` calls can be held at ``gate``.

    ``entered`` counts every call, repeated idempotency keys included: two consumers
    of one event show as two calls even where the store returns one job.
    """

    def __init__(self) -> None:
        super().__init__()
        self.entered = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        self.entered += 1
        await self.gate.wait()
        return await super().create_job(job_type, payload, queue_name, priority, metadata)


async def _moment() -> None:
    await asyncio.sleep(0.05)


async def _listening() -> None:
    return None


@dataclass
class TriggerCase:
    trigger: JobTrigger
    creator: GatedCreator
    fire: Callable[[int], Awaitable[Any]]
    pump: Callable[[], Awaitable[None]] = _moment
    ready: Callable[[], Awaitable[None]] = _listening
    check_answer: Callable[[Any], None] = lambda answer: None
    """Checks what ``fire`` returned once its event's job exists (a webhook's response)."""
    consumers: Callable[[], Awaitable[int]] | None = None


def poller(
    scheduler: HistoricalScheduler, period: float, stats: Any
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """``(pump, ready)`` of a poller on a virtual clock whose ``stats`` count ``polls``
    begun and ``completed``: the pump advances one period and waits for the poll it
    woke to be answered; ready waits for the first poll of a new subscription."""

    async def idle() -> None:
        # Every pump waits for its poll, so no test stops the trigger mid-poll and
        # ``polls == completed`` means idle.
        deadline = asyncio.get_running_loop().time() + 10
        while stats.completed < stats.polls:
            assert asyncio.get_running_loop().time() < deadline, "a poll hangs"
            await asyncio.sleep(0.005)

    async def pump() -> None:
        await advance(scheduler, period, step=period)
        await settle()
        await idle()

    async def ready() -> None:
        await settle()  # the new subscription's first poll has begun ...
        await idle()  # ... and is answered

    return pump, ready


# -- PipelineTrigger -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def pipeline_case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """A hot Subject through ``to_job``: each subscription is one consumer."""
    events: reactivex.Subject[int] = reactivex.Subject()
    creator = GatedCreator()
    trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job(JOB_TYPE, payload=lambda n: {"n": n})),
        job_creator=creator,
        name=f"contract-pipeline-{uuid.uuid4().hex[:8]}",
    )

    async def fire(n: int) -> None:
        events.on_next(n)

    try:
        yield TriggerCase(trigger, creator, fire)
    finally:
        await trigger.stop()


# -- FileTrigger -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def file_case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """A real folder; an event is a new file (settled after 20 ms, wall clock)."""
    from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

    folder = tmp_path / "inbox"
    folder.mkdir()
    creator = GatedCreator()
    trigger = FileTrigger(creator, folder, JOB_TYPE, settle=0.02)

    async def fire(n: int) -> None:
        (folder / f"event-{n}.txt").write_text(f"event {n}\n")

    try:
        yield TriggerCase(trigger, creator, fire)
    finally:
        await trigger.stop()


# -- the queue triggers ----------------------------------------------------------------


def queue_case(kind: str) -> TriggerFactory:
    """A factory for the named trigger of broker ``kind`` (see ``brokers.py``)."""

    @contextlib.asynccontextmanager
    async def case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
        async with open_broker(kind) as broker:
            creator = GatedCreator()
            trigger = broker.trigger(creator, stop_timeout=10)

            async def fire(n: int) -> None:
                await broker.publish(envelope(n), f"event-{n}")

            try:
                yield TriggerCase(
                    trigger,
                    creator,
                    fire,
                    consumers=broker.consumers if broker.counts_consumers else None,
                )
            finally:
                await trigger.stop()

    case.__name__ = f"{kind}_case"
    return case


# -- HttpPollingTrigger ----------------------------------------------------------------


class _Resource(BaseHTTPRequestHandler):
    server: _ResourceServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ResourceServer(ThreadingHTTPServer):
    daemon_threads = True
    body = b"version 0"


@contextlib.contextmanager
def serve_resource() -> Iterator[_ResourceServer]:
    """A changing resource on 127.0.0.1 (set ``server.body``), served from a thread."""
    server = _ResourceServer(("127.0.0.1", 0), _Resource)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.asynccontextmanager
async def http_polling_case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """A local HTTP server; an event is a new version of the resource, seen by the next
    poll (polls every 30 s of virtual time; the first one is the baseline)."""
    from portico_rx.adapters.job_trigger.http_polling_trigger import HttpPollingTrigger

    scheduler = HistoricalScheduler(initial_clock=START)
    creator = GatedCreator()
    with serve_resource() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/resource"
        trigger = HttpPollingTrigger(
            creator, url, JOB_TYPE, every=30, emit_initial=False, scheduler=scheduler
        )
        pump, ready = poller(scheduler, 30, trigger.stats)  # the first poll: the baseline

        async def fire(n: int) -> None:
            server.body = f"version {n}".encode()

        try:
            yield TriggerCase(trigger, creator, fire, pump, ready)
        finally:
            await trigger.stop()


# -- DatabasePollingTrigger ------------------------------------------------------------


@contextlib.asynccontextmanager
async def database_polling_case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """A real SQLite table; an event is a pending row, seen by the next poll (every 10 s
    of virtual time)."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger

    url = f"sqlite+aiosqlite:///{tmp_path / 'items.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("create table items (id integer primary key, status text not null, data text)")
        )
    scheduler = HistoricalScheduler(initial_clock=START)
    creator = GatedCreator()
    trigger = DatabasePollingTrigger(
        creator, url, 10, job_type=JOB_TYPE, queue_name="contract", scheduler=scheduler
    )

    pump, ready = poller(scheduler, 10, trigger.stats)

    async def fire(n: int) -> None:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("insert into items (status, data) values ('pending', :d)"),
                {"d": f"event {n}"},
            )

    try:
        yield TriggerCase(trigger, creator, fire, pump, ready)
    finally:
        await trigger.stop()
        await engine.dispose()


# -- WebhookTrigger --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """The trigger's router in a FastAPI app; an event is a POST over the ASGI transport.
    ``fire`` returns the HTTP response."""
    import httpx
    from fastapi import FastAPI

    from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger

    creator = GatedCreator()
    trigger = WebhookTrigger(creator, name=f"contract-webhook-{uuid.uuid4().hex[:8]}")
    app = FastAPI()
    app.include_router(trigger.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://contract") as client:

        async def fire(n: int) -> httpx.Response:
            return await client.post(
                "/webhooks/jobs", json={"job_type": JOB_TYPE, "payload": {"n": n}}
            )

        def created(response: httpx.Response) -> None:
            assert response.status_code == 201, response.text

        try:
            yield TriggerCase(trigger, creator, fire, check_answer=created)
        finally:
            await trigger.stop()


# -- ScheduleTrigger -------------------------------------------------------------------


def schedule_case(*, override: bool) -> TriggerFactory:
    """One schedule every 60 s of virtual time; an event is the clock reaching the next
    fire time (the clock starts between two). With ``override``, the spec's FAQ pattern:
    a subclass overriding ``_create_scheduled_job``, which is then called once per run
    instead of the default path."""
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger

    class SpecScheduleTrigger(ScheduleTrigger):
        async def _create_scheduled_job(self, config: ScheduleConfig) -> None:
            await self.job_creator.create_job(
                job_type=config.job_type,
                payload={**config.payload, "scheduled_run": "from the override"},
                queue_name=config.queue_name,
                priority=config.priority,
            )

    kind = SpecScheduleTrigger if override else ScheduleTrigger

    @contextlib.asynccontextmanager
    async def case(tmp_path: Path) -> AsyncIterator[TriggerCase]:
        scheduler = HistoricalScheduler(initial_clock=START)
        creator = GatedCreator()
        trigger = kind(
            creator,
            [ScheduleConfig(every=60, job_type=JOB_TYPE, payload={"every": 60})],
            name=f"contract-schedule-{uuid.uuid4().hex[:8]}",
            scheduler=scheduler,
        )

        async def fire(n: int) -> None:
            await advance(scheduler, 60, step=60)

        try:
            yield TriggerCase(trigger, creator, fire)
        finally:
            await trigger.stop()

    return case


# ---- the triggers under contract: add yours here ----------------------------------------
TRIGGER_FACTORIES: list[Any] = [
    pytest.param(pipeline_case, id="pipeline"),
    pytest.param(file_case, id="file"),
    pytest.param(queue_case("rabbitmq"), marks=pytest.mark.rabbitmq, id="rabbitmq"),
    pytest.param(queue_case("redis"), marks=pytest.mark.redis, id="redis_stream"),
    pytest.param(queue_case("nats"), marks=pytest.mark.nats, id="nats"),
    pytest.param(queue_case("mqtt"), marks=pytest.mark.mqtt, id="mqtt"),
    pytest.param(http_polling_case, id="http_polling"),
    pytest.param(database_polling_case, id="database_polling"),
    pytest.param(webhook_case, id="webhook"),
    pytest.param(schedule_case(override=False), id="schedule"),
    pytest.param(schedule_case(override=True), id="schedule_override"),
]
# ------------------------------------------------------------------------------------------
