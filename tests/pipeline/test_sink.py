"""The sink's bound on pending requests (``max_pending``) and its overflow policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import reactivex
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.errors import ConfigurationError
from portico_rx.models import Job
from portico_rx.pipeline.delivery import Delivery, Outcome, deliver
from portico_rx.pipeline.sink import DEFAULT_MAX_PENDING
from portico_rx.testing import RecordingJobCreator


class GatedCreator(RecordingJobCreator):
    """Creates jobs only once ``gate`` is set: requests pile up as pending meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def create_job(self, *args: Any, **kwargs: Any) -> Job:
        await self.gate.wait()
        return await super().create_job(*args, **kwargs)


class Settlements:
    """Deliveries for numbered events, remembering how each was settled."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.nacked: list[tuple[int, bool]] = []
        self.deliveries: dict[int, Delivery] = {}

    def delivery(self, n: int) -> Delivery:
        def ack() -> None:
            self.acked.append(n)

        def nack(requeue: bool) -> None:
            self.nacked.append((n, requeue))

        delivery = Delivery(
            source="test", seen_at=datetime.now(UTC), event_id=str(n), ack=ack, nack=nack
        )
        self.deliveries[n] = delivery
        return delivery


def bounded_trigger(
    creator: RecordingJobCreator, subject: reactivex.Subject[int], **options: Any
) -> prx.PipelineTrigger:
    return prx.PipelineTrigger(
        subject.pipe(prx.to_job("n.seen", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="bounded",
        max_concurrency=2,
        **options,
    )


async def until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def test_requests_beyond_max_pending_are_dead_lettered_and_requeued() -> None:
    creator = GatedCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = bounded_trigger(creator, subject, max_pending=3)
    settled = Settlements()
    await trigger.start()
    with capture_logs() as logs:
        for n in range(5):
            deliver(subject, n, settled.delivery(n))
    health = trigger.get_health()
    assert health.in_flight == 3
    assert health.details["sink"] == {
        "max_pending": 3,
        "overflow": "dead_letter",
        "overflowed": 2,
    }
    assert [(d.stage, d.event_id) for d in trigger.dead_letters] == [
        ("overflow", "3"),
        ("overflow", "4"),
    ]
    assert trigger.dead_letters[0].request is not None
    assert trigger.dead_letters[0].request.payload == {"n": 3}
    assert settled.nacked == [(3, True), (4, True)]  # a broker would redeliver them
    assert [e["event"] for e in logs if e["event"].startswith("sink_")] == ["sink_overflow"]
    overflow_log = next(e for e in logs if e["event"] == "sink_overflow")
    assert (overflow_log["max_pending"], overflow_log["policy"]) == (3, "dead_letter")

    creator.gate.set()
    await until(lambda: len(creator.jobs) == 3)
    with capture_logs() as logs:
        deliver(subject, 5, settled.delivery(5))  # room again: accepted
    await until(lambda: len(creator.jobs) == 4)
    await trigger.stop()
    assert sorted(job.payload["n"] for job in creator.jobs) == [0, 1, 2, 5]
    assert sorted(settled.acked) == [0, 1, 2, 5]
    ended = [e for e in logs if e["event"] == "sink_overflow_ended"]
    assert len(ended) == 1 and ended[0]["overflowed"] == 2
    assert trigger.get_health().details["sink"]["overflowed"] == 2
    assert trigger.get_health().dead_lettered_count == 2


async def test_drop_policy_nacks_without_requeue_and_counts() -> None:
    creator = GatedCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = bounded_trigger(creator, subject, max_pending=2, overflow="drop")
    settled = Settlements()
    await trigger.start()
    for n in range(6):
        deliver(subject, n, settled.delivery(n))
    assert list(trigger.dead_letters) == []
    assert settled.nacked == [(2, False), (3, False), (4, False), (5, False)]
    assert settled.deliveries[5].outcome is Outcome.FAILED
    assert trigger.get_health().details["sink"]["overflowed"] == 4
    creator.gate.set()
    await trigger.stop()
    assert [job.payload["n"] for job in creator.jobs] == [0, 1]
    assert sorted(settled.acked) == [0, 1]


async def test_a_hot_subject_burst_holds_at_most_max_pending() -> None:
    """Event max_pending + 1 of a burst is decided at once; memory does not grow with it."""
    creator = GatedCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = bounded_trigger(creator, subject, max_pending=50, overflow="drop")
    await trigger.start()
    for n in range(1000):
        subject.on_next(n)
    assert trigger.get_health().in_flight == 50
    assert trigger.counters.overflowed == 950
    assert trigger.counters.events_seen == 1000
    creator.gate.set()
    await trigger.stop()
    assert sorted(job.payload["n"] for job in creator.jobs) == list(range(50))


async def test_stop_ends_an_overflow_with_its_count() -> None:
    creator = GatedCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = bounded_trigger(creator, subject, max_pending=1, overflow="drop")
    await trigger.start()
    for n in range(4):
        subject.on_next(n)
    creator.gate.set()
    with capture_logs() as logs:
        await trigger.stop()
    ended = [e for e in logs if e["event"] == "sink_overflow_ended"]
    assert [(e["overflowed"], e["policy"]) for e in ended] == [(3, "drop")]
    assert len(creator.jobs) == 1


async def test_the_default_bound_is_documented_and_generous() -> None:
    trigger = bounded_trigger(RecordingJobCreator(), reactivex.Subject())
    assert trigger.max_pending == DEFAULT_MAX_PENDING == 100_000
    assert trigger.overflow == "dead_letter"
    assert trigger.get_health().details["sink"]["overflowed"] == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_pending": 0}, "max_pending=0"),
        ({"max_pending": 2.5}, "max_pending=2.5"),
        ({"max_pending": True}, "max_pending=True"),
        ({"overflow": "block"}, "overflow='block'"),
    ],
)
def test_a_bad_bound_or_policy_is_refused_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named.replace(".", r"\.")):
        bounded_trigger(RecordingJobCreator(), reactivex.Subject(), **options)


async def test_a_burst_logs_one_jobs_created_line_and_a_lone_job_its_own() -> None:
    creator = RecordingJobCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = bounded_trigger(creator, subject)
    await trigger.start()
    with capture_logs() as logs:
        for n in range(3):
            subject.on_next(n)  # created in one loop iteration
        await until(lambda: len(creator.jobs) == 3)
        await asyncio.sleep(0)
    burst = [e for e in logs if e["event"] in ("job_created", "jobs_created")]
    assert [(e["event"], e["count"], e["job_types"]) for e in burst] == [
        ("jobs_created", 3, {"n.seen": 3})
    ]
    assert burst[0]["first_job_id"] == str(creator.jobs[0].id)
    assert burst[0]["last_job_id"] == str(creator.jobs[2].id)
    with capture_logs() as logs:
        subject.on_next(3)
        await until(lambda: len(creator.jobs) == 4)
        await asyncio.sleep(0)
    alone = [e for e in logs if e["event"] in ("job_created", "jobs_created")]
    assert [(e["event"], e["job_id"], e["attempt"]) for e in alone] == [
        ("job_created", str(creator.jobs[3].id), 1)
    ]
    await trigger.stop()


def test_requests_sharing_one_fields_set_still_copy_and_compare() -> None:
    """The sink holds many pending requests: they share one fields set (less memory)."""
    requests: list[Any] = []
    reactivex.of(1, 2).pipe(prx.to_job("n.seen", payload=lambda n: {"n": n})).subscribe(
        requests.append
    )
    first, second = requests
    copied = first.model_copy(update={"priority": 5})
    assert copied.priority == 5 and first.priority == 0
    assert first.model_fields_set is second.model_fields_set
    assert copied.model_fields_set is not first.model_fields_set  # pydantic copied it
    assert first == first.model_copy() and first != second
