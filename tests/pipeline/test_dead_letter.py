"""Durable dead letters, as a user meets them: a trigger whose job creator keeps failing
writes each dead letter to its job store; after a restart (new objects over the same
SQLite file) the letter is still there, and redriving it creates the job with the
original idempotency key, once."""

from __future__ import annotations

import asyncio
from dataclasses import fields as fields_of
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock
from uuid import UUID

import pytest
import reactivex
from reactivex import operators as ops
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.errors import ConfigurationError, DeadLetterNotFoundError, QueueUnavailableError
from portico_rx.models import JobRequest
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.sink import LETTER_BATCH
from portico_rx.ports.dead_letter_store import DeadLetterRecord, letters_entry
from portico_rx.testing import RecordingJobCreator
from tests.conftest import FlakyService

FAST = prx.RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002)


def order_delivery(order: str, nacked: list[bool] | None = None) -> Delivery:
    return Delivery(
        source="orders-feed",
        seen_at=datetime.now(UTC),
        event_id=order,
        idempotency_key=order,
        attributes={"region": "eu"},
        nack=(lambda requeue: nacked.append(requeue)) if nacked is not None else None,
    )


def orders_trigger(
    subject: reactivex.Subject[dict[str, Any]], creator: prx.JobCreator, **options: Any
) -> prx.PipelineTrigger:
    return prx.PipelineTrigger(
        subject.pipe(prx.to_job("order.ship", payload=lambda e: {"order": e["order"]})),
        job_creator=creator,
        name="orders",
        retry=FAST,
        **options,
    )


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_dead_letter_survives_a_restart_and_redrives_once_with_its_key(
    tmp_path: Path,
) -> None:
    db = tmp_path / "jobs.db"
    # the first process: every creation fails, the event is dead-lettered and stored
    service = FlakyService(SQLiteJobQueue(db))
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = orders_trigger(subject, service)
    assert trigger.dead_letter_store is service.job_queue
    nacked: list[bool] = []
    await trigger.start()
    deliver(
        subject,
        {"order": "A-7", "at": datetime(2026, 12, 1, tzinfo=UTC)},
        order_delivery("A-7", nacked),
    )
    await until(lambda: nacked)
    await trigger.stop()  # waits for the store write
    assert nacked == [False]  # the source still gets its nack (a broker's DLQ keeps it)
    letter = trigger.dead_letters[0]
    health = trigger.get_health()
    assert health.details["dead_letters"] == {"store": "SQLiteJobQueue", "stored": 1, "unstored": 0}
    await service.close()

    # the restarted process: new objects over the same file
    async with prx.JobService(SQLiteJobQueue(db)) as restarted:
        [stored] = await restarted.list_dead_letters()
        assert stored.id == letter.id and stored.trigger == "orders"
        assert (stored.stage, stored.attempts) == ("create_job", 2)
        assert "being failed over" in stored.error
        assert (stored.source, stored.event_id) == ("orders-feed", "A-7")
        assert stored.event == {"order": "A-7", "at": "2026-12-01T00:00:00Z"}
        assert stored.provenance["region"] == "eu"
        assert stored.idempotency_key == "orders:order.ship:A-7"
        assert stored.request == JobRequest(job_type="order.ship", payload={"order": "A-7"})
        assert await restarted.get_dead_letter(str(stored.id)) == stored
        assert await restarted.list_jobs() == []

        job = await restarted.redrive_dead_letter(stored.id)
        assert job.idempotency_key == "orders:order.ship:A-7"
        assert job.payload == {"order": "A-7"} and job.job_type == "order.ship"
        assert job.metadata["event_id"] == "A-7" and job.metadata["trigger"] == "orders"
        assert job.metadata["redriven_from"] == str(stored.id)
        again = await restarted.redrive_dead_letter(stored.id)
        assert again.id == job.id
        assert [j.id for j in await restarted.list_jobs()] == [job.id]
        assert await restarted.list_dead_letters() == []
        [resolved] = await restarted.list_dead_letters(status="redriven")
        assert resolved.job_id == job.id and resolved.resolved_at is not None

    # the broker redelivers the event later: the key finds the redriven job, no second one
    async with prx.JobService(SQLiteJobQueue(db)) as later:
        subject2: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
        async with orders_trigger(subject2, later) as replay:
            deliver(subject2, {"order": "A-7"}, order_delivery("A-7"))
            await until(lambda: replay.get_health().duplicates_count == 1)
        assert len(await later.list_jobs()) == 1


