"""JobService builds jobs without validating checked fields twice; the results are the
jobs pydantic would build, and the JSON check accepts exactly what the encoder accepts."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import InvalidJobError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, JobStatus, _check_json_object, _new_job


def validated_twin(job: Job) -> Job:
    """The job pydantic builds from the same arguments (and the fast job's id and time)."""
    twin = Job(
        job_type=job.job_type,
        queue_name=job.queue_name,
        payload=job.payload,
        priority=job.priority,
        metadata=job.metadata,
        idempotency_key=job.idempotency_key,
        scheduled_at=job.scheduled_at,
        status=job.status,
        max_retries=job.max_retries,
    )
    return twin.model_copy(update={"id": job.id, "created_at": job.created_at})


async def test_created_job_equals_the_validated_one() -> None:
    service = JobService(MemoryJobQueue())
    payload = {"to": "a@b.c", "n": [1, 2.5, {"x": None}]}
    job = await service.create_job(
        "email.send", payload, "emails", 5, {"idempotency_key": "k-1", "team": "growth"}
    )
    assert job == validated_twin(job)
    assert job.model_dump() == validated_twin(job).model_dump()
    assert repr(job).split(", created_at")[0] == repr(validated_twin(job)).split(", created_at")[0]
    assert job.model_fields_set == Job(
        job_type="a", queue_name="q", payload={}, priority=0, metadata={},
        idempotency_key=None, scheduled_at=None, status=JobStatus.PENDING, max_retries=3,
    ).model_fields_set  # fmt: skip
    assert job.idempotency_key == "k-1" and job.status is JobStatus.PENDING
    assert job.created_at.tzinfo is UTC and isinstance(job.id, type(Job(job_type="a").id))
    with pytest.raises(pydantic.ValidationError):
        job.priority = 1  # type: ignore[misc]  # frozen, like a validated job


async def test_created_job_owns_its_payload_and_metadata() -> None:
    service = JobService(MemoryJobQueue())
    payload: dict[str, Any] = {"n": 1}
    metadata: dict[str, Any] = {"source": "test"}
    job = await service.create_job("a.b", payload, metadata=metadata)
    payload["n"] = 2
    metadata["source"] = "changed"
    assert job.payload == {"n": 1} and job.metadata == {"source": "test"}
    assert (await service.get_job(job.id)) == job


async def test_scheduled_job_and_its_copies() -> None:
    service = JobService(MemoryJobQueue())
    due = datetime.now(UTC) - timedelta(seconds=1)
    job = await service.create_job("a.b", {}, scheduled_at=due, max_retries=0)
    assert job.status is JobStatus.SCHEDULED and job.scheduled_at == due
    assert job == validated_twin(job)
    claimed = await service.job_queue.dequeue(["default"])  # model_copy(update=...)
    assert claimed is not None and claimed.id == job.id and claimed.status is JobStatus.RUNNING
    assert "status" in claimed.model_fields_set


class Level(enum.IntEnum):
    HIGH = 7


async def test_other_argument_types_take_pydantics_path() -> None:
    service = JobService(MemoryJobQueue())
    job = await service.create_job("a.b", {}, priority=Level.HIGH)
    assert job.priority == 7 and job == validated_twin(job)
    with pytest.raises(pydantic.ValidationError):  # JSON accepts int keys, the model does not
        await service.create_job("a.b", {1: "x"})
    direct = _new_job("a.b", "q", {}, 1, {}, None, None, JobStatus.PENDING, True)  # bool
    assert direct.max_retries == 1 and type(direct.max_retries) is int


# -- the JSON check ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children)
        | st.dictionaries(
            st.text(max_size=5) | st.integers() | st.booleans() | st.floats(), children, max_size=4
        )
    ),
    max_leaves=20,
)


def encoder_accepts(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@given(st.dictionaries(st.text(max_size=5) | st.integers(), json_values, max_size=5))
def test_json_check_accepts_exactly_what_the_encoder_accepts(value: dict[Any, Any]) -> None:
    if encoder_accepts(value):
        assert _check_json_object("payload", value) is value
    else:
        with pytest.raises(InvalidJobError):
            _check_json_object("payload", value)


def test_json_check_edge_cases() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(40):  # deeper than the plain check goes: the encoder decides
        inner["x"] = {}
        inner = inner["x"]
    assert _check_json_object("payload", deep) is deep
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(InvalidJobError):
        _check_json_object("payload", circular)
    for bad in (math.nan, math.inf, -math.inf, {1, 2}, datetime.now(UTC)):
        with pytest.raises(InvalidJobError):
            _check_json_object("payload", {"v": [bad]})

    class Text(str):
        pass

    assert _check_json_object("payload", {Text("k"): Text("v"), "t": (1, 2)}) is not None
