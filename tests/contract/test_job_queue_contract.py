"""The JobQueue contract, run against every adapter in ``JOB_QUEUE_FACTORIES``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

import portico_rx as prx
from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_queue import JobQueue

from .conftest import LeaseClock, Pair

NOW = datetime.now(UTC)


def job(job_type: str = "contract.test", **fields: Any) -> Job:
    return Job(job_type=job_type, **fields)


async def drain(queue: JobQueue, queue_names: list[str], **kwargs: Any) -> list[Job]:
    claimed: list[Job] = []
    while (next_job := await queue.dequeue(queue_names, **kwargs)) is not None:
        claimed.append(next_job)
    return claimed


async def test_enqueue_then_get_round_trips_every_field(job_queue: JobQueue) -> None:
    """What goes in comes back out: nested JSON, unicode, priority, metadata, key."""
    original = job(
        "report:daily",
        queue_name="reports.eu",
        payload={"n": 1, "nested": {"list": [1, 2.5, None, True]}, "text": "żółw ✓"},
        priority=-7,
        metadata={"trigger": "t", "idempotency_key": "k-1"},
        idempotency_key="k-1",
        max_retries=5,
    )
    stored, created = await job_queue.enqueue(original)
    assert created
    assert stored.id == original.id
    got = await job_queue.get(original.id)
    assert got is not None
    for field in ("job_type", "queue_name", "payload", "priority", "metadata", "max_retries"):
        assert getattr(got, field) == getattr(original, field), field
    assert got.idempotency_key == "k-1"
    assert got.status is JobStatus.PENDING
    assert got.attempts == 0
    assert abs(got.created_at - original.created_at) < timedelta(milliseconds=1)
    assert (await job_queue.get_by_key("k-1")) == got


async def test_repeated_key_returns_the_first_job_and_stores_one(job_queue: JobQueue) -> None:
    first, created_first = await job_queue.enqueue(job(payload={"v": 1}, idempotency_key="same"))
    second, created_second = await job_queue.enqueue(job(payload={"v": 2}, idempotency_key="same"))
    assert (created_first, created_second) == (True, False)
    assert second.id == first.id and second.payload == {"v": 1}
    assert len(await job_queue.list(key_prefix="same")) == 1


async def test_concurrent_enqueues_of_one_key_store_one_job(job_queue: JobQueue) -> None:
    results = await asyncio.gather(
        *(job_queue.enqueue(job(payload={"i": i}, idempotency_key="race")) for i in range(25))
    )
    assert sum(created for _, created in results) == 1
    assert len({stored.id for stored, _ in results}) == 1
    assert len(await job_queue.list()) == 1


async def test_dequeue_takes_highest_priority_then_oldest(job_queue: JobQueue) -> None:
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -3), ("f", 100)]:
        await job_queue.enqueue(job(payload={"name": name}, priority=priority))
    claimed = await drain(job_queue, ["default"])
    assert [j.payload["name"] for j in claimed] == ["f", "b", "d", "a", "c", "e"]


async def test_dequeue_only_from_the_named_queues(job_queue: JobQueue) -> None:
    await job_queue.enqueue(job(queue_name="emails", payload={"q": "emails"}, priority=1))
    await job_queue.enqueue(job(queue_name="reports", payload={"q": "reports"}, priority=9))
    await job_queue.enqueue(job(queue_name="other", payload={"q": "other"}, priority=50))
    claimed = await drain(job_queue, ["emails", "reports"])
    assert [j.payload["q"] for j in claimed] == ["reports", "emails"]
    assert [j.payload["q"] for j in await drain(job_queue, ["other"])] == ["other"]


async def test_dequeue_marks_running_and_counts_the_attempt(job_queue: JobQueue) -> None:
    stored, _ = await job_queue.enqueue(job())
    claimed = await job_queue.dequeue(["default"])
    assert claimed is not None and claimed.id == stored.id
    assert claimed.status is JobStatus.RUNNING
    assert claimed.attempts == 1
    assert claimed.started_at is not None
    assert (await job_queue.get(stored.id)) == claimed
    assert await job_queue.dequeue(["default"]) is None


async def test_scheduled_job_waits_for_its_time(job_queue: JobQueue) -> None:
    due = NOW + timedelta(hours=1)
    await job_queue.enqueue(job(scheduled_at=due, status=JobStatus.SCHEDULED, priority=10))
    await job_queue.enqueue(job(payload={"now": True}))
    first = await job_queue.dequeue(["default"], now=NOW)
    assert first is not None and first.payload == {"now": True}
    assert await job_queue.dequeue(["default"], now=due - timedelta(seconds=1)) is None
    later = await job_queue.dequeue(["default"], now=due)
    assert later is not None and later.scheduled_at == due


async def test_concurrent_dequeuers_claim_each_job_once(job_queue: JobQueue) -> None:
    ids = set()
    for i in range(60):
        stored, _ = await job_queue.enqueue(job(payload={"i": i}, priority=i % 4))
        ids.add(stored.id)

    async def worker() -> list[Job]:
        got = []
        while (claimed := await job_queue.dequeue(["default"])) is not None:
            got.append(claimed)
            await asyncio.sleep(0)
        return got

    batches = await asyncio.gather(*(worker() for _ in range(8)))
    claimed_ids = [j.id for batch in batches for j in batch]
    assert len(claimed_ids) == len(set(claimed_ids)) == 60
    assert set(claimed_ids) == ids


async def test_complete_stores_the_result(job_queue: JobQueue) -> None:
    stored, _ = await job_queue.enqueue(job())
    await job_queue.dequeue(["default"])
    done = await job_queue.complete(stored.id, {"sent": 3})
    assert done.status is JobStatus.COMPLETED and done.result == {"sent": 3}
    assert done.completed_at is not None
    got = await job_queue.get(stored.id)
    assert got is not None and got.status is JobStatus.COMPLETED and got.result == {"sent": 3}
    assert await job_queue.dequeue(["default"]) is None


async def test_fail_with_retry_at_reschedules_then_fail_for_good(job_queue: JobQueue) -> None:
    stored, _ = await job_queue.enqueue(job())
    await job_queue.dequeue(["default"])
    retry_at = NOW + timedelta(minutes=5)
    retried = await job_queue.fail(stored.id, "smtp down", retry_at=retry_at)
    assert retried.status is JobStatus.SCHEDULED and retried.error == "smtp down"
    assert retried.scheduled_at == retry_at
    assert await job_queue.dequeue(["default"], now=NOW) is None
    again = await job_queue.dequeue(["default"], now=retry_at + timedelta(seconds=1))
    assert again is not None and again.id == stored.id and again.attempts == 2
    failed = await job_queue.fail(stored.id, "still down")
    assert failed.status is JobStatus.FAILED and failed.error == "still down"
    assert await job_queue.dequeue(["default"], now=retry_at + timedelta(days=1)) is None
    got = await job_queue.get(stored.id)
    assert got is not None and got.status is JobStatus.FAILED and got.attempts == 2


async def test_unknown_ids_raise_job_not_found_or_return_none(job_queue: JobQueue) -> None:
    missing = uuid4()
    with pytest.raises(prx.JobNotFoundError, match=str(missing)):
        await job_queue.complete(missing)
    with pytest.raises(prx.JobNotFoundError):
        await job_queue.fail(missing, "x")
    with pytest.raises(LookupError):
        await job_queue.fail(missing, "x", retry_at=NOW)
    assert await job_queue.get(missing) is None
    assert await job_queue.get_by_key("no-such-key") is None


async def test_list_filters_combine(job_queue: JobQueue) -> None:
    await job_queue.enqueue(job("email.send", queue_name="emails", idempotency_key="mail:1"))
    await job_queue.enqueue(job("email.send", queue_name="emails", idempotency_key="mail:2"))
    await job_queue.enqueue(job("report.build", queue_name="reports", idempotency_key="rep:1"))
    await job_queue.enqueue(job("report.build", queue_name="emails"))
    await job_queue.dequeue(["reports"])

    async def types(**filters: Any) -> list[str]:
        return sorted(j.job_type for j in await job_queue.list(**filters))

    assert await types() == ["email.send", "email.send", "report.build", "report.build"]
    assert await types(job_type="email.send") == ["email.send", "email.send"]
    assert await types(queue_name="emails") == ["email.send", "email.send", "report.build"]
    assert await types(status=JobStatus.RUNNING) == ["report.build"]
    assert await types(status=JobStatus.PENDING, job_type="report.build") == ["report.build"]
    assert await types(key_prefix="mail:") == ["email.send", "email.send"]
    assert await types(key_prefix="nothing") == []
    assert await types(job_type="email.send", queue_name="reports") == []


async def test_key_prefix_is_literal_not_a_pattern(job_queue: JobQueue) -> None:
    await job_queue.enqueue(job(idempotency_key="a%b_c"))
    await job_queue.enqueue(job(idempotency_key="axbyc"))
    assert [j.idempotency_key for j in await job_queue.list(key_prefix="a%b_")] == ["a%b_c"]
    assert [j.idempotency_key for j in await job_queue.list(key_prefix="a%")] == ["a%b_c"]


async def test_list_orders_newest_first_or_by_key_and_limits(job_queue: JobQueue) -> None:
    for i, key in enumerate(["t:2025-01-02", "t:2025-01-03", "t:2025-01-01"]):
        await job_queue.enqueue(job(payload={"i": i}, idempotency_key=key))
    newest = await job_queue.list()
    assert [j.payload["i"] for j in newest] == [2, 1, 0]
    by_key = await job_queue.list(key_prefix="t:", order_by="idempotency_key", limit=2)
    assert [j.idempotency_key for j in by_key] == ["t:2025-01-03", "t:2025-01-02"]
    assert len(await job_queue.list(limit=1)) == 1


@pytest.mark.parametrize(
    "kwargs, match", [({"limit": 0}, "limit"), ({"order_by": "priority"}, "order_by")]
)
async def test_list_rejects_bad_arguments(
    job_queue: JobQueue, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(prx.ConfigurationError, match=match):
        await job_queue.list(**kwargs)


async def test_dequeue_needs_a_queue_name(job_queue: JobQueue) -> None:
    with pytest.raises(prx.ConfigurationError, match="queue_names"):
        await job_queue.dequeue([])


async def test_wait_for_jobs_returns_within_the_timeout(job_queue: JobQueue) -> None:
    await asyncio.wait_for(job_queue.wait_for_jobs(0.05), timeout=10)
    waiter = asyncio.ensure_future(job_queue.wait_for_jobs(5))
    await asyncio.sleep(0)
    await job_queue.enqueue(job())
    await asyncio.wait_for(waiter, timeout=10)
    assert (await job_queue.dequeue(["default"])) is not None


async def test_job_service_over_the_queue_honours_metadata_key(job_queue: JobQueue) -> None:
    """The spec's FAQ: a key in metadata makes create_job idempotent."""
    service = prx.JobService(job_queue)
    first = await service.create_job("a.b", {"v": 1}, metadata={"idempotency_key": "faq"})
    again = await service.create_job("a.b", {"v": 2}, metadata={"idempotency_key": "faq"})
    assert again.id == first.id
    assert await service.get_job(first.id) is not None
    with pytest.raises(prx.InvalidJobError, match="payload"):
        await service.create_job("a.b", {"when": datetime.now(UTC)})
    assert len(await job_queue.list()) == 1