async def test_the_trigger_lists_and_redrives_its_own_dead_letters() -> None:
    service = FlakyService(MemoryJobQueue())
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    other: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = orders_trigger(subject, service, max_concurrency=1)  # letters in order
    billing = prx.PipelineTrigger(
        other.pipe(prx.to_job("invoice", payload=lambda e: e)),
        job_creator=service,
        name="billing",
        retry=FAST,
    )
    async with trigger, billing:
        deliver(subject, {"order": "B-1"}, order_delivery("B-1"))
        deliver(subject, {"order": "B-2"}, order_delivery("B-2"))
        other.on_next({"n": 1})
        await until(lambda: len(trigger.dead_letters) == 2 and len(billing.dead_letters) == 1)
    records = await trigger.dead_letter_records()
    assert [r.event_id for r in records] == ["B-2", "B-1"]  # newest first, this trigger's only
    assert len(await service.list_dead_letters()) == 3
    service.down = False  # the outage is over
    job = await trigger.redrive_dead_letter(trigger.dead_letters[0])  # the in-memory letter
    assert job.idempotency_key == "orders:order.ship:B-1"
    assert (await trigger.redrive_dead_letter(records[1].id)).id == job.id
    discarded = await trigger.discard_dead_letter(records[0])
    assert discarded.status == "discarded"
    assert await trigger.dead_letter_records() == []
    assert [r.event_id for r in await trigger.dead_letter_records(status=None)] == ["B-2", "B-1"]
    # the billing letter had no key of its own: its redrive is keyed by the letter
    [invoice] = await billing.dead_letter_records()
    made = await service.redrive_dead_letter(invoice.id)
    assert made.idempotency_key == f"dead-letter:{invoice.id}"
    assert (await service.redrive_dead_letter(invoice.id)).id == made.id
    assert len(await service.list_jobs()) == 2


async def test_a_letter_the_store_refuses_is_logged_counted_and_kept_in_memory() -> None:
    class BrokenStore(MemoryJobQueue):
        async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
            raise QueueUnavailableError("disk full")

    store = BrokenStore()
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = orders_trigger(subject, FlakyService(MemoryJobQueue()), dead_letter_store=store)
    with capture_logs() as logs:
        async with trigger:
            deliver(subject, {"order": "C-1"}, order_delivery("C-1"))
            await until(lambda: trigger.counters.dead_letters_unstored == 1)
    [letter] = trigger.dead_letters
    assert letter.event == {"order": "C-1"}
    [line] = [entry for entry in logs if entry["event"] == "dead_letter_not_stored"]
    assert line["log_level"] == "error" and "disk full" in line["store_error"]
    assert line["dead_letter_id"] == str(letter.id)
    assert line["idempotency_key"] == "orders:order.ship:C-1"
    assert line["request"] == {
        "job_type": "order.ship",
        "payload": {"order": "C-1"},
        "queue_name": "default",
        "priority": 0,
        "metadata": {},
        "idempotency_key": None,
        "scheduled_at": None,
    }
    assert trigger.get_health().details["dead_letters"] == {
        "store": "BrokenStore",
        "stored": 0,
        "unstored": 1,
    }


