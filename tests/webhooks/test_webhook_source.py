"""sources.webhook: POSTs of any JSON through a pipeline; the response says what happened."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import pytest
from fastapi import FastAPI
from reactivex import operators as ops

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import ConfigurationError
from portico_rx.sources._webhook import WebhookEvent, WebhookSource, webhook
from portico_rx.testing import RecordingJobCreator
from portico_rx.webhooks import GitHubAuth, sign_github

GITHUB_SECRET = "it's a secret to everybody"


def push(ref: str, repo: str = "acme/site") -> bytes:
    return json.dumps({"ref": ref, "repository": {"full_name": repo}, "after": "abc123"}).encode()


def github_pipeline(source: WebhookSource) -> Any:
    return source.pipe(
        ops.filter(lambda e: e.header("x-github-event") == "push"),
        ops.filter(lambda e: e.body["ref"] == "refs/heads/main"),
        prx.to_job(
            "ci.deploy",
            payload=lambda e: {"repo": e.body["repository"]["full_name"], "sha": e.body["after"]},
            queue_name="deploys",
            priority=7,
        ),
    )


async def test_github_push_to_main_becomes_a_deploy_job(client_for: Any) -> None:
    """GitHub push events -> filter -> to_job: 201 with the job id; others 200 dropped."""
    service = prx.JobService(job_queue=MemoryJobQueue())
    hooks = sources.webhook("/hooks/github", auth=GitHubAuth(secrets=[GITHUB_SECRET]))
    trigger = prx.PipelineTrigger(github_pipeline(hooks), job_creator=service, name="deploys")
    app = FastAPI()
    app.include_router(hooks.router)

    def headers(event: str, body: bytes, delivery: str) -> dict[str, str]:
        return {
            **sign_github(GITHUB_SECRET, body),
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
        }

    await trigger.start()
    async with client_for(app) as http:
        main = push("refs/heads/main")
        created = await http.post(
            "/hooks/github", content=main, headers=headers("push", main, "d1")
        )
        redelivered = await http.post(
            "/hooks/github", content=main, headers=headers("push", main, "d1")
        )
        branch = push("refs/heads/feature")
        dropped = await http.post(
            "/hooks/github", content=branch, headers=headers("push", branch, "d2")
        )
        ping = await http.post("/hooks/github", content=b"{}", headers=headers("ping", b"{}", "d3"))
        forged = await http.post(
            "/hooks/github", content=main, headers=headers("push", branch, "d4")
        )
    await trigger.stop()

    assert created.status_code == 201
    assert created.json()["status"] == "created"
    [job_id] = created.json()["job_ids"]
    job = await service.get_job(UUID(job_id))
    assert job is not None
    assert (job.job_type, job.payload, job.queue_name, job.priority) == (
        "ci.deploy",
        {"repo": "acme/site", "sha": "abc123"},
        "deploys",
        7,
    )
    assert job.metadata["source"] == "webhook:/hooks/github"
    assert job.metadata["event_id"] == "d1"
    assert job.idempotency_key == "deploys:ci.deploy:d1"
    assert redelivered.status_code == 200 and redelivered.json()["job_ids"] == [job_id]
    assert redelivered.json()["status"] == "existing"  # the store had the key's job
    assert (dropped.status_code, dropped.json()["status"]) == (200, "dropped")
    assert (ping.status_code, ping.json()["status"]) == (200, "dropped")
    assert forged.status_code == 401
    assert len(await service.list_jobs()) == 1
    health = trigger.get_health()  # the redelivery returned the same job: not created again
    assert (health.jobs_created_count, health.duplicates_count) == (1, 1)


async def test_route_is_closed_while_no_trigger_runs(client_for: Any) -> None:
    creator = RecordingJobCreator()
    hooks = webhook("/events")
    trigger = prx.PipelineTrigger(hooks.pipe(prx.to_job("e.v")), job_creator=creator, name="events")
    app = FastAPI()
    app.include_router(hooks.router)
    async with client_for(app) as http:
        before = await http.post("/events", json={"n": 1})
        await trigger.start()
        assert hooks.is_open
        during = await http.post("/events", json={"n": 2})
        await trigger.stop()
        after = await http.post("/events", json={"n": 3})
    assert [before.status_code, during.status_code, after.status_code] == [503, 201, 503]
    assert [j.payload["body"] for j in creator.jobs] == [{"n": 2}]


async def test_event_fields(client_for: Any) -> None:
    seen: list[WebhookEvent] = []
    hooks = webhook("/events")
    trigger = prx.PipelineTrigger(
        hooks.pipe(
            ops.do_action(seen.append), prx.to_job("e.v", payload=lambda e: {"body": e.body})
        ),
        job_creator=RecordingJobCreator(),
        name="events",
    )
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app, client=("192.0.2.9", 1234)) as http:
        response = await http.post(
            "/events", json=[1, "two", None], headers={"Idempotency-Key": "abc", "X-Thing": "Yes"}
        )
    await trigger.stop()
    assert response.status_code == 201
    [event] = seen
    assert event.body == [1, "two", None]
    assert event.client == "192.0.2.9"
    assert event.delivery_id == "abc"
    assert event.header("X-THING") == "Yes"
    assert event.received_at.tzinfo is not None


async def test_failed_creation_is_500_and_not_a_2xx(client_for: Any) -> None:
    creator = RecordingJobCreator(fail_first=100)
    hooks = webhook("/events")
    trigger = prx.PipelineTrigger(
        hooks.pipe(prx.to_job("e.v")),
        job_creator=creator,
        name="events",
        retry=prx.RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002),
    )
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post("/events", json={"n": 1})
    await trigger.stop()
    assert response.status_code == 500
    assert response.json()["status"] == "failed"
    assert creator.jobs == []
    assert len(trigger.dead_letters) == 1


async def test_user_function_error_is_500_and_the_route_stays_open(client_for: Any) -> None:
    creator = RecordingJobCreator()
    hooks = webhook("/events")
    trigger = prx.PipelineTrigger(
        hooks.pipe(prx.to_job("e.v", payload=lambda e: {"n": 10 // e.body["n"]})),
        job_creator=creator,
        name="events",
    )
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app) as http:
        bad = await http.post("/events", json={"n": 0})
        good = await http.post("/events", json={"n": 5})
    await trigger.stop()
    assert (bad.status_code, good.status_code) == (500, 201)
    assert [j.payload for j in creator.jobs] == [{"n": 2}]


async def test_slow_creation_past_settle_timeout_is_503(client_for: Any) -> None:
    class Slow(RecordingJobCreator):
        async def create_job(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.3)
            return await super().create_job(*args, **kwargs)

    hooks = webhook("/events", settle_timeout=0.05)
    trigger = prx.PipelineTrigger(hooks.pipe(prx.to_job("e.v")), job_creator=Slow(), name="events")
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post("/events", json={"n": 1})
    await trigger.stop()
    assert response.status_code == 503
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize(
    "body", [b"{nope", b"", b"\xff\xfe", b'{"n": NaN}', b"[1e400]", b'{"a": {"b": [-1E999]}}']
)
async def test_non_json_is_422(client_for: Any, body: bytes) -> None:
    creator = RecordingJobCreator()
    hooks = webhook("/events", max_body_bytes=64)
    trigger = prx.PipelineTrigger(hooks.pipe(prx.to_job("e.v")), job_creator=creator, name="events")
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post("/events", content=body)
        large = await http.post("/events", content=b"[" + b"1," * 100 + b"1]")
    await trigger.stop()
    assert response.status_code == 422
    assert large.status_code == 413
    assert creator.calls == []


async def test_concurrent_duplicate_deliveries_create_one_job(client_for: Any) -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    hooks = webhook("/events")
    trigger = prx.PipelineTrigger(hooks.pipe(prx.to_job("e.v")), job_creator=service, name="events")
    app = FastAPI()
    app.include_router(hooks.router)
    await trigger.start()
    async with client_for(app) as http:
        responses = await asyncio.gather(
            *(
                http.post("/events", json={"i": i}, headers={"webhook-id": f"m{i % 4}"})
                for i in range(20)
            )
        )
    await trigger.stop()
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 4 and set(statuses) <= {200, 201}  # 200: an existing job
    assert len({r.json()["job_ids"][0] for r in responses}) == 4
    assert len(await service.list_jobs()) == 4


@pytest.mark.parametrize("path", ["events", "/events/", ""])
def test_bad_path_is_a_configuration_error(path: str) -> None:
    with pytest.raises(ConfigurationError, match="path="):
        webhook(path)
