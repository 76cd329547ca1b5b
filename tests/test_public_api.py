"""The public surface is deliberate: the facade exports exactly these names."""

from __future__ import annotations

from unittest.mock import AsyncMock
from uuid import uuid4

import pytest

import portico_rx
from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_trigger import JobTrigger

EXPECTED = {
    "Claim",
    "ConfigurationError",
    "DeadLetter",
    "Delivery",
    "EventFailed",
    "Flow",
    "InvalidCronError",
    "InvalidJobError",
    "InvalidScheduleError",
    "Job",
    "JobCreationError",
    "JobCreator",
    "JobHandler",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueError",
    "JobRequest",
    "JobService",
    "JobStatus",
    "JobTrigger",
    "JobWorker",
    "MemoryJobQueue",
    "MissingDependencyError",
    "Outcome",
    "PipelineTrigger",
    "PorticoError",
    "QueueUnavailableError",
    "RetryPolicy",
    "RunState",
    "SQLiteJobQueue",
    "ScheduleConfig",
    "ScheduleTrigger",
    "SchemaVersionError",
    "TriggerError",
    "TriggerHealth",
    "TriggerNotRunningError",
    "TriggerStartError",
    "activate",
    "current_delivery",
    "deliver",
    "flow",
    "to_job",
    "tracked",
}


def test_facade_exports_exactly_the_intended_names() -> None:
    assert set(portico_rx.__all__) == EXPECTED
    assert portico_rx.__all__ == sorted(portico_rx.__all__)
    for name in portico_rx.__all__:
        assert getattr(portico_rx, name) is not None


def test_every_error_is_a_portico_error_and_a_builtin() -> None:
    import portico_rx.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, portico_rx.PorticoError)
    assert issubclass(portico_rx.InvalidJobError, ValueError)
    assert issubclass(portico_rx.InvalidCronError, ValueError)
    assert issubclass(portico_rx.JobNotFoundError, LookupError)
    assert issubclass(portico_rx.QueueUnavailableError, ConnectionError)
    assert issubclass(portico_rx.MissingDependencyError, ImportError)


def test_spec_faq_job_constructs_and_mock_creator_works() -> None:
    """The spec's FAQ: ``AsyncMock(spec=JobCreator)`` returning ``Job(...)``."""
    mock_creator = AsyncMock(spec=JobCreator)
    mock_creator.create_job.return_value = Job(
        id=uuid4(), job_type="test.job", queue_name="default", payload={}
    )
    assert mock_creator.create_job.return_value.status is JobStatus.PENDING


def test_ports_are_abstract() -> None:
    with pytest.raises(TypeError):
        JobCreator()  # type: ignore[abstract]
    with pytest.raises(TypeError):
        JobTrigger()  # type: ignore[abstract]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"job_type": ""}, "job_type"),
        ({"job_type": "has space"}, "job_type"),
        ({"job_type": "ok", "queue_name": "bad/queue"}, "queue_name"),
        ({"job_type": "ok", "priority": 101}, "priority"),
        ({"job_type": "ok", "priority": True}, "priority"),
        ({"job_type": "ok", "payload": {"when": object()}}, "payload"),
        ({"job_type": "ok", "payload": {"x": float("inf")}}, "payload"),
        ({"job_type": "ok", "payload": [1, 2]}, "payload"),
    ],
)
async def test_bad_job_fields_raise_a_clear_value_error(
    kwargs: dict[str, object], field: str
) -> None:
    from portico_rx.adapters.job_queue.memory import MemoryJobQueue

    queue = MemoryJobQueue()
    service = portico_rx.JobService(queue)
    args = {"payload": {}, **kwargs}
    with pytest.raises(portico_rx.InvalidJobError) as caught:
        await service.create_job(**args)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert await queue.list() == []  # nothing half-written


async def test_idempotency_key_from_metadata_returns_the_first_job() -> None:
    """The spec's FAQ puts the key in ``metadata["idempotency_key"]``."""
    from portico_rx.adapters.job_queue.memory import MemoryJobQueue

    service = portico_rx.JobService(MemoryJobQueue())
    first = await service.create_job("report.daily", {}, metadata={"idempotency_key": "k1"})
    again = await service.create_job("report.daily", {"x": 1}, metadata={"idempotency_key": "k1"})
    explicit = await service.create_job("report.daily", {}, idempotency_key="k1")
    assert first.id == again.id == explicit.id
    assert len(await service.list_jobs()) == 1
