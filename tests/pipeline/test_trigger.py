"""PipelineTrigger: events in, jobs out, nothing lost, errors isolated."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
import reactivex
from reactivex import operators as rx_ops
from reactivex.scheduler import HistoricalScheduler
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.testing import RecordingJobCreator, advance, settle


def fast_retry(attempts: int = 5) -> prx.RetryPolicy:
    return prx.RetryPolicy(max_attempts=attempts, initial_delay=0.001, max_delay=0.01, seed=1)


async def test_issue_example_creates_one_job_for_the_paid_signup() -> None:
    """The issue's example: a filtered subject becomes jobs with queue and priority."""
    service = prx.JobService(job_queue=MemoryJobQueue())
    signups: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        signups.pipe(
            rx_ops.filter(lambda e: e["plan"] != "free"),
            prx.to_job(
                "email.welcome",
                payload=lambda e: {"user": e["id"]},
                queue_name="emails",
                priority=5,
            ),
        ),
        job_creator=service,
        name="welcome-emails",
    )
    await trigger.start()
    signups.on_next({"id": 6, "plan": "free"})
    signups.on_next({"id": 7, "plan": "pro"})
    await trigger.stop()
    jobs = await service.list_jobs()
    assert [(j.job_type, j.payload, j.queue_name, j.priority) for j in jobs] == [
        ("email.welcome", {"user": 7}, "emails", 5)
    ]
    assert jobs[0].metadata["trigger"] == "welcome-emails"
    assert jobs[0].metadata["source"] == "observable"
    assert "seen_at" in jobs[0].metadata
    assert trigger.get_health().jobs_created_count == 1


async def test_second_start_warns_and_does_nothing(recording_creator: RecordingJobCreator) -> None:
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("x.y", payload=lambda n: {"n": n})),
        job_creator=recording_creator,
        name="t",
    )
    await trigger.start()
    with capture_logs() as logs:
        await trigger.start()
    subject.on_next(1)
    await trigger.stop()
    await trigger.stop()  # idempotent
    assert [e["event"] for e in logs] == ["trigger_already_running"]
    assert len(recording_creator.jobs) == 1  # one subscription, not two
    assert not trigger.is_running


async def test_user_lambda_error_is_isolated_and_counted() -> None:
    """A filter that raises for one event: later events still become jobs."""
    creator = RecordingJobCreator()
    subject: reactivex.Subject[int] = reactivex.Subject()

    def picky(n: int) -> bool:
        if n == 2:
            raise ZeroDivisionError("boom")
        return True

    trigger = prx.PipelineTrigger(
        subject.pipe(rx_ops.filter(picky), prx.to_job("n.seen", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="iso",
    )
    await trigger.start()
    for n in range(1, 6):
        subject.on_next(n)
    await trigger.stop()
    assert [j.payload["n"] for j in creator.jobs] == [1, 3, 4, 5]
    health = trigger.get_health()
    assert health.errors_count == 1
    assert "ZeroDivisionError" in (health.last_error or "")
    assert health.restarts_count == 1


async def test_payload_error_becomes_dead_letter_not_stream_end() -> None:
    creator = RecordingJobCreator()
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("a.b", payload=lambda e: {"v": e["v"]})),
        job_creator=creator,
        name="conv",
    )
    await trigger.start()
    subject.on_next({"v": 1})
    subject.on_next({"nope": 1})
    subject.on_next({"v": float("nan")})
    subject.on_next({"v": 3})
    await trigger.stop()
    assert [j.payload for j in creator.jobs] == [{"v": 1}, {"v": 3}]
    assert [d.stage for d in trigger.dead_letters] == ["to_job", "to_job"]
    assert trigger.get_health().errors_count == 2
    assert trigger.get_health().restarts_count == 0


async def test_create_job_retries_then_succeeds() -> None:
    creator = RecordingJobCreator(fail_first=3)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("r.t", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="retry",
        retry=fast_retry(),
        max_concurrency=1,
    )
    await trigger.start()
    subject.on_next(1)
    await trigger.stop()
    assert [j.payload for j in creator.jobs] == [{"n": 1}]
    assert trigger.get_health().retries_count == 3
    assert trigger.get_health().errors_count == 0