# ---- leases: a job whose worker died is claimed again ------------------------------------
# Over every store in LEASED_QUEUE_FACTORIES (SQLite, PostgreSQL, Redis): ``dead`` claims and
# then stops calling (a killed worker), ``survivor`` is another process on the same store.
# ``lease_clock`` moves the adapters' clock, so no test sleeps.

LEASE = 30.0
SharedStore = Callable[..., contextlib.AbstractAsyncContextManager[Pair]]


async def test_an_expired_lease_makes_the_job_claimable_again(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job(payload={"v": 1}))
        claimed = await dead.dequeue(["default"])
        assert claimed is not None and claimed.id == stored.id and claimed.attempts == 1
        assert await survivor.dequeue(["default"]) is None  # leased to the dead worker
        lease_clock.advance(LEASE - 1)
        assert await survivor.dequeue(["default"]) is None  # not yet expired
        lease_clock.advance(2)
        again = await survivor.dequeue(["default"])
        assert again is not None and again.id == stored.id and again.payload == {"v": 1}
        assert again.status is JobStatus.RUNNING and again.attempts == 2
        assert (await survivor.get(stored.id)) == again
        assert await survivor.dequeue(["default"]) is None  # the new lease holds it
        lease_clock.advance(LEASE / 2)
        assert await dead.dequeue(["default"]) is None
        done = await survivor.complete(stored.id, {"ok": True})
        assert done.status is JobStatus.COMPLETED and done.result == {"ok": True}
        lease_clock.advance(LEASE * 10)
        assert await survivor.dequeue(["default"]) is None  # completed jobs never return
        assert await dead.dequeue(["default"]) is None


