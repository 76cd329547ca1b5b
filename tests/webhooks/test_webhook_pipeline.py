"""WebhookTrigger on the one path: a delivery per request, created by the trigger's sink.

Retries, dead letters, the lifecycle (graceful stop, pause), health and history are the
PipelineTrigger's and its JobSink's; the HTTP answer is the delivery's settlement.
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import AsyncMock
from uuid import uuid4

import pytest
from fastapi import FastAPI

from portico_rx.adapters.job_trigger.webhook_trigger import (
    WebhookConfig,
    WebhookJobRequest,
    WebhookTrigger,
)
from portico_rx.models import Job
from portico_rx.pipeline import PipelineTrigger
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.job_creator import JobCreator
from portico_rx.testing import RecordingJobCreator

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005, seed=1)


def app_with(trigger: WebhookTrigger) -> FastAPI:
    app = FastAPI()
    app.include_router(trigger.router)
    return app


class GatedCreator(RecordingJobCreator):
    """Waits at ``gate`` inside every ``create_job``; ``entered`` is set on the first call."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        self.entered.set()
        await self.gate.wait()
        return await super().create_job(job_type, payload, queue_name, priority, metadata)


def test_the_webhook_trigger_is_a_pipeline_trigger() -> None:
    assert isinstance(WebhookTrigger(job_creator=RecordingJobCreator()), PipelineTrigger)


async def test_two_failures_are_retried_by_the_sink_into_a_201(client_for: Any) -> None:
    creator = RecordingJobCreator(fail_first=2)
    trigger = WebhookTrigger(job_creator=creator, retry=FAST_RETRY)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        response = await http.post(
            "/webhooks/jobs",
            json={"job_type": "x.y", "payload": {"n": 1}, "queue_name": "q", "priority": 3},
            headers={"Idempotency-Key": "order-7"},
        )
    await trigger.stop()
    assert response.status_code == 201
    [job] = creator.jobs
    assert response.json() == {"job_id": str(job.id)}
    assert (job.job_type, job.payload, job.queue_name, job.priority) == ("x.y", {"n": 1}, "q", 3)
    assert job.idempotency_key == "webhook:webhook:x.y:order-7"
    assert len(creator.calls) == 3
    assert all(call["metadata"] == creator.calls[0]["metadata"] for call in creator.calls)
    assert job.metadata["source"] == "webhook:/webhooks/jobs"
    assert job.metadata["event_id"] == "order-7"
    assert job.metadata["client"] == "127.0.0.1"
    health = trigger.get_health()
    assert health.retries_count == 2
    assert (health.jobs_created_count, health.errors_count, health.dead_lettered_count) == (1, 0, 0)
    assert not trigger.dead_letters


async def test_a_creator_that_always_fails_answers_500_and_dead_letters(client_for: Any) -> None:
    creator = RecordingJobCreator(fail_first=1_000)
    trigger = WebhookTrigger(job_creator=creator, retry=FAST_RETRY)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        response = await http.post(
            "/webhooks/jobs",
            json={"job_type": "x.y", "payload": {"n": 2}},
            headers={"Idempotency-Key": "order-8"},
        )
        again = await http.post(
            "/webhooks/jobs", json={"job_type": "x.y"}, headers={"Idempotency-Key": "order-8"}
        )
    await trigger.stop()
    assert response.status_code == 500
    assert response.json() == {"detail": "Job creation failed"}
    assert again.status_code == 500  # a failed key is not remembered: the sender may retry
    assert creator.jobs == []
    letter = trigger.dead_letters[0]
    assert len(trigger.dead_letters) == 2
    assert (letter.trigger, letter.stage, letter.attempts) == ("webhook", "create_job", 3)
    assert (letter.source, letter.event_id) == ("webhook:/webhooks/jobs", "order-8")
    assert letter.request is not None and letter.request.payload == {"n": 2}
    assert letter.request.idempotency_key == "webhook:webhook:x.y:order-8"
    assert "planned failure" in letter.error
    health = trigger.get_health()
    assert (health.dead_lettered_count, health.errors_count, health.retries_count) == (2, 2, 4)
    assert health.details["rejected"] == {"500": 2}


