"""The spec's own examples, with ``portico`` replaced by ``portico_rx``.

Patterns 1, 2 and 4 (WebhookTrigger, ScheduleTrigger, RabbitMQTrigger) are tested in
their areas' folders. Here: the triggers the spec has users write themselves (patterns 3
and 6) subclass our ``JobTrigger`` and run as written; pattern 5 runs our triggers in a
FastAPI lifespan.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import DateTime, String, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger as LibraryFileTrigger
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_trigger import JobTrigger

logger = structlog.get_logger()


# --- Pattern 3, as the spec writes it ------------------------------------------------


class FileTrigger(JobTrigger):
    """Trigger that creates jobs when files are added to a directory."""

    def __init__(
        self,
        job_creator: JobCreator,
        watch_path: Path,
        job_type: str,
        queue_name: str = "file_processing",
    ):
        self.job_creator = job_creator
        self.watch_path = watch_path
        self.job_type = job_type
        self.queue_name = queue_name
        self._observer: Any = None
        self._running = False

    async def start(self) -> None:
        """Start watching the directory."""
        if self._running:
            return
        self._running = True
        event_handler = FileCreatedHandler(self.job_creator, self.job_type, self.queue_name)
        self._observer = Observer()
        self._observer.schedule(event_handler, str(self.watch_path), recursive=True)
        self._observer.start()

    async def stop(self) -> None:
        """Stop watching the directory."""
        if not self._running:
            return
        self._running = False
        if self._observer:
            self._observer.stop()
            self._observer.join()

    @property
    def is_running(self) -> bool:
        return self._running


class FileCreatedHandler(FileSystemEventHandler):
    """Handler that creates jobs for new files."""

    def __init__(self, job_creator: JobCreator, job_type: str, queue_name: str):
        self.job_creator = job_creator
        self.job_type = job_type
        self.queue_name = queue_name

    def on_created(self, event: Any) -> None:
        """Called when file is created (in watchdog's thread: see the test below)."""
        self.created = event.src_path


async def test_spec_pattern_3_user_file_trigger_runs_on_the_port(tmp_path: Path) -> None:
    """A user trigger written to the spec instantiates, starts, sees a file, stops, and
    reports the port's default health.

    The spec's handler calls ``asyncio.create_task`` from watchdog's thread, where no
    loop runs; the library's ``FileTrigger`` (tested in tests/sources) is the working
    version, so this test records the path instead.
    """
    service = JobService(job_queue=MemoryJobQueue())
    trigger = FileTrigger(
        job_creator=service,
        watch_path=tmp_path,
        job_type="file.process",
        queue_name="file_processing",
    )
    assert trigger.get_health().is_running is False
    await trigger.start()
    assert trigger.is_running and trigger.get_health().healthy
    handler = next(iter(trigger._observer._handlers.values()))
    (tmp_path / "upload.csv").write_text("a,b\n")
    for _ in range(100):
        if any(getattr(h, "created", None) for h in handler):
            break
        await asyncio.sleep(0.05)
    await trigger.stop()
    assert any(getattr(h, "created", "").endswith("upload.csv") for h in handler)
    assert not trigger.is_running
    assert trigger.get_health().state.value == "stopped"


# --- Pattern 6, as the spec writes it, on a real SQLite database ------------------------


class Base(DeclarativeBase):
    pass


class ItemModel(Base):
    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    data: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Database:
    """The ``database`` object the spec assumes: ``session()`` gives an async session."""

    def __init__(self, url: str) -> None:
        self.engine = create_async_engine(url)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)


