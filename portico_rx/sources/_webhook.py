"""``webhook``: HTTP POSTs of any JSON as an observable of :class:`WebhookEvent`.

The returned :class:`WebhookSource` is an ``Observable`` *and* carries a FastAPI
``router``: compose it like any source and mount its route in your app. Each POST is
emitted with a :class:`~portico_rx.pipeline.delivery.Delivery` whose settlement answers the HTTP
request, so a sender only sees success when its job exists:

=====================================  =========================================
the pipeline created the job(s)         201 ``{"status": "created", "job_ids": [...]}``
every job existed already (its key)     200 ``{"status": "existing", "job_ids": [...]}``
the pipeline dropped the event          200 ``{"status": "dropped"}``
creating the job failed (dead letter)   500 ``{"status": "failed"}``
not settled within ``settle_timeout``   503 (retry with the same idempotency key)
nobody subscribed (trigger stopped)     503
not authentic / too large / not JSON    401 / 413 / 422
=====================================  =========================================
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, Outcome, deliver
from portico_rx.pipeline.instrument import trace_context
from portico_rx.pipeline.provenance import source_time
from portico_rx.pipeline.readiness import announce
from portico_rx.webhooks.auth import WebhookAuth
from portico_rx.webhooks.idempotency import IdempotencyGuard
from portico_rx.webhooks.intake import (
    JSON_CONTENT_TYPES,
    accepted_content_types,
    authenticated_body,
    finite_json,
    idempotency_key,
    request_headers,
)
from portico_rx.webhooks.openapi import (
    ERROR_DESCRIPTIONS,
    CleanSchema,
    clean_description,
    error_responses,
    inline_schema,
)

require("fastapi", "webhook")

from fastapi import APIRouter, HTTPException  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from starlette.requests import Request  # noqa: E402

__all__ = ["WebhookEvent", "WebhookEventResponse", "WebhookSource", "webhook"]

DEFAULT_MAX_BODY_BYTES = 1_048_576


class WebhookEvent(BaseModel):
    """One POST to a webhook source.

    Attributes:
        path: the route that received it.
        headers: the request headers, names lower-cased.
        body: the parsed JSON body.
        client: the sender's address (``None`` if unknown).
        received_at: when it arrived (scheduler time, UTC).
        delivery_id: the idempotency key (``Idempotency-Key``, ``webhook-id``,
            ``X-GitHub-Delivery``), if the request had one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    client: str | None = None
    received_at: datetime
    delivery_id: str | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by name, any case."""
        return self.headers.get(name.lower(), default)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class WebhookEventResponse(CleanSchema):
    """The answer to a POST on a webhook source: what the pipeline did with the event."""

    status: Literal["created", "existing", "dropped", "failed", "pending"] = Field(
        description="created: new job(s); existing: every job already existed (a repeated "
        "key); dropped: the pipeline filtered the event out; failed: a job could not be "
        "created; pending: not settled in time (retry with the same key)"
    )
    job_ids: list[str] = Field(default_factory=list, description="the event's jobs")
    detail: str | None = None


_ANY_JSON: dict[str, Any] = {
    "title": "WebhookEventBody",
    "description": "Any JSON value: the sender's event, handed to the pipeline as "
    "WebhookEvent.body.",
    "type": ["object", "array", "string", "number", "integer", "boolean", "null"],
}


_Subscriber = tuple[abc.ObserverBase[WebhookEvent], abc.SchedulerBase | None]


class WebhookSource(Observable[WebhookEvent]):
    """An observable of :class:`WebhookEvent` with a mountable FastAPI ``router``.

    Build it with :func:`webhook`. Subscribing opens the route (before, it answers
    503); disposing closes it again.
    """

    def __init__(
        self,
        path: str,
        *,
        auth: WebhookAuth | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        settle_timeout: float = 30.0,
        scheduler: abc.SchedulerBase | None = None,
        tags: list[str] | None = None,
        content_types: list[str] | tuple[str, ...] = JSON_CONTENT_TYPES,
        body_schema: type[BaseModel] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
            raise ConfigurationError(
                f"path={path!r}: use an absolute route path, e.g. '/hooks/github'"
            )
        if max_body_bytes < 1:
            raise ConfigurationError(f"max_body_bytes={max_body_bytes!r}: use 1 or more")
        if settle_timeout <= 0:
            raise ConfigurationError(f"settle_timeout={settle_timeout!r}: use seconds > 0")
        if auth is not None and not isinstance(auth, WebhookAuth):
            raise ConfigurationError(
                f"auth={auth!r}: use a WebhookAuth, e.g. GitHubAuth(secrets=[...])"
            )
        self.content_types = accepted_content_types(list(content_types))
        if body_schema is not None and not (
            isinstance(body_schema, type) and issubclass(body_schema, BaseModel)
        ):
            raise ConfigurationError(
                f"body_schema={body_schema!r}: use a pydantic model class (or None for any JSON)"
            )
        self.body_schema = body_schema
        self.path = path
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.settle_timeout = settle_timeout
        self.scheduler = scheduler
        self._subscribers: list[_Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self._guard: IdempotencyGuard[None] = IdempotencyGuard(max_keys=0)
        self.router = self._build_router(tags or ["webhooks"])

    def __repr__(self) -> str:
        return f"WebhookSource(path={self.path!r}, subscribers={len(self._subscribers)})"

    @property
    def is_open(self) -> bool:
        """``True`` while someone is subscribed (the route accepts events)."""
        return bool(self._subscribers)

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[WebhookEvent],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        announce(self)  # an I/O source (pipeline.readiness)
        entry: _Subscriber = (observer, scheduler)
        with self._subscribers_lock:
            self._subscribers.append(entry)

        def remove() -> None:
            with self._subscribers_lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return Disposable(remove)

    # -- HTTP ------------------------------------------------------------------------

    def _now(self, scheduler: abc.SchedulerBase | None) -> datetime:
        return clock.now(clock.resolve_scheduler(self.scheduler or scheduler))

    async def _receive(self, request: Request) -> JSONResponse:
        subscribers = list(self._subscribers)
        if not subscribers:
            return JSONResponse(
                WebhookEventResponse(
                    status="pending", detail=f"no trigger is listening on {self.path}"
                ).model_dump(),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        now = self._now(subscribers[0][1])
        headers = request_headers(request)
        body = await authenticated_body(
            request, self.auth, self.max_body_bytes, now, headers, self.content_types
        )
        try:
            parsed = json.loads(body, parse_constant=_reject_constant)
            if not finite_json(parsed):
                raise ValueError("a number too large for a float (1e400)")
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(
                422, "the body is not valid JSON (NaN and Infinity are not JSON either)"
            ) from None
        if self.body_schema is not None:
            try:
                self.body_schema.model_validate(parsed)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                raise HTTPException(
                    422,
                    [
                        {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                        for e in errors
                    ],
                ) from None
        key = idempotency_key(headers, self.auth, body)
        client = request.client.host if request.client else None
        event = WebhookEvent(
            path=self.path,
            headers=headers,
            body=parsed,
            client=client,
            received_at=now,
            delivery_id=key,
        )
        if key is None:
            return await self._emit(event, subscribers)
        async with self._guard.hold(key):
            return await self._emit(event, subscribers)

    async def _emit(self, event: WebhookEvent, subscribers: list[_Subscriber]) -> JSONResponse:
        deliveries: list[Delivery] = []
        attributes: dict[str, Any] = {"path": self.path}
        if event.client is not None:
            attributes["client"] = event.client
        trace = trace_context(event.headers)
        if trace is not None:
            attributes.update(trace)
        for observer, scheduler in subscribers:
            delivery = Delivery(
                source=f"webhook:{self.path}",
                seen_at=self._now(scheduler),
                event_id=event.delivery_id,
                idempotency_key=event.delivery_id,
                occurred_at=source_time(event.header("webhook-timestamp")),
                attributes=attributes,
            )
            deliveries.append(delivery)
            try:
                deliver(observer, event, delivery)
            except Exception:
                return JSONResponse(
                    WebhookEventResponse(
                        status="failed", detail="the pipeline failed"
                    ).model_dump(),
                    status_code=500,
                )
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(d.wait_settled() for d in deliveries)), self.settle_timeout
            )
        except TimeoutError:
            return JSONResponse(
                WebhookEventResponse(
                    status="pending",
                    detail="the job was not created in time; retry with the same Idempotency-Key",
                ).model_dump(),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        job_ids = [job_id for d in deliveries for job_id in d.job_ids]
        if Outcome.FAILED in outcomes:
            return JSONResponse(WebhookEventResponse(status="failed").model_dump(), status_code=500)
        if job_ids and all(d.duplicate for d in deliveries):
            return JSONResponse(
                WebhookEventResponse(status="existing", job_ids=job_ids).model_dump(),
                status_code=200,
            )
        if job_ids:
            return JSONResponse(
                WebhookEventResponse(status="created", job_ids=job_ids).model_dump(),
                status_code=201,
            )
        return JSONResponse(WebhookEventResponse(status="dropped").model_dump(), status_code=200)

    def _build_router(self, tags: list[str]) -> APIRouter:
        router = APIRouter(tags=list(tags))
        codes = {code: ERROR_DESCRIPTIONS[code] for code in (401, 413, 415, 422)}
        if self.auth is None:
            del codes[401]
        codes[422] = "the body is not JSON" + (
            "" if self.body_schema is None else ", or does not satisfy its schema"
        )
        body = _ANY_JSON
        if self.body_schema is not None:
            body = inline_schema(self.body_schema.model_json_schema())
            body.setdefault("description", clean_description(self.body_schema.__doc__))
        router.add_api_route(
            self.path,
            self._receive,
            methods=["POST"],
            status_code=201,
            response_model=None,
            summary=f"Receive events on {self.path}",
            description="Answers once the pipeline created the event's jobs or dropped it.",
            operation_id="receive_" + "".join(c if c.isalnum() else "_" for c in self.path),
            responses={
                201: {"model": WebhookEventResponse, "description": "job(s) created"},
                200: {
                    "model": WebhookEventResponse,
                    "description": "the pipeline dropped the event, or its jobs existed",
                },
                **error_responses(codes),
                500: {"model": WebhookEventResponse, "description": "a job could not be created"},
                503: {
                    "model": WebhookEventResponse,
                    "description": "no trigger is listening, or creation timed out",
                },
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": body}
                        for media in (
                            [m for m in self.content_types if "*" not in m] or ["application/json"]
                        )
                    },
                }
            },
        )
        return router


def webhook(
    path: str,
    *,
    auth: WebhookAuth | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    settle_timeout: float = 30.0,
    scheduler: abc.SchedulerBase | None = None,
    content_types: list[str] | tuple[str, ...] = JSON_CONTENT_TYPES,
    body_schema: type[BaseModel] | None = None,
) -> WebhookSource:
    """An observable of :class:`WebhookEvent`, one per POST of JSON to ``path``.

    Mount ``source.router`` in your FastAPI app (or pass the source to
    :func:`portico_rx.web.create_app` in ``routers=``); the route is open while the
    source is subscribed, i.e. while the trigger running its pipeline is started.

    Args:
        path: the route, e.g. ``"/hooks/github"``.
        auth: how senders authenticate (default none), e.g. ``GitHubAuth(secrets=[...])``.
        max_body_bytes: largest accepted body (default 1 MiB), enforced while reading.
        settle_timeout: seconds a request waits for its job (default 30), then 503.
        scheduler: where ``received_at`` comes from (default: the subscriber's).
        content_types: the media types a body may be sent as (default
            ``application/json`` and ``application/*+json``); others get 415.
        body_schema: a pydantic model the body must satisfy (422 with the field errors
            otherwise) and that documents it in OpenAPI; ``WebhookEvent.body`` stays the
            parsed JSON. Default ``None``: any JSON.

    Returns:
        A :class:`WebhookSource` (an ``Observable[WebhookEvent]`` with ``.router``).

    Raises:
        ConfigurationError: ``path`` is not an absolute route path, or a limit is invalid.

    Marble::

        POST a, POST b, POST c
        webhook:  --a----b----c--      (never completes; an event per POST)

    Example:
        >>> from reactivex import operators as ops
        >>> from portico_rx import to_job
        >>> pushes = webhook("/hooks/github")
        >>> jobs = pushes.pipe(
        ...     ops.filter(lambda e: e.header("x-github-event") == "push"),
        ...     to_job("ci.build", payload=lambda e: {"ref": e.body["ref"]}),
        ... )
        >>> pushes.router.routes[0].path
        '/hooks/github'
    """
    return WebhookSource(
        path,
        auth=auth,
        max_body_bytes=max_body_bytes,
        settle_timeout=settle_timeout,
        scheduler=scheduler,
        content_types=content_types,
        body_schema=body_schema,
    )
