"""RecordingJobCreator refuses what the real creators refuse, by the same rule.

The idempotency-key rule lives in ``portico_rx.models.check_idempotency_key``; these
tests pin that ``RecordingJobCreator`` and ``JobService`` agree on it value by value
(the contract suite runs the Celery bridge too).
"""

from __future__ import annotations

from typing import Any

import pytest

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import InvalidJobError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import IDEMPOTENCY_KEY_MAX, check_idempotency_key
from portico_rx.testing import RecordingJobCreator

REFUSED: list[Any] = ["", "k" * (IDEMPOTENCY_KEY_MAX + 1), 5, True, ["a"], {"k": 1}]
ACCEPTED = ["k", "k" * IDEMPOTENCY_KEY_MAX, "orders:żółw:1"]


@pytest.mark.parametrize("key", REFUSED, ids=repr)
async def test_a_refused_key_raises_invalid_job_error_and_records_no_job(key: Any) -> None:
    recording = RecordingJobCreator()
    service = JobService(MemoryJobQueue())
    errors = []
    for creator in (recording, service):
        with pytest.raises(InvalidJobError) as raised:
            await creator.create_job("a.job", {}, "q", 0, {"idempotency_key": key})
        errors.append(raised.value)
    assert [(e.field, e.value) for e in errors] == [("idempotency_key", key)] * 2
    assert str(errors[0]) == str(errors[1])  # one rule, one message
    assert "at most 512 characters" in str(errors[0])
    assert recording.jobs == []
    assert await service.find_jobs() == []


async def test_a_long_key_is_named_by_its_length() -> None:
    with pytest.raises(InvalidJobError, match="it has 513 characters"):
        await RecordingJobCreator().create_job("a.job", {}, metadata={"idempotency_key": "k" * 513})


@pytest.mark.parametrize("key", ACCEPTED, ids=len)
async def test_an_accepted_key_makes_one_job_however_often_it_is_sent(key: str) -> None:
    creator = RecordingJobCreator()
    first = await creator.create_job("a.job", {"n": 1}, metadata={"idempotency_key": key})
    again = await creator.create_job("a.job", {"n": 2}, metadata={"idempotency_key": key})
    assert again.id == first.id
    assert first.idempotency_key == key
    assert [job.payload for job in creator.jobs] == [{"n": 1}]


def test_the_explicit_key_wins_over_metadata_and_none_means_no_key() -> None:
    assert check_idempotency_key("explicit", {"idempotency_key": "meta"}) == "explicit"
    assert check_idempotency_key(None, {"idempotency_key": "meta"}) == "meta"
    assert check_idempotency_key(None, {}) is None
    with pytest.raises(InvalidJobError):
        check_idempotency_key("", {"idempotency_key": "meta"})
