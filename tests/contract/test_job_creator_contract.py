"""The JobCreator contract, run against every creator in ``JOB_CREATOR_FACTORIES``:
``JobService`` (memory and SQLite stores), ``CeleryJobCreator`` and
``RecordingJobCreator``. Written to the port (``portico_rx.ports.job_creator``)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any
from unittest.mock import AsyncMock
from uuid import UUID, uuid4

import pytest
import reactivex

import portico_rx as prx
from portico_rx.errors import ConfigurationError, InvalidJobError
from portico_rx.models import PRIORITY_MAX, PRIORITY_MIN, Job, JobRequest, JobStatus
from portico_rx.ports.job_creator import JobCreator, request_entry

from .conftest import CreatorCase

PORT_METHODS = ("create_job", "get_job", "find_jobs", "open")


async def test_create_job_returns_a_pending_job_with_the_fields_given(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    metadata = {"trigger": "contract", "nested": {"list": [1, 2.5, None, True]}, "text": "żółw"}
    job = await creator_case.creator.create_job(
        "report.daily",
        {"n": 1, "nested": {"x": [1, "two"]}},
        f"{queue_prefix}.reports",
        7,
        metadata,
    )
    assert isinstance(job, Job)
    assert isinstance(job.id, UUID)
    assert (job.job_type, job.payload, job.queue_name, job.priority, job.metadata) == (
        "report.daily",
        {"n": 1, "nested": {"x": [1, "two"]}},
        f"{queue_prefix}.reports",
        7,
        metadata,
    )
    assert job.status is JobStatus.PENDING
    assert job.idempotency_key is None


async def test_the_sinks_keyword_call_and_priority_bounds(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    """Keyword arguments (as triggers call it), both priority bounds, metadata omitted."""
    creator = creator_case.creator
    for priority in (PRIORITY_MIN, PRIORITY_MAX):
        job = await creator.create_job(
            job_type="bounds.check",
            payload={},
            queue_name=f"{queue_prefix}.bounds",
            priority=priority,
        )
        assert (job.priority, job.payload, job.metadata) == (priority, {}, {})


async def test_get_job_finds_the_created_job(creator_case: CreatorCase, queue_prefix: str) -> None:
    creator = creator_case.creator
    job = await creator.create_job(
        "email.send", {"to": "a@b.c"}, f"{queue_prefix}.emails", -3, {"trigger": "contract"}
    )
    found = await creator.get_job(job.id)
    assert found is not None
    assert found.id == job.id
    for name in ("job_type", "payload", "queue_name", "priority", "metadata"):
        assert getattr(found, name) == getattr(job, name), name
    assert await creator.get_job(uuid4()) is None


async def test_a_repeated_idempotency_key_returns_the_first_job(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    creator = creator_case.creator
    queue = f"{queue_prefix}.keys"
    key = f"{queue_prefix}:tick:2025-01-01T09:00:00Z"
    first = await creator.create_job("tick", {"v": 1}, queue, 0, {"idempotency_key": key})
    second = await creator.create_job("tick", {"v": 2}, queue, 5, {"idempotency_key": key})
    assert second.id == first.id
    assert (second.payload, second.priority, second.idempotency_key) == ({"v": 1}, 0, key)
    stored = await creator.get_job(first.id)
    assert stored is not None and stored.payload == {"v": 1}
    other = await creator.create_job("tick", {"v": 3}, queue, 0, {"idempotency_key": key + ":2"})
    assert other.id != first.id
    if creator_case.searchable:
        assert [j.id for j in await creator.find_jobs(key_prefix=key)] == [other.id, first.id]


async def test_create_from_request_reports_new_and_existing_jobs(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    """The sink's entry: a request's job, and whether the store wrote it now."""
    creator = creator_case.creator
    entry = request_entry(creator)
    key = f"{queue_prefix}:order:17"
    request = JobRequest(
        job_type="order.ship",
        payload={"order": 17},
        queue_name=f"{queue_prefix}.orders",
        priority=3,
        metadata={"source": "contract"},
    )
    metadata = {"source": "contract", "idempotency_key": key}
    first, created = await entry(request, metadata)
    again, created_again = await entry(request, metadata)
    assert (first.job_type, first.payload, first.queue_name, first.priority) == (
        "order.ship",
        {"order": 17},
        f"{queue_prefix}.orders",
        3,
    )
    assert first.metadata == metadata and first.idempotency_key == key
    assert again.id == first.id
    if creator_case.reports_created:
        assert (created, created_again) == (True, False)
    else:
        assert (created, created_again) == (None, None)


async def test_create_from_request_without_metadata_uses_a_copy_of_the_requests(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    request = JobRequest(
        job_type="order.ship",
        queue_name=f"{queue_prefix}.orders",
        metadata={"team": "ops"},
        idempotency_key=f"{queue_prefix}:order:18",
    )
    job, _ = await creator_case.creator.create_from_request(request)
    assert job.metadata == {"team": "ops", "idempotency_key": f"{queue_prefix}:order:18"}
    assert job.idempotency_key == f"{queue_prefix}:order:18"
    assert job.metadata is not request.metadata and request.metadata == {"team": "ops"}


async def test_concurrent_creates_of_one_key_make_one_job(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    creator = creator_case.creator
    key = f"{queue_prefix}:race"
    jobs = await asyncio.gather(
        *(
            creator.create_job(
                "race", {"i": i}, f"{queue_prefix}.race", 0, {"idempotency_key": key}
            )
            for i in range(10)
        )
    )
    assert len({job.id for job in jobs}) == 1
    if creator_case.searchable:
        assert len(await creator.find_jobs(key_prefix=key)) == 1


INVALID_FIELDS = {
    "empty_job_type": ({"job_type": ""}, "job_type"),
    "job_type_with_spaces": ({"job_type": "bad type!"}, "job_type"),
    "job_type_not_a_string": ({"job_type": 7}, "job_type"),
    "payload_not_an_object": ({"payload": ["not", "an", "object"]}, "payload"),
    "payload_not_json": ({"payload": {"when": object()}}, "payload"),
    "empty_queue_name": ({"queue_name": ""}, "queue_name"),
    "priority_too_high": ({"priority": PRIORITY_MAX + 1}, "priority"),
    "priority_not_an_int": ({"priority": "high"}, "priority"),
    "metadata_not_json": ({"metadata": {"not json": {1, 2}}}, "metadata"),
    "empty_key": ({"metadata": {"idempotency_key": ""}}, "idempotency_key"),
    "key_not_a_string": ({"metadata": {"idempotency_key": 5}}, "idempotency_key"),
    "key_too_long": ({"metadata": {"idempotency_key": "k" * 513}}, "idempotency_key"),
}


@pytest.mark.parametrize(
    ("fields", "field"), list(INVALID_FIELDS.values()), ids=list(INVALID_FIELDS)
)
async def test_invalid_fields_raise_invalid_job_error_and_write_nothing(
    creator_case: CreatorCase, queue_prefix: str, fields: dict[str, Any], field: str
) -> None:
    creator = creator_case.creator
    call: dict[str, Any] = {
        "job_type": "valid.type",
        "payload": {"ok": True},
        "queue_name": f"{queue_prefix}.invalid",
        "priority": 0,
        "metadata": {},
        **fields,
    }
    with pytest.raises(InvalidJobError) as raised:
        await creator.create_job(**call)
    assert raised.value.field == field
    assert isinstance(raised.value, ConfigurationError) and isinstance(raised.value, ValueError)
    if creator_case.searchable:
        assert await creator.find_jobs() == []


async def test_find_jobs_filters_by_type_queue_and_key(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    """Searchable creators find what they created; the others keep the port's ``[]``."""
    creator = creator_case.creator
    a = await creator.create_job("kind.a", {}, f"{queue_prefix}.one", 0, None)
    b = await creator.create_job(
        "kind.b", {}, f"{queue_prefix}.two", 0, {"idempotency_key": f"{queue_prefix}:b"}
    )
    if not creator_case.searchable:
        assert await creator.find_jobs(job_type="kind.a") == []
        return
    assert [j.id for j in await creator.find_jobs(job_type="kind.a")] == [a.id]
    assert [j.id for j in await creator.find_jobs(queue_name=f"{queue_prefix}.two")] == [b.id]
    assert [j.id for j in await creator.find_jobs(key_prefix=f"{queue_prefix}:")] == [b.id]
    assert {j.id for j in await creator.find_jobs(status=JobStatus.PENDING)} == {a.id, b.id}
    assert len(await creator.find_jobs(limit=1)) == 1


