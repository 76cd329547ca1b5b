"""create_app: lifespan starts and stops triggers, health endpoint, OpenAPI, a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import reactivex
import uvicorn

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.errors import ConfigurationError, TriggerStartError
from portico_rx.models import TriggerHealth
from portico_rx.sources._webhook import webhook
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app
from portico_rx.webhooks import StandardWebhooksAuth, sign_standard_webhook

from .conftest import SECRET


def idle_trigger(name: str, creator: RecordingJobCreator) -> prx.PipelineTrigger:
    subject: reactivex.Subject[int] = reactivex.Subject()
    return prx.PipelineTrigger(subject.pipe(prx.to_job("x.y")), job_creator=creator, name=name)


async def test_lifespan_starts_and_stops_every_trigger(client_for: Any) -> None:
    """The spec's pattern 5, as a factory: triggers run exactly while the app runs."""
    creator = RecordingJobCreator()
    hook = WebhookTrigger(job_creator=creator)
    other = idle_trigger("schedule", creator)
    app = create_app([hook, other])
    assert not hook.is_running
    async with app.router.lifespan_context(app):
        assert hook.is_running and other.is_running
        async with client_for(app) as http:
            created = await http.post("/webhooks/jobs", json={"job_type": "a.b"})
            health = await http.get("/health/triggers")
    assert not hook.is_running and not other.is_running
    assert created.status_code == 201
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["triggers"]) == {"webhook", "schedule"}
    assert TriggerHealth.model_validate(body["triggers"]["webhook"]).jobs_created_count == 1


async def test_health_is_503_when_a_required_trigger_is_down(client_for: Any) -> None:
    creator = RecordingJobCreator()
    hook = WebhookTrigger(job_creator=creator)
    optional = idle_trigger("optional", creator)
    app = create_app([hook, optional], required=["webhook"])
    async with app.router.lifespan_context(app), client_for(app) as http:
        await optional.stop()
        still_ok = await http.get("/health/triggers")
        await hook.stop()
        down = await http.get("/health/triggers")
    assert (
        still_ok.status_code == 200
        and still_ok.json()["triggers"]["optional"]["is_running"] is False
    )
    assert down.status_code == 503
    assert down.json()["status"] == "degraded" and down.json()["down"] == ["webhook"]


async def test_a_trigger_failing_to_start_stops_the_others() -> None:
    class Broken(RecordingJobCreator):
        async def open(self) -> None:
            raise TriggerStartError("cannot open the store: fix the path")

    first = WebhookTrigger(job_creator=RecordingJobCreator(), name="first")
    broken = WebhookTrigger(job_creator=Broken(), name="broken", config=WebhookConfig(prefix="/b"))
    app = create_app([first, broken])
    with pytest.raises(TriggerStartError):
        async with app.router.lifespan_context(app):
            pass
    assert not first.is_running and not broken.is_running


def test_bad_arguments() -> None:
    hook = WebhookTrigger(job_creator=RecordingJobCreator())
    with pytest.raises(ConfigurationError, match="names no trigger"):
        create_app([hook], required=["nope"])
    with pytest.raises(ConfigurationError, match="not a JobTrigger"):
        create_app([object()])  # type: ignore[list-item]


def test_openapi_documents_every_route_and_model() -> None:
    hooks = webhook("/hooks/github")
    app = create_app(
        [WebhookTrigger(job_creator=RecordingJobCreator(), config=WebhookConfig(prefix="/api"))],
        routers=[hooks],
    )
    spec = app.openapi()
    assert set(spec["paths"]) == {"/api/jobs", "/hooks/github", "/health/triggers", "/outcomes"}
    post = spec["paths"]["/api/jobs"]["post"]
    assert set(post["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "job_type",
        "payload",
        "queue_name",
        "priority",
        "run_at",
        "delay_seconds",
    }
    # no auth and no rate limit configured: no 401 or 429 can come from the route
    assert set(post["responses"]) == {
        "200",
        "201",
        "400",
        "403",
        "409",
        "413",
        "415",
        "422",
        "500",
        "503",
    }
    assert post["parameters"][0]["name"] == "Idempotency-Key"
    schemas = spec["components"]["schemas"]
    assert {"WebhookJobResponse", "WebhookErrorResponse", "TriggersHealth", "TriggerHealth"} <= set(
        schemas
    )
    assert "201" in spec["paths"]["/hooks/github"]["post"]["responses"]


# -- a real server ----------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, WebhookTrigger, prx.JobService]]:
    """A real uvicorn server on 127.0.0.1 (a free port), lifespan included."""
    service = prx.JobService(job_queue=MemoryJobQueue())
    trigger = WebhookTrigger(
        job_creator=service,
        config=WebhookConfig(auth=StandardWebhooksAuth(secrets=[SECRET]), max_body_bytes=4096),
    )
    app = create_app([trigger])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}", trigger, service
    server.should_exit = True
    await task
    sock.close()


async def test_real_server_signed_request_creates_one_job(served: Any) -> None:
    url, trigger, service = served
    assert trigger.is_running  # started by the app's lifespan
    body = json.dumps({"job_type": "invoice.send", "payload": {"id": 1}}).encode()
    async with httpx.AsyncClient(base_url=url) as http:
        signed = {
            **sign_standard_webhook(SECRET, "msg_real", body),
            "content-type": "application/json",
        }
        first = await http.post("/webhooks/jobs", content=body, headers=signed)
        again = await http.post("/webhooks/jobs", content=body, headers=signed)
        forged = await http.post("/webhooks/jobs", content=body.replace(b"1", b"2"), headers=signed)
        health = await http.get("/health/triggers")
    assert (first.status_code, again.status_code, forged.status_code) == (201, 200, 401)
    assert first.json() == again.json()
    assert health.json()["triggers"]["webhook"]["jobs_created_count"] == 1
    assert [j.payload for j in await service.list_jobs()] == [{"id": 1}]


async def test_real_server_refuses_an_endless_chunked_body_while_it_streams(served: Any) -> None:
    """413 arrives while the sender is still sending; the server never waits for the end."""
    url, _, service = served
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /webhooks/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 1024
    stop_sending = asyncio.Event()

    async def send_forever() -> int:
        sent = 0
        try:
            while not stop_sending.is_set() and sent < 64 * 1024 * 1024:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += len(chunk)
        except (ConnectionError, OSError):
            pass
        return sent

    sender = asyncio.ensure_future(send_forever())
    status_line = await asyncio.wait_for(reader.readline(), 30)
    still_sending = not sender.done()
    stop_sending.set()
    await sender
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert still_sending
    assert await service.list_jobs() == []


async def test_health_is_503_when_a_running_triggers_job_store_is_down(client_for: Any) -> None:
    class StoreDown(RecordingJobCreator):
        """A creator whose store last failed to reach its server (as PostgresJobQueue says)."""

        def health(self) -> dict[str, Any]:
            return {"url": "postgresql://app:***@db/jobs", "available": False, "last_error": "x"}

    hook = WebhookTrigger(job_creator=StoreDown())
    fine = WebhookTrigger(job_creator=RecordingJobCreator(), name="fine")
    app = create_app([hook, fine])
    async with app.router.lifespan_context(app), client_for(app) as http:
        answer = await http.get("/health/triggers")
    body = answer.json()
    assert answer.status_code == 503 and body["down"] == ["webhook"]
    webhook = body["triggers"]["webhook"]
    assert webhook["is_running"] is True and webhook["healthy"] is False
    assert webhook["details"]["job_store"]["available"] is False
    assert "job_store" not in body["triggers"]["fine"]["details"]  # a store without a server
