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
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from reactivex import Observable, abc
from reactivex.abc import SchedulerBase
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, require
from portico_rx.logs import get_logger
from portico_rx.models import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    Job,
    JobRequest,
    RunAtFields,
    trusted_request,
)
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.instrument import trace_context
from portico_rx.pipeline.provenance import webhook_key
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.pipeline.sink import JobSink
from portico_rx.pipeline.trigger import PipelineTrigger
from portico_rx.ports.job_creator import JobCreator
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
    WebhookErrorResponse,
    _clean_schema,
    clean_description,
    error_responses,
    inline_schema,
)
from portico_rx.webhooks.rate_limit import RateLimit, RateLimiter

require("fastapi", "webhook")

from fastapi import APIRouter, HTTPException, params  # noqa: E402
from fastapi.responses import Response  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402

from portico_rx.webhooks.route import JSONBytesResponse, RawRequestRoute  # noqa: E402

__all__ = [
    "WebhookConfig",
    "WebhookErrorResponse",
    "WebhookJobRequest",
    "WebhookJobResponse",
    "WebhookTrigger",
]

logger = get_logger("portico_rx.webhook")

JOB_TYPE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}$"
_JOB_TYPE = re.compile(JOB_TYPE_PATTERN.strip("^$"))
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=1.0)


class WebhookJobRequest(CleanSchema, RunAtFields):
    """The body of ``POST {prefix}/jobs``: the job to create, at once or, with
    ``run_at`` or ``delay_seconds``, no earlier than then (the job is ``SCHEDULED``).

    Example:
        >>> WebhookJobRequest(job_type="email.send", payload={"to": "a@b.c"}).queue_name
        'default'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_clean_schema)

    job_type: str = Field(pattern=JOB_TYPE_PATTERN, description="e.g. 'email.send'")
    payload: dict[str, Any] = Field(default_factory=dict, description="a JSON object")
    queue_name: str = Field(default="default", pattern=QUEUE_NAME_PATTERN)
    priority: int = Field(default=0, ge=PRIORITY_MIN, le=PRIORITY_MAX, strict=True)


class WebhookJobResponse(CleanSchema):
    """The answer once the job exists."""

    job_id: str = Field(description="the created (or, for a repeated key, existing) job's id")


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
        idempotency_cache_size: answered keys remembered in process (default 10 000), a
            fast path only: a repeat of the exact bytes answered for a key is answered
            200 without asking the store; any other request asks the store.
        client_header: a header set by your reverse proxy that names the client (e.g.
            ``"X-Forwarded-For"``; its first address is used) for per-client limits and
            provenance. Default ``None``: the connection's address. Only set it behind a
            proxy that overwrites the header, or clients can pick their own identity.
        content_types: the media types a body may be sent as (default
            ``application/json`` and ``application/*+json``); others get 415.
        dependencies: FastAPI dependencies of the route (``[Depends(require_token)]``),
            solved before the request is read, as FastAPI solves them for any route.

    Raises:
        ConfigurationError: a value is invalid; the message names it and the fix.

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
    content_types: list[str] = Field(default_factory=lambda: list(JSON_CONTENT_TYPES))
    dependencies: list[Any] = Field(default_factory=list)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(_config_error(exc)) from None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            fixed = "/" + value.strip("/")
            raise ValueError(
                f"prefix={value!r}: start with '/' and do not end with one, e.g. {fixed!r}"
            )
        return value

    @field_validator("allowed_job_types")
    @classmethod
    def _job_types(cls, value: list[str]) -> list[str]:
        for job_type in value:
            if not _JOB_TYPE.fullmatch(job_type):
                raise ValueError(
                    f"allowed_job_types: {job_type!r} is not a job type; use letters, "
                    "digits and _ . : - (no spaces, at most 200), e.g. 'email.send'"
                )
        return value

    @field_validator("content_types")
    @classmethod
    def _content_types(cls, value: list[str]) -> list[str]:
        return list(accepted_content_types(value))

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, value: list[Any]) -> list[Any]:
        for dependency in value:
            if not isinstance(dependency, params.Depends):
                raise ValueError(
                    f"dependencies: {dependency!r} is not a FastAPI dependency; "
                    "use Depends(your_function)"
                )
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


def _attributes(client: str | None, trace: dict[str, str] | None) -> dict[str, Any]:
    """A request's delivery attributes: its client (when known), its trace context."""
    if trace is None:
        return {} if client is None else {"client": client}
    return {**trace} if client is None else {"client": client, **trace}


