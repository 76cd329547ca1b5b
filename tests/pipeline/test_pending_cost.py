"""What a pending event costs in objects: the bound ``max_pending`` and the garbage
collector both depend on it (``benchmarks/bench_pipeline.py`` measures the time)."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from datetime import UTC, datetime

import reactivex

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.models import Job
from portico_rx.pipeline.delivery import Claim, Delivery, Outcome, deliver

EVENTS = 500


def tracked() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


async def test_a_pending_event_keeps_five_tracked_objects_alive() -> None:
    """Its Delivery, its Claim (no tuple for one delivery), the JobRequest and two dicts."""
    creator = prx.JobService(MemoryJobQueue())
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("n.seen", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="pending",
    )
    await trigger.start()
    acked: list[str] = []
    deliveries = [
        Delivery(
            source="pending-cost",
            seen_at=datetime.now(UTC),
            event_id=str(n),
            idempotency_key=str(n),
            ack=lambda n=n: acked.append(str(n)),
        )
        for n in range(EVENTS)
    ]
    before = tracked()
    for n, delivery in enumerate(deliveries):  # synchronously: the sink has not run yet
        deliver(subject, n, delivery)
    grown = tracked() - before
    assert trigger.get_health().in_flight == EVENTS
    assert grown["Claim"] == EVENTS and grown["JobRequest"] == EVENTS
    assert grown["tuple"] < EVENTS // 10 and grown["list"] < EVENTS // 10
    assert grown["dict"] <= 2 * EVENTS + EVENTS // 5  # the request's fields and payload
    # (each Delivery was counted before; other types would be a new cost per event)
    per_event = {name: n for name, n in grown.items() if n >= EVENTS // 2}
    assert set(per_event) <= {"Claim", "JobRequest", "dict"}, per_event
    await trigger.stop()
    assert sorted(acked, key=int) == [str(n) for n in range(EVENTS)]
    assert all(d.outcome is Outcome.CREATED for d in deliveries)


async def test_a_burst_of_created_jobs_is_not_held_until_the_loop_iteration_ends() -> None:
    creator = prx.JobService(MemoryJobQueue())
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("n.seen", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="burst",
        history_size=1,
    )
    await trigger.start()
    alive: list[int] = []

    def count_jobs() -> None:  # runs in the loop iteration that creates the burst
        if trigger.counters.jobs_created == EVENTS:
            alive.append(sum(isinstance(o, Job) for o in gc.get_objects()))
        else:
            asyncio.get_running_loop().call_soon(count_jobs)

    jobs_before = sum(isinstance(o, Job) for o in gc.get_objects())
    for n in range(EVENTS):
        subject.on_next(n)
    count_jobs()
    while not alive:
        await asyncio.sleep(0)
    assert alive[0] - jobs_before <= 3  # the log's first and last job, the history's one
    await trigger.stop()
    assert trigger.counters.jobs_created == EVENTS


def test_a_claim_on_one_delivery_resolves_it_once() -> None:
    delivery = Delivery(source="claim", seen_at=datetime.now(UTC))
    claim = delivery.claim()
    assert claim.deliveries == (delivery,)
    claim.resolve(True, job_id="j1")
    claim.resolve(False)  # a second call does nothing
    delivery.seal()
    assert (delivery.outcome, delivery.job_ids) == (Outcome.CREATED, ["j1"])
    many = [Delivery(source="claim", seen_at=datetime.now(UTC)) for _ in range(2)]
    batch = Claim.on(many)
    assert batch.deliveries == tuple(many)
    batch.resolve(False, requeue=True)
    for each in many:
        each.seal()
    assert [each.outcome for each in many] == [Outcome.FAILED, Outcome.FAILED]
