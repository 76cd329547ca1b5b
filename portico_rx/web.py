"""FastAPI app factory: triggers start and stop with the app (the spec's pattern 5),
their routes are mounted, ``GET /health/triggers`` reports each one, and
``GET /outcomes`` tells what became of their recent events (``portico-rx outcomes``).

``portico-rx run`` uses :func:`serve` when the loaded file defines triggers with routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from portico_rx.errors import ConfigurationError, require
from portico_rx.logs import get_logger
from portico_rx.models import TriggerHealth
from portico_rx.ports.job_trigger import JobTrigger

require("fastapi", "webhook")

from fastapi import APIRouter, FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from portico_rx.webhooks.openapi import WebhookErrorResponse  # noqa: E402
from portico_rx.webhooks.route import RawRequestRoute  # noqa: E402

if TYPE_CHECKING:
    from portico_rx.kits.job.job_service import JobService

__all__ = [
    "HasRouter",
    "Lifespan",
    "TriggerOutcomes",
    "TriggersHealth",
    "create_app",
    "health_router",
    "mount",
    "serve",
    "serve_async",
    "trigger_name",
    "triggers_lifespan",
]

logger = get_logger("portico_rx.web")


@runtime_checkable
class HasRouter(Protocol):
    """Anything with a FastAPI ``router`` (a ``WebhookTrigger``, a webhook source)."""

    router: APIRouter


class TriggersHealth(BaseModel):
    """The body of ``GET /health/triggers``."""

    status: str = Field(description="'ok', or 'degraded' when a required trigger is down")
    down: list[str] = Field(
        default_factory=list,
        description="required triggers that are not running or not healthy (e.g. their "
        "job store is unreachable)",
    )
    triggers: dict[str, TriggerHealth]


def trigger_name(trigger: JobTrigger) -> str:
    """A trigger's ``name`` attribute, else its class name."""
    name = getattr(trigger, "name", None)
    return name if isinstance(name, str) and name else type(trigger).__name__


def _named(triggers: Sequence[JobTrigger]) -> dict[str, JobTrigger]:
    named: dict[str, JobTrigger] = {}
    for trigger in triggers:
        if not isinstance(trigger, JobTrigger):
            raise ConfigurationError(
                f"triggers: {trigger!r} is not a JobTrigger; pass WebhookTrigger, "
                "ScheduleTrigger, PipelineTrigger … instances"
            )
        base = name = trigger_name(trigger)
        suffix = 2
        while name in named:
            name = f"{base}-{suffix}"
            suffix += 1
        named[name] = trigger
    return named