async def test_open_is_idempotent_and_the_creator_speaks_the_port(
    creator_case: CreatorCase, queue_prefix: str
) -> None:
    creator = creator_case.creator
    await creator.open()
    await creator.open()
    assert isinstance(creator, JobCreator)
    port = inspect.signature(JobCreator.create_job)
    own = inspect.signature(type(creator).create_job)
    for name in port.parameters:
        assert name in own.parameters, name
        assert own.parameters[name].default == port.parameters[name].default, name
    for name in PORT_METHODS:
        assert inspect.iscoroutinefunction(getattr(creator, name)), name
    job = await creator.create_job("after.open", {}, f"{queue_prefix}.open")
    assert job.queue_name == f"{queue_prefix}.open"


async def test_async_mock_with_the_port_as_spec_is_a_job_creator() -> None:
    """The port's promise: ``AsyncMock(spec=JobCreator)`` stands in for any creator."""
    mock = AsyncMock(spec=JobCreator)
    mock.create_job.return_value = Job(job_type="test.job", payload={"data": "test"})
    assert isinstance(mock, JobCreator)
    job = await mock.create_job(job_type="test.job", payload={"data": "test"})
    assert job.job_type == "test.job"
    mock.create_job.assert_awaited_once_with(job_type="test.job", payload={"data": "test"})
    for name in PORT_METHODS:
        assert inspect.iscoroutinefunction(getattr(mock, name)) or isinstance(
            getattr(mock, name), AsyncMock
        ), name
    await mock.open()
    with pytest.raises(AttributeError):
        mock.not_in_the_port  # noqa: B018


async def test_a_trigger_runs_on_an_async_mock_of_the_port() -> None:
    """A trigger opens the mock, creates through it and reports it healthy."""
    mock = AsyncMock(spec=JobCreator)
    mock.create_job.return_value = Job(job_type="test.job", payload={"n": 1})
    events: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job("test.job", payload=lambda n: {"n": n}, priority=4)),
        job_creator=mock,
        name="mocked",
    )
    async with trigger:
        events.on_next(1)
        for _ in range(100):
            if trigger.get_health().jobs_created_count:
                break
            await asyncio.sleep(0.01)
        assert trigger.get_health().healthy
    mock.open.assert_awaited_once_with()
    call = mock.create_job.await_args
    assert call is not None
    assert (call.kwargs["job_type"], call.kwargs["payload"], call.kwargs["priority"]) == (
        "test.job",
        {"n": 1},
        4,
    )
    assert call.kwargs["metadata"]["trigger"] == "mocked"
    assert trigger.get_health().jobs_created_count == 1
