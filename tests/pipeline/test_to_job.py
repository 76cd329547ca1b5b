"""to_job's fast path builds the same JobRequest pydantic would, and rejects the same input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
import reactivex

import portico_rx as prx
from portico_rx.models import JobRequest, trusted_request
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.to_job import job_request_claim


def emitted(operator: Any, *events: Any) -> list[Any]:
    out: list[Any] = []
    reactivex.from_iterable(events).pipe(operator).subscribe(out.append)
    return out


@pytest.mark.parametrize("scheduled", [{}, {"scheduled_at": datetime(2030, 1, 1, tzinfo=UTC)}])
def test_fast_request_equals_a_validated_one(scheduled: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "job_type": "a.b",
        "payload": {"x": [1, 2]},
        "queue_name": "q",
        "priority": -3,
        "metadata": {"m": 1},
        "idempotency_key": "k",
        **scheduled,
    }
    fast, slow = trusted_request(**dict(fields)), JobRequest(**fields)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_fields_set == slow.model_fields_set
    assert job_request_claim(fast) == (None, None)
    assert repr(fast) == repr(slow)
    with pytest.raises(pydantic.ValidationError):
        fast.priority = 5  # type: ignore[misc]  # frozen, like the validated one


def test_requests_from_to_job_equal_validated_ones() -> None:
    [request] = emitted(
        prx.to_job(
            "email.send",
            payload=lambda e: {"to": e},
            queue_name="emails",
            priority=7,
            idempotency_key=lambda e: f"k:{e}",
            metadata={"team": "growth"},
        ),
        "a@b",
    )
    assert request == JobRequest(
        job_type="email.send",
        payload={"to": "a@b"},
        queue_name="emails",
        priority=7,
        metadata={"team": "growth"},
        idempotency_key="k:a@b",
    )


def test_constant_fields_are_checked_when_the_operator_is_built() -> None:
    with pytest.raises(prx.InvalidJobError, match="job_type"):
        prx.to_job("")
    with pytest.raises(prx.InvalidJobError, match="queue_name"):
        prx.to_job("a.b", queue_name="no spaces")
    with pytest.raises(prx.InvalidJobError, match="priority"):
        prx.to_job("a.b", priority=1000)
    with pytest.raises(prx.InvalidJobError, match="payload"):
        prx.to_job("a.b", payload={"when": object()})


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"job_type": lambda e: "bad type"}, "job_type"),
        ({"queue_name": lambda e: ""}, "queue_name"),
        ({"priority": lambda e: 101}, "priority"),
        ({"payload": lambda e: {"nan": float("nan")}}, "payload"),
        ({"payload": lambda e: {1: "int key"}}, "payload"),
        ({"payload": lambda e: ["not", "a", "dict"]}, "payload"),
        ({"metadata": lambda e: {2: "int key"}}, "metadata"),
        ({"idempotency_key": lambda e: 42}, "idempotency_key"),
    ],
)
def test_bad_values_from_functions_become_event_failed(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"job_type": "a.b", **kwargs}
    job_type = arguments.pop("job_type")
    [item] = emitted(prx.to_job(job_type, **arguments), "event")
    assert isinstance(item, EventFailed) and item.stage == "to_job"
    assert isinstance(item.error, prx.InvalidJobError) and item.error.field == field


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"flat": 1, "s": "x", "b": True, "n": None},
        {"nested": {"list": [1, 2.5, {"deep": None}]}},
        {"float": 0.5},
    ],
)
def test_payloads_from_functions_equal_validated_ones(value: Any) -> None:
    [request] = emitted(prx.to_job("a.b", payload=lambda e: value), "event")
    assert request == JobRequest(job_type="a.b", payload=value)


def test_a_constant_payload_is_not_shared_between_requests() -> None:
    first, second = emitted(prx.to_job("a.b", payload={"fixed": True}), 1, 2)
    assert first.payload == second.payload == {"fixed": True}
    assert first.payload is not second.payload
