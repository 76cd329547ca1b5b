"""The one trusted constructor builds exactly what pydantic would, and nothing else skips
validation (a pydantic upgrade that changes its internals fails here, loudly)."""

from __future__ import annotations

import pathlib
import re
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

import portico_rx
from portico_rx.models import (
    Job,
    JobRequest,
    attach_claim,
    fields_of,
    request_claim,
    trusted,
    trusted_request,
)
from portico_rx.schedule.tick import Tick

PACKAGE = pathlib.Path(portico_rx.__file__).parent


def test_a_trusted_request_equals_the_validated_one_and_stays_frozen() -> None:
    fields: dict[str, Any] = {
        "job_type": "a.b",
        "payload": {"x": [1, 2]},
        "queue_name": "q",
        "priority": -3,
        "metadata": {"m": 1},
        "idempotency_key": "k",
    }
    fast, slow = trusted_request(**fields), JobRequest(**fields)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert repr(fast) == repr(slow)
    assert fast.model_copy(update={"priority": 4}).priority == 4
    with pytest.raises(pydantic.ValidationError):
        fast.priority = 5  # type: ignore[misc]


def test_claims_ride_on_the_request_and_not_in_its_fields() -> None:
    request = JobRequest(job_type="a")
    assert request_claim(request) == (None, None)
    marker, delivery = object(), object()
    attach_claim(request, marker, delivery)
    assert request_claim(request) == (marker, delivery)
    assert request.model_dump() == JobRequest(job_type="a").model_dump()
    assert "_claim" not in request.model_dump()


def test_a_trusted_job_and_tick_equal_validated_ones() -> None:
    job = Job(job_type="a.b", payload={"k": 1})
    copy = trusted(Job, dict(fields_of(job)), set(job.model_fields_set))
    assert copy == job and copy.model_dump() == job.model_dump()
    at = datetime(2026, 1, 1, 9, tzinfo=UTC)
    values = Tick(scheduled_at=at, fired_at=at, lateness_s=0.0, expression="x", sequence=1)
    rebuilt = Tick.trusted(**dict(fields_of(values)))
    assert rebuilt == values and rebuilt.key == "2026-01-01T09:00:00Z"


def test_no_module_but_models_reaches_into_pydantic_internals() -> None:
    reach = re.compile(r"__pydantic_private__|__pydantic_fields_set__|\"__dict__\"|__dict__\[")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "models.py" and reach.search(path.read_text())
    ]
    assert offenders == []