async def test_out_of_retries_alerts_and_dead_letters() -> None:
    alerts: list[tuple[str, str, dict[str, Any]]] = []
    creator = RecordingJobCreator(fail_first=100)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("r.t", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="alerting",
        retry=fast_retry(3),
        alert=lambda level, message, context: alerts.append((level, message, context)),
    )
    await trigger.start()
    subject.on_next(1)
    await trigger.stop()
    assert creator.jobs == []
    assert len(creator.calls) == 3
    assert alerts and alerts[0][0] == "error" and "r.t" in alerts[0][1]
    [letter] = trigger.dead_letters
    assert letter.stage == "create_job" and letter.attempts == 3
    assert letter.request is not None and letter.request.payload == {"n": 1}
    assert trigger.get_health().dead_lettered_count == 1


async def test_invalid_job_type_is_not_retried() -> None:
    creator = RecordingJobCreator()
    subject: reactivex.Subject[str] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job(lambda t: t)), job_creator=creator, name="bad-type"
    )
    await trigger.start()
    subject.on_next("")
    subject.on_next("ok.type")
    await trigger.stop()
    assert [j.job_type for j in creator.jobs] == ["ok.type"]
    assert trigger.dead_letters[0].stage == "to_job"
    assert "job_type" in trigger.dead_letters[0].error


def _delivering_source(events: list[tuple[int, Delivery]]) -> reactivex.Observable[int]:
    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        for value, delivery in events:
            deliver(observer, value, delivery)
        return reactivex.disposable.Disposable()

    return reactivex.create(subscribe)


async def test_settlement_acks_created_and_dropped_nacks_failed() -> None:
    """Ack after the job exists; ack a deliberately dropped event; nack a failed one."""
    settled: dict[int, str] = {}
    at = datetime(2025, 1, 1, tzinfo=UTC)

    def delivery(n: int) -> Delivery:
        return Delivery(
            source="fake-queue",
            seen_at=at,
            event_id=f"m{n}",
            idempotency_key=f"m{n}",
            ack=lambda: settled.__setitem__(n, "ack"),
            nack=lambda requeue: settled.__setitem__(n, f"nack(requeue={requeue})"),
        )

    deliveries = [(n, delivery(n)) for n in range(4)]

    def payload(n: int) -> dict[str, int]:
        if n == 3:
            raise KeyError("no such field")
        return {"n": n}

    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        _delivering_source(deliveries).pipe(
            rx_ops.filter(lambda n: n != 1), prx.to_job("q.msg", payload=payload)
        ),
        job_creator=creator,
        name="queue-trigger",
        on_complete="stop",
    )
    await trigger.start()
    await settle()
    assert settled.get(0) is None or settled[0] == "ack"
    await trigger.stop()
    assert settled == {0: "ack", 1: "ack", 2: "ack", 3: "nack(requeue=False)"}
    assert [d.outcome.value for _, d in deliveries] == ["created", "dropped", "created", "failed"]
    job = creator.jobs[0]
    assert job.metadata["idempotency_key"] == "queue-trigger:q.msg:m0"
    assert job.metadata["event_id"] == "m0"
    assert job.metadata["source"] == "fake-queue"
    assert job.metadata["seen_at"] == at.isoformat()