async def test_a_reclaimed_job_keeps_its_place_by_priority_and_age(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        await dead.enqueue(job(payload={"n": "lost"}))
        lost = await dead.dequeue(["default"])
        assert lost is not None and lost.payload == {"n": "lost"}
        await survivor.enqueue(job(payload={"n": "urgent"}, priority=5))
        await survivor.enqueue(job(payload={"n": "younger"}))
        lease_clock.advance(LEASE + 1)
        claimed = await drain(survivor, ["default"])
        assert [j.payload["n"] for j in claimed] == ["urgent", "lost", "younger"]
        assert [j.attempts for j in claimed] == [1, 2, 1]


async def test_an_expired_job_comes_back_in_its_own_queue(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job(queue_name="emails"))
        assert await dead.dequeue(["emails"]) is not None
        lease_clock.advance(LEASE + 1)
        assert await survivor.dequeue(["reports"]) is None  # never handed to another queue
        again = await survivor.dequeue(["reports", "emails"])
        assert again is not None and again.id == stored.id and again.attempts == 2
        assert again.queue_name == "emails"


async def test_the_status_shows_a_reclaimed_job_as_pending(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job(payload={"n": "lost"}))
        assert await dead.dequeue(["default"]) is not None
        lease_clock.advance(LEASE + 1)
        # As in PostgreSQL, leases are returned by claims, not by reading: until a worker
        # claims from the queue, the expired job still reads as running.
        assert [j.id for j in await survivor.list(status=JobStatus.RUNNING)] == [stored.id]
        await survivor.enqueue(job(payload={"n": "urgent"}, priority=9))
        urgent = await survivor.dequeue(["default"])  # returns the expired lease, takes urgent
        assert urgent is not None and urgent.payload == {"n": "urgent"}
        [pending] = await survivor.list(status=JobStatus.PENDING)
        assert pending.id == stored.id and pending.attempts == 1
        assert [j.id for j in await survivor.list(status=JobStatus.RUNNING)] == [urgent.id]
        again = await survivor.dequeue(["default"])
        assert again is not None and again.id == stored.id and again.attempts == 2


async def test_dequeue_now_in_the_future_does_not_take_a_live_lease(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    """``now=`` decides which jobs are due; leases run on the queue's clock (as in
    PostgreSQL and Redis), so looking ahead never steals a running job."""
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job())
        assert await dead.dequeue(["default"]) is not None
        assert await survivor.dequeue(["default"], now=lease_clock.now + timedelta(days=1)) is None
        got = await survivor.get(stored.id)
        assert got is not None and got.status is JobStatus.RUNNING and got.attempts == 1


async def test_without_a_visibility_timeout_a_claimed_job_is_never_reclaimed(
    shared_store: SharedStore, lease_clock: LeaseClock
) -> None:
    async with shared_store(visibility_timeout=None) as (dead, survivor):
        stored, _ = await dead.enqueue(job())
        assert await dead.dequeue(["default"]) is not None
        lease_clock.advance(10 * 365 * 86_400)
        assert await survivor.dequeue(["default"]) is None
        got = await survivor.get(stored.id)
        assert got is not None and got.status is JobStatus.RUNNING and got.attempts == 1


@pytest.mark.parametrize("outcome", ["complete", "fail", "retry"])
async def test_settling_a_job_ends_its_lease(
    shared_store: SharedStore, lease_clock: LeaseClock, outcome: str
) -> None:
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job())
        assert await dead.dequeue(["default"]) is not None
        retry_at = lease_clock.now + timedelta(seconds=LEASE * 100)
        if outcome == "complete":
            settled = await dead.complete(stored.id, "done")
        elif outcome == "fail":
            settled = await dead.fail(stored.id, "broken")
        else:
            settled = await dead.fail(stored.id, "busy", retry_at=retry_at)
        lease_clock.advance(LEASE * 2)  # the old lease would have expired by now
        assert await survivor.dequeue(["default"]) is None
        got = await survivor.get(stored.id)
        assert got is not None and got.status is settled.status and got.attempts == 1
        if outcome == "retry":
            assert got.status is JobStatus.SCHEDULED
            again = await survivor.dequeue(["default"], now=retry_at)
            assert again is not None and again.id == stored.id and again.attempts == 2


