"""WebhookTrigger: other systems create jobs with an HTTP POST (the spec's first pattern).

``POST {prefix}/jobs`` with ``{"job_type", "payload", "queue_name", "priority"}`` answers
``201 {"job_id": ...}`` once the job exists. The request is checked in this order, and
nothing is created by a rejected one:

==========================================  ====
trigger stopped                              503
sender not authentic (``auth=``)             401
body larger than ``max_body_bytes``          413 (enforced while the body streams in)
malformed JSON, wrong field types            422
job type not in ``allowed_job_types``        403
payload not JSON / fails its schema          400 (with the field errors)
bad ``Idempotency-Key``                      400
rate limit per job type / per client         429 (with ``Retry-After``)
``create_job`` failed after its retries      500 (no internal detail)
==========================================  ====

A repeated ``Idempotency-Key`` (or ``webhook-id``) answers ``200`` with the first job's id.

The trigger is a configured :class:`~portico_rx.pipeline.PipelineTrigger`: an accepted
request becomes a job request (its fields checked once, above) under a
:class:`~portico_rx.pipeline.delivery.Delivery` (source ``webhook:{prefix}/jobs``, the
time it arrived, its idempotency key as event id and key), and the trigger's
:class:`~portico_rx.pipeline.sink.JobSink` creates the job with its one retry loop,
dead-letters it when out of retries, and settles the delivery; the answer is that
settlement (created: 201; failed: 500; abandoned by ``stop()``: 503). The sink runs the
creation in the request's own task (``await sink.create(request)``); while the trigger
is paused the request goes through the pipeline, is held, and is created on
``resume()``. The idempotency key is :func:`~portico_rx.pipeline.provenance.webhook_key`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from reactivex import Observable, abc
from reactivex.abc import SchedulerBase
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, require
from portico_rx.models import PRIORITY_MAX, PRIORITY_MIN, JobRequest, trusted_request
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import webhook_key
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.pipeline.sink import JobSink
from portico_rx.pipeline.trigger import PipelineTrigger
from portico_rx.ports.job_creator import JobCreator
from portico_rx.webhooks.auth import WebhookAuth
from portico_rx.webhooks.idempotency import IdempotencyGuard
from portico_rx.webhooks.intake import authenticated_body, idempotency_key, request_headers
from portico_rx.webhooks.rate_limit import RateLimit, RateLimiter

require("fastapi", "webhook")

from fastapi import APIRouter, HTTPException  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from starlette.requests import Request  # noqa: E402

from portico_rx.webhooks.route import JSONBytesResponse, RawRequestRoute  # noqa: E402

__all__ = [
    "WebhookConfig",
    "WebhookErrorResponse",
    "WebhookJobRequest",
    "WebhookJobResponse",
    "WebhookTrigger",
]

logger = structlog.get_logger("portico_rx.webhook")

JOB_TYPE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}$"
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=1.0)


class WebhookJobRequest(BaseModel):
    """The body of ``POST {prefix}/jobs``: the job to create.

    Example:
        >>> WebhookJobRequest(job_type="email.send", payload={"to": "a@b.c"}).queue_name
        'default'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_type: str = Field(pattern=JOB_TYPE_PATTERN, description="e.g. 'email.send'")
    payload: dict[str, Any] = Field(default_factory=dict, description="a JSON object")
    queue_name: str = Field(default="default", pattern=QUEUE_NAME_PATTERN)
    priority: int = Field(default=0, ge=PRIORITY_MIN, le=PRIORITY_MAX, strict=True)


class WebhookJobResponse(BaseModel):
    """The answer once the job exists."""

    job_id: str = Field(description="the created (or, for a repeated key, existing) job's id")


class WebhookErrorResponse(BaseModel):
    """Every refusal: ``detail`` says what was wrong (a list of field errors for 400/422)."""

    detail: str | list[dict[str, Any]]


