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
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from reactivex.abc import SchedulerBase

from portico_rx.errors import ConfigurationError, require
from portico_rx.models import PRIORITY_MAX, PRIORITY_MIN, RunState, TriggerHealth
from portico_rx.pipeline import clock
from portico_rx.pipeline.health import HealthCounters, job_store_health
from portico_rx.pipeline.provenance import webhook_key
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_trigger import JobTrigger
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


class WebhookTrigger(JobTrigger):
    """Creates jobs from authenticated, validated, rate-limited, idempotent HTTP POSTs.

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
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"name={name!r}: give the trigger a non-empty name")
        if stop_timeout < 0:
            raise ConfigurationError(f"stop_timeout={stop_timeout!r}: cannot be negative")
        schemas = dict(payload_schemas or {})
        for job_type, schema in schemas.items():
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise ConfigurationError(
                    f"payload_schemas[{job_type!r}]={schema!r}: use a pydantic model class"
                )
        self.job_creator = job_creator
        self.config = config if config is not None else WebhookConfig()
        self.payload_schemas = schemas
        self.name = name
        self.retry = retry or DEFAULT_RETRY
        self.stop_timeout = stop_timeout
        self.counters = HealthCounters()
        self.rejected: dict[int, int] = {}
        self._scheduler_arg = scheduler
        self._scheduler: SchedulerBase | None = scheduler
        self._state = RunState.STOPPED
        self._allowed = frozenset(self.config.allowed_job_types)
        self._source = f"webhook:{self.config.prefix}/jobs"
        self._guard = IdempotencyGuard(self.config.idempotency_cache_size)
        self._limiter = (
            RateLimiter(self.config.rate_limit, self._now) if self.config.rate_limit else None
        )
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock = asyncio.Lock()
        self.router = self._build_router()

    # -- JobTrigger ------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._state is RunState.RUNNING

    @property
    def state(self) -> RunState:
        return self._state

    async def start(self) -> None:
        async with self._lock:
            if self._state is RunState.RUNNING:
                logger.warning("trigger_already_running", trigger=self.name)
                return
            logger.info(
                "starting_webhook_trigger",
                trigger=self.name,
                prefix=self.config.prefix,
                allowed_types=self.config.allowed_job_types,
            )
            self._state = RunState.STARTING
            try:
                await self.job_creator.open()
                self._scheduler = clock.resolve_scheduler(self._scheduler_arg)
            except BaseException:
                self._state = RunState.STOPPED
                raise
            self._state = RunState.RUNNING
            logger.info("webhook_trigger_started", trigger=self.name)

    async def stop(self) -> None:
        async with self._lock:
            if self._state is RunState.STOPPED:
                return
            logger.info("stopping_webhook_trigger", trigger=self.name, in_flight=self._in_flight)
            self._state = RunState.STOPPING
            try:
                await asyncio.wait_for(self._idle.wait(), self.stop_timeout)
            except TimeoutError:
                logger.warning(
                    "webhook_trigger_stop_timeout", trigger=self.name, in_flight=self._in_flight
                )
            self._state = RunState.STOPPED
            logger.info(
                "webhook_trigger_stopped",
                trigger=self.name,
                jobs_created=self.counters.jobs_created,
            )

    def get_health(self) -> TriggerHealth:
        return self.counters.snapshot(
            name=self.name,
            state=self._state,
            details={
                "prefix": self.config.prefix,
                "rejected": {str(code): count for code, count in sorted(self.rejected.items())},
            },
            job_store=job_store_health(self.job_creator),
        )

    async def __aenter__(self) -> WebhookTrigger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return (
            f"WebhookTrigger(name={self.name!r}, prefix={self.config.prefix!r}, "
            f"state={self._state.value}, jobs_created={self.counters.jobs_created})"
        )

    # -- the spec's endpoint -----------------------------------------------------------

    async def _create_job_endpoint(
        self,
        request: WebhookJobRequest,
        *,
        idempotency_key: str | None = None,
        client: str | None = None,
    ) -> dict[str, str]:
        """Validate ``request`` and create its job (the spec's FAQ entry point).

        Called without options it calls ``create_job(job_type=, payload=, queue_name=,
        priority=)`` and nothing else; an ``idempotency_key`` adds ``metadata``.

        Returns:
            ``{"job_id": "<uuid>"}``.

        Raises:
            HTTPException: 403, 400, 429 or 500 as in the module's table.
        """
        job_id, _repeated = await self._accept(
            request, key=idempotency_key, client=client, provenance=None
        )
        return {"job_id": job_id}

    # -- the pipeline of one request ---------------------------------------------------

    def _now(self) -> datetime:
        if self._scheduler is None:
            self._scheduler = clock.resolve_scheduler(self._scheduler_arg)
        return clock.now(self._scheduler)

    @property
    def _in_flight(self) -> int:
        return self.counters.in_flight

    async def _accept(
        self,
        request: WebhookJobRequest,
        *,
        key: str | None,
        client: str | None,
        provenance: dict[str, Any] | None,
        body: bytes | None = None,
    ) -> tuple[str, bool]:
        """Check ``request`` (403, 400, 429) and create its job once per ``key``.

        ``provenance`` becomes the job's metadata (with the scoped idempotency key
        added); pass a dict of your own, as it is filled in, not copied.
        """
        job_type = request.job_type
        if self._allowed and job_type not in self._allowed:
            raise HTTPException(403, f"Job type '{job_type}' not allowed")
        payload = self._checked_payload(job_type, request.payload, body)
        priority = self.config.priority_map.get(job_type, request.priority)
        if key is None:
            if self._limiter is not None:
                self._check_rate(job_type, client)
            return await self._create(request, payload, priority, provenance or None), False
        scoped = webhook_key(self.name, job_type, key)
        known = self._guard.answer(scoped)
        if known is not None:
            return known, True
        if self._limiter is not None:
            self._check_rate(job_type, client)
        metadata = provenance if provenance is not None else {}
        metadata["idempotency_key"] = scoped
        return await self._guard.once(scoped, self._create, request, payload, priority, metadata)

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
        metadata: dict[str, Any] | None,
    ) -> str:
        """Create the job (retrying as ``self.retry`` says) and return its id."""
        attempt = 0
        while True:
            attempt += 1
            try:
                if metadata is None:  # the spec's exact call (its FAQ test asserts it)
                    job = await self.job_creator.create_job(
                        job_type=request.job_type,
                        payload=payload,
                        queue_name=request.queue_name,
                        priority=priority,
                    )
                else:
                    job = await self.job_creator.create_job(
                        job_type=request.job_type,
                        payload=payload,
                        queue_name=request.queue_name,
                        priority=priority,
                        metadata=metadata,
                    )
            except ConfigurationError as exc:
                self.counters.record_error(f"{type(exc).__name__}: {exc}", self._now())
                raise HTTPException(400, str(exc)) from None
            except Exception as exc:
                if attempt < self.retry.max_attempts:
                    self.counters.retries += 1
                    delay = self.retry.delay(attempt)
                    logger.warning(
                        "webhook_job_creation_retry",
                        trigger=self.name,
                        job_type=request.job_type,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error=str(exc),
                    )
                    await clock.sleep(self._scheduler_for_sleep(), delay)
                    continue
                self.counters.consecutive_failures += 1
                self.counters.record_error(f"{type(exc).__name__}: {exc}", self._now())
                logger.error(
                    "webhook_job_creation_failed",
                    trigger=self.name,
                    job_type=request.job_type,
                    attempts=attempt,
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                raise HTTPException(500, "Job creation failed") from None
            self.counters.record_job(self._now())
            job_id = str(job.id)
            logger.info(
                "job_created_from_webhook",
                trigger=self.name,
                job_id=job_id,
                job_type=job.job_type,
                queue_name=job.queue_name,
            )
            return job_id

    def _scheduler_for_sleep(self) -> SchedulerBase:
        self._now()
        assert self._scheduler is not None
        return self._scheduler

    async def _receive(self, request: Request) -> Response:
        counters = self.counters
        counters.events_seen += 1
        counters.in_flight += 1
        self._idle.clear()
        try:
            if self._state is not RunState.RUNNING:
                raise HTTPException(
                    503,
                    f"webhook trigger {self.name!r} is not running",
                    headers={"Retry-After": "5"},
                )
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
            provenance = {"trigger": self.name, "source": self._source, "seen_at": now.isoformat()}
            if client is not None:
                provenance["client"] = client
            job_id, repeated = await self._accept(
                job_request, key=key, client=client, provenance=provenance, body=body
            )
            return JSONBytesResponse(
                b'{"job_id":"' + job_id.encode() + b'"}', 200 if repeated else 201
            )
        except HTTPException as exc:
            self.rejected[exc.status_code] = self.rejected.get(exc.status_code, 0) + 1
            logger.info("webhook_request_rejected", trigger=self.name, status=exc.status_code)
            raise
        finally:
            counters.in_flight -= 1
            if counters.in_flight == 0:
                self._idle.set()

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
