"""``webhook``: HTTP POSTs of any JSON as an observable of :class:`WebhookEvent`.

The returned :class:`WebhookSource` is an ``Observable`` *and* carries a FastAPI
``router``: compose it like any source and mount its route in your app. Each POST is
emitted with a :class:`~portico_rx.pipeline.delivery.Delivery` whose settlement answers the HTTP
request, so a sender only sees success when its job exists:

=====================================  =========================================
the pipeline created the job(s)         201 ``{"status": "created", "job_ids": [...]}``
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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, Outcome, deliver
from portico_rx.pipeline.provenance import source_time
from portico_rx.webhooks.auth import WebhookAuth
from portico_rx.webhooks.idempotency import IdempotencyGuard
from portico_rx.webhooks.intake import authenticated_body, idempotency_key, request_headers

require("fastapi", "webhook")

from fastapi import APIRouter, HTTPException  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from starlette.requests import Request  # noqa: E402

__all__ = ["WebhookEvent", "WebhookSource", "webhook"]

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


class _Response(BaseModel):
    status: str = Field(description="created, dropped, failed or pending")
    job_ids: list[str] = Field(default_factory=list)
    detail: str | None = None


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
        self.path = path
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.settle_timeout = settle_timeout
        self.scheduler = scheduler
        self._subscribers: list[_Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self._guard = IdempotencyGuard(max_keys=0)
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
            raise HTTPException(
                503, f"no trigger is listening on {self.path}", headers={"Retry-After": "5"}
            )
        now = self._now(subscribers[0][1])
        headers = request_headers(request)
        body = await authenticated_body(request, self.auth, self.max_body_bytes, now, headers)
        try:
            parsed = json.loads(body, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(
                422, "the body is not valid JSON (NaN and Infinity are not JSON either)"
            ) from None
        key = idempotency_key(headers, self.auth)
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
                    _Response(status="failed", detail="the pipeline failed").model_dump(),
                    status_code=500,
                )
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(d.wait_settled() for d in deliveries)), self.settle_timeout
            )
        except TimeoutError:
            return JSONResponse(
                _Response(
                    status="pending",
                    detail="the job was not created in time; retry with the same Idempotency-Key",
                ).model_dump(),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        job_ids = [job_id for d in deliveries for job_id in d.job_ids]
        if Outcome.FAILED in outcomes:
            return JSONResponse(_Response(status="failed").model_dump(), status_code=500)
        if job_ids:
            return JSONResponse(
                _Response(status="created", job_ids=job_ids).model_dump(), status_code=201
            )
        return JSONResponse(_Response(status="dropped").model_dump(), status_code=200)

    def _build_router(self, tags: list[str]) -> APIRouter:
        router = APIRouter(tags=list(tags))
        router.add_api_route(
            self.path,
            self._receive,
            methods=["POST"],
            status_code=201,
            response_model=None,
            summary=f"Receive events on {self.path}",
            description="Any JSON body; answers once the pipeline created or dropped it.",
            operation_id="receive_" + "".join(c if c.isalnum() else "_" for c in self.path),
            responses={
                201: {"model": _Response, "description": "job(s) created"},
                200: {"model": _Response, "description": "the pipeline dropped the event"},
                401: {"description": "the sender is not authentic"},
                413: {"description": "body larger than max_body_bytes"},
                422: {"description": "the body is not JSON"},
                500: {"model": _Response, "description": "the job could not be created"},
                503: {"description": "no trigger is listening, or creation timed out"},
            },
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
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
    )