async def test_ack_waits_for_the_job() -> None:
    """A message is not acked while its job is still being created."""
    release = asyncio.Event()
    acked: list[str] = []

    class SlowCreator(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await release.wait()
            return await super().create_job(*args, **kwargs)

    creator = SlowCreator()
    d = Delivery(
        source="q", seen_at=datetime(2025, 1, 1, tzinfo=UTC), ack=lambda: acked.append("x")
    )
    trigger = prx.PipelineTrigger(
        _delivering_source([(1, d)]).pipe(prx.to_job("a.b", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="slow",
        on_complete="stop",
    )
    await trigger.start()
    await settle()
    assert acked == [] and creator.jobs == []
    release.set()
    await settle()
    assert acked == ["x"] and len(creator.jobs) == 1
    await trigger.stop()


async def test_stop_in_a_burst_loses_nothing() -> None:
    """Every event accepted before stop is a job or a dead letter."""
    creator = RecordingJobCreator()

    class Slow(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> prx.Job:
            await asyncio.sleep(0.001)
            return await creator.create_job(*args, **kwargs)

    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("b.b", payload=lambda n: {"n": n})),
        job_creator=Slow(),
        name="burst",
        max_concurrency=4,
        stop_timeout=0.05,
    )
    await trigger.start()
    for n in range(500):
        subject.on_next(n)
    await trigger.stop()
    subject.on_next(999)  # after stop: not accepted
    created = {j.payload["n"] for j in creator.jobs}
    dead = {d.request.payload["n"] for d in trigger.dead_letters if d.request is not None}
    assert created | dead == set(range(500))
    assert not created & dead
    assert dead, "the stop timeout was meant to cut the burst short"
    assert all(d.stage == "stop" for d in trigger.dead_letters)


async def test_source_error_restarts_with_backoff_in_virtual_time() -> None:
    """A source that fails at subscribe is retried with backoff on the scheduler."""
    attempts: list[datetime] = []
    scheduler = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))

    def subscribe(observer: Any, sched: Any = None) -> Any:
        attempts.append(scheduler.now)
        if len(attempts) < 4:
            observer.on_error(ConnectionError("broker down"))
        else:
            observer.on_next(len(attempts))
        return reactivex.disposable.Disposable()

    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        reactivex.create(subscribe).pipe(prx.to_job("s.s", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="flaky-source",
        scheduler=scheduler,
        restart_delay=1.0,
    )
    await trigger.start()
    assert trigger.is_running
    assert not trigger.get_health().healthy
    await advance(scheduler, 10)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps == [1.0, 2.0, 4.0]
    assert [j.payload for j in creator.jobs] == [{"n": 4}]
    assert trigger.get_health().healthy
    await trigger.stop()


async def test_retry_backoff_sleeps_in_virtual_time() -> None:
    scheduler = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    creator = RecordingJobCreator(fail_first=2)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job("v.t", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="virtual-retry",
        scheduler=scheduler,
        retry=prx.RetryPolicy(initial_delay=60, max_delay=600, jitter=0),
    )
    await trigger.start()
    subject.on_next(1)
    await settle()
    assert creator.jobs == []
    await advance(scheduler, 59)
    assert creator.jobs == [] and len(creator.calls) == 1
    await advance(scheduler, 1 + 120)
    assert len(creator.jobs) == 1
    await trigger.stop()


async def test_finite_source_with_on_complete_stop_stops_the_trigger() -> None:
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        reactivex.of(1, 2, 3).pipe(prx.to_job("f.f", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="finite",
        on_complete="stop",
    )
    await trigger.start()
    for _ in range(50):
        if not trigger.is_running:
            break
        await asyncio.sleep(0.01)
    assert not trigger.is_running
    assert [j.payload["n"] for j in creator.jobs] == [1, 2, 3]


async def test_start_error_from_source_is_raised_by_start(recording_creator: Any) -> None:
    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        observer.on_error(prx.TriggerStartError("watch path /nope does not exist"))
        return reactivex.disposable.Disposable()

    trigger = prx.PipelineTrigger(
        reactivex.create(subscribe).pipe(prx.to_job("a.b")),
        job_creator=recording_creator,
        name="bad-start",
    )
    with pytest.raises(prx.TriggerStartError, match="/nope"):
        await trigger.start()
    assert not trigger.is_running


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": ""}, "name"),
        ({"name": "x", "max_concurrency": 0}, "max_concurrency"),
        ({"name": "x", "stop_timeout": -1}, "stop_timeout"),
        ({"name": "x", "on_complete": "explode"}, "on_complete"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(prx.ConfigurationError, match=match):
        prx.PipelineTrigger(reactivex.empty(), job_creator=RecordingJobCreator(), **kwargs)
