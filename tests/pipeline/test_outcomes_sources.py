"""One staleness policy on real sources: lateness from the source's own time, ``max_age``.

A file's mtime, a RabbitMQ message's timestamp property, a Standard Webhooks
``webhook-timestamp`` header: each becomes the delivery's ``occurred_at``; every job
gets ``lateness_s`` from it, and the trigger's ``max_age`` dead-letters older events
(outcome ``stale``) or creates them marked ``stale`` (``stale="create"``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
THREE_DAYS = 3 * 86400


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_file_older_than_max_age_is_stale_and_a_fresh_one_records_its_lateness(
    tmp_path: Path,
) -> None:
    old, fresh = tmp_path / "old.csv", tmp_path / "fresh.csv"
    old.write_text("a")
    fresh.write_text("b")
    stamp = time.time() - THREE_DAYS
    os.utime(old, (stamp, stamp))
    queue = MemoryJobQueue()
    trigger = FileTrigger(
        prx.JobService(queue),
        tmp_path,
        "file.process",
        settle=0.02,
        include_existing=True,
        name="uploads",
        max_age=timedelta(days=1),
    )
    async with trigger:
        await wait_for(lambda: len(trigger.outcomes()) == 2)
    (job,) = await queue.list()
    assert Path(job.payload["file_path"]).name == "fresh.csv"
    assert 0 <= job.metadata["lateness_s"] < 60  # seen moments after it was written
    (stale,) = trigger.outcomes("stale")
    assert stale.source == f"files:{tmp_path}" and "old.csv" in (stale.event_id or "")
    assert trigger.get_health().stale_count == 1
    assert trigger.dead_letters[-1].stage == "stale"


async def test_a_rabbitmq_message_published_long_ago_is_stale_by_its_timestamp() -> None:
    import aio_pika

    queue_name = f"stale_{uuid.uuid4().hex[:10]}"
    source = sources.rabbitmq(RABBITMQ_URL, queue_name, prefetch=4)
    jobs = MemoryJobQueue()
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("order.ship", payload=lambda m: m.json_body())),
        prx.JobService(jobs),
        name="orders",
        max_age=timedelta(hours=1),
    )
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        async with trigger:
            await source.wait_connected()
            now = datetime.now(UTC)
            for n, published in [(1, now - timedelta(days=3)), (2, now - timedelta(seconds=5))]:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body=json.dumps({"n": n}).encode(),
                        message_id=f"m-{n}",
                        timestamp=published,
                    ),
                    routing_key=queue_name,
                )
            await wait_for(lambda: len(trigger.outcomes()) == 2)
        (job,) = await jobs.list()
        assert job.payload == {"n": 2}
        assert 4 <= job.metadata["lateness_s"] < 60  # the broker's timestamp has seconds
        (stale,) = trigger.outcomes("stale")
        assert stale.event_id == "m-1"
    finally:
        cleanup = await connection.channel()
        await cleanup.queue_delete(queue_name)
        await connection.close()


@pytest.mark.parametrize("policy", ["dead_letter", "create"])
async def test_a_webhook_with_an_old_timestamp_header_is_stale_per_policy(policy: str) -> None:
    from portico_rx.web import create_app

    source = sources.webhook("/hooks/stale")
    jobs = MemoryJobQueue()
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("hook.handle", payload=lambda e: e.body)),
        prx.JobService(jobs),
        name="hooks",
        max_age=600,
        stale=policy,  # type: ignore[arg-type]
    )
    app = create_app([trigger], routers=[source])
    transport = httpx.ASGITransport(app=app)
    async with trigger, httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        old = str(int(time.time()) - THREE_DAYS)
        for n, stamp in [(1, old), (2, str(int(time.time())))]:
            await client.post(
                "/hooks/stale",
                json={"n": n},
                headers={"webhook-id": f"w-{n}", "webhook-timestamp": stamp},
            )
        await wait_for(lambda: len(trigger.outcomes()) == 2)
    stored = sorted(await jobs.list(), key=lambda j: j.payload["n"])
    lateness = [j.metadata["lateness_s"] for j in stored]
    if policy == "dead_letter":
        assert [j.payload["n"] for j in stored] == [2]
        assert [o.event_id for o in trigger.outcomes("stale")] == ["w-1"]
    else:
        assert [j.payload["n"] for j in stored] == [1, 2]
        assert [j.metadata.get("stale", False) for j in stored] == [True, False]
        assert THREE_DAYS <= lateness[0] < THREE_DAYS + 60
    assert 0 <= lateness[-1] < 60
    assert trigger.get_health().stale_count == 1


def test_every_named_trigger_takes_the_one_max_age_option(tmp_path: Path) -> None:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger

    service: Any = prx.JobService(MemoryJobQueue())
    made = [
        FileTrigger(service, tmp_path, "f.t", max_age=60),
        WebhookTrigger(job_creator=service, max_age=timedelta(minutes=1), stale="create"),
        ScheduleTrigger(
            job_creator=service,
            schedules=[ScheduleConfig(name="s", cron="* * * * *", job_type="s.t")],
            max_age=60,
        ),
    ]
    assert [(t.max_age, t.stale) for t in made] == [
        (60, "dead_letter"),
        (timedelta(minutes=1), "create"),
        (60, "dead_letter"),
    ]


async def test_a_redis_stream_entry_is_as_old_as_its_id_says() -> None:
    import redis.asyncio as aioredis

    stream = f"stale-{uuid.uuid4().hex[:10]}"
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    old_ms = int((time.time() - THREE_DAYS) * 1000)
    await client.xadd(stream, {"body": json.dumps({"n": 1})}, id=f"{old_ms}-0")
    await client.xadd(stream, {"body": json.dumps({"n": 2})})  # now
    source = sources.redis_stream("redis://127.0.0.1:6379/0", stream, "g", "c")
    jobs = MemoryJobQueue()
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("entry.handle", payload=lambda m: m.json_body())),
        prx.JobService(jobs),
        name="entries",
        max_age=timedelta(days=1),
    )
    try:
        async with trigger:
            await wait_for(lambda: len(trigger.outcomes()) == 2)
    finally:
        await client.delete(stream)
        await client.aclose()
    (job,) = await jobs.list()
    assert job.payload == {"n": 2} and 0 <= job.metadata["lateness_s"] < 60
    (stale,) = trigger.outcomes("stale")
    assert stale.event_id == f"{old_ms}-0"


@pytest.mark.parametrize("stored_as", ["timestamp", "iso text", "unix seconds"])
async def test_a_database_row_is_as_old_as_its_time_column_says(
    tmp_path: Path, stored_as: str
) -> None:
    """``time_column=``: a row's own time; ``max_age`` with ``stale="create"`` creates the
    old row's job marked ``stale`` (and marks the row, as for any created job)."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine = create_async_engine(url)
    kind = {"timestamp": "timestamp", "iso text": "text", "unix seconds": "real"}[stored_as]
    now = datetime.now(UTC)

    def stored(at: datetime) -> Any:
        if stored_as == "timestamp":
            return at.replace(tzinfo=None)  # a naive UTC timestamp, as databases keep them
        return at.isoformat() if stored_as == "iso text" else at.timestamp()

    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "create table items (id integer primary key, status text not null, "
                f"data text, created_at {kind})"
            )
        )
        for data, at in [("old", now - timedelta(days=3)), ("fresh", now)]:
            await connection.execute(
                sa.text("insert into items (status, data, created_at) values ('pending', :d, :t)"),
                {"d": data, "t": stored(at)},
            )
    jobs = MemoryJobQueue()
    trigger = DatabasePollingTrigger(
        prx.JobService(jobs),
        url,
        poll_interval_seconds=30,
        time_column="created_at",
        max_age=timedelta(days=1),
        stale="create",
    )
    async with trigger:
        await wait_for(lambda: trigger.stats.rows_marked == 2)
    await engine.dispose()
    by_data = {job.payload["data"]: job for job in await jobs.list()}
    assert THREE_DAYS - 60 <= by_data["old"].metadata["lateness_s"] < THREE_DAYS + 60
    assert by_data["old"].metadata["stale"] is True
    assert 0 <= by_data["fresh"].metadata["lateness_s"] < 60
    assert "stale" not in by_data["fresh"].metadata
    assert trigger.get_health().stale_count == 1


async def test_a_time_column_the_table_lacks_fails_start(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from portico_rx.adapters.job_trigger.database_polling_trigger import DatabasePollingTrigger
    from portico_rx.errors import TriggerStartError

    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("create table items (id integer primary key, status text not null)")
        )
    await engine.dispose()
    trigger = DatabasePollingTrigger(
        prx.JobService(MemoryJobQueue()), url, poll_interval_seconds=30, time_column="made_at"
    )
    with pytest.raises(TriggerStartError, match=r"no column 'made_at'.*time_column="):
        await trigger.start()
    await trigger.stop()
