"""WebhookTrigger over real HTTP (ASGI): the spec's API, every status code, idempotency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, field_validator
from reactivex.scheduler import HistoricalScheduler

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import (
    WebhookConfig,
    WebhookJobRequest,
    WebhookTrigger,
)
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job, RunState
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.job_creator import JobCreator
from portico_rx.testing import RecordingJobCreator, advance
from portico_rx.webhooks import RateLimit

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005, seed=1)


class EmailJobPayload(BaseModel):
    recipient: str
    subject: str
    body: str

    @field_validator("recipient")
    @classmethod
    def validate_email(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError("Invalid email address")
        return v


def app_with(trigger: WebhookTrigger) -> FastAPI:
    app = FastAPI()
    app.include_router(trigger.router)
    return app


# -- the spec ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_webhook_trigger_creates_job():
    """The spec's FAQ test, verbatim."""
    # Mock JobCreator
    mock_creator = AsyncMock(spec=JobCreator)
    mock_creator.create_job.return_value = Job(
        id=uuid4(), job_type="test.job", queue_name="default", payload={}
    )
    # Create trigger with mock
    trigger = WebhookTrigger(job_creator=mock_creator)
    # Simulate webhook request
    await trigger._create_job_endpoint(
        WebhookJobRequest(job_type="test.job", payload={"data": "test"})
    )
    # Verify create_job was called
    mock_creator.create_job.assert_called_once_with(
        job_type="test.job", payload={"data": "test"}, queue_name="default", priority=0
    )


async def test_spec_pattern_1_post_creates_the_job_in_the_queue(client_for: Any) -> None:
    """The spec's first pattern: allow-listed types, POST /webhooks/jobs, a job in the queue."""
    job_service = JobService(job_queue=MemoryJobQueue())
    webhook_config = WebhookConfig(
        prefix="/webhooks", allowed_job_types=["email.send", "report.generate", "data.import"]
    )
    webhook_trigger = WebhookTrigger(job_creator=job_service, config=webhook_config)
    app = FastAPI()
    app.include_router(webhook_trigger.router)
    await webhook_trigger.start()
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs",
            json={
                "job_type": "email.send",
                "payload": {"recipient": "user@example.com"},
                "queue_name": "emails",
                "priority": 5,
            },
        )
    await webhook_trigger.stop()
    assert response.status_code == 201
    job = await job_service.get_job(UUID(response.json()["job_id"]))
    assert job is not None
    assert (job.job_type, job.payload, job.queue_name, job.priority) == (
        "email.send",
        {"recipient": "user@example.com"},
        "emails",
        5,
    )
    assert job.metadata["trigger"] == "webhook"
    assert job.metadata["source"] == "webhook:/webhooks/jobs"
    assert job.metadata["client"] == "127.0.0.1"
    health = webhook_trigger.get_health()
    assert health.jobs_created_count == 1 and health.last_job_created is not None


async def test_priority_map_overrides_the_requested_priority(client_for: Any) -> None:
    """The FAQ's per-job-type priority map; unmapped types keep the request's priority."""
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator,
        config=WebhookConfig(
            priority_map={"payment.process": 10, "email.send": 5, "cleanup.logs": 1}
        ),
    )
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        for job_type, asked in [("payment.process", 0), ("cleanup.logs", 50), ("other.job", 7)]:
            response = await http.post(
                "/webhooks/jobs", json={"job_type": job_type, "priority": asked}
            )
            assert response.status_code == 201
    await trigger.stop()
    assert [(j.job_type, j.priority) for j in creator.jobs] == [
        ("payment.process", 10),
        ("cleanup.logs", 1),
        ("other.job", 7),
    ]


# -- validation, in order --------------------------------------------------------------


@pytest.fixture
async def strict() -> AsyncIterator[tuple[WebhookTrigger, RecordingJobCreator, FastAPI]]:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator,
        config=WebhookConfig(
            allowed_job_types=["email.send", "report.generate"], max_body_bytes=2048
        ),
        payload_schemas={"email.send": EmailJobPayload},
        retry=FAST_RETRY,
    )
    await trigger.start()
    yield trigger, creator, app_with(trigger)
    await trigger.stop()


async def test_job_type_not_allowed_is_403(strict: Any, client_for: Any) -> None:
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", json={"job_type": "admin.delete_all"})
    assert response.status_code == 403
    assert response.json() == {"detail": "Job type 'admin.delete_all' not allowed"}
    assert creator.calls == []


