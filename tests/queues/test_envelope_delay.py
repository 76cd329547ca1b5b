"""A queue envelope's ``run_at`` / ``delay_seconds`` make a SCHEDULED job; the delay
counts from the trigger's scheduler time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import portico_rx as prx
from portico_rx.adapters.job_trigger.message_envelope import EnvelopeDecoder
from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger
from portico_rx.models import JobStatus
from portico_rx.sources.queues import InvalidMessageError, QueueMessage

from .conftest import REDIS_URL, eventually


def envelope_message(body: dict[str, Any]) -> QueueMessage:
    return QueueMessage(
        broker="rabbitmq",
        destination="q",
        subject="q",
        message_id="m-1",
        body=json.dumps(body).encode(),
    )


def test_envelope_run_at_and_delay_seconds() -> None:
    decode = EnvelopeDecoder({"user.created": "email.welcome"})
    at = decode(envelope_message({"event_type": "user.created", "run_at": "2030-01-01T00:00:00Z"}))
    assert at is not None and at.scheduled_at == datetime(2030, 1, 1, tzinfo=UTC)
    start = datetime(2030, 5, 1, tzinfo=UTC)
    later = decode(
        envelope_message({"event_type": "user.created", "delay_seconds": 30}), now=lambda: start
    )
    assert later is not None and later.scheduled_at == start + timedelta(seconds=30)
    plain = decode(envelope_message({"event_type": "user.created"}))
    assert plain is not None and plain.scheduled_at is None
    for bad in ({"run_at": "2030-01-01T00:00:00"}, {"delay_seconds": -5}):
        with pytest.raises(InvalidMessageError, match="m-1"):
            decode(envelope_message({"event_type": "user.created", **bad}))


@pytest.mark.redis
async def test_a_queue_message_with_delay_seconds_becomes_a_scheduled_job(
    redis_client: Any, unique: str
) -> None:
    stream = f"typing_delay_{unique}"
    redis_client.created_keys.append(stream)
    service = prx.JobService(prx.MemoryJobQueue())
    trigger = RedisStreamTrigger(service, REDIS_URL, stream, "g", {"e": "job.e"}, consumer="c1")
    await trigger.start()
    before = datetime.now(UTC)
    await redis_client.xadd(
        stream, {"body": json.dumps({"event_type": "e", "delay_seconds": 3600})}
    )
    await eventually(lambda: trigger.get_health().jobs_created_count == 1)
    await trigger.stop()
    [job] = await service.list_jobs()
    assert job.status is JobStatus.SCHEDULED and job.scheduled_at is not None
    assert before + timedelta(hours=1) <= job.scheduled_at <= datetime.now(UTC) + timedelta(hours=1)