@pytest.mark.parametrize("late", ["complete", "fail"])
async def test_a_late_settle_from_the_dead_worker_is_applied_as_in_postgresql(
    shared_store: SharedStore, lease_clock: LeaseClock, late: str
) -> None:
    """No fencing: ``complete``/``fail`` settle a job by id whoever claimed it last (the
    PostgreSQL adapter's behaviour). A worker that comes back after its lease expired
    settles the job the survivor is running; the survivor's own settle then wins, and the
    job is never claimed a third time. Handlers must be idempotent on ``job.id``."""
    async with shared_store(visibility_timeout=LEASE) as (dead, survivor):
        stored, _ = await dead.enqueue(job())
        assert await dead.dequeue(["default"]) is not None
        lease_clock.advance(LEASE + 1)
        again = await survivor.dequeue(["default"])
        assert again is not None and again.attempts == 2
        if late == "complete":
            first = await dead.complete(stored.id, {"by": "dead"})
            assert first.status is JobStatus.COMPLETED and first.result == {"by": "dead"}
        else:
            first = await dead.fail(stored.id, "lost the connection")
            assert first.status is JobStatus.FAILED and first.error == "lost the connection"
        lease_clock.advance(LEASE * 2)
        assert await survivor.dequeue(["default"]) is None  # settled: no lease, no third run
        final = await survivor.complete(stored.id, {"by": "survivor"})
        assert final.status is JobStatus.COMPLETED and final.result == {"by": "survivor"}
        assert final.error is None and final.attempts == 2
        lease_clock.advance(LEASE * 2)
        assert await dead.dequeue(["default"]) is None