async def test_payload_failing_its_schema_is_400_with_field_errors(
    strict: Any, client_for: Any
) -> None:
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs",
            json={"job_type": "email.send", "payload": {"recipient": "nobody", "subject": "hi"}},
        )
        ok = await http.post(
            "/webhooks/jobs",
            json={
                "job_type": "email.send",
                "payload": {"recipient": "a@b.c", "subject": "hi", "body": "x"},
            },
        )
    assert response.status_code == 400
    errors = {tuple(e["loc"]): e for e in response.json()["detail"]}
    assert set(errors) == {("payload", "recipient"), ("payload", "body")}
    assert "Invalid email address" in errors[("payload", "recipient")]["msg"]
    assert errors[("payload", "body")]["type"] == "missing"
    assert ok.status_code == 201
    assert [j.payload for j in creator.jobs] == [
        {"recipient": "a@b.c", "subject": "hi", "body": "x"}
    ]


async def test_403_comes_before_400(strict: Any, client_for: Any) -> None:
    """A forbidden job type with a bad payload is refused for its type (the spec's order)."""
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs", json={"job_type": "x.y", "payload": {"recipient": 1}}
        )
    assert response.status_code == 403
    assert creator.calls == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"x": NaN}',
        b'{"x": [1, {"y": -Infinity}]}',
        # no NaN or Infinity in the text: numbers too large for a float parse as inf
        b'{"x": 1e400}',
        b'{"x": [[-2.5E+999]]}',
        b'{"x": 1' + b"0" * 400 + b".0}",
    ],
)
async def test_payload_with_nan_is_400(strict: Any, client_for: Any, payload: bytes) -> None:
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs",
            content=b'{"job_type": "report.generate", "payload": ' + payload + b"}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert "JSON-serializable" in response.json()["detail"]
    assert creator.calls == []


async def test_payload_with_large_finite_numbers_is_created(strict: Any, client_for: Any) -> None:
    """Big integers and floats that fit are JSON: the job is created with them."""
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs",
            content=b'{"job_type": "report.generate", "payload": '
            b'{"big": 1' + b"0" * 400 + b', "f": 1.5e300, "l": [0.5, {"z": -1e-400}]}}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 201
    assert creator.calls[0]["payload"]["f"] == 1.5e300


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"email.send"',
        b'{"payload": {}}',
        b'{"job_type": 5}',
        b'{"job_type": "report.generate", "payload": [1, 2]}',
        b'{"job_type": "report.generate", "priority": "high"}',
        b'{"job_type": "report.generate", "priority": true}',
        b'{"job_type": "report.generate", "priority": 1000}',
        b'{"job_type": "report.generate", "queue_name": "no spaces allowed"}',
        b'{"job_type": "report.generate", "surprise": 1}',
        b'{"job_type": "bad type!"}',
        b"\xff\xfe\x00garbage",
    ],
)
async def test_malformed_json_or_wrong_types_is_422(
    strict: Any, client_for: Any, body: bytes
) -> None:
    _, creator, app = strict
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert creator.calls == []


async def test_declared_oversize_body_is_413(strict: Any, client_for: Any) -> None:
    _, creator, app = strict
    body = json.dumps({"job_type": "report.generate", "payload": {"x": "y" * 5000}}).encode()
    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", content=body)
    assert response.status_code == 413
    assert "max_body_bytes=2048" in response.json()["detail"]
    assert creator.calls == []


async def test_endless_chunked_body_is_413_without_buffering(strict: Any, client_for: Any) -> None:
    """A body that never ends is refused after ~max_body_bytes; the rest is never read."""
    _, creator, app = strict
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"job_type": "report.generate", "payload": {"x": "'
        while True:
            sent += 1
            yield b"y" * 512

    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", content=endless())
    assert response.status_code == 413
    assert sent <= 2048 // 512 + 2  # stopped at the limit, not buffered
    assert creator.calls == []


async def test_rate_limit_per_job_type_is_429_with_retry_after(client_for: Any) -> None:
    clock = HistoricalScheduler()
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator,
        config=WebhookConfig(rate_limit=RateLimit(per_job_type=3, window_seconds=60)),
        scheduler=clock,
    )
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        codes = [
            (await http.post("/webhooks/jobs", json={"job_type": "a.job"})).status_code
            for _ in range(4)
        ]
        other = await http.post("/webhooks/jobs", json={"job_type": "b.job"})
        refused = await http.post("/webhooks/jobs", json={"job_type": "a.job"})
        await advance(clock, 20)  # one token back (3 per 60 s)
        again = await http.post("/webhooks/jobs", json={"job_type": "a.job"})
    await trigger.stop()
    assert codes == [201, 201, 201, 429]
    assert other.status_code == 201  # limits are per job type
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"
    assert "a.job" in refused.json()["detail"]
    assert again.status_code == 201
    assert len(creator.of_type("a.job")) == 4