class WebhookConfig(BaseModel):
    """Settings of a :class:`WebhookTrigger`.

    Args:
        prefix: path prefix of the routes (default ``"/webhooks"``; the route is
            ``{prefix}/jobs``).
        allowed_job_types: the job types senders may create; empty (default) allows all.
        max_body_bytes: largest accepted body (default 1 MiB); larger ones get 413.
        rate_limit: limits per job type and per client (default none).
        auth: how senders authenticate (default none: put the route behind your own).
        priority_map: job type -> priority, overriding the request's (the spec's FAQ).
        idempotency_cache_size: answered keys remembered in process (default 10 000).
        client_header: a header set by your reverse proxy that names the client (e.g.
            ``"X-Forwarded-For"``; its first address is used) for per-client limits and
            provenance. Default ``None``: the connection's address. Only set it behind a
            proxy that overwrites the header, or clients can pick their own identity.

    Example:
        >>> WebhookConfig(allowed_job_types=["email.send"]).prefix
        '/webhooks'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = "/webhooks"
    allowed_job_types: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    rate_limit: RateLimit | None = None
    auth: WebhookAuth | None = None
    priority_map: dict[str, int] = Field(default_factory=dict)
    idempotency_cache_size: int = Field(default=10_000, ge=0)
    client_header: str | None = Field(default=None, min_length=1)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ValueError(f"prefix={value!r}: start with '/' and do not end with one")
        return value

    @field_validator("priority_map")
    @classmethod
    def _priorities(cls, value: dict[str, int]) -> dict[str, int]:
        for job_type, priority in value.items():
            if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
                raise ValueError(
                    f"priority_map[{job_type!r}]={priority}: use {PRIORITY_MIN}..{PRIORITY_MAX}"
                )
        return value


def _field_errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class _Intake(Observable[JobRequest]):
    """The trigger's pipeline source: open while subscribed (from ``start()`` until
    ``stop()`` disposes it); while closed the route answers 503.

    A request that arrives while the trigger is paused is emitted here under its
    delivery, so the trigger holds it like any event; the others go straight to the
    sink's ``create`` (the same creation, run in the request's task).
    """

    def __init__(self) -> None:
        super().__init__()
        self.observer: abc.ObserverBase[JobRequest] | None = None

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[JobRequest],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        self.observer = observer

        def close() -> None:
            if self.observer is observer:
                self.observer = None

        return Disposable(close)


class WebhookTrigger(PipelineTrigger):
    """Creates jobs from authenticated, validated, rate-limited, idempotent HTTP POSTs.

    A configured pipeline: each accepted request becomes a job request under a
    :class:`~portico_rx.pipeline.delivery.Delivery` (source ``webhook:{prefix}/jobs``,
    the time it arrived, its idempotency key as event id and key), created by the
    trigger's :class:`~portico_rx.pipeline.sink.JobSink` with its retries and dead
    letters; the HTTP answer is the delivery's settlement. Lifecycle (``start``,
    ``stop`` with a graceful drain, ``pause``), health, ``history()`` and
    ``dead_letters`` are :class:`~portico_rx.pipeline.PipelineTrigger`'s.

    Mount ``trigger.router`` in a FastAPI app (or use :func:`portico_rx.web.create_app`,
    whose lifespan starts and stops the trigger). While stopped the route answers 503.

    Args:
        job_creator: where jobs are created (the JobCreator port).
        config: routes, allow-list, limits, auth (default ``WebhookConfig()``).
        payload_schemas: job type -> pydantic model; a payload that fails it gets 400
            with the field errors, one that passes is stored as the model's JSON dump.
        name: the trigger's name in logs, health and idempotency keys (default
            ``"webhook"``); replicas must share it.
        scheduler: where time comes from (rate limits, timestamps, retries; default the
            asyncio loop's clock).
        retry: retries of a failing ``create_job`` before answering 500 (default 3
            attempts, 50 ms doubling).
        stop_timeout: seconds ``stop()`` waits for requests in flight (default 30).
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger`
            (``alert``, ``on_dead_letter``, ``history_size`` …). ``max_concurrency``
            bounds the sink's workers, which create the requests held while paused;
            other requests are created in their own tasks, as many at once as the
            server serves.

    Example:
        >>> from portico_rx.testing import RecordingJobCreator
        >>> WebhookTrigger(job_creator=RecordingJobCreator()).router.routes[0].path
        '/webhooks/jobs'
    """

    def __init__(
        self,
        job_creator: JobCreator,
        config: WebhookConfig | None = None,
        payload_schemas: dict[str, type[BaseModel]] | None = None,
        *,
        name: str = "webhook",
        scheduler: SchedulerBase | None = None,
        retry: RetryPolicy | None = None,
        stop_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        schemas = dict(payload_schemas or {})
        for job_type, schema in schemas.items():
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise ConfigurationError(
                    f"payload_schemas[{job_type!r}]={schema!r}: use a pydantic model class"
                )
        self._intake = _Intake()
        super().__init__(
            self._intake,
            job_creator,
            name=name,
            scheduler=scheduler,
            retry=retry or DEFAULT_RETRY,
            stop_timeout=stop_timeout,
            **options,
        )
        self.config = config if config is not None else WebhookConfig()
        self.payload_schemas = schemas
        self.rejected: dict[int, int] = {}
        self._allowed = frozenset(self.config.allowed_job_types)
        self._source = f"webhook:{self.config.prefix}/jobs"
        self._guard = IdempotencyGuard(self.config.idempotency_cache_size)
        self._limiter = (
            RateLimiter(self.config.rate_limit, self._now) if self.config.rate_limit else None
        )
        self.router = self._build_router()

    def health_details(self) -> dict[str, Any]:
        return {
            "prefix": self.config.prefix,
            "rejected": {str(code): count for code, count in sorted(self.rejected.items())},
        }

    # -- the spec's endpoint -----------------------------------------------------------

    async def _create_job_endpoint(
        self,
        request: WebhookJobRequest,
        *,
        idempotency_key: str | None = None,
        client: str | None = None,
    ) -> dict[str, str]:
        """Check ``request`` and create its job (the spec's FAQ entry point).

        A direct call, not an HTTP request: there is no delivery, so a call without
        options calls ``create_job(job_type=, payload=, queue_name=, priority=)`` and
        nothing else (an ``idempotency_key`` adds ``metadata``). The job is created by
        the trigger's sink (a stopped trigger's call by a sink of the same settings).

        Returns:
            ``{"job_id": "<uuid>"}``.

        Raises:
            HTTPException: 403, 400, 429 or 500 as in the module's table.
        """
        job_id, _repeated = await self._accept(request, key=idempotency_key, client=client)
        return {"job_id": job_id}

    # -- one request: checked once, then a delivery for the sink ----------------------

    def _now(self) -> datetime:
        return clock.now(self._clock())

    def _clock(self) -> SchedulerBase:
        """The running trigger's scheduler; before ``start()``, the one it will use."""
        return self._scheduler or clock.resolve_scheduler(self._scheduler_arg)

    async def _accept(
        self,
        request: WebhookJobRequest,
        *,
        key: str | None,
        client: str | None,
        seen_at: datetime | None = None,
        body: bytes | None = None,
    ) -> tuple[str, bool]:
        """Check ``request`` (403, 400, 429) and create its job once per ``key``.

        ``seen_at`` is given for an HTTP request (it gets a delivery); a direct call
        has none. Returns ``(job_id, repeated)``.
        """
        job_type = request.job_type
        if self._allowed and job_type not in self._allowed:
            raise HTTPException(403, f"Job type '{job_type}' not allowed")
        payload = self._checked_payload(job_type, request.payload, body)
        priority = self.config.priority_map.get(job_type, request.priority)
        if key is None:
            if self._limiter is not None:
                self._check_rate(job_type, client)
            job_id = await self._create(request, payload, priority, None, None, client, seen_at)
            return job_id, False
        scoped = webhook_key(self.name, job_type, key)
        if self._limiter is not None:  # a repeat of an answered key spends no token
            known = self._guard.answer(scoped)
            if known is not None:
                self.recorder.record_repeat(self._source, key, scoped, known, seen_at)
                return known, True
            self._check_rate(job_type, client)
        job_id, repeated = await self._guard.once(
            scoped, self._create, request, payload, priority, key, scoped, client, seen_at
        )
        if repeated:  # answered from the guard: no event reached the pipeline
            self.recorder.record_repeat(self._source, key, scoped, job_id, seen_at)
        return job_id, repeated

    def _checked_payload(
        self, job_type: str, payload: dict[str, Any], body: bytes | None = None
    ) -> dict[str, Any]:
        # A payload parsed from JSON text is JSON, except for NaN/Infinity, which can
        # only be there if the text spells them.
        if body is None or b"NaN" in body or b"Infinity" in body:
            try:
                json.dumps(payload, allow_nan=False)
            except (TypeError, ValueError):
                raise HTTPException(
                    400, "Payload must be JSON-serializable (no NaN or Infinity)"
                ) from None
        schema = self.payload_schemas.get(job_type)
        if schema is None:
            return payload
        try:
            validated = schema.model_validate(payload)
        except ValidationError as exc:
            raise HTTPException(400, _field_errors(exc, ("payload",))) from None
        dumped: dict[str, Any] = validated.model_dump(mode="json")
        return dumped

    def _check_rate(self, job_type: str, client: str | None) -> None:
        if self._limiter is None:
            return
        refused = self._limiter.acquire(job_type, client)
        if refused is not None:
            scope, retry_after = refused
            subject = f"job type '{job_type}'" if scope == "job_type" else f"client {client}"
            raise HTTPException(
                429,
                f"Rate limit exceeded for {subject}; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    async def _create(
        self,
        request: WebhookJobRequest,
        payload: dict[str, Any],
        priority: int,
        key: str | None,
        scoped: str | None,
        client: str | None,
        seen_at: datetime | None,
    ) -> str:
        """Hand the checked request to the sink and answer with its job id.

        Every field was checked above (pydantic, allow-list, schema, priority map), so
        the job request is built with :func:`~portico_rx.models.trusted_request`. An
        HTTP request (``seen_at``) carries a delivery and is answered from the
        delivery's settlement; a direct call has none and is answered with the job.
        """
        if seen_at is None:
            job = await self._direct_sink().create(
                trusted_request(
                    job_type=request.job_type,
                    payload=payload,
                    queue_name=request.queue_name,
                    priority=priority,
                    metadata={},
                    idempotency_key=scoped,
                )
            )
            if job is None:
                raise HTTPException(500, "Job creation failed")
            return str(job.id)
        sink, observer = self._sink, self._intake.observer
        if sink is None or observer is None:  # stopped while the request was read
            raise self._not_running()
        delivery = Delivery(
            source=self._source,
            seen_at=seen_at,
            event_id=key,
            idempotency_key=key,
            attributes={} if client is None else {"client": client},
        )
        job_request = trusted_request(
            job_type=request.job_type,
            payload=payload,
            queue_name=request.queue_name,
            priority=priority,
            metadata={},
            idempotency_key=scoped,
            claim=delivery.claim(),
            delivery=delivery,
        )
        if self.paused:
            # Into the pipeline, which holds it until resume() (or stop()) and then
            # submits it to the sink's workers; the answer waits for the settlement.
            deliver(observer, job_request, delivery)
            await delivery.wait_settled()
        else:
            # The sink's own creation, run in this request's task (no work-queue hop).
            delivery.seal()
            await sink.create(job_request)
        if delivery.job_ids:
            return delivery.job_ids[0]
        if not self.is_running:  # abandoned by stop(): try again later
            raise self._not_running()
        raise HTTPException(500, "Job creation failed")

    def _direct_sink(self) -> JobSink:
        """The running trigger's sink; for a direct call on a stopped trigger (the spec's
        FAQ test calls the endpoint without ``start()``), a sink of the same settings."""
        if self._sink is not None:
            return self._sink
        return self._new_sink(self._clock())

    def _not_running(self) -> HTTPException:
        return HTTPException(
            503, f"webhook trigger {self.name!r} is not running", headers={"Retry-After": "5"}
        )

    async def _receive(self, request: Request) -> Response:
        try:
            if not self.is_running:
                raise self._not_running()
            now = self._now()
            config = self.config
            headers = request_headers(request)
            body = await authenticated_body(
                request, config.auth, config.max_body_bytes, now, headers
            )
            try:
                job_request = WebhookJobRequest.model_validate_json(body)
            except ValidationError as exc:
                raise HTTPException(422, _field_errors(exc, ("body",))) from None
            key = idempotency_key(headers, config.auth)
            client = self._client(request, headers)
            job_id, repeated = await self._accept(
                job_request, key=key, client=client, seen_at=now, body=body
            )
            return JSONBytesResponse(
                b'{"job_id":"' + job_id.encode() + b'"}', 200 if repeated else 201
            )
        except HTTPException as exc:
            self.rejected[exc.status_code] = self.rejected.get(exc.status_code, 0) + 1
            logger.info("webhook_request_rejected", trigger=self.name, status=exc.status_code)
            raise

    def _client(self, request: Request, headers: dict[str, str]) -> str | None:
        if self.config.client_header is not None:
            forwarded = headers.get(self.config.client_header.lower())
            if forwarded:
                return forwarded.split(",", 1)[0].strip()[:100] or None
        address = request.scope.get("client")  # (host, port), as ``request.client`` reads it
        return address[0] if address else None

    # -- routes ----------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(
            prefix=self.config.prefix, tags=["webhooks"], route_class=RawRequestRoute
        )
        errors: dict[int | str, dict[str, Any]] = {
            code: {"model": WebhookErrorResponse, "description": description}
            for code, description in {
                400: "payload not JSON, fails its schema, or bad Idempotency-Key",
                401: "the sender is not authentic",
                403: "job type not allowed",
                413: "body larger than max_body_bytes",
                422: "malformed JSON or wrong field types",
                429: "rate limit exceeded (see Retry-After)",
                500: "the job could not be created",
                503: "the trigger is not running",
            }.items()
        }
        router.add_api_route(
            "/jobs",
            self._receive,
            methods=["POST"],
            status_code=201,
            response_model=None,
            summary="Create a job",
            description=(
                "Creates a job and answers with its id once it exists. A repeated "
                "Idempotency-Key (or webhook-id) answers 200 with the same id."
            ),
            operation_id=f"create_job_{self.name}".replace("-", "_"),
            responses={
                201: {"model": WebhookJobResponse, "description": "the job was created"},
                200: {"model": WebhookJobResponse, "description": "repeated idempotency key"},
                **errors,
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": WebhookJobRequest.model_json_schema()}
                    },
                },
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "repeating it returns the first job instead of a new one",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
            },
        )
        return router
