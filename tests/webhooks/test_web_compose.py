"""Fitting an existing app and a notebook: create_app composes with a user lifespan and any
FastAPI argument; portico_rx.web offers a lifespan and a health router for an app you
build; WebhookConfig errors name the value and the fix; WebhookTrigger has the card,
history, panel, re-run safety and store health every trigger has."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService
from portico_rx.notebook.registry import registry as default_registry
from portico_rx.notebook.widget import TriggerPanel
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app, health_router, triggers_lifespan

ORDER = {"job_type": "order.ship", "payload": {"order": 1}}


async def test_create_app_composes_with_a_user_lifespan_and_fastapi_arguments(
    client_for: Any,
) -> None:
    events: list[str] = []
    hook = WebhookTrigger(RecordingJobCreator())

    @contextlib.asynccontextmanager
    async def my_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append(f"user up, trigger running={hook.is_running}")
        yield {"db": "pool"}
        events.append(f"user down, trigger running={hook.is_running}")

    app = create_app(
        [hook], lifespan=my_lifespan, version="2.1", docs_url=None, openapi_url="/spec.json"
    )

    async with app.router.lifespan_context(app) as lifespan_state:
        assert hook.is_running
        # what the user's lifespan yields is the app's state (as FastAPI passes it on)
        assert lifespan_state == {"db": "pool"}
    assert events == ["user up, trigger running=False", "user down, trigger running=False"]
    assert not hook.is_running
    assert app.version == "2.1" and app.docs_url is None and app.openapi_url == "/spec.json"


async def test_a_trigger_that_fails_to_start_leaves_the_user_lifespan_closed() -> None:
    closed: list[bool] = []

    @contextlib.asynccontextmanager
    async def my_lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            closed.append(True)

    class Broken(JobService):
        async def open(self) -> None:
            raise ConnectionError("store down")

    app = create_app([WebhookTrigger(Broken(MemoryJobQueue()))], lifespan=my_lifespan)
    with pytest.raises(Exception, match="store down"):
        async with app.router.lifespan_context(app):
            pass
    assert closed == [True]


def test_create_app_refuses_a_lifespan_that_is_not_one() -> None:
    with pytest.raises(ConfigurationError, match="lifespan=42: give a lifespan function"):
        create_app([], lifespan=42)  # type: ignore[arg-type]


async def test_an_existing_app_gets_the_lifespan_and_the_health_router(client_for: Any) -> None:
    creator = RecordingJobCreator()
    hook = WebhookTrigger(creator, name="orders")
    app = FastAPI(title="mine", lifespan=triggers_lifespan([hook]))
    app.include_router(hook.router)
    app.include_router(health_router([hook], path="/healthz"))
    async with app.router.lifespan_context(app), client_for(app) as http:
        created = await http.post("/webhooks/jobs", json=ORDER)
        health = await http.get("/healthz")
    assert created.status_code == 201 and len(creator.jobs) == 1
    assert health.status_code == 200
    assert health.json()["triggers"]["orders"]["jobs_created_count"] == 1
    async with client_for(app) as http:  # stopped: the health router says so
        down = await http.get("/healthz")
    assert (down.status_code, down.json()["down"]) == (503, ["orders"])
    with pytest.raises(ConfigurationError, match="path='healthz'"):
        health_router([hook], path="healthz")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prefix": "webhooks"}, "prefix='webhooks': start with '/' .* e.g. '/webhooks'"),
        ({"prefix": "/webhooks/"}, "e.g. '/webhooks'"),
        ({"allowed_job_types": ["a b"]}, "allowed_job_types: 'a b' is not a job type"),
        ({"max_body_bytes": 0}, "max_body_bytes=0: Input should be greater than or equal to 1"),
        ({"prefx": "/x"}, "prefx='/x': Extra inputs are not permitted"),
        ({"priority_map": {"a": 999}}, r"priority_map\['a'\]=999: use -100..100"),
    ],
)
def test_config_errors_name_the_value_and_the_fix(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebhookConfig(**arguments)


# -- a full trigger: card, history, panel, re-run safety, store health -----------------


async def test_card_history_and_panel_show_the_webhook_trigger(client_for: Any) -> None:
    service = JobService(MemoryJobQueue())
    hook = WebhookTrigger(service, WebhookConfig(allowed_job_types=["order.ship"]), name="shop")
    app = create_app([hook])
    async with app.router.lifespan_context(app), client_for(app) as http:
        await http.post("/webhooks/jobs", json=ORDER, headers={"Idempotency-Key": "o-1"})
        await http.post("/webhooks/jobs", json={"job_type": "nope"})
        card = hook._repr_html_()
        history = hook.history()
        panel = hook.widget(jobs=3, refresh=0.01)
    assert isinstance(panel, TriggerPanel)
    panel.close()
    assert "shop" in card and "WebhookTrigger" in card and "running" in card
    assert "POST /webhooks/jobs" in card and "order.ship" in card
    assert "{&#x27;403&#x27;: 1}" in card  # refusals per status
    assert "webhook:/webhooks/jobs" in card  # the source of its jobs
    assert [job.payload for job in history] == [{"order": 1}]
    assert history[0].metadata["idempotency_key"] == "webhook:shop:order.ship:o-1"
    assert hasattr(history, "to_frame")


async def test_a_rerun_cell_replaces_the_running_copy(
    client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_registry, "enabled", True)
    monkeypatch.setattr(default_registry, "_triggers", {})
    creator = RecordingJobCreator()
    first = WebhookTrigger(creator, name="cell")
    await first.start()
    second = WebhookTrigger(creator, name="cell")  # the cell, run again
    await second.start()
    assert not first.is_running and second.is_running
    app = FastAPI()
    app.include_router(first.router)
    app.include_router(second.router, prefix="/v2")
    async with client_for(app) as http:
        old = await http.post("/webhooks/jobs", json=ORDER)
        new = await http.post("/v2/webhooks/jobs", json=ORDER)
    assert (old.status_code, new.status_code) == (503, 201)
    await default_registry.stop_all()
    assert not second.is_running and len(creator.jobs) == 1


async def test_health_carries_the_store_health(client_for: Any) -> None:
    schema = f"webhooks_{uuid.uuid4().hex[:12]}"
    queue = PostgresJobQueue("postgresql://postgres@127.0.0.1:5432/test", schema=schema, pool_max=2)
    hook = WebhookTrigger(JobService(queue), name="pg")
    app = create_app([hook])
    try:
        async with app.router.lifespan_context(app), client_for(app) as http:
            await http.post("/webhooks/jobs", json=ORDER)
            health = (await http.get("/health/triggers")).json()["triggers"]["pg"]
    finally:
        import asyncpg

        connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()
    assert health["jobs_created_count"] == 1 and health["healthy"]
    store = health["details"]["job_store"]
    assert store["available"] is True and "127.0.0.1:5432" in store["url"]