async def test_rate_limit_per_client(client_for: Any) -> None:
    clock = HistoricalScheduler()
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator,
        config=WebhookConfig(rate_limit=RateLimit(per_client=2, window_seconds=10)),
        scheduler=clock,
    )
    await trigger.start()
    app = app_with(trigger)
    async with (
        client_for(app, client=("10.0.0.1", 1)) as first,
        client_for(app, client=("10.0.0.2", 1)) as second,
    ):
        a = [
            (await first.post("/webhooks/jobs", json={"job_type": "x.y"})).status_code
            for _ in range(3)
        ]
        b = [
            (await second.post("/webhooks/jobs", json={"job_type": "x.y"})).status_code
            for _ in range(2)
        ]
        refused = await first.post("/webhooks/jobs", json={"job_type": "x.y"})
    await trigger.stop()
    assert a == [201, 201, 429]
    assert b == [201, 201]
    assert refused.headers["Retry-After"] == "5"
    assert "10.0.0.1" in refused.json()["detail"]
    assert len(creator.jobs) == 4


async def test_stopped_trigger_answers_503_and_creates_nothing(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator)
    app = app_with(trigger)
    async with client_for(app) as http:
        before = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
        await trigger.start()
        during = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
        await trigger.stop()
        after = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
    assert [before.status_code, during.status_code, after.status_code] == [503, 201, 503]
    assert len(creator.jobs) == 1
    assert trigger.get_health().details["rejected"] == {"503": 2}


async def test_creator_failing_its_retries_is_500_without_detail(client_for: Any) -> None:
    creator = RecordingJobCreator(fail_first=3)
    trigger = WebhookTrigger(job_creator=creator, retry=FAST_RETRY)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        failed = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
        ok = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
    await trigger.stop()
    assert failed.status_code == 500
    assert failed.json() == {"detail": "Job creation failed"}
    assert "planned failure" not in failed.text
    assert ok.status_code == 201
    assert len(creator.jobs) == 1
    health = trigger.get_health()
    assert health.errors_count == 1 and health.retries_count == 2
    assert "planned failure" in (health.last_error or "")


async def test_transient_failure_is_retried_into_a_201(client_for: Any) -> None:
    creator = RecordingJobCreator(fail_first=2)
    trigger = WebhookTrigger(job_creator=creator, retry=FAST_RETRY)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        response = await http.post("/webhooks/jobs", json={"job_type": "x.y"})
    await trigger.stop()
    assert response.status_code == 201
    assert response.json()["job_id"] == str(creator.jobs[0].id)


# -- idempotency -------------------------------------------------------------------------


async def test_idempotency_key_returns_the_same_job(client_for: Any) -> None:
    service = JobService(job_queue=MemoryJobQueue())
    trigger = WebhookTrigger(job_creator=service)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        headers = {"Idempotency-Key": "order-42"}
        first = await http.post("/webhooks/jobs", json={"job_type": "x.y"}, headers=headers)
        second = await http.post("/webhooks/jobs", json={"job_type": "x.y"}, headers=headers)
        other = await http.post(
            "/webhooks/jobs", json={"job_type": "x.y"}, headers={"Idempotency-Key": "order-43"}
        )
        by_webhook_id = [
            await http.post(
                "/webhooks/jobs", json={"job_type": "x.y"}, headers={"webhook-id": "msg_1"}
            )
            for _ in range(2)
        ]
    await trigger.stop()
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert other.json() != first.json()
    assert [r.status_code for r in by_webhook_id] == [201, 200]
    assert by_webhook_id[0].json() == by_webhook_id[1].json()
    assert len(await service.list_jobs()) == 3
    stored = await service.get_job(UUID(first.json()["job_id"]))
    assert stored is not None and stored.idempotency_key == "webhook:webhook:x.y:order-42"


