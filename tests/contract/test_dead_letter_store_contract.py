"""The DeadLetterStore contract, against every store (``dead_letter_store`` fixture), and
JobService's dead letter API over each: list, inspect, redrive (one job per letter, with
its original idempotency key), discard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from portico_rx.errors import ConfigurationError, DeadLetterNotFoundError, JobNotFoundError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import JobRequest
from portico_rx.ports.dead_letter_store import DeadLetterRecord, DeadLetterStore
from portico_rx.ports.job_queue import JobQueue

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def letter(**fields: object) -> DeadLetterRecord:
    values: dict[str, object] = {
        "trigger": "orders",
        "stage": "create_job",
        "error": "QueueUnavailableError: store down",
        "at": T0,
        "attempts": 5,
        "request": JobRequest(job_type="send_email", payload={"to": "a@example.com"}),
        "event": {"body": "hello", "n": 1},
        "source": "rabbitmq:orders",
        "event_id": "m-1",
        "provenance": {
            "trigger": "orders",
            "source": "rabbitmq:orders",
            "event_id": "m-1",
            "idempotency_key": "orders:send_email:m-1",
        },
    }
    values.update(fields)
    return DeadLetterRecord(**values)  # type: ignore[arg-type]


async def test_a_letter_round_trips_with_every_field(dead_letter_store: DeadLetterStore) -> None:
    record = letter(event={"body": "x", "when": "2026-12-01T09:00:00+00:00", "tags": [1, 2]})
    stored = await dead_letter_store.add_dead_letter(record)
    assert stored == record
    fetched = await dead_letter_store.get_dead_letter(record.id)
    assert fetched == record
    assert fetched is not None and fetched.at.tzinfo is not None
    assert fetched.request == record.request and fetched.status == "open"
    assert fetched.idempotency_key == "orders:send_email:m-1"
    assert await dead_letter_store.get_dead_letter(uuid4()) is None


async def test_adding_an_id_again_keeps_the_first(dead_letter_store: DeadLetterStore) -> None:
    record = letter()
    await dead_letter_store.add_dead_letter(record)
    again = await dead_letter_store.add_dead_letter(record.model_copy(update={"error": "other"}))
    assert again == record
    assert len(await dead_letter_store.list_dead_letters()) == 1


async def test_adding_many_stores_each_in_order_and_keeps_stored_ids(
    dead_letter_store: DeadLetterStore,
) -> None:
    first = letter(event_id="m-0")
    await dead_letter_store.add_dead_letter(first)
    batch = [letter(event_id=f"m-{n}", at=T0) for n in range(1, 4)]
    changed = first.model_copy(update={"error": "other"})
    stored = await dead_letter_store.add_dead_letters([batch[0], changed, *batch[1:]])
    assert stored == [batch[0], first, *batch[1:]]  # the stored id keeps its first record
    assert await dead_letter_store.add_dead_letters([]) == []
    listed = await dead_letter_store.list_dead_letters()
    # same ``at``: newest first means last added first, so the batch kept its order
    assert [r.event_id for r in listed] == ["m-3", "m-2", "m-1", "m-0"]
    assert await dead_letter_store.get_dead_letter(batch[2].id) == batch[2]


async def test_list_is_newest_first_and_filters(dead_letter_store: DeadLetterStore) -> None:
    old = letter(at=T0)
    new = letter(at=T0 + timedelta(minutes=5))
    same_time_later = letter(at=T0 + timedelta(minutes=5))  # added after ``new``
    other = letter(trigger="billing", at=T0 + timedelta(minutes=1), request=None)
    for record in (old, new, same_time_later, other):
        await dead_letter_store.add_dead_letter(record)
    listed = await dead_letter_store.list_dead_letters()
    assert [r.id for r in listed] == [same_time_later.id, new.id, other.id, old.id]
    assert [r.id for r in await dead_letter_store.list_dead_letters(trigger="billing")] == [
        other.id
    ]
    assert [r.id for r in await dead_letter_store.list_dead_letters(limit=2)] == [
        same_time_later.id,
        new.id,
    ]
    await dead_letter_store.resolve_dead_letter(old.id, "discarded")
    assert old.id not in [r.id for r in await dead_letter_store.list_dead_letters()]
    discarded = await dead_letter_store.list_dead_letters(status="discarded")
    assert [r.id for r in discarded] == [old.id]
    assert len(await dead_letter_store.list_dead_letters(status=None)) == 4
    assert await dead_letter_store.list_dead_letters(trigger="nobody") == []


async def test_bad_filters_are_refused(dead_letter_store: DeadLetterStore) -> None:
    with pytest.raises(ConfigurationError, match="'closed'"):
        await dead_letter_store.list_dead_letters(status="closed")
    with pytest.raises(ConfigurationError, match="limit=0"):
        await dead_letter_store.list_dead_letters(limit=0)


async def test_resolving_sets_status_job_and_time(dead_letter_store: DeadLetterStore) -> None:
    record = await dead_letter_store.add_dead_letter(letter())
    job_id = uuid4()
    resolved = await dead_letter_store.resolve_dead_letter(record.id, "redriven", job_id)
    assert resolved.status == "redriven" and resolved.job_id == job_id
    assert resolved.resolved_at is not None and resolved.resolved_at.tzinfo is not None
    assert await dead_letter_store.get_dead_letter(record.id) == resolved
    with pytest.raises(ConfigurationError, match="already redriven"):
        await dead_letter_store.resolve_dead_letter(record.id, "discarded")
    with pytest.raises(ConfigurationError, match="'retried'"):
        await dead_letter_store.resolve_dead_letter(record.id, "retried")


async def test_resolving_an_unknown_id_names_it(dead_letter_store: DeadLetterStore) -> None:
    missing = uuid4()
    with pytest.raises(DeadLetterNotFoundError, match=str(missing)):
        await dead_letter_store.resolve_dead_letter(missing, "discarded")
    assert issubclass(DeadLetterNotFoundError, JobNotFoundError)


async def test_concurrent_resolutions_one_wins(dead_letter_store: DeadLetterStore) -> None:
    record = await dead_letter_store.add_dead_letter(letter())
    outcomes = await asyncio.gather(
        *(dead_letter_store.resolve_dead_letter(record.id, "redriven", uuid4()) for _ in range(5)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, DeadLetterRecord)]
    assert len(won) == 1
    assert all(isinstance(o, ConfigurationError) for o in outcomes if o not in won)
    stored = await dead_letter_store.get_dead_letter(record.id)
    assert stored is not None and stored.job_id == won[0].job_id


# -- JobService over each store ------------------------------------------------------


def service(store: DeadLetterStore) -> JobService:
    assert isinstance(store, JobQueue)
    created = JobService(store)
    assert created.dead_letter_store is store
    return created


async def test_redrive_creates_the_job_with_its_original_key_once(
    dead_letter_store: DeadLetterStore,
) -> None:
    jobs = service(dead_letter_store)
    record = await dead_letter_store.add_dead_letter(letter())
    job = await jobs.redrive_dead_letter(record.id)
    assert job.idempotency_key == "orders:send_email:m-1"
    assert job.job_type == "send_email" and job.payload == {"to": "a@example.com"}
    assert job.metadata["redriven_from"] == str(record.id)
    assert job.metadata["event_id"] == "m-1"
    again = await jobs.redrive_dead_letter(str(record.id))
    assert again.id == job.id
    assert len(await jobs.list_jobs()) == 1
    stored = await jobs.get_dead_letter(record.id)
    assert stored is not None and stored.status == "redriven" and stored.job_id == job.id
    assert await jobs.list_dead_letters() == []


async def test_concurrent_redrives_make_one_job(dead_letter_store: DeadLetterStore) -> None:
    jobs = service(dead_letter_store)
    keyless = letter(provenance={}, request=JobRequest(job_type="report"))
    await dead_letter_store.add_dead_letter(keyless)
    made = await asyncio.gather(*(jobs.redrive_dead_letter(keyless.id) for _ in range(4)))
    assert len({job.id for job in made}) == 1
    assert made[0].idempotency_key == f"dead-letter:{keyless.id}"
    assert len(await jobs.list_jobs()) == 1


async def test_redrive_returns_the_job_its_key_already_has(
    dead_letter_store: DeadLetterStore,
) -> None:
    jobs = service(dead_letter_store)
    existing = await jobs.create_job(
        "send_email", {"to": "a@example.com"}, idempotency_key="orders:send_email:m-1"
    )
    record = await dead_letter_store.add_dead_letter(letter())
    assert (await jobs.redrive_dead_letter(record.id)).id == existing.id
    assert len(await jobs.list_jobs()) == 1


async def test_discard_and_refusals(dead_letter_store: DeadLetterStore) -> None:
    jobs = service(dead_letter_store)
    record = await dead_letter_store.add_dead_letter(letter())
    discarded = await jobs.discard_dead_letter(record.id)
    assert discarded.status == "discarded" and discarded.job_id is None
    with pytest.raises(ConfigurationError, match="already discarded"):
        await jobs.redrive_dead_letter(record.id)
    with pytest.raises(ConfigurationError, match="already discarded"):
        await jobs.discard_dead_letter(record.id)
    no_request = await dead_letter_store.add_dead_letter(letter(stage="pipeline", request=None))
    with pytest.raises(ConfigurationError, match="no job request"):
        await jobs.redrive_dead_letter(no_request.id)
    with pytest.raises(DeadLetterNotFoundError):
        await jobs.redrive_dead_letter(uuid4())
    with pytest.raises(ConfigurationError, match="'not-an-id' is not a UUID"):
        await jobs.get_dead_letter("not-an-id")
    assert await jobs.list_jobs() == []
