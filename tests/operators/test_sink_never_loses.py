"""The sink never loses an event while creator failures stay inside the retry budget:
every event becomes exactly one job and every delivery is acked after its job."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.operators import debounce_by
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.testing import EPOCH, RecordingJobCreator, advance, settle

ATTEMPTS = 4


class FlakyCreator(RecordingJobCreator):
    """Fails the n-th event's first ``failures[n]`` attempts, then creates its job."""

    def __init__(self, failures: dict[int, int]) -> None:
        super().__init__()
        self.planned = failures
        self.attempts: Counter[int] = Counter()

    async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
        n = kwargs["payload"]["n"]
        self.attempts[n] += 1
        if self.attempts[n] <= self.planned.get(n, 0):
            raise prx.QueueUnavailableError(f"planned failure {self.attempts[n]} of event {n}")
        return await super().create_job(*args, **kwargs)


async def run(failures: list[int], concurrency: int, keyed_debounce: bool) -> None:
    clock = HistoricalScheduler(initial_clock=EPOCH)
    observers: list[Any] = []
    source = reactivex.create(
        lambda o, _s=None: observers.append(o) or reactivex.disposable.Disposable()
    )
    settled: dict[int, str] = {}
    creator = FlakyCreator(dict(enumerate(failures)))
    pipeline = source
    if keyed_debounce:
        pipeline = pipeline.pipe(debounce_by(lambda n: n, 2))
    trigger = prx.PipelineTrigger(
        pipeline.pipe(prx.to_job("e.v", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="never-lose",
        scheduler=clock,
        max_concurrency=concurrency,
        retry=prx.RetryPolicy(max_attempts=ATTEMPTS, initial_delay=1, max_delay=8, seed=7),
    )
    await trigger.start()
    deliveries = []
    for n in range(len(failures)):
        delivery = Delivery(
            source="q",
            seen_at=clock.now,
            event_id=str(n),
            idempotency_key=str(n),
            ack=lambda n=n: settled.__setitem__(n, "ack"),
            nack=lambda requeue, n=n: settled.__setitem__(n, f"nack({requeue})"),
        )
        deliveries.append(delivery)
        for observer in list(observers):
            deliver(observer, n, delivery)
    await advance(clock, 200, step=0.5)
    await settle()
    await trigger.stop()
    assert sorted(j.payload["n"] for j in creator.jobs) == list(range(len(failures)))
    assert settled == {n: "ack" for n in range(len(failures))}
    assert all(d.outcome is prx.Outcome.CREATED for d in deliveries)
    assert len(trigger.dead_letters) == 0
    health = trigger.get_health()
    assert health.jobs_created_count == len(failures)
    assert health.retries_count == sum(failures)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, ATTEMPTS - 1), min_size=1, max_size=30),
    st.integers(1, 4),
    st.booleans(),
)
def test_failures_inside_the_retry_budget_lose_nothing(
    failures: list[int], concurrency: int, keyed_debounce: bool
) -> None:
    asyncio.run(run(failures, concurrency, keyed_debounce))