def _config_error(exc: ValidationError) -> str:
    """One line per invalid value of a :class:`WebhookConfig`: the value and the fix."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            lines.append(message)
        else:
            lines.append(f"{field}={error.get('input')!r}: {message}")
    return "WebhookConfig: " + "; ".join(lines)


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
        self._read_for: SchedulerBase | None = None  # the scheduler _read_now reads
        self._read_now: Callable[[], datetime] = datetime.now  # set with _read_for
        self._guard: IdempotencyGuard[tuple[str, bool, int | None]] = IdempotencyGuard(
            self.config.idempotency_cache_size
        )
        self._content_types = tuple(self.config.content_types)
        self._limiter = (
            RateLimiter(self.config.rate_limit, self._now) if self.config.rate_limit else None
        )
        self.router = self._build_router()

    def health_details(self) -> dict[str, Any]:
        """What the health, the notebook card and the panel show besides the counters:
        the route, how senders authenticate, the allow-list and the refusals per status."""
        auth = self.config.auth
        return {
            "route": f"POST {self.config.prefix}/jobs",
            "prefix": self.config.prefix,
            "auth": type(auth).__name__ if auth is not None else "none",
            "allowed_job_types": sorted(self._allowed) or "any",
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
        job_id, _existing = await self._accept(request, key=idempotency_key, client=client)
        return {"job_id": job_id}

    # -- one request: checked once, then a delivery for the sink ----------------------

    def _now(self) -> datetime:
        scheduler = self._scheduler
        if scheduler is None:  # before start(): the scheduler it will use
            return clock.now(clock.resolve_scheduler(self._scheduler_arg))
        if scheduler is not self._read_for:  # a (re)start: read this scheduler's clock
            self._read_for, self._read_now = scheduler, clock.reader(scheduler)
        return self._read_now()

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
        trace: dict[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Check ``request`` (403, 400, 429) and create its job once per ``key``.

        ``seen_at`` is given for an HTTP request (it gets a delivery); a direct call
        has none; ``trace`` is the request's W3C trace context (kept in the job's
        metadata). Returns ``(job_id, existing)``: ``existing`` is the store's answer (the
        key already had this job), or the in-process fast path's for a repeat of the
        exact bytes answered before for the key (the store holds that job: keys are never
        reused for another job).

        Raises:
            HTTPException: also 409 when the key's job was made from another request.
        """
        job_type = request.job_type
        if self._allowed and job_type not in self._allowed:
            raise HTTPException(403, f"Job type '{job_type}' not allowed")
        payload = self._checked_payload(job_type, request.payload, body)
        priority = self.config.priority_map.get(job_type, request.priority)
        if key is None:
            if self._limiter is not None:
                self._check_rate(job_type, client)
            job_id, existing, _ = await self._create(
                request, payload, priority, None, None, client, seen_at, None, trace
            )
            return job_id, existing
        scoped = webhook_key(self.name, job_type, key)
        mark = None if body is None else hash(body)
        known = self._guard.answer(scoped)
        if known is not None and mark is not None and known[2] == mark:
            # answered from the guard: no event reached the pipeline
            self.recorder.record_repeat(self._source, key, scoped, known[0], seen_at)
            return known[0], True
        if self._limiter is not None and known is None:  # a repeat spends no token
            self._check_rate(job_type, client)
        args = (request, payload, priority, key, scoped, client, seen_at, mark, trace)
        (job_id, existing, first_mark), shared = await self._guard.once(scoped, self._create, *args)
        if shared and (mark is None or first_mark != mark):
            # A concurrent request with the key, not these bytes: the store decides.
            job_id, existing, _ = await self._create(*args)
            return job_id, existing
        if shared:  # answered from the concurrent first request: no event of its own
            self.recorder.record_repeat(self._source, key, scoped, job_id, seen_at)
        return job_id, existing or shared

    def _checked_payload(
        self, job_type: str, payload: dict[str, Any], body: bytes | None = None
    ) -> dict[str, Any]:
        # A payload parsed from JSON text holds JSON types only, and floats that are
        # finite unless the text says NaN, Infinity or a number too large for a float
        # (1e400): those are found by walking it (no encoding needed). Any other payload
        # (a direct call's) is checked by encoding it.
        if body is not None:
            finite = finite_json(payload)
        else:
            try:
                json.dumps(payload, allow_nan=False)
                finite = True
            except (TypeError, ValueError):
                finite = False
        if not finite:
            raise HTTPException(400, "Payload must be JSON-serializable (no NaN or Infinity)")
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
        mark: int | None,
        trace: dict[str, str] | None = None,
    ) -> tuple[str, bool, int | None]:
        """Hand the checked request to the sink and answer with its job.

        Every field was checked above (pydantic, allow-list, schema, priority map), so
        the job request is built with :func:`~portico_rx.models.trusted_request`. An
        HTTP request (``seen_at``) carries a delivery and is answered from the
        delivery's settlement: its job id, and whether the store already had the job
        (:attr:`~portico_rx.pipeline.delivery.Delivery.duplicate`). A direct call has
        none and is answered with the job.

        Returns:
            ``(job_id, existing, mark)``.

        Raises:
            HTTPException: 409 when the store's existing job for the key was made from a
                different request; 500 when it could not be created; 503 when stopped.
        """
        if seen_at is None:
            direct = await self._direct_sink().create(
                trusted_request(
                    job_type=request.job_type,
                    payload=payload,
                    queue_name=request.queue_name,
                    priority=priority,
                    metadata={},
                    idempotency_key=scoped,
                    scheduled_at=request.scheduled_at(self._now),
                )
            )
            if direct is None:
                raise HTTPException(500, "Job creation failed")
            return str(direct.id), False, None
        sink, observer = self._sink, self._intake.observer
        if sink is None or observer is None:  # stopped while the request was read
            raise self._not_running()
        delivery = Delivery(
            source=self._source,
            seen_at=seen_at,
            event_id=key,
            idempotency_key=key,
            attributes=_attributes(client, trace),
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
            scheduled_at=request.scheduled_at(seen_at),
        )
        job: Job | None = None
        if self.paused:
            # Into the pipeline, which holds it until resume() (or stop()) and then
            # submits it to the sink's workers; the answer waits for the settlement.
            deliver(observer, job_request, delivery)
            await delivery.wait_settled()
        else:
            # The sink's own creation, run in this request's task (no work-queue hop).
            delivery.seal()
            job = await sink.create(job_request)
        if not delivery.job_ids:
            if not self.is_running:  # abandoned by stop(): try again later
                raise self._not_running()
            raise HTTPException(500, "Job creation failed")
        job_id = delivery.job_ids[0]
        if delivery.duplicate:
            await self._check_same_request(job, job_id, job_request, key)
        return job_id, delivery.duplicate, mark

    async def _check_same_request(
        self, job: Job | None, job_id: str, request: JobRequest, key: str | None
    ) -> None:
        """Refuse (409) a key whose existing job was made from another request.

        Compared: what the job is (type, payload after its schema, queue, priority);
        not the bytes, so a resend formatted differently is the same request.
        """
        if job is None or str(job.id) != job_id:
            job = await self.job_creator.get_job(UUID(job_id))
        if job is None:
            return
        if (
            job.job_type == request.job_type
            and job.payload == request.payload
            and job.queue_name == request.queue_name
            and job.priority == request.priority
        ):
            return
        raise HTTPException(
            409,
            f"Idempotency key {key!r} was already used for a different request (job "
            f"{job_id}, left unchanged): send a new key for a new job, or the same "
            "request again to get that job",
        )

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
                request, config.auth, config.max_body_bytes, now, headers, self._content_types
            )
            try:
                job_request = WebhookJobRequest.model_validate_json(body)
            except ValidationError as exc:
                raise HTTPException(422, _field_errors(exc, ("body",))) from None
            key = idempotency_key(headers, config.auth, body)
            client = self._client(request, headers)
            job_id, existing = await self._accept(
                job_request,
                key=key,
                client=client,
                seen_at=now,
                body=body,
                trace=trace_context(headers),
            )
            return JSONBytesResponse(
                b'{"job_id":"' + job_id.encode() + b'"}', 200 if existing else 201
            )
        except StarletteHTTPException as exc:  # the intake's 401/413/415 included
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
            prefix=self.config.prefix,
            tags=["webhooks"],
            route_class=RawRequestRoute,
            dependencies=list(self.config.dependencies),
        )
        codes = dict(ERROR_DESCRIPTIONS)
        if self.config.auth is None:
            del codes[401]
        if self.config.rate_limit is None:
            del codes[429]
        if not self._allowed and not self.config.dependencies:
            codes[403] = "a dependency of the route refused the request"
        router.add_api_route(
            "/jobs",
            self._receive,
            methods=["POST"],
            status_code=201,
            response_model=None,
            summary="Create a job",
            description=(
                "Creates a job and answers with its id once it exists (201). A repeated "
                "idempotency key whose job exists answers 200 with that job's id; the same "
                "key with a different request answers 409. The key is the signed delivery "
                "id when the auth scheme has one (webhook-id, a Stripe event id), else the "
                "Idempotency-Key header."
            ),
            operation_id=f"create_job_{self.name}".replace("-", "_").replace(".", "_"),
            responses={
                201: {"model": WebhookJobResponse, "description": "the job was created"},
                200: {
                    "model": WebhookJobResponse,
                    "description": "the key's job already existed (a repeat)",
                },
                **error_responses(codes),
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": self._request_schema()}
                        for media in self._documented_types()
                    },
                },
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "repeating it returns the first job instead of a new "
                        "one (ignored when the auth scheme signs a delivery id)",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
            },
        )
        return router

    def _documented_types(self) -> list[str]:
        """The accepted media types as OpenAPI keys (a ``*`` pattern is not one)."""
        return [m for m in self._content_types if "*" not in m] or ["application/json"]

    def _request_schema(self) -> dict[str, Any]:
        """The body's schema: one variant per job type with a payload schema (its
        ``payload`` that model's), one for the other job types, discriminated on
        ``job_type``; the allow-list as an enum."""
        base = inline_schema(WebhookJobRequest.model_json_schema())
        properties = base["properties"]
        allowed = sorted(self._allowed)
        typed = {
            job_type: model
            for job_type, model in sorted(self.payload_schemas.items())
            if not allowed or job_type in self._allowed
        }
        variants: list[dict[str, Any]] = []
        for job_type, model in typed.items():
            payload = inline_schema(model.model_json_schema())
            payload.setdefault("description", clean_description(model.__doc__) or job_type)
            variants.append(
                {
                    **base,
                    "title": f"{job_type} job",
                    "properties": {
                        **properties,
                        "job_type": {"type": "string", "enum": [job_type]},
                        "payload": payload,
                    },
                    "required": ["job_type", "payload"]
                    if payload.get("required")
                    else ["job_type"],
                }
            )
        others = [job_type for job_type in allowed if job_type not in typed]
        if others or not allowed:
            job_type_schema = (
                {"type": "string", "enum": others}
                if allowed
                else {**properties["job_type"], **({"not": {"enum": list(typed)}} if typed else {})}
            )
            variants.append(
                {**base, "title": "job", "properties": {**properties, "job_type": job_type_schema}}
            )
        if len(variants) == 1:
            return variants[0]
        return {
            "title": "WebhookJobRequest",
            "description": base.get("description"),
            "oneOf": variants,
            "discriminator": {"propertyName": "job_type"},
        }
