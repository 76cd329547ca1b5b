"""FastAPI's own security on the webhook route: dependencies given to the config, to
``include_router`` and to the app are solved (401/403 without the token, 201 with it),
and a route no dependency applies to is served without FastAPI's per-request solving."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException

from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app
from portico_rx.webhooks.route import RawRequestRoute, _inclusion_dependencies

ORDER = {"job_type": "order.ship", "payload": {"order": 1}}


async def require_token(authorization: str | None = Header(default=None)) -> None:
    if authorization is None:
        raise HTTPException(401, "token required", headers={"WWW-Authenticate": "Bearer"})
    if authorization != "Bearer s3cret":
        raise HTTPException(403, "wrong token")


def protected_apps(creator: RecordingJobCreator) -> dict[str, tuple[FastAPI, WebhookTrigger]]:
    """The ways a FastAPI user protects a route, each with its own trigger."""
    apps: dict[str, tuple[FastAPI, WebhookTrigger]] = {}
    trigger = WebhookTrigger(creator, name="router")
    app = FastAPI()
    app.include_router(trigger.router, dependencies=[Depends(require_token)])
    apps["include_router"] = (app, trigger)
    trigger = WebhookTrigger(creator, name="app")
    app = FastAPI(dependencies=[Depends(require_token)])
    app.include_router(trigger.router)
    apps["FastAPI(dependencies=)"] = (app, trigger)
    trigger = WebhookTrigger(creator, name="config")
    config = WebhookConfig(dependencies=[Depends(require_token)])
    trigger = WebhookTrigger(creator, config, name="config")
    app = FastAPI()
    app.include_router(trigger.router)
    apps["WebhookConfig(dependencies=)"] = (app, trigger)
    trigger = WebhookTrigger(creator, name="create_app")
    apps["create_app(dependencies=)"] = (
        create_app([trigger], dependencies=[Depends(require_token)]),
        trigger,
    )
    trigger = WebhookTrigger(creator, name="nested")
    outer = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
    outer.include_router(trigger.router)
    app = FastAPI()
    app.include_router(outer)
    apps["nested router"] = (app, trigger)
    return apps


@pytest.mark.parametrize(
    "way",
    [
        "include_router",
        "FastAPI(dependencies=)",
        "WebhookConfig(dependencies=)",
        "create_app(dependencies=)",
        "nested router",
    ],
)
async def test_a_token_dependency_protects_the_route(client_for: Any, way: str) -> None:
    creator = RecordingJobCreator()
    app, trigger = protected_apps(creator)[way]
    path = "/api/webhooks/jobs" if way == "nested router" else "/webhooks/jobs"
    await trigger.start()
    async with client_for(app) as http:
        missing = await http.post(path, json=ORDER)
        wrong = await http.post(path, json=ORDER, headers={"Authorization": "Bearer nope"})
        ok = await http.post(path, json=ORDER, headers={"Authorization": "Bearer s3cret"})
    await trigger.stop()
    assert (missing.status_code, wrong.status_code, ok.status_code) == (401, 403, 201)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert len(creator.jobs) == 1 and ok.json()["job_id"] == str(creator.jobs[0].id)


async def test_dependency_overrides_apply(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(creator)
    app = FastAPI()
    app.include_router(trigger.router, dependencies=[Depends(require_token)])
    app.dependency_overrides[require_token] = lambda: None
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", json=ORDER)
    await trigger.stop()
    assert response.status_code == 201


def test_config_refuses_what_is_not_a_dependency() -> None:
    from portico_rx.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"dependencies: .* use Depends\(your_function\)"):
        WebhookConfig(dependencies=[require_token])


# -- speed: no dependency, no solving (the one reach into FastAPI) ------------------------


def count_solving(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    solve = fastapi.routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    return calls


@pytest.mark.parametrize("mounted", ["include_router", "create_app", "app.router.routes"])
async def test_without_dependencies_fastapi_solves_nothing(
    client_for: Any, monkeypatch: pytest.MonkeyPatch, mounted: str
) -> None:
    """Fails loudly if FastAPI changes how it builds included routes' handlers: the fast
    path (no per-request dependency solving) must survive ``include_router``."""
    calls = count_solving(monkeypatch)
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(creator)
    if mounted == "create_app":
        app = create_app([trigger])
    else:
        app = FastAPI()
        if mounted == "include_router":
            app.include_router(trigger.router)
        else:
            app.router.routes.extend(trigger.router.routes)
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", json=ORDER)
    await trigger.stop()
    assert response.status_code == 201
    assert calls == [0]


async def test_with_dependencies_fastapi_solves_them(
    client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_solving(monkeypatch)
    trigger = WebhookTrigger(RecordingJobCreator())
    app = FastAPI()
    app.include_router(trigger.router, dependencies=[Depends(require_token)])
    await trigger.start()
    async with client_for(app) as http:
        await http.post("/webhooks/jobs", json=ORDER, headers={"Authorization": "Bearer s3cret"})
    await trigger.stop()
    assert calls[0] >= 1


def test_the_reach_into_fastapi_still_exists() -> None:
    """The isolated reach (route._inclusion_dependencies) reads FastAPI's context variable
    for included routes; if FastAPI renames it, this fails and the route is served
    through FastAPI's handler (correct, slower) until route.py is adapted."""
    assert hasattr(fastapi.routing, "_effective_route_context_var")
    seen: list[Any] = []

    class Probe(RawRequestRoute):
        def get_route_handler(self) -> Any:
            if not self._declaring:
                seen.append(_inclusion_dependencies(self))
            return super().get_route_handler()

    async def endpoint(request: Any) -> Any:
        raise AssertionError("not called")

    router = APIRouter(route_class=Probe)
    router.add_api_route("/x", endpoint, methods=["POST"], response_model=None)
    token = Depends(require_token)
    for dependencies in ([], [token]):
        app = FastAPI()
        app.include_router(router, dependencies=dependencies)
        app.openapi()  # builds the included routes
        list(fastapi.routing.iter_route_contexts(app.routes))
    assert seen and all(item is not None for item in seen), seen
    assert [] in seen and [token] in seen
