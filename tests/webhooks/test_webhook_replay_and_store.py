"""Replays and repeated keys: the signed delivery id wins over unsigned headers, and the
answer (201 new / 200 existing / 409 another request) comes from the job store, across app
instances, restarts and stores (SQLite file, PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.job_queue import JobQueue
from portico_rx.sources._webhook import webhook
from portico_rx.testing import RecordingJobCreator, advance
from portico_rx.webhooks import (
    GitHubAuth,
    StandardWebhooksAuth,
    StripeAuth,
    sign_github,
    sign_standard_webhook,
    sign_stripe,
)

from .conftest import SECRET

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = json.dumps({"job_type": "invoice.send", "payload": {"id": 7}}).encode()
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def app_of(trigger: WebhookTrigger) -> FastAPI:
    app = FastAPI()
    app.include_router(trigger.router)
    return app


# -- 1. the signed delivery id wins ----------------------------------------------------


async def test_a_capture_replayed_five_times_with_new_idempotency_keys_makes_one_job(
    client_for: Any,
) -> None:
    clock = HistoricalScheduler(initial_clock=NOW)
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        creator,
        WebhookConfig(auth=StandardWebhooksAuth(secrets=[SECRET]), idempotency_cache_size=0),
        scheduler=clock,
    )
    await trigger.start()
    captured = {**sign_standard_webhook(SECRET, "msg_captured", BODY, NOW)}
    async with client_for(app_of(trigger)) as http:
        answers = [await http.post("/webhooks/jobs", content=BODY, headers=captured)]
        for attempt in range(5):
            await advance(clock, 30)  # still within the 300 s tolerance
            replay = {**captured, "Idempotency-Key": f"attacker-{attempt}-{uuid.uuid4()}"}
            answers.append(await http.post("/webhooks/jobs", content=BODY, headers=replay))
        await advance(clock, 300)
        stale = await http.post(
            "/webhooks/jobs", content=BODY, headers={**captured, "Idempotency-Key": "late"}
        )
    await trigger.stop()
    assert [a.status_code for a in answers] == [201] + [200] * 5
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert stale.status_code == 401 and "older than" in stale.json()["detail"]
    assert len(creator.jobs) == 1
    assert creator.jobs[0].idempotency_key == "webhook:webhook:invoice.send:msg_captured"


async def test_a_stripe_request_sent_twice_within_the_tolerance_makes_one_job(
    client_for: Any,
) -> None:
    """The trigger's body has no event id: the key is a digest of the signed t and body."""
    secret = "whsec_stripe_test"
    clock = HistoricalScheduler(initial_clock=NOW)
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(
        creator, WebhookConfig(auth=StripeAuth(secrets=[secret])), scheduler=clock
    )
    await trigger.start()
    signed = sign_stripe(secret, BODY, NOW)
    async with client_for(app_of(trigger)) as http:
        first = await http.post("/webhooks/jobs", content=BODY, headers=signed)
        await advance(clock, 100)
        again = await http.post(
            "/webhooks/jobs", content=BODY, headers={**signed, "Idempotency-Key": "new-key"}
        )
        await advance(clock, 300)
        stale = await http.post("/webhooks/jobs", content=BODY, headers=signed)
        fresh = await http.post(  # a new signed message is a new delivery
            "/webhooks/jobs", content=BODY, headers=sign_stripe(secret, BODY, clock.now)
        )
    await trigger.stop()
    assert (first.status_code, again.status_code, stale.status_code) == (201, 200, 401)
    assert fresh.status_code == 201
    assert len(creator.jobs) == 2


async def test_stripe_events_are_keyed_by_their_signed_event_id(client_for: Any) -> None:
    """On a webhook source (any JSON) a Stripe event's ``id`` is the key: Stripe's retry
    (new t, new signature) and a replay with a new Idempotency-Key make no second job."""
    secret = "whsec_stripe_test"
    clock = HistoricalScheduler(initial_clock=NOW)
    events = webhook("/hooks/stripe", auth=StripeAuth(secrets=[secret]), scheduler=clock)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job("stripe.event", payload=lambda e: e.body)),
        job_creator=creator,
        name="stripe",
    )
    await trigger.start()
    event = json.dumps({"id": "evt_1N", "type": "invoice.paid", "data": {}}).encode()
    app = FastAPI()
    app.include_router(events.router)
    async with client_for(app) as http:
        first = await http.post(
            "/hooks/stripe", content=event, headers=sign_stripe(secret, event, NOW)
        )
        await advance(clock, 60)
        retry = await http.post(
            "/hooks/stripe",
            content=event,
            headers={**sign_stripe(secret, event, clock.now), "Idempotency-Key": "other"},
        )
    await trigger.stop()
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["status"] == "existing"
    assert [job.payload["id"] for job in creator.jobs] == ["evt_1N"]
    assert creator.jobs[0].metadata["event_id"] == "evt_1N"