def create_app(
    triggers: Sequence[JobTrigger] = (),
    required: Sequence[str | JobTrigger] | None = None,
    *,
    routers: Sequence[APIRouter | HasRouter] = (),
    title: str = "portico_rx",
    lifespan: Lifespan | None = None,
    dashboard: bool = False,
    dashboard_auth: Sequence[Any] = (),
    dashboard_jobs: JobService | None = None,
    dashboard_allow_unauthenticated: bool = False,
    metrics: bool = False,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app that runs ``triggers`` for as long as it runs.

    Its lifespan (:func:`triggers_lifespan`) starts every trigger in order (if one fails,
    those already started are stopped and the app does not start) and stops them in
    reverse order on shutdown. Each trigger's ``router`` (if it has one) and every entry
    of ``routers`` is mounted, and :func:`health_router` answers ``GET /health/triggers``.

    Args:
        triggers: the triggers to run (default none).
        required: names (or the trigger objects) whose being down makes
            ``GET /health/triggers`` answer 503 (default: every trigger).
        routers: more routes to mount, e.g. ``webhook(...)`` sources used in pipelines.
        title: the OpenAPI title (default ``"portico_rx"``).
        lifespan: your own lifespan; it is entered first and left last, so the
            triggers start once your resources exist and stop before they close.
            What it yields (FastAPI's lifespan state) is the app's state.
        dashboard: mount the web dashboard at ``/dashboard`` (see
            :mod:`portico_rx.dashboard` and ``docs/dashboard.md``; ``dashboard`` extra).
        dashboard_auth: FastAPI dependencies of the dashboard's routes (e.g.
            ``[Depends(auth)]``); the app's ``dependencies`` protect it too.
        dashboard_jobs: the ``JobService`` whose jobs and dead letters it shows
            (default: the one the triggers use).
        dashboard_allow_unauthenticated: mount the dashboard with neither
            ``dashboard_auth`` nor app ``dependencies`` (anyone reaching the port can act).
        metrics: answer ``GET /metrics`` in the Prometheus text format
            (:func:`portico_rx.telemetry.metrics_router`; ``pip install
            'portico_rx[otel]'``), enabling telemetry if it is not yet.
        **fastapi_kwargs: passed to ``FastAPI(...)`` (``version``, ``docs_url``,
            ``dependencies`` — which protect the webhook routes too …).

    Returns:
        The app; serve it with uvicorn, or :func:`serve`.

    Raises:
        ConfigurationError: a trigger is not a ``JobTrigger``, ``required`` names one
            that is not in ``triggers``, ``lifespan`` is not callable, or ``dashboard``
            has no authentication (neither ``dashboard_auth`` nor app ``dependencies``)
            and not ``dashboard_allow_unauthenticated``.
        MissingDependencyError: ``metrics=True`` without the ``otel`` extra installed.

    Example:
        >>> from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger
        >>> from portico_rx.testing import RecordingJobCreator
        >>> app = create_app([WebhookTrigger(job_creator=RecordingJobCreator())])
        >>> sorted(app.openapi()["paths"])
        ['/health/triggers', '/webhooks/jobs']
    """
    named = _named(triggers)
    must = _required(named, required)
    app = FastAPI(title=title, lifespan=_lifespan(named, lifespan), **fastapi_kwargs)
    app.state.triggers = named
    _mount_routes(app, named, routers)
    mount(app, _health_router(named, must))
    _add_outcomes_route(app, named)
    if dashboard:
        from portico_rx.dashboard import dashboard_router

        app.include_router(
            dashboard_router(
                named,
                dashboard_jobs,
                dependencies=dashboard_auth,
                allow_unauthenticated=dashboard_allow_unauthenticated
                or bool(fastapi_kwargs.get("dependencies")),
            )
        )
    if metrics:
        from portico_rx.telemetry import metrics_router  # the otel extra: only when asked

        mount(app, metrics_router())
    return app


Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
"""A FastAPI (Starlette) lifespan: ``lifespan(app)`` is an async context manager."""


def triggers_lifespan(triggers: Sequence[JobTrigger], then: Lifespan | None = None) -> Lifespan:
    """A lifespan that runs ``triggers`` in an app you build yourself.

    ``app = FastAPI(lifespan=triggers_lifespan([hook]))``, then
    ``app.include_router(hook.router)`` and ``app.include_router(health_router([hook]))``.

    Args:
        triggers: started in order when the app starts (if one fails, those already
            started are stopped and the app does not start), stopped in reverse order
            when it shuts down.
        then: your own lifespan, entered before the triggers start and left after they
            stopped; what it yields is the app's lifespan state.

    Raises:
        ConfigurationError: a trigger is not a ``JobTrigger``, or ``then`` is not callable.
    """
    return _lifespan(_named(triggers), then)


def health_router(
    triggers: Sequence[JobTrigger],
    required: Sequence[str | JobTrigger] | None = None,
    *,
    path: str = "/health/triggers",
) -> APIRouter:
    """``GET {path}`` reporting each trigger (503 while a required one is down), for an
    app you build yourself: ``app.include_router(health_router([hook]))``.

    Args:
        triggers: the triggers to report (named as :func:`create_app` names them).
        required: names (or the trigger objects) whose being down answers 503 (default:
            every trigger).
        path: the route (default ``"/health/triggers"``).

    Raises:
        ConfigurationError: as :func:`create_app`, or ``path`` is not an absolute path.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"path={path!r}: use an absolute route path, e.g. '/health'")
    named = _named(triggers)
    return _health_router(named, _required(named, required), path)