async def test_idempotency_survives_a_restart_through_the_store(client_for: Any) -> None:
    """The in-process memory is gone after a new trigger; the store's key still holds."""
    service = JobService(job_queue=MemoryJobQueue())
    ids = []
    for _ in range(2):
        trigger = WebhookTrigger(job_creator=service)
        await trigger.start()
        async with client_for(app_with(trigger)) as http:
            response = await http.post(
                "/webhooks/jobs", json={"job_type": "x.y"}, headers={"Idempotency-Key": "k"}
            )
        await trigger.stop()
        ids.append(response.json()["job_id"])
    assert ids[0] == ids[1]
    assert len(await service.list_jobs()) == 1


class SlowForgetfulCreator(RecordingJobCreator):
    """Ignores idempotency keys and takes its time: duplicates would create two jobs."""

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> Job:
        await asyncio.sleep(0.01)
        return await super().create_job(job_type, payload, queue_name, priority, None)


@pytest.mark.parametrize("creator_type", [RecordingJobCreator, SlowForgetfulCreator])
async def test_concurrent_duplicates_create_one_job(client_for: Any, creator_type: type) -> None:
    creator = creator_type()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    "/webhooks/jobs",
                    json={"job_type": "x.y"},
                    headers={"Idempotency-Key": f"k{i % 3}"},
                )
                for i in range(30)
            )
        )
    await trigger.stop()
    assert {r.status_code for r in responses} <= {200, 201}
    assert sorted(r.status_code for r in responses).count(201) == 3
    assert len({r.json()["job_id"] for r in responses}) == 3
    assert len(creator.jobs) == 3


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
async def test_bad_idempotency_key_is_400(client_for: Any, key: str) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    async with client_for(app_with(trigger)) as http:
        response = await http.post(
            "/webhooks/jobs",
            json={"job_type": "x.y"},
            headers=[("Idempotency-Key", key.encode("latin-1", "replace"))],
        )
    await trigger.stop()
    assert response.status_code == 400
    assert creator.calls == []


# -- lifecycle and configuration ----------------------------------------------------------


async def test_start_is_idempotent_and_stop_waits_for_requests_in_flight(client_for: Any) -> None:
    creator = SlowForgetfulCreator()
    trigger = WebhookTrigger(job_creator=creator)
    await trigger.start()
    await trigger.start()
    assert trigger.is_running and trigger.state is RunState.RUNNING
    async with client_for(app_with(trigger)) as http:
        request = asyncio.ensure_future(http.post("/webhooks/jobs", json={"job_type": "x.y"}))
        await asyncio.sleep(0.001)
        await trigger.stop()
        response = await request
    assert response.status_code == 201
    assert len(creator.jobs) == 1
    assert not trigger.is_running
    await trigger.stop()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": "webhooks"},
        {"prefix": "/webhooks/"},
        {"max_body_bytes": 0},
        {"priority_map": {"x": 500}},
        {"surprise": True},
        {"rate_limit": {"window_seconds": 5}},
    ],
)
def test_bad_config_is_rejected_with_a_clear_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WebhookConfig(**kwargs)


def test_bad_payload_schema_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="pydantic model"):
        WebhookTrigger(job_creator=RecordingJobCreator(), payload_schemas={"x.y": dict})  # type: ignore[dict-item]


async def test_client_header_identifies_clients_behind_a_proxy(client_for: Any) -> None:
    clock = HistoricalScheduler()
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        job_creator=creator,
        config=WebhookConfig(rate_limit=RateLimit(per_client=1), client_header="X-Forwarded-For"),
        scheduler=clock,
    )
    await trigger.start()
    async with client_for(app_with(trigger), client=("10.9.9.9", 1)) as proxy:
        codes = [
            (
                await proxy.post(
                    "/webhooks/jobs",
                    json={"job_type": "x.y"},
                    headers={"X-Forwarded-For": f"{address}, 10.9.9.9"},
                )
            ).status_code
            for address in ["203.0.113.1", "203.0.113.2", "203.0.113.1"]
        ]
    await trigger.stop()
    assert codes == [201, 201, 429]
    assert [j.metadata["client"] for j in creator.jobs] == ["203.0.113.1", "203.0.113.2"]