async def test_github_signs_only_the_body_so_a_new_delivery_header_is_a_new_job(
    client_for: Any,
) -> None:
    """What GitHub's scheme cannot prevent (docs/webhooks.md): X-GitHub-Delivery is not
    signed, so a replay with a new one is indistinguishable from a new delivery."""
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(creator, WebhookConfig(auth=GitHubAuth(secrets=["gh"])))
    await trigger.start()
    signed = sign_github("gh", BODY)
    async with client_for(app_of(trigger)) as http:
        first = await http.post(
            "/webhooks/jobs", content=BODY, headers={**signed, "X-GitHub-Delivery": "d-1"}
        )
        redelivered = await http.post(
            "/webhooks/jobs", content=BODY, headers={**signed, "X-GitHub-Delivery": "d-1"}
        )
        replayed = await http.post(
            "/webhooks/jobs", content=BODY, headers={**signed, "X-GitHub-Delivery": "d-2"}
        )
    await trigger.stop()
    assert [r.status_code for r in (first, redelivered, replayed)] == [201, 200, 201]
    assert len(creator.jobs) == 2


# -- 2. the store decides: 201 new, 200 existing, 409 another request -------------------


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Callable[[], JobQueue]]:
    path = tmp_path / "jobs.db"
    yield lambda: SQLiteJobQueue(path)


@contextlib.asynccontextmanager
async def postgres_store(tmp_path: Path) -> AsyncIterator[Callable[[], JobQueue]]:
    schema = f"webhooks_{uuid.uuid4().hex[:12]}"
    try:
        yield lambda: PostgresJobQueue(POSTGRES_DSN, schema=schema, pool_max=2)
    finally:
        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


STORES = {"sqlite": sqlite_store, "postgres": postgres_store}


@contextlib.asynccontextmanager
async def instance(queue: JobQueue, cache: int) -> AsyncIterator[tuple[WebhookTrigger, FastAPI]]:
    """One app instance (a replica): its own trigger and service over the shared store."""
    service = JobService(queue)
    trigger = WebhookTrigger(service, WebhookConfig(idempotency_cache_size=cache))
    await trigger.start()
    try:
        yield trigger, app_of(trigger)
    finally:
        await trigger.stop()
        await queue.close()


@pytest.mark.parametrize("cache", [0, 10_000])
@pytest.mark.parametrize("store", sorted(STORES))
async def test_the_store_answers_200_201_and_409_across_replicas_and_restarts(
    client_for: Any, tmp_path: Path, store: str, cache: int
) -> None:
    order = {"job_type": "order.ship", "payload": {"order": 17}, "priority": 2}
    other = {**order, "payload": {"order": 18}}
    key = {"Idempotency-Key": "order-17"}
    async with STORES[store](tmp_path) as new_queue:
        async with (
            instance(new_queue(), cache) as (_, app_a),
            instance(new_queue(), cache) as (_, app_b),
            client_for(app_a) as a,
            client_for(app_b) as b,
        ):
            created = await a.post("/webhooks/jobs", json=order, headers=key)
            on_b = await b.post("/webhooks/jobs", json=order, headers=key)
            spaced = await b.post(  # the same request, formatted differently
                "/webhooks/jobs", content=json.dumps(order, indent=2), headers=key
            )
            again_a = await a.post("/webhooks/jobs", json=order, headers=key)
            conflict_a = await a.post("/webhooks/jobs", json=other, headers=key)
            conflict_b = await b.post("/webhooks/jobs", json=other, headers=key)
        async with instance(new_queue(), cache) as (trigger, app_c), client_for(app_c) as c:
            restarted = await c.post("/webhooks/jobs", json=order, headers=key)
            conflict_c = await c.post("/webhooks/jobs", json=other, headers=key)
            jobs = await trigger.job_creator.find_jobs()  # type: ignore[attr-defined]
    assert created.status_code == 201
    job_id = created.json()["job_id"]
    for answer in (on_b, spaced, again_a, restarted):
        assert (answer.status_code, answer.json()) == (200, {"job_id": job_id})
    for answer in (conflict_a, conflict_b, conflict_c):
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert "'order-17' was already used for a different request" in detail
        assert job_id in detail and "send a new key" in detail
    assert [(str(j.id), j.payload, j.priority) for j in jobs] == [(job_id, {"order": 17}, 2)]


async def test_a_concurrent_duplicate_with_another_payload_is_a_conflict(
    client_for: Any,
) -> None:
    """Concurrent requests with one key: the first creates, a duplicate with the same body
    shares its answer, one with another body is refused by the store's answer."""
    import asyncio

    service = JobService(MemoryJobQueue())
    trigger = WebhookTrigger(service)
    await trigger.start()
    order = {"job_type": "order.ship", "payload": {"order": 1}}
    key = {"Idempotency-Key": "k-1"}
    async with client_for(app_of(trigger)) as http:
        answers = await asyncio.gather(
            http.post("/webhooks/jobs", json=order, headers=key),
            http.post("/webhooks/jobs", json=order, headers=key),
            http.post("/webhooks/jobs", json={**order, "payload": {"order": 2}}, headers=key),
        )
    await trigger.stop()
    assert sorted(a.status_code for a in answers) == [200, 201, 409]
    assert [j.payload for j in await service.list_jobs()] == [{"order": 1}]