async def test_a_failing_operator_stores_its_event_which_cannot_be_redriven() -> None:
    queue = MemoryJobQueue()
    service = prx.JobService(queue)
    subject: reactivex.Subject[Any] = reactivex.Subject()

    def parse(event: Any) -> dict[str, Any]:
        return {"total": 100 / event["qty"]}

    trigger = prx.PipelineTrigger(
        subject.pipe(ops.map(parse), prx.to_job("order.total", payload=lambda e: e)),
        job_creator=service,
        name="totals",
    )
    async with trigger:
        deliver(subject, {"qty": 0, "raw": b"\xff\x00"}, order_delivery("D-1"))
        await until(lambda: trigger.counters.dead_letters_stored == 1)
    [record] = await service.list_dead_letters(trigger="totals")
    assert record.stage == "pipeline" and "ZeroDivisionError" in record.error
    assert record.request is None and record.event["qty"] == 0
    assert isinstance(record.event["raw"], str)  # bytes that are not UTF-8: base64 text
    with pytest.raises(ConfigurationError, match="no job request"):
        await service.redrive_dead_letter(record.id)
    assert (await service.discard_dead_letter(record.id)).status == "discarded"


async def test_jobs_created_write_no_dead_letters() -> None:
    class CountingStore(MemoryJobQueue):
        added = 0

        async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
            CountingStore.added += 1
            return await super().add_dead_letter(record)

    service = prx.JobService(CountingStore())
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    async with orders_trigger(subject, service) as trigger:
        for n in range(20):
            deliver(subject, {"order": f"E-{n}"}, order_delivery(f"E-{n}"))
        await until(lambda: trigger.get_health().jobs_created_count == 20)
    assert CountingStore.added == 0 and trigger.dead_letters == type(trigger.dead_letters)()


async def test_a_creator_without_a_store_keeps_letters_in_memory_only() -> None:
    creator = RecordingJobCreator()
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = orders_trigger(subject, creator)
    assert trigger.dead_letter_store is None
    with pytest.raises(ConfigurationError, match="stores no dead letters"):
        await trigger.dead_letter_records()
    with pytest.raises(ConfigurationError, match="is not a DeadLetterStore"):
        orders_trigger(subject, creator, dead_letter_store=creator)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="keeps no dead letters"):
        await prx.JobService(AsyncMock(spec=prx.JobQueue)).list_dead_letters()
    explicit = orders_trigger(subject, creator, dead_letter_store=MemoryJobQueue())
    assert isinstance(explicit.dead_letter_store, MemoryJobQueue)
    with pytest.raises(DeadLetterNotFoundError):
        await explicit.redrive_dead_letter(UUID(int=7))


def numbers_trigger(subject: reactivex.Subject[int], **options: Any) -> prx.PipelineTrigger:
    return prx.PipelineTrigger(
        subject.pipe(prx.to_job("burst.n", payload=lambda n: {"n": n})),
        job_creator=prx.JobService(MemoryJobQueue()),
        name="burst",
        max_pending=1,
        **options,
    )


async def test_an_overflow_burst_is_written_in_order_by_one_writer_in_batches() -> None:
    class BatchRecordingStore(MemoryJobQueue):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[list[UUID]] = []

        async def add_dead_letters(self, records: Any) -> list[DeadLetterRecord]:
            self.calls.append([record.id for record in records])
            return await super().add_dead_letters(records)

    store = BatchRecordingStore()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = numbers_trigger(subject, dead_letter_store=store)
    async with trigger:
        for n in range(700):  # synchronous: nothing is written before the loop runs
            subject.on_next(n)
        assert trigger.counters.overflowed == 699
        # one writer, not a task per letter: the workers, the writer, this test
        assert len(asyncio.all_tasks()) < 699 // 2
    # stop waited for the queue: every letter written, in the order made, in batches
    assert trigger.counters.dead_letters_stored == 699
    assert trigger.counters.dead_letters_unstored == 0
    assert [i for call in store.calls for i in call] == [d.id for d in trigger.dead_letters]
    assert 3 <= len(store.calls) < 699
    assert max(len(call) for call in store.calls) <= LETTER_BATCH
    records = await store.list_dead_letters(trigger="burst", limit=1000)
    assert len(records) == 699 and {r.stage for r in records} == {"overflow"}
    assert records[-1].request is not None and records[-1].request.payload == {"n": 1}