class DatabasePollingTrigger(JobTrigger):
    """Trigger that polls database for new records and creates jobs."""

    def __init__(self, job_creator: JobCreator, database: Any, poll_interval_seconds: float = 60):
        self.job_creator = job_creator
        self.database = database
        self.poll_interval = poll_interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        """Start polling database."""
        if self._running:
            return
        self._running = True
        self._task = asyncio.create_task(self._poll_loop())

    async def stop(self) -> None:
        """Stop polling database."""
        if not self._running:
            return
        self._running = False
        if self._task:
            self._task.cancel()
            try:  # noqa: SIM105 - the spec's code, verbatim
                await self._task
            except asyncio.CancelledError:
                pass

    @property
    def is_running(self) -> bool:
        return self._running

    async def _poll_loop(self) -> None:
        """Poll database for new pending items."""
        while self._running:
            try:
                pending_items = await self._get_pending_items()
                for item in pending_items:
                    await self.job_creator.create_job(
                        job_type="item.process",
                        payload={"item_id": str(item.id), "data": item.data},
                        queue_name="processing",
                    )
                    await self._mark_as_queued(item.id)
                await asyncio.sleep(self.poll_interval)
            except asyncio.CancelledError:
                break
            except Exception as e:
                logger.error("polling_error", error=str(e))
                await asyncio.sleep(self.poll_interval)

    async def _get_pending_items(self) -> Any:
        """Get items that need processing."""
        async with self.database.session() as session:
            stmt = select(ItemModel).where(
                ItemModel.status == "pending",
                ItemModel.created_at > datetime.now() - timedelta(hours=1),
            )
            result = await session.execute(stmt)
            return result.scalars().all()

    async def _mark_as_queued(self, item_id: Any) -> None:
        """Mark item as queued for processing."""
        async with self.database.session() as session:
            stmt = update(ItemModel).where(ItemModel.id == item_id).values(status="queued")
            await session.execute(stmt)
            await session.commit()


async def test_spec_pattern_6_user_polling_trigger_creates_jobs(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with database.session() as session:
        session.add_all(
            [
                ItemModel(id="i1", data="one", status="pending", created_at=datetime.now()),
                ItemModel(id="i2", data="two", status="done", created_at=datetime.now()),
            ]
        )
        await session.commit()
    service = JobService(job_queue=MemoryJobQueue())
    db_trigger = DatabasePollingTrigger(
        job_creator=service, database=database, poll_interval_seconds=0.05
    )
    await db_trigger.start()
    for _ in range(100):
        if await service.list_jobs():
            break
        await asyncio.sleep(0.05)
    await db_trigger.stop()
    await database.engine.dispose()
    jobs = await service.list_jobs()
    assert [(j.job_type, j.payload, j.queue_name) for j in jobs] == [
        ("item.process", {"item_id": "i1", "data": "one"}, "processing")
    ]
    assert not db_trigger.is_running


# --- Pattern 5: several triggers in a FastAPI lifespan ---------------------------------


async def test_spec_pattern_5_triggers_follow_the_app_lifespan(tmp_path: Path) -> None:
    job_service = JobService(job_queue=MemoryJobQueue())
    schedules = [ScheduleConfig(cron="0 9 * * *", job_type="report.daily", payload={})]
    webhook_trigger = WebhookTrigger(job_creator=job_service)
    schedule_trigger = ScheduleTrigger(job_creator=job_service, schedules=schedules)
    file_trigger = LibraryFileTrigger(job_creator=job_service, watch_path=tmp_path)
    seen: list[tuple[str, bool]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        triggers = [webhook_trigger, schedule_trigger, file_trigger]
        for trigger in triggers:
            await trigger.start()
            logger.info(
                "trigger_started",
                trigger_type=type(trigger).__name__,
                is_running=trigger.is_running,
            )
            seen.append((type(trigger).__name__, trigger.is_running))
        yield
        for trigger in triggers:
            await trigger.stop()
            seen.append((type(trigger).__name__, trigger.is_running))

    app = FastAPI(lifespan=lifespan)
    app.include_router(webhook_trigger.router)
    async with app.router.lifespan_context(app):
        assert all(t.is_running for t in (webhook_trigger, schedule_trigger, file_trigger))
    assert seen == [
        ("WebhookTrigger", True),
        ("ScheduleTrigger", True),
        ("FileTrigger", True),
        ("WebhookTrigger", False),
        ("ScheduleTrigger", False),
        ("FileTrigger", False),
    ]
