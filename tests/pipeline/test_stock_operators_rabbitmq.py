"""Stock reactivex operators over the real RabbitMQ: every row of the table in
docs/operators.md.

Tracked rows: a process whose pipeline holds a message in the operator (or, for the
operators that hand it on at once, in a job creation that never finishes) is SIGKILLed;
the message was never acked, RabbitMQ redelivers it to a second process, and exactly one
job exists. Detected rows: the event that reaches to_job without a live delivery is
warned about, counted in health, and with strict_settlement=True refused to the dead
letters (the message is rejected into RabbitMQ's dead-letter queue).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import reactivex
import structlog
from reactivex import operators as ops

import portico_rx as prx
from portico_rx.testing import RecordingJobCreator

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

URL = "amqp://guest:guest@127.0.0.1:5672/"
SCRIPT = Path(__file__).with_name("operator_process.py")


@pytest.fixture
async def queue() -> AsyncIterator[str]:
    """A fresh durable queue with the dead-letter queue the source declares."""
    import aio_pika

    name = f"ops-{uuid.uuid4().hex[:10]}"
    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    await channel.declare_queue(f"{name}.dead", durable=True)
    await channel.declare_queue(
        name,
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{name}.dead"},
    )
    yield name
    await channel.queue_delete(name)
    await channel.queue_delete(f"{name}.dead")
    await connection.close()


async def publish(queue: str, message_id: str, n: int) -> None:
    import aio_pika

    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    await channel.default_exchange.publish(
        aio_pika.Message(
            body=json.dumps({"n": n}).encode(),
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=queue,
    )
    await connection.close()


async def ready_count(queue: str) -> int:
    """Messages waiting in the queue (not delivered to a consumer, or given back)."""
    import aio_pika

    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    declared = await channel.declare_queue(queue, passive=True)
    await connection.close()
    count: int = declared.declaration_result.message_count
    return count


async def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s (last {value!r})")
        await asyncio.sleep(0.05)


async def spawn(queue: str, db: Path, operator: str, seconds: float, *, block: bool) -> Any:
    argv = [sys.executable, str(SCRIPT), queue, str(db), operator, str(seconds)]
    if block:
        argv.append("--block")
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.strip() == b"READY", f"operator process did not start: {line!r}"
    return process


def jobs_in(db: Path) -> list[tuple[str, dict[str, Any]]]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            rows = connection.execute("SELECT idempotency_key, payload FROM jobs").fetchall()
        except sqlite3.OperationalError:
            return []
    return [(key, json.loads(payload)) for key, payload in rows]


# operator -> (seconds it holds the message in the first process, block the creator)
TRACKED: dict[str, tuple[float, bool]] = {
    "delay": (60.0, False),
    "debounce": (60.0, False),
    "throttle_with_timeout": (60.0, False),
    "flat_map_timer": (60.0, False),
    "timeout": (60.0, True),  # passes the message on at once; its timer holds the ack
    "observe_on": (0.0, True),  # hands it on within a loop iteration
}


@pytest.mark.parametrize("operator", sorted(TRACKED))
async def test_killed_while_a_stock_operator_holds_the_message_nothing_is_lost(
    operator: str, queue: str, tmp_path: Path
) -> None:
    seconds, block = TRACKED[operator]
    db = tmp_path / "jobs.db"
    first = await spawn(queue, db, operator, seconds, block=block)
    try:
        await publish(queue, "order-1", 1)
        await until(lambda: _zero(queue))  # delivered to the process
        await asyncio.sleep(0.5)  # in the operator (or the blocked creation) by now
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert jobs_in(db) == []
    assert await until(lambda: _count_is(queue, 1)), "the message was acked before its job"
    second = await spawn(queue, db, operator, 0.2, block=False)
    try:
        await until(lambda: len(jobs_in(db)) >= 1)
        await asyncio.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    assert jobs_in(db) == [("ops:job.e:order-1", {"n": 1})]
    assert await ready_count(queue) == 0


async def _zero(queue: str) -> bool:
    return await ready_count(queue) == 0


async def _count_is(queue: str, expected: int) -> bool:
    return await ready_count(queue) == expected


# operator -> the kind it is reported as
DETECTED: dict[str, tuple[Callable[[Any], Any], str]] = {
    "sample": (ops.sample(0.3), "timer"),
    "buffer_with_time": (ops.compose(ops.buffer_with_time(0.3), ops.filter(len)), "buffer"),
    "buffer_with_count": (ops.buffer_with_count(2), "buffer"),
    "window_with_count": (
        ops.compose(ops.window_with_count(2), ops.flat_map(lambda w: w.pipe(ops.to_list()))),
        "buffer",
    ),
}


def as_payload(item: Any) -> dict[str, Any]:
    items = item if isinstance(item, list) else [item]
    return {"n": [json.loads(message.body)["n"] for message in items]}


async def run_detected(
    name: str, queue: str, *, strict: bool
) -> tuple[prx.PipelineTrigger, RecordingJobCreator]:
    operator, _kind = DETECTED[name]
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        prx.sources.rabbitmq(URL, queue).pipe(operator, prx.to_job("job.e", payload=as_payload)),
        job_creator=creator,
        name="ops",
        strict_settlement=strict,
    )
    await trigger.start()
    await asyncio.sleep(0.3)  # consuming
    await publish(queue, "m-1", 1)
    await publish(queue, "m-2", 2)
    await until(lambda: trigger.get_health().untracked_count >= 1)
    await asyncio.sleep(0.3)
    return trigger, creator


@pytest.mark.parametrize("name", sorted(DETECTED))
async def test_an_untracked_operator_is_warned_about_and_counted(name: str, queue: str) -> None:
    with structlog.testing.capture_logs() as logs:
        trigger, creator = await run_detected(name, queue, strict=False)
        await trigger.stop()
    kind = DETECTED[name][1]
    assert set(trigger.get_health().details["untracked_events"]) == {kind}
    warnings = [entry for entry in logs if entry["event"] == "untracked_event"]
    assert warnings and warnings[0]["operator_kind"] == kind
    assert "portico_rx" in warnings[0]["advice"]
    assert creator.jobs, "not strict: the job is still created"


@pytest.mark.parametrize("name", sorted(DETECTED))
async def test_strict_settlement_refuses_an_untracked_event(name: str, queue: str) -> None:
    trigger, creator = await run_detected(name, queue, strict=True)
    await trigger.stop()
    assert creator.jobs == []
    assert {letter.stage for letter in trigger.dead_letters} == {"settlement"}


# synchronous operators: the delivery stays current while they pass the event on
SYNCHRONOUS: dict[str, Callable[[Any], Any]] = {
    "throttle_first": ops.throttle_first(0.001),
    "filter": ops.filter(lambda m: json.loads(m.body)["n"] >= 0),
    "map": ops.map(lambda m: m),
    "merge": lambda source: source.pipe(ops.merge(reactivex.never())),
    "concat": lambda source: reactivex.concat(source, reactivex.never()),
    "take_until": ops.take_until(reactivex.never()),
    "retry": ops.retry(3),
    "group_by + flat_map": ops.compose(
        ops.group_by(lambda m: json.loads(m.body)["n"] % 2), ops.flat_map(lambda group: group)
    ),
}


@pytest.mark.parametrize("name", sorted(SYNCHRONOUS))
async def test_a_synchronous_operator_keeps_each_message_open_until_its_job_exists(
    name: str, queue: str
) -> None:
    """Each message gets its own job with its own key, is acked (the queue ends empty),
    and nothing is reported untracked."""
    creator = RecordingJobCreator()
    source = prx.sources.rabbitmq(URL, queue)
    trigger = prx.PipelineTrigger(
        source.pipe(SYNCHRONOUS[name], prx.to_job("job.e", payload=lambda m: json.loads(m.body))),
        job_creator=creator,
        name="ops",
    )
    await trigger.start()
    try:
        await until(lambda: source.status.connected)
        for n in (1, 2):
            await publish(queue, f"m-{n}", n)
            await asyncio.sleep(0.01)  # throttle_first lets each through
        await until(lambda: len(creator.jobs) == 2)
        await until(lambda: source.status.in_flight == 0)  # both settled with the broker
    finally:
        await trigger.stop()
        await source.wait_closed(timeout=15)
    assert sorted(job.metadata["idempotency_key"] for job in creator.jobs) == [
        "ops:job.e:m-1",
        "ops:job.e:m-2",
    ]
    assert await ready_count(queue) == 0
    assert trigger.get_health().untracked_count == 0
