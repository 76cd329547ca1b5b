"""Settlement through stock reactivex operators: a delivery is acked only when its job
exists or the pipeline provably dropped it, also while a stock operator holds the event;
what cannot be tracked is detected, counted and (strict) refused. Virtual time."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.tracking import TrackingScheduler, tracked
from portico_rx.testing import RecordingJobCreator, advance, settle

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Broker:
    """Emits messages with deliveries whose ack/nack are recorded, as a broker would:
    from the context it was subscribed in (a real source's consumer task inherits it)."""

    def __init__(self, clock: HistoricalScheduler) -> None:
        self.clock = clock
        self.observers: list[tuple[Any, contextvars.Context]] = []
        self.settled: dict[str, str] = {}
        self.observable: reactivex.Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(self, observer: Any, _scheduler: Any = None) -> Any:
        entry = (observer, contextvars.copy_context())
        self.observers.append(entry)
        return reactivex.disposable.Disposable(lambda: self.observers.remove(entry))

    def publish(self, message_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        event = {"id": message_id, **(body or {})}
        delivery = Delivery(
            source="broker",
            seen_at=self.clock.now,
            event_id=message_id,
            idempotency_key=message_id,
            ack=lambda: self.settled.__setitem__(message_id, "ack"),
            nack=lambda requeue: self.settled.__setitem__(
                message_id, "requeue" if requeue else "dead"
            ),
        )
        for observer, context in list(self.observers):
            context.run(deliver, observer, event, delivery)
        return event


def as_payload(event: Any) -> dict[str, Any]:
    return event if isinstance(event, dict) else {"items": event}


Pipe = Callable[[reactivex.Observable[Any]], reactivex.Observable[Any]]


async def started(
    operator: Pipe, *, strict: bool = False
) -> tuple[HistoricalScheduler, Broker, RecordingJobCreator, prx.PipelineTrigger]:
    clock = HistoricalScheduler(initial_clock=T0)
    broker = Broker(clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        broker.observable.pipe(operator, prx.to_job("order.ship", payload=as_payload)),
        job_creator=creator,
        name="orders",
        scheduler=clock,
        strict_settlement=strict,
    )
    await trigger.start()
    return clock, broker, creator, trigger


def keys(creator: RecordingJobCreator) -> list[str]:
    return [job.metadata["idempotency_key"] for job in creator.jobs]


TIME_SHIFTS: dict[str, Pipe] = {
    "delay": ops.delay(5.0),
    "timeout": ops.timeout(60.0),
    "flat_map over timer": ops.flat_map(lambda e: reactivex.timer(5.0).pipe(ops.map(lambda _: e))),
}


@pytest.mark.parametrize("name", sorted(TIME_SHIFTS))
async def test_a_time_shifted_message_is_acked_only_after_its_job_exists(name: str) -> None:
    """Three messages a second apart through a time-shifting operator: none is acked while
    the operator holds it; each gets its own job with its own key; then each is acked."""
    clock, broker, creator, trigger = await started(TIME_SHIFTS[name])
    for n in range(3):
        broker.publish(f"m{n}")
        await advance(clock, 1.0)
    if name != "timeout":
        assert broker.settled == {}, "acked while the operator still held the message"
    await advance(clock, 10.0)
    await settle()
    assert sorted(keys(creator)) == [f"orders:order.ship:m{n}" for n in range(3)]
    await trigger.stop()  # timeout: the last message's timer holds it until now
    assert broker.settled == {"m0": "ack", "m1": "ack", "m2": "ack"}
    assert trigger.get_health().untracked_count == 0


async def test_delay_batches_many_messages_behind_one_action_and_keeps_each_key() -> None:
    """ops.delay drains every due message in one action scheduled for the first: the
    later ones are parked (not acked) and each job still carries its own message's key."""
    clock, broker, creator, trigger = await started(ops.delay(5.0))
    for n in range(5):
        broker.publish(f"m{n}")  # all at the same instant: one delay action for all
    assert broker.settled == {}
    await advance(clock, 6.0)
    await settle()
    assert sorted(keys(creator)) == [f"orders:order.ship:m{n}" for n in range(5)]
    await trigger.stop()
    assert broker.settled == {f"m{n}": "ack" for n in range(5)}


@pytest.mark.parametrize("operator", [ops.debounce(3.0), ops.throttle_with_timeout(3.0)])
async def test_debounced_away_messages_are_acked_as_dropped(operator: Pipe) -> None:
    """A burst through debounce: the superseded messages are acked as dropped when the
    operator lets go of them; the last one only after its job exists."""
    clock, broker, creator, trigger = await started(operator)
    for n in range(3):
        broker.publish(f"m{n}")
        await advance(clock, 1.0)
    assert broker.settled == {"m0": "ack", "m1": "ack"}
    await advance(clock, 5.0)
    await settle()
    assert keys(creator) == ["orders:order.ship:m2"]
    await trigger.stop()
    assert broker.settled["m2"] == "ack"


async def test_a_message_held_by_a_stock_operator_goes_back_to_the_broker_on_stop() -> None:
    """Stopping while stock operators hold messages gives them back (nack with requeue):
    ops.delay's held and parked messages and ops.debounce's pending one; no job exists
    for them, and the broker redelivers them to the next consumer."""
    clock, broker, creator, trigger = await started(
        ops.compose(ops.filter(lambda e: e["id"] != "x"), ops.delay(30.0))
    )
    broker.publish("m0")
    broker.publish("m1")  # parked behind m0's action
    await advance(clock, 1.0)
    assert broker.settled == {}
    await trigger.stop()
    assert creator.jobs == []
    assert broker.settled == {"m0": "requeue", "m1": "requeue"}
    clock, broker, creator, trigger = await started(ops.debounce(30.0))
    broker.publish("d0")
    await trigger.stop()
    assert broker.settled == {"d0": "requeue"}


async def test_a_failing_pipeline_gives_held_messages_back() -> None:
    """A user function that raises ends the Rx subscription; what ops.delay held then
    goes back to the broker instead of being acked, and the trigger subscribes again."""

    def explode(event: dict[str, Any]) -> dict[str, Any]:
        if event["id"] == "boom":
            raise ValueError("boom")
        return event

    clock, broker, _creator, trigger = await started(ops.compose(ops.delay(30.0), ops.map(explode)))
    broker.publish("m0")
    await advance(clock, 1.0)
    broker.publish("boom")
    await advance(clock, 29.5)  # m0 comes out of the delay and is created
    await advance(clock, 1.0)  # boom comes out and raises
    await settle()
    assert broker.settled["m0"] == "ack"
    assert broker.settled["boom"] == "dead"  # dead-lettered once, not redelivered forever
    assert trigger.is_running
    await trigger.stop()


async def test_observe_on_a_tracked_scheduler_holds_the_delivery() -> None:
    """A scheduler the user gives an operator is tracked once wrapped in tracked()."""
    elsewhere = HistoricalScheduler(initial_clock=T0)
    _clock, broker, creator, trigger = await started(ops.observe_on(tracked(elsewhere)))
    broker.publish("m0")
    broker.publish("m1")
    assert broker.settled == {}
    elsewhere.advance_by(0.001)
    await settle()
    await trigger.stop()
    assert sorted(keys(creator)) == ["orders:order.ship:m0", "orders:order.ship:m1"]
    assert broker.settled == {"m0": "ack", "m1": "ack"}


def detected(name: str) -> tuple[Pipe, str, HistoricalScheduler | None]:
    """The operator, the kind it is reported as, and a scheduler of its own (if any)."""
    if name == "observe_on an untracked scheduler":
        own = HistoricalScheduler(initial_clock=T0)
        return ops.observe_on(own), "timer", own
    operators: dict[str, tuple[Pipe, str]] = {
        "sample": (ops.sample(2.0), "timer"),
        "buffer_with_time": (ops.buffer_with_time(2.0), "buffer"),
        "buffer_with_count": (ops.buffer_with_count(2), "buffer"),
        "window_with_count + to_list": (
            ops.compose(ops.window_with_count(2), ops.flat_map(lambda w: w.pipe(ops.to_list()))),
            "buffer",
        ),
    }
    operator, kind = operators[name]
    return operator, kind, None


DETECTED = [
    "buffer_with_count",
    "buffer_with_time",
    "observe_on an untracked scheduler",
    "sample",
    "window_with_count + to_list",
]


async def publish_two(
    clock: HistoricalScheduler, broker: Broker, own: HistoricalScheduler | None
) -> None:
    broker.publish("m0")
    broker.publish("m1")
    await advance(clock, 3.0)
    if own is not None:
        own.advance_by(0.001)
    await settle()


@pytest.mark.parametrize("name", DETECTED)
async def test_an_untracked_operator_is_detected_counted_and_warned(name: str) -> None:
    """An operator that keeps events in its own state is not silent: the event that
    reaches to_job without a live delivery is counted in health by operator kind (and a
    warning names the portico_rx operator to use instead); the job is still created."""
    operator, kind, own = detected(name)
    clock, broker, creator, trigger = await started(operator)
    await publish_two(clock, broker, own)
    health = trigger.get_health()
    assert health.untracked_count >= 1
    assert set(health.details["untracked_events"]) == {kind}
    await trigger.stop()
    assert len(creator.jobs) >= 1


@pytest.mark.parametrize("name", DETECTED)
async def test_strict_settlement_refuses_untracked_events_to_the_dead_letters(name: str) -> None:
    """With strict_settlement=True the untracked event becomes a dead letter whose error
    says what to use instead; no job is created from it."""
    operator, kind, own = detected(name)
    clock, broker, creator, trigger = await started(operator, strict=True)
    await publish_two(clock, broker, own)
    await trigger.stop()
    assert creator.jobs == []
    letters = list(trigger.dead_letters)
    assert letters and {letter.stage for letter in letters} == {"settlement"}
    assert "portico_rx" in letters[0].error
    assert set(trigger.get_health().details["untracked_events"]) == {kind}


async def test_a_mapped_batch_released_by_delay_is_detected_and_nothing_is_acked_early() -> None:
    """map before delay: the released objects are new, so their deliveries cannot be told
    apart. The batch is reported ("batched"), and no parked message is acked before the
    jobs of the batch exist."""
    clock, broker, creator, trigger = await started(
        ops.compose(ops.map(lambda e: {"order": e["id"]}), ops.delay(5.0))
    )
    for n in range(3):
        broker.publish(f"m{n}")
    await advance(clock, 6.0)
    await settle()
    await trigger.stop()
    assert sorted(job.payload["order"] for job in creator.jobs) == ["m0", "m1", "m2"]
    assert broker.settled == {"m0": "ack", "m1": "ack", "m2": "ack"}
    assert "batched" in trigger.get_health().details["untracked_events"]


async def test_a_plain_subject_without_deliveries_is_not_reported() -> None:
    """Detection applies to sources that deliver; a bare Subject is an ordinary stream."""
    clock = HistoricalScheduler(initial_clock=T0)
    subject: reactivex.subject.Subject[int] = reactivex.subject.Subject()
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        subject.pipe(ops.delay(1.0), prx.to_job("n", payload=lambda n: {"n": n})),
        job_creator=creator,
        name="plain",
        scheduler=clock,
    )
    await trigger.start()
    subject.on_next(1)
    await advance(clock, 2.0)
    await settle()
    await trigger.stop()
    assert [job.payload for job in creator.jobs] == [{"n": 1}]
    assert trigger.get_health().untracked_count == 0


def test_the_trigger_scheduler_reads_as_the_users_and_tracked_is_idempotent() -> None:
    clock = HistoricalScheduler(initial_clock=T0)
    wrapped = tracked(clock)
    assert tracked(wrapped) is wrapped
    assert isinstance(wrapped, TrackingScheduler) and wrapped.now == clock.now
    assert prx.pipeline.clock.is_virtual(wrapped)


def test_the_docs_table_has_a_row_for_every_operator_tested_on_rabbitmq() -> None:
    """docs/operators.md's table of stock operators covers every operator the RabbitMQ
    tests exercise (tests/pipeline/test_stock_operators_rabbitmq.py)."""
    from tests.pipeline.test_stock_operators_rabbitmq import DETECTED as ON_RABBITMQ
    from tests.pipeline.test_stock_operators_rabbitmq import SYNCHRONOUS, TRACKED

    table = (Path(__file__).parents[2] / "docs" / "operators.md").read_text()
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    row_names = {
        "flat_map_timer": "`flat_map` over `reactivex.timer`",
        "group_by + flat_map": "`group_by` + `flat_map`",
    }
    for name in [*TRACKED, *ON_RABBITMQ, *SYNCHRONOUS]:
        wanted = row_names.get(name, f"`{name}`")
        assert any(wanted in cell for cell in first_cells), name


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=12),
    delay=st.integers(min_value=1, max_value=5),
    mapped=st.booleans(),
)
async def test_delay_never_acks_before_the_job_and_makes_each_job_once(
    gaps: list[int], delay: int, mapped: bool
) -> None:
    """Property (any arrival pattern, delay before or after a map): every message is
    acked exactly once, never before a job carrying its payload exists, and the jobs are
    exactly the messages; before ``map`` each job keeps its own message's key."""
    first = ops.map(lambda e: {"order": e["id"]}) if mapped else ops.map(lambda e: e)
    order = [first, ops.delay(float(delay))] if mapped else [ops.delay(float(delay)), first]
    clock, broker, creator, trigger = await started(ops.compose(*order))
    early: list[str] = []

    def payload_id(job: prx.Job) -> str:
        return str(job.payload.get("order", job.payload.get("id")))

    try:
        for n, gap in enumerate(gaps):
            await advance(clock, float(gap))
            broker.publish(f"m{n}")
            created = {payload_id(job) for job in creator.jobs}
            early += [m for m in broker.settled if m not in created]
        await advance(clock, float(delay + 1))
        await settle()
    finally:
        await trigger.stop()
    ids = [f"m{n}" for n in range(len(gaps))]
    assert early == []
    assert sorted(payload_id(job) for job in creator.jobs) == sorted(ids)
    assert broker.settled == dict.fromkeys(ids, "ack")
    if not mapped:
        assert sorted(keys(creator)) == sorted(f"orders:order.ship:{m}" for m in ids)
