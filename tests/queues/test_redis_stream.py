"""Redis Streams: entries become jobs, XACK after create, dead-letter stream, claims."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger
from portico_rx.testing import RecordingJobCreator
from tests.conftest import FlakyService

from .conftest import REDIS_URL, eventually

pytestmark = pytest.mark.redis


def envelope(event_type: str, **payload: Any) -> dict[str, str]:
    return {"body": json.dumps({"event_type": event_type, "payload": payload})}


async def pending(client: Any, stream: str, group: str) -> int:
    info = await client.xpending(stream, group)
    return int(info["pending"])


async def test_entries_become_jobs_bad_ones_go_to_the_dead_stream(
    redis_client: Any, unique: str
) -> None:
    stream = f"events_{unique}"
    redis_client.created_keys.append(stream)
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = RedisStreamTrigger(
        service, REDIS_URL, stream, "mailers", {"user.created": "email.welcome"}, consumer="c1"
    )
    await trigger.start()
    good = {"event_type": "user.created", "payload": {"id": 1}, "queue": "emails", "priority": 3}
    first = await redis_client.xadd(stream, {"body": json.dumps(good), "trace": "t-1"})
    bad = await redis_client.xadd(stream, {"body": "{oops"})
    await redis_client.xadd(stream, envelope("user.deleted"))
    await redis_client.xadd(stream, {"body": json.dumps({"event_type": "user.created", "x": 1})})
    await eventually(lambda: trigger.source.status.dead_lettered == 3)
    await trigger.stop()
    [job] = await service.list_jobs()
    assert (job.job_type, job.payload, job.queue_name, job.priority) == (
        "email.welcome",
        {"id": 1},
        "emails",
        3,
    )
    assert job.idempotency_key == f"redis:{stream}:mailers:email.welcome:{stream}/{first.decode()}"
    assert await pending(redis_client, stream, "mailers") == 0
    dead = await redis_client.xrange(f"{stream}.dead")
    assert len(dead) == 3
    assert dead[0][1][b"dead_letter_of"] == bad
    assert dead[0][1][b"body"] == b"{oops"
    assert trigger.get_health().dead_lettered_count == 3
    assert {d.event_id for d in trigger.dead_letters} >= {bad.decode()}


async def test_competing_consumers_share_the_work_without_duplicates(
    redis_client: Any, unique: str
) -> None:
    """Two instances in one group: every entry is one job, handled by one of them."""
    stream = f"shared_{unique}"
    redis_client.created_keys.append(stream)
    creator = RecordingJobCreator()

    class Slowish(RecordingJobCreator):
        def __init__(self) -> None:
            super().__init__()
            self.calls_made = 0

        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            self.calls_made += 1
            await asyncio.sleep(0.002)
            return await creator.create_job(*args, **kwargs)

    a, b = Slowish(), Slowish()
    triggers = [
        RedisStreamTrigger(c, REDIS_URL, stream, "workers", {"e": "job.e"}, consumer=name, count=8)
        for c, name in ((a, "a"), (b, "b"))
    ]
    for trigger in triggers:
        await trigger.start()
    for n in range(200):
        await redis_client.xadd(stream, envelope("e", n=n))
    await eventually(lambda: len(creator.jobs) == 200)
    for trigger in triggers:
        await trigger.stop()
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(200))
    assert a.calls_made + b.calls_made == 200
    assert a.calls_made > 0 and b.calls_made > 0
    assert await pending(redis_client, stream, "workers") == 0


async def test_entries_of_a_dead_consumer_are_claimed(redis_client: Any, unique: str) -> None:
    """A consumer read entries and died without XACK: after claim_idle another consumer
    XAUTOCLAIMs them and they become jobs (marked redelivered)."""
    stream = f"claim_{unique}"
    redis_client.created_keys.append(stream)
    await redis_client.xgroup_create(stream, "g", id="0", mkstream=True)
    for n in range(5):
        await redis_client.xadd(stream, envelope("e", n=n))
    await redis_client.xreadgroup("g", "dead-worker", {stream: ">"}, count=5)
    assert await pending(redis_client, stream, "g") == 5
    creator = RecordingJobCreator()
    trigger = RedisStreamTrigger(
        creator, REDIS_URL, stream, "g", {"e": "job.e"}, consumer="alive", claim_idle=0.3
    )
    async with trigger:
        await eventually(lambda: len(creator.jobs) == 5)
        await eventually(lambda: trigger.source.status.acked == 5)
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(5))
    assert all(j.metadata["redelivered"] for j in creator.jobs)
    assert await pending(redis_client, stream, "g") == 0


async def test_restarted_consumer_resumes_its_own_pending_entries(
    redis_client: Any, unique: str
) -> None:
    """Entries this consumer name read before (no XACK) are re-read first on start."""
    stream = f"own_{unique}"
    redis_client.created_keys.append(stream)
    await redis_client.xgroup_create(stream, "g", id="0", mkstream=True)
    for n in range(3):
        await redis_client.xadd(stream, envelope("e", n=n))
    await redis_client.xreadgroup("g", "me", {stream: ">"}, count=2)
    creator = RecordingJobCreator()
    source = sources.redis_stream(REDIS_URL, stream, "g", "me", claim_idle=3600)
    trigger = prx.PipelineTrigger(
        source.pipe(prx.to_job("job.e", payload=lambda m: json.loads(m.body)["payload"])),
        job_creator=creator,
        name="own",
    )
    async with trigger:
        await eventually(lambda: source.status.acked == 3)
    assert sorted(j.payload["n"] for j in creator.jobs) == [0, 1, 2]
    assert [j.metadata["redelivered"] for j in creator.jobs] == [True, True, False]


async def test_slow_creator_bounds_entries_in_flight(redis_client: Any, unique: str) -> None:
    stream = f"slow_{unique}"
    redis_client.created_keys.append(stream)
    release = asyncio.Event()

    class Blocking(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = Blocking()
    trigger = RedisStreamTrigger(creator, REDIS_URL, stream, "g", {"e": "job.e"}, count=4)
    async with trigger:
        for n in range(40):
            await redis_client.xadd(stream, envelope("e", n=n))
        await eventually(lambda: trigger.source.status.received == 4)
        await asyncio.sleep(0.3)
        assert trigger.source.status.received == 4
        assert await pending(redis_client, stream, "g") == 4
        release.set()
        await eventually(lambda: len(creator.jobs) == 40)
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(40))


async def test_missing_group_without_create_fails_start(redis_client: Any, unique: str) -> None:
    stream = f"nogroup_{unique}"
    redis_client.created_keys.append(stream)
    source = sources.redis_stream(REDIS_URL, stream, "g", "c", create_group=False)
    with pytest.raises(prx.ConfigurationError, match="group='g' does not exist"):
        await source.check()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"url": "http://x"}, "url"),
        ({"stream": ""}, "stream"),
        ({"count": 0}, "count"),
        ({"claim_idle": -1}, "claim_idle"),
        ({"group_start": "1-0"}, "group_start"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"url": REDIS_URL, "stream": "s", "group": "g", "consumer": "c"}
    args.update(kwargs)
    with pytest.raises(prx.ConfigurationError, match=match):
        sources.redis_stream(**args)


async def test_stream_deleted_under_the_consumer_is_created_again(
    redis_client: Any, unique: str
) -> None:
    """NOGROUP after the stream was deleted: the source reconnects, creates the group
    again and goes on consuming."""
    stream = f"deleted_{unique}"
    redis_client.created_keys.append(stream)
    creator = RecordingJobCreator()
    trigger = RedisStreamTrigger(
        creator, REDIS_URL, stream, "g", {"e": "job.e"}, reconnect_delay=0.05
    )
    async with trigger:
        await redis_client.xadd(stream, envelope("e", n=1))
        await eventually(lambda: len(creator.jobs) == 1)
        await redis_client.delete(stream)
        await eventually(lambda: trigger.source.status.reconnects == 1)
        assert "vanished" in (trigger.source.status.last_error or "")
        await redis_client.xadd(stream, envelope("e", n=2))
        await eventually(lambda: len(creator.jobs) == 2)
    assert [j.payload["n"] for j in creator.jobs] == [1, 2]


async def test_dead_stream_entries_redrive_back_and_keep_their_original_key(
    redis_client: Any, unique: str
) -> None:
    """Entries dead-lettered while the job store was down go back to the stream with
    ``redrive_dead_letters``; their new entries keep the original key (``dead_letter_of``),
    so the entry whose letter was already redriven from the durable store makes no second
    job; an entry that fails again is dead-lettered under its original id."""
    stream = f"deadletters_{unique}"
    redis_client.created_keys.append(stream)
    service = FlakyService(MemoryJobQueue())
    source = sources.redis_stream(REDIS_URL, stream, "shippers", "c1", block=0.1)
    pipeline = source.pipe(prx.to_job("order.ship", payload=lambda m: m.json_body()))
    retry = prx.RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002)
    first = await redis_client.xadd(stream, {"body": json.dumps({"order": 1})})
    second = await redis_client.xadd(stream, {"body": json.dumps({"order": 2})})
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry):
        await eventually(lambda: source.status.dead_lettered == 2)
    assert await redis_client.xlen(f"{stream}.dead") == 2
    service.down = False
    key = f"ships:order.ship:{stream}/{first.decode()}"
    [stored] = [r for r in await service.list_dead_letters() if r.idempotency_key == key]
    redriven = await service.redrive_dead_letter(stored.id)

    assert await source.redrive_dead_letters() == 2
    assert await redis_client.xlen(f"{stream}.dead") == 0
    assert await redis_client.xlen(stream) == 4  # two new entries, the old ones acked
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry) as again:
        await eventually(lambda: source.status.acked == 2)
    jobs = {job.idempotency_key: job for job in await service.list_jobs()}
    assert set(jobs) == {key, f"ships:order.ship:{stream}/{second.decode()}"}
    assert jobs[key].id == redriven.id
    assert again.get_health().duplicates_count == 1

    # failing again: dead-lettered under the id it first had, so redrives keep the key
    service.down = True
    third = await redis_client.xadd(stream, {"body": json.dumps({"order": 3})})
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry):
        await eventually(lambda: source.status.dead_lettered == 3)
    assert await source.redrive_dead_letters() == 1
    async with prx.PipelineTrigger(pipeline, service, name="ships", retry=retry):
        await eventually(lambda: source.status.dead_lettered == 4)
    [(_, fields)] = await redis_client.xrange(f"{stream}.dead")
    assert fields[b"dead_letter_of"] == third
    assert await source.redrive_dead_letters(limit=5) == 1


async def test_a_stream_without_a_dead_letter_stream_cannot_redrive(unique: str) -> None:
    source = sources.redis_stream(
        REDIS_URL, f"deadletters_{unique}", "g", "c", dead_letter_stream=None
    )
    with pytest.raises(prx.ConfigurationError, match="nothing to redrive"):
        await source.redrive_dead_letters()
