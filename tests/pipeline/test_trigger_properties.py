"""Properties of the pipeline core, for any events and any failure pattern (hypothesis)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as rx_ops

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.pipeline.delivery import Delivery, Outcome, deliver
from portico_rx.ports.job_creator import JobCreator

MAX_ATTEMPTS = 4
NO_WAIT = prx.RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_delay=0, max_delay=0, jitter=0)
AT = datetime(2025, 1, 1, tzinfo=UTC)


class FlakyCreator(JobCreator):
    """Fails the first ``plan[event]`` calls for each event, then creates through ``inner``."""

    def __init__(self, inner: JobCreator, plan: dict[int, int]) -> None:
        self.inner = inner
        self.plan = dict(plan)
        self.failures = 0

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> prx.Job:
        event = payload["event"]
        if self.plan.get(event, 0) > 0:
            self.plan[event] -= 1
            self.failures += 1
            await asyncio.sleep(0)
            raise prx.QueueUnavailableError(f"planned failure for event {event}")
        return await self.inner.create_job(job_type, payload, queue_name, priority, metadata)

    async def get_job(self, job_id: Any) -> prx.Job | None:
        return await self.inner.get_job(job_id)


class Source:
    """A redelivering source: each event carries a delivery with ack/nack."""

    def __init__(self, events: list[tuple[int, str | None]]) -> None:
        self.settled: Counter[tuple[int, str]] = Counter()
        self.deliveries = [
            (
                n,
                Delivery(
                    source="fake-queue",
                    seen_at=AT,
                    event_id=f"m{i}",
                    idempotency_key=key,
                    ack=lambda n=n: self.settled.update([(n, "ack")]),
                    nack=lambda requeue, n=n: self.settled.update([(n, "nack")]),
                ),
            )
            for i, (n, key) in enumerate(events)
        ]

    def observable(self) -> reactivex.Observable[int]:
        def subscribe(observer: Any, scheduler: Any = None) -> Any:
            for value, delivery in self.deliveries:
                deliver(observer, value, delivery)
            return reactivex.disposable.Disposable()

        return reactivex.create(subscribe)


async def run_pipeline(
    events: list[tuple[int, str | None]], plan: dict[int, int], *, keep: Any = None
) -> tuple[prx.PipelineTrigger, Source, MemoryJobQueue, FlakyCreator]:
    queue = MemoryJobQueue()
    creator = FlakyCreator(prx.JobService(queue), plan)
    source = Source(events)
    pipeline = source.observable()
    if keep is not None:
        pipeline = pipeline.pipe(rx_ops.filter(keep))
    trigger = prx.PipelineTrigger(
        pipeline.pipe(prx.to_job("prop.job", payload=lambda n: {"event": n})),
        job_creator=creator,
        name="props",
        retry=NO_WAIT,
        max_concurrency=3,
        on_complete="stop",
    )
    await trigger.start()
    for _ in range(1000):
        if all(d.settled for _, d in source.deliveries):
            break
        await asyncio.sleep(0)
    await trigger.stop()
    return trigger, source, queue, creator


events_without_keys = st.lists(st.integers(0, 1000), max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(
    events=events_without_keys,
    failures=st.lists(st.integers(0, MAX_ATTEMPTS - 1), min_size=40, max_size=40),
    keep_odd_only=st.booleans(),
)
def test_every_accepted_event_yields_exactly_one_job(
    events: list[int], failures: list[int], keep_odd_only: bool
) -> None:
    """Failures inside the retry budget delay a job, never lose or duplicate it."""
    plan = {n: failures[i] for i, n in enumerate(events)}

    def keep(n: int) -> bool:
        return n % 2 == 1 or not keep_odd_only

    trigger, source, queue, creator = asyncio.run(
        run_pipeline([(n, None) for n in events], plan, keep=keep)
    )
    accepted = [n for n in events if keep(n)]
    jobs = asyncio.run(queue.list(limit=1000))
    assert sorted(j.payload["event"] for j in jobs) == sorted(accepted)
    assert not trigger.dead_letters
    assert creator.failures == sum(plan[n] for n in accepted)
    assert trigger.get_health().retries_count == creator.failures
    assert trigger.get_health().jobs_created_count == len(accepted)
    # each event settled exactly once, and acked (created, or dropped by the filter)
    assert source.settled == Counter({(n, "ack"): 1 for n in events})
    outcomes = {n: d.outcome for n, d in source.deliveries}
    assert all(outcomes[n] is (Outcome.CREATED if keep(n) else Outcome.DROPPED) for n in events)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=30),
    failures=st.lists(st.integers(0, MAX_ATTEMPTS - 1), min_size=30, max_size=30),
)
def test_repeated_idempotency_keys_yield_one_job(keys: list[str], failures: list[int]) -> None:
    """Redelivered events (same key) become one job per key; every delivery is acked."""
    events = [(i, key) for i, key in enumerate(keys)]
    plan = {i: failures[i] for i in range(len(keys))}
    trigger, source, queue, _creator = asyncio.run(run_pipeline(events, plan))
    jobs = asyncio.run(queue.list(limit=1000))
    assert sorted(j.idempotency_key or "" for j in jobs) == sorted(
        f"props:prop.job:{key}" for key in set(keys)
    )
    assert not trigger.dead_letters
    assert source.settled == Counter({(i, "ack"): 1 for i in range(len(keys))})


@settings(max_examples=40, deadline=None)
@given(
    events=events_without_keys,
    failures=st.lists(st.integers(0, MAX_ATTEMPTS + 2), min_size=40, max_size=40),
)
def test_beyond_the_budget_an_event_is_dead_lettered_and_nacked_never_lost(
    events: list[int], failures: list[int]
) -> None:
    plan = {n: failures[i] for i, n in enumerate(events)}
    trigger, source, queue, _creator = asyncio.run(run_pipeline([(n, None) for n in events], plan))
    created = {j.payload["event"] for j in asyncio.run(queue.list(limit=1000))}
    dead = {d.request.payload["event"] for d in trigger.dead_letters if d.request is not None}
    assert created == {n for n in events if plan[n] < MAX_ATTEMPTS}
    assert dead == {n for n in events if plan[n] >= MAX_ATTEMPTS}
    assert source.settled == Counter({(n, "ack" if n in created else "nack"): 1 for n in events})