def _required(
    named: dict[str, JobTrigger], required: Sequence[str | JobTrigger] | None
) -> set[str]:
    """The names of the triggers whose being down makes the health check answer 503."""
    if required is None:
        return set(named)
    must: set[str] = set()
    for item in required:
        if isinstance(item, JobTrigger):
            found = [name for name, trigger in named.items() if trigger is item]
            if not found:
                raise ConfigurationError(f"required: {item!r} is not one of the triggers")
            must.update(found)
        elif item in named:
            must.add(item)
        else:
            raise ConfigurationError(
                f"required: {item!r} names no trigger; known names: {sorted(named)}"
            )
    return must


def _lifespan(named: dict[str, JobTrigger], then: Lifespan | None = None) -> Lifespan:
    """Enter ``then``, start the triggers in order; stop the started ones in reverse."""
    if then is not None and not callable(then):
        raise ConfigurationError(
            f"lifespan={then!r}: give a lifespan function, e.g. an "
            "@contextlib.asynccontextmanager async def lifespan(app): ... yield"
        )

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as stack:
            state = await stack.enter_async_context(then(app)) if then is not None else None
            await _start_all(named, stack)
            yield state

    return run


async def _start_all(named: dict[str, JobTrigger], stack: contextlib.AsyncExitStack) -> None:
    """Start each trigger; its stop joins ``stack``, so they stop in reverse order."""
    for name, trigger in named.items():
        await trigger.start()
        stack.push_async_callback(_stop, name, trigger)
        logger.info(
            "trigger_started",
            trigger=name,
            trigger_type=type(trigger).__name__,
            is_running=trigger.is_running,
        )


async def _stop(name: str, trigger: JobTrigger) -> None:
    try:
        await trigger.stop()
    except Exception as exc:
        logger.error("trigger_stop_failed", trigger=name, error=str(exc))
    logger.info(
        "trigger_stopped",
        trigger=name,
        trigger_type=type(trigger).__name__,
        is_running=trigger.is_running,
    )


def _mount_routes(
    app: FastAPI, named: dict[str, JobTrigger], routers: Sequence[APIRouter | HasRouter]
) -> None:
    """Mount every trigger's ``router`` and every entry of ``routers``."""
    # The app matches routes in order, about 1.4 us each: the webhook routes go before
    # FastAPI's own GET pages (OpenAPI document, docs), which no POST can match anyway.
    pages = list(app.router.routes)
    del app.router.routes[:]
    for trigger in named.values():
        router = getattr(trigger, "router", None)
        if isinstance(router, APIRouter):
            mount(app, router)
    for entry in routers:
        mount(app, entry if isinstance(entry, APIRouter) else entry.router)
    app.router.routes.extend(pages)
    _routes_changed(app)


def _health_router(
    named: dict[str, JobTrigger], must: set[str], path: str = "/health/triggers"
) -> APIRouter:
    """``GET {path}``: 503 while a required trigger is down."""
    router = APIRouter()

    @router.get(
        path,
        response_model=TriggersHealth,
        tags=["health"],
        summary="Health of every trigger",
        responses={
            503: {
                "model": TriggersHealth,
                "description": "a required trigger is not running or not healthy",
            }
        },
    )
    async def triggers_health() -> JSONResponse:
        healths = {name: trigger.get_health() for name, trigger in named.items()}
        down = sorted(
            name for name in must if not (healths[name].is_running and healths[name].healthy)
        )
        body = TriggersHealth(status="degraded" if down else "ok", down=down, triggers=healths)
        return JSONResponse(body.model_dump(mode="json"), status_code=503 if down else 200)

    return router


class TriggerOutcomes(BaseModel):
    """One trigger's part of ``GET /outcomes``."""

    counts: dict[str, int] = Field(
        description="events per outcome since the trigger was built, and 'held'"
    )
    outcomes: list[dict[str, Any]] = Field(
        description="the recent event outcomes, oldest first (EventOutcome.as_dict())"
    )