async def test_stop_waits_for_a_request_in_flight(client_for: Any) -> None:
    creator = GatedCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(http.post("/webhooks/jobs", json={"job_type": "x.y"}))
        await asyncio.wait_for(creator.entered.wait(), 5)
        stopping = asyncio.ensure_future(trigger.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # draining: the job does not exist yet
        assert trigger.get_health().in_flight == 1
        late = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
        creator.gate.set()
        response = await request
        await stopping
    assert late.status_code == 503  # no new requests once stopping
    assert response.status_code == 201
    assert [str(job.id) for job in creator.jobs] == [response.json()["job_id"]]
    assert not trigger.is_running and trigger.get_health().in_flight == 0


async def test_stop_timeout_returns_and_the_request_still_gets_its_job(client_for: Any) -> None:
    creator = GatedCreator()
    trigger = WebhookTrigger(job_creator=creator, stop_timeout=0.05)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(http.post("/webhooks/jobs", json={"job_type": "x.y"}))
        await asyncio.wait_for(creator.entered.wait(), 5)
        await asyncio.wait_for(trigger.stop(), 5)  # gives up waiting after stop_timeout
        assert not trigger.is_running and not request.done()
        creator.gate.set()
        response = await request
    assert response.status_code == 201  # 2xx only because the job exists
    assert [str(job.id) for job in creator.jobs] == [response.json()["job_id"]]


async def test_a_paused_trigger_holds_requests_until_resume(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    trigger.pause()
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(
            http.post("/webhooks/jobs", json={"job_type": "x.y"}, headers={"webhook-id": "m1"})
        )
        for _ in range(100):
            if trigger.held:
                break
            await asyncio.sleep(0.01)
        assert trigger.held == 1 and creator.calls == [] and not request.done()
        assert trigger.resume() == 1
        response = await request
    await trigger.stop()
    assert response.status_code == 201
    assert [str(job.id) for job in creator.jobs] == [response.json()["job_id"]]
    assert creator.jobs[0].idempotency_key == "webhook:webhook:x.y:m1"


async def test_stop_while_paused_creates_the_held_requests(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    trigger.pause()
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(http.post("/webhooks/jobs", json={"job_type": "x.y"}))
        for _ in range(100):
            if trigger.held:
                break
            await asyncio.sleep(0.01)
        await trigger.stop()
        response = await request
    assert response.status_code == 201
    assert len(creator.jobs) == 1


async def test_history_and_repr_are_those_of_every_trigger(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator, name="intake")
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        ids = [
            (await http.post("/webhooks/jobs", json={"job_type": f"t.{n}"})).json()["job_id"]
            for n in range(2)
        ]
    assert repr(trigger) == (
        "WebhookTrigger(name='intake', state=running, jobs_created=2, errors=0, in_flight=0)"
    )
    history = trigger.history()
    assert [str(job.id) for job in history] == ids
    assert [job.job_type for job in history] == ["t.0", "t.1"]
    assert "intake" in trigger._repr_html_()
    await trigger.stop()
    assert "state=stopped" in repr(trigger)


async def test_the_spec_call_goes_through_the_sink_with_its_retries() -> None:
    """The FAQ's direct call on a stopped trigger: the sink's retries, no metadata."""
    mock_creator = AsyncMock(spec=JobCreator)
    job = Job(id=uuid4(), job_type="test.job", queue_name="default", payload={})
    mock_creator.create_job.side_effect = [ConnectionError("store down"), job]
    trigger = WebhookTrigger(job_creator=mock_creator, retry=FAST_RETRY)
    answer = await trigger._create_job_endpoint(
        WebhookJobRequest(job_type="test.job", payload={"data": "test"})
    )
    assert answer == {"job_id": str(job.id)}
    assert mock_creator.create_job.call_count == 2
    mock_creator.create_job.assert_called_with(
        job_type="test.job", payload={"data": "test"}, queue_name="default", priority=0
    )
    assert trigger.get_health().retries_count == 1
    assert trigger.history() == [job]


async def test_the_spec_call_with_a_key_stores_the_webhook_key() -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator, config=WebhookConfig(priority_map={"test.job": 9})
    )
    request = WebhookJobRequest(job_type="test.job")
    first = await trigger._create_job_endpoint(request, idempotency_key="k-1")
    second = await trigger._create_job_endpoint(request, idempotency_key="k-1")
    assert first == second
    [job] = creator.jobs
    assert (job.priority, job.idempotency_key) == (9, "webhook:webhook:test.job:k-1")
    assert creator.calls[0]["metadata"]["idempotency_key"] == "webhook:webhook:test.job:k-1"


async def test_the_spec_call_out_of_retries_is_500_and_dead_lettered() -> None:
    from fastapi import HTTPException

    trigger = WebhookTrigger(job_creator=RecordingJobCreator(fail_first=10), retry=FAST_RETRY)
    with pytest.raises(HTTPException) as refused:
        await trigger._create_job_endpoint(WebhookJobRequest(job_type="test.job"))
    assert refused.value.status_code == 500
    [letter] = trigger.dead_letters
    assert (letter.stage, letter.attempts, letter.source) == ("create_job", 3, None)


async def test_a_request_whose_trigger_stops_while_its_body_streams_in_is_503(
    client_for: Any,
) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    first_chunk_sent = asyncio.Event()
    release = asyncio.Event()

    async def body() -> Any:
        yield b'{"job_type": '
        first_chunk_sent.set()
        await release.wait()
        yield b'"x.y"}'

    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(http.post("/webhooks/jobs", content=body()))
        await asyncio.wait_for(first_chunk_sent.wait(), 5)
        await trigger.stop()
        release.set()
        response = await request
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert creator.calls == []


async def test_a_held_request_abandoned_by_stop_timeout_is_503_and_dead_lettered(
    client_for: Any,
) -> None:
    creator = GatedCreator()
    trigger = WebhookTrigger(job_creator=creator, stop_timeout=0.05)
    await trigger.start()
    trigger.pause()
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(
            http.post("/webhooks/jobs", json={"job_type": "x.y"}, headers={"webhook-id": "m9"})
        )
        for _ in range(100):
            if trigger.held:
                break
            await asyncio.sleep(0.01)
        assert trigger.held == 1
        await trigger.stop()  # releases the held request to the sink, which cannot finish it
        response = await request
    assert response.status_code == 503  # the sender retries with the same key
    assert creator.jobs == []
    [letter] = trigger.dead_letters
    assert (letter.stage, letter.event_id) == ("stop", "m9")
