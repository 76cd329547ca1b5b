"""A webhook body's ``run_at`` / ``delay_seconds`` make a SCHEDULED job (documented in
the OpenAPI schema); both, a naive time or a negative delay get 422."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.models import JobStatus
from portico_rx.web import create_app


async def test_webhook_body_run_at_and_delay_seconds() -> None:
    service = prx.JobService(prx.MemoryJobQueue())
    clock = HistoricalScheduler(initial_clock=datetime(2030, 1, 1, tzinfo=UTC))
    app = create_app([WebhookTrigger(service, WebhookConfig(), scheduler=clock)])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        at = await client.post(
            "/webhooks/jobs", json={"job_type": "a.at", "run_at": "2030-02-01T09:00:00+01:00"}
        )
        later = await client.post("/webhooks/jobs", json={"job_type": "a.in", "delay_seconds": 90})
        both = await client.post(
            "/webhooks/jobs",
            json={"job_type": "a.b", "delay_seconds": 1, "run_at": "2030-02-01T09:00:00Z"},
        )
        naive = await client.post(
            "/webhooks/jobs", json={"job_type": "a.b", "run_at": "2030-02-01T09:00:00"}
        )
        negative = await client.post(
            "/webhooks/jobs", json={"job_type": "a.b", "delay_seconds": -1}
        )
        huge = await client.post("/webhooks/jobs", json={"job_type": "a.b", "delay_seconds": 1e12})
        schema = (await client.get("/openapi.json")).json()
    assert at.status_code == 201 and later.status_code == 201
    jobs = {j.job_type: j for j in await service.list_jobs()}
    assert jobs["a.at"].scheduled_at == datetime(2030, 2, 1, 8, tzinfo=UTC)
    assert jobs["a.in"].scheduled_at == datetime(2030, 1, 1, 0, 1, 30, tzinfo=UTC)
    assert {j.status for j in jobs.values()} == {JobStatus.SCHEDULED}
    codes = (both.status_code, naive.status_code, negative.status_code, huge.status_code)
    assert codes == (422, 422, 422, 422)
    assert "not both" in both.text and "timezone" in naive.text
    body = json.dumps(schema)
    assert '"run_at"' in body and '"delay_seconds"' in body