def _add_outcomes_route(app: FastAPI, named: dict[str, JobTrigger]) -> None:
    """Declare ``GET /outcomes``: each trigger's recent event outcomes (those that keep
    them: every ``PipelineTrigger``), filtered by ``trigger``, ``outcome``, ``limit``."""

    @app.get(
        "/outcomes",
        response_model=dict[str, TriggerOutcomes],
        tags=["health"],
        summary="What became of each trigger's recent events",
        responses={
            400: {"model": WebhookErrorResponse, "description": "an unknown outcome kind"},
            404: {"model": WebhookErrorResponse, "description": "no trigger of that name"},
        },
    )
    async def outcomes(
        trigger: str | None = None, outcome: str | None = None, limit: int = 100
    ) -> JSONResponse:
        body: dict[str, Any] = {}
        for name, each in named.items():
            recorder = getattr(each, "recorder", None)
            if (trigger is not None and name != trigger) or recorder is None:
                continue
            try:
                kept = recorder.outcomes(outcome, limit=max(limit, 0))
            except ConfigurationError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
            body[name] = {
                "counts": recorder.summary(),
                "outcomes": [record.as_dict() for record in kept],
            }
        if trigger is not None and not body:
            known = ", ".join(sorted(named)) or "none"
            return JSONResponse(
                {"detail": f"no trigger {trigger!r} keeps outcomes here (triggers: {known})"},
                status_code=404,
            )
        return JSONResponse(body)


def mount(app: FastAPI, router: APIRouter) -> None:
    """Mount ``router``'s routes in ``app``, as ``create_app`` does.

    A router made only of :class:`~portico_rx.webhooks.route.RawRequestRoute` routes
    (a ``WebhookTrigger``'s) and nothing that ``include_router`` would have to combine
    (no dependencies of the routes, the router or the app, no startup or shutdown
    handlers, no lifespan) has its route
    objects added to the app's own routes, where the app matches them once per request,
    like a route declared with ``@app.post``. The FastAPI installed here includes a
    router lazily and matches it, then its routes, on every request, which costs a
    webhook request about 7 µs. Any other router goes through ``app.include_router``.

    Routes added to ``router`` after it was mounted flat are not served by ``app``
    (as with ``include_router`` in FastAPI versions that copy the routes): build the
    router first.
    """
    flat = (
        bool(router.routes)
        and all(isinstance(route, RawRequestRoute) and route.direct for route in router.routes)
        and not (router.dependencies or router.on_startup or router.on_shutdown)
        and not app.router.dependencies
        and type(router.lifespan_context) is type(APIRouter().lifespan_context)
    )
    if not flat:
        app.include_router(router)
        return
    app.router.routes.extend(router.routes)
    _routes_changed(app)


def _routes_changed(app: FastAPI) -> None:
    # Some FastAPI versions cache the OpenAPI document per version of the route list.
    mark_changed = getattr(app.router, "_mark_routes_changed", None)
    if callable(mark_changed):
        mark_changed()


def serve(
    triggers: Sequence[JobTrigger],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    required: Sequence[str | JobTrigger] | None = None,
    routers: Sequence[APIRouter | HasRouter] = (),
    log_level: str = "info",
) -> None:
    """Serve :func:`create_app` with uvicorn until interrupted (blocks; owns the loop).

    Args:
        triggers: the triggers to run.
        host: address to bind (default ``"127.0.0.1"``).
        port: port to bind (default 8000).
        required: see :func:`create_app`.
        routers: see :func:`create_app`.
        log_level: uvicorn's log level (default ``"info"``).
    """
    uvicorn: Any = require("uvicorn", "webhook")
    app = create_app(triggers, required, routers=routers)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


async def serve_async(
    triggers: Sequence[JobTrigger],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    required: Sequence[str | JobTrigger] | None = None,
    routers: Sequence[APIRouter | HasRouter] = (),
    log_level: str = "info",
) -> None:
    """Like :func:`serve`, on the running loop; returns when the server shuts down."""
    uvicorn: Any = require("uvicorn", "webhook")
    app = create_app(triggers, required, routers=routers)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    await server.serve()
