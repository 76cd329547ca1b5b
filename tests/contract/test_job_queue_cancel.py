"""``JobQueue.cancel``: a pending or scheduled job becomes CANCELLED and is never claimed;
any other status, or an unknown id, is refused with an error naming why. Every store."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portico_rx as prx
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_queue import JobQueue

NOW = datetime.now(UTC)
LATER = NOW + timedelta(hours=1)


def job(**fields: object) -> Job:
    return Job(job_type="contract.cancel", **fields)  # type: ignore[arg-type]


async def test_a_cancelled_pending_job_is_never_dequeued(job_queue: JobQueue) -> None:
    kept, _ = await job_queue.enqueue(job(payload={"n": 1}))
    dropped, _ = await job_queue.enqueue(job(payload={"n": 2}, priority=9))
    cancelled = await job_queue.cancel(dropped.id)
    assert cancelled.id == dropped.id and cancelled.status is JobStatus.CANCELLED
    assert cancelled.payload == {"n": 2} and cancelled.completed_at is not None
    assert cancelled.attempts == 0
    claimed = await job_queue.dequeue(["default"])
    assert claimed is not None and claimed.id == kept.id  # priority 9 was skipped
    assert await job_queue.dequeue(["default"]) is None
    assert await job_queue.dequeue(None, now=NOW + timedelta(days=365)) is None
    stored = await job_queue.get(dropped.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED
    assert [j.id for j in await job_queue.list(status=JobStatus.CANCELLED)] == [dropped.id]


async def test_a_cancelled_scheduled_job_never_comes_due(job_queue: JobQueue) -> None:
    stored, _ = await job_queue.enqueue(job(status=JobStatus.SCHEDULED, scheduled_at=LATER))
    cancelled = await job_queue.cancel(stored.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.scheduled_at == LATER
    assert await job_queue.dequeue(["default"], now=LATER + timedelta(seconds=1)) is None
    assert await job_queue.dequeue(None, now=LATER + timedelta(days=1)) is None


async def test_a_job_waiting_for_its_retry_can_be_cancelled(job_queue: JobQueue) -> None:
    stored, _ = await job_queue.enqueue(job())
    await job_queue.dequeue(["default"])
    await job_queue.fail(stored.id, "smtp down", retry_at=LATER)
    cancelled = await job_queue.cancel(stored.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.attempts == 1
    assert cancelled.error == "smtp down"  # the last attempt's error is kept
    assert await job_queue.dequeue(["default"], now=LATER + timedelta(minutes=1)) is None


@pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled"])
async def test_cancelling_a_job_past_waiting_names_its_status(
    job_queue: JobQueue, status: str
) -> None:
    stored, _ = await job_queue.enqueue(job())
    if status == "cancelled":
        await job_queue.cancel(stored.id)
    else:
        await job_queue.dequeue(["default"])
        if status == "completed":
            await job_queue.complete(stored.id, {"ok": True})
        elif status == "failed":
            await job_queue.fail(stored.id, "boom")
    before = await job_queue.get(stored.id)
    with pytest.raises(prx.ConfigurationError, match=f"{stored.id}.*it is {status}"):
        await job_queue.cancel(stored.id)
    assert await job_queue.get(stored.id) == before  # nothing changed


async def test_cancelling_an_unknown_id_raises_job_not_found(job_queue: JobQueue) -> None:
    missing = uuid4()
    with pytest.raises(prx.JobNotFoundError, match=str(missing)):
        await job_queue.cancel(missing)


async def test_cancel_racing_dequeue_gives_each_job_one_outcome(job_queue: JobQueue) -> None:
    """Workers claim while another task cancels: every job is claimed xor cancelled."""
    ids = [(await job_queue.enqueue(job(payload={"i": i})))[0].id for i in range(40)]
    claimed: list[Job] = []
    cancelled: list[Job] = []
    refused: list[str] = []

    async def worker() -> None:
        while (got := await job_queue.dequeue(["default"])) is not None:
            claimed.append(got)
            await asyncio.sleep(0)

    async def canceller() -> None:
        for job_id in reversed(ids):
            try:
                cancelled.append(await job_queue.cancel(job_id))
            except prx.ConfigurationError as exc:
                assert "it is running" in str(exc)
                refused.append(str(job_id))
            await asyncio.sleep(0)

    await asyncio.gather(worker(), worker(), canceller())
    claimed_ids = {j.id for j in claimed}
    cancelled_ids = {j.id for j in cancelled}
    assert len(claimed) == len(claimed_ids) and not claimed_ids & cancelled_ids
    assert claimed_ids | cancelled_ids == set(ids)
    assert len(refused) == len(ids) - len(cancelled_ids)
    for job_id in cancelled_ids:
        stored = await job_queue.get(job_id)
        assert stored is not None and stored.status is JobStatus.CANCELLED


async def test_job_service_cancels_by_id_or_its_text(job_queue: JobQueue) -> None:
    service = JobService(job_queue)
    first = await service.create_job("contract.cancel", {"n": 1})
    second = await service.create_job("contract.cancel", {"n": 2})
    assert (await service.cancel_job(first.id)).status is JobStatus.CANCELLED
    assert (await service.cancel_job(str(second.id))).status is JobStatus.CANCELLED
    with pytest.raises(prx.ConfigurationError, match="'not-a-uuid' is not a UUID"):
        await service.cancel_job("not-a-uuid")
    assert await job_queue.dequeue(None) is None


_examples = itertools.count()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kinds=st.lists(st.sampled_from(["pending", "due", "later"]), min_size=1, max_size=8),
    steps=st.lists(
        st.tuples(st.sampled_from(["cancel", "dequeue", "complete"]), st.integers(0, 7)),
        max_size=16,
    ),
)
async def test_cancel_and_dequeue_follow_the_reference_model(
    job_queue: JobQueue, kinds: list[str], steps: list[tuple[str, int]]
) -> None:
    queue_name = f"cancel-{next(_examples)}"  # each example its own queue in the store
    ids = []
    model: dict[UUID, str] = {}  # id -> status, as the port's contract says
    for kind in kinds:
        fields: dict[str, object] = {"queue_name": queue_name}
        if kind != "pending":
            fields |= {"status": JobStatus.SCHEDULED, "scheduled_at": LATER}
        if kind == "due":
            fields["scheduled_at"] = NOW - timedelta(minutes=1)
        added, _ = await job_queue.enqueue(job(**fields))
        ids.append(added.id)
        model[added.id] = "waiting-later" if kind == "later" else "waiting"
    for action, index in steps:
        job_id = ids[index % len(ids)]
        if action == "cancel":
            if model[job_id].startswith("waiting"):
                assert (await job_queue.cancel(job_id)).status is JobStatus.CANCELLED
                model[job_id] = "cancelled"
            else:
                with pytest.raises(prx.ConfigurationError, match=f"it is {model[job_id]}"):
                    await job_queue.cancel(job_id)
        elif action == "dequeue":
            got = await job_queue.dequeue([queue_name], now=NOW)
            due = {i for i, s in model.items() if s == "waiting"}
            if not due:
                assert got is None
            else:
                assert got is not None and got.id in due
                model[got.id] = "running"
        elif model[job_id] == "running":
            await job_queue.complete(job_id)
            model[job_id] = "completed"
    for job_id, status in model.items():
        stored = await job_queue.get(job_id)
        assert stored is not None
        expected = {"waiting": "pending", "waiting-later": "scheduled"}.get(status, status)
        if status == "waiting" and stored.status is JobStatus.SCHEDULED:
            expected = "scheduled"  # a due scheduled job keeps its status until claimed
        assert stored.status.value == expected
    leftover = []
    while (got := await job_queue.dequeue([queue_name], now=LATER + timedelta(1))) is not None:
        leftover.append(got.id)
    assert set(leftover) == {i for i, s in model.items() if s.startswith("waiting")}