async def test_a_batch_the_store_refuses_is_written_again_letter_by_letter() -> None:
    class BatchesFail(MemoryJobQueue):
        async def add_dead_letters(self, records: Any) -> list[DeadLetterRecord]:
            raise QueueUnavailableError("the batch write timed out")

        async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
            assert record.request is not None
            if record.request.payload["n"] == 3:
                raise QueueUnavailableError("disk full")
            return await super().add_dead_letter(record)

    store = BatchesFail()
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = numbers_trigger(subject, dead_letter_store=store)
    with capture_logs() as logs:
        async with trigger:
            for n in range(6):
                subject.on_next(n)
    assert trigger.counters.overflowed == 5
    assert trigger.counters.dead_letters_stored == 4
    assert trigger.counters.dead_letters_unstored == 1
    [line] = [entry for entry in logs if entry["event"] == "dead_letter_not_stored"]
    [refused] = [d for d in trigger.dead_letters if d.request and d.request.payload["n"] == 3]
    assert line["dead_letter_id"] == str(refused.id) and "disk full" in line["store_error"]
    assert await store.get_dead_letter(refused.id) is None
    assert len(await store.list_dead_letters(limit=10)) == 4


def test_the_sink_writes_through_add_dead_letter_where_a_store_overrides_only_it() -> None:
    class OneAtATime(MemoryJobQueue):
        async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
            return await super().add_dead_letter(record)

    plain = MemoryJobQueue()
    assert letters_entry(plain) == plain.add_dead_letters
    one = OneAtATime()
    assert letters_entry(one) != one.add_dead_letters  # the port's loop over its override
    patched = MemoryJobQueue()
    patched.add_dead_letter = AsyncMock()  # type: ignore[method-assign]
    assert letters_entry(patched) != patched.add_dead_letters


async def test_the_default_add_dead_letters_calls_add_dead_letter_in_order() -> None:
    seen: list[str] = []

    class OneAtATime(MemoryJobQueue):
        async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
            seen.append(record.error)
            return await super().add_dead_letter(record)

    store = OneAtATime()
    at = datetime.now(UTC)
    records = [DeadLetterRecord(trigger="t", stage="s", error=f"e{n}", at=at) for n in range(3)]
    assert await letters_entry(store)(records) == records
    assert seen == ["e0", "e1", "e2"]


@pytest.mark.parametrize(
    "fields",
    [
        {},  # the sink's letter: plain types, the fast path
        {"event": {"raw": b"\xff\x00", "at": datetime(2026, 12, 1, tzinfo=UTC)}, "attempts": 3},
        {"request": None, "source": None, "event_id": None, "provenance": {}},
        {"at": datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=1)))},  # to UTC
        {"trigger": type("Name", (str,), {})("orders")},  # a str subclass: pydantic's path
    ],
)
def test_a_letters_record_is_the_validated_record(fields: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "trigger": "orders",
        "stage": "overflow",
        "error": "100 requests were pending (max_pending)",
        "at": datetime(2026, 12, 1, 9, tzinfo=UTC),
        "request": JobRequest(job_type="order.ship", payload={"order": "A-1"}),
        "event": {"order": "A-1"},
        "source": "orders-feed",
        "event_id": "A-1",
        "provenance": {"trigger": "orders", "idempotency_key": "orders:order.ship:A-1"},
        "requeued": True,
    }
    values.update(fields)
    letter = prx.DeadLetter(**values)
    record = letter.record()
    # what record() was before its fast path: the model validating every field
    validated = DeadLetterRecord(**{f.name: getattr(letter, f.name) for f in fields_of(letter)})
    assert record == validated
    assert record.model_fields_set == validated.model_fields_set
    assert record.model_dump() == validated.model_dump()
    assert record.at.utcoffset() == timedelta(0) and record.status == "open"
    assert record.resolved("discarded").model_fields_set >= {"status", "resolved_at"}
    assert DeadLetterRecord.model_validate_json(record.model_dump_json()) == record


def test_a_naive_time_is_refused_as_the_model_refuses_it() -> None:
    letter = prx.DeadLetter(trigger="t", stage="s", error="e", at=datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="has no time zone"):  # the model's ValidationError
        letter.record()
