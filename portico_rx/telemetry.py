"""OpenTelemetry traces and metrics for triggers, job stores and workers (``pip install
portico_rx[otel]``).

This is the only module that imports OpenTelemetry, and nothing imports it until you
do. Until :func:`enable` is called, the core's instrumentation points
(:mod:`portico_rx.pipeline.instrument`) are empty and cost one ``None`` check.

After ``enable()``:

* every event a trigger receives gets a span, ``portico_rx.event``, from its receipt to
  its settlement (job created, duplicate, dropped, dead-lettered …). Its parent is the
  W3C trace context the event came with (a webhook's ``traceparent`` header, a broker
  message's ``traceparent`` header / stream field / MQTT user property), else the
  current span;
* the event span's context is written into its job's metadata (``traceparent``,
  ``tracestate``), and a :class:`~portico_rx.kits.job.worker.JobWorker` runs the handler
  in a ``portico_rx.job`` span that is its child (and links to it): one trace shows
  webhook → event → job → handler;
* the metrics below are recorded, from the trigger's own outcome accounting
  (:class:`~portico_rx.pipeline.outcomes.OutcomeRecorder`), the job store calls of
  ``JobService`` and ``JobWorker``, and the recorder's held events.

Enable it before building the services and starting the triggers (each decides when
it starts, as with its logging). See ``docs/observability.md``.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from portico_rx.errors import ConfigurationError, require
from portico_rx.pipeline import instrument
from portico_rx.pipeline.instrument import TRACEPARENT
from portico_rx.pipeline.outcomes import (
    CREATED,
    DEAD_LETTERED,
    DROPPED,
    DUPLICATE,
    REQUEUED,
    STALE,
)
from portico_rx.pipeline.provenance import lateness
from portico_rx.ports.job_queue import JobQueue

require("opentelemetry.trace", "otel")  # MissingDependencyError naming the extra

from opentelemetry import metrics as _metrics  # noqa: E402
from opentelemetry import trace as _trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.metrics import Observation  # noqa: E402
from opentelemetry.trace import Link, SpanKind, Status, StatusCode  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import (  # noqa: E402
    TraceContextTextMapPropagator,
)

if TYPE_CHECKING:
    from fastapi import APIRouter

    from portico_rx.models import Job
    from portico_rx.pipeline.delivery import Delivery
    from portico_rx.pipeline.outcomes import OutcomeRecorder

__all__ = [
    "INSTRUMENTATION_NAME",
    "METRICS",
    "TimedJobQueue",
    "disable",
    "enable",
    "is_enabled",
    "metrics_router",
]

INSTRUMENTATION_NAME = "portico_rx"
"""The name of portico_rx's tracer and meter."""

METRICS = {
    "portico_rx.events": "events a trigger received",
    "portico_rx.jobs.created": "events that created their job (outcome created)",
    "portico_rx.jobs.duplicates": "events whose jobs all existed already (a repeated key)",
    "portico_rx.events.dropped": "events the pipeline dropped on purpose",
    "portico_rx.events.stale": "events older than the trigger's max_age, dead-lettered",
    "portico_rx.dead_letters": "events dead-lettered (attribute outcome: dead_lettered, or "
    "requeued when given back to their source)",
    "portico_rx.events.in_flight": "events received and not settled yet",
    "portico_rx.event.lateness": "how late events were seen, in seconds (the events whose "
    "source tells its own time: their jobs' lateness_s)",
    "portico_rx.store.duration": "job store call time, in seconds",
}
"""Every instrument :func:`enable` records, by name (Prometheus: dots become ``_``,
counters end in ``_total``, the seconds histograms in ``_seconds``). The counts and
``in_flight`` carry the attribute ``trigger`` and are read from each trigger's
:class:`~portico_rx.pipeline.outcomes.OutcomeRecorder` when metrics are collected;
``store.duration`` carries ``operation`` and ``store``."""

# Bucket bounds in seconds (the SDK's default bounds are for milliseconds). A view of your
# MeterProvider overrides them.
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LATENESS_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
_PROPAGATOR = TraceContextTextMapPropagator()
_CONSUMER = SpanKind.CONSUMER
_ERROR_KINDS = frozenset((DEAD_LETTERED, STALE, REQUEUED))
_state: _Telemetry | None = None

# instrument name -> what it reads from OutcomeRecorder.summary() (kinds added up)
_COUNTS: dict[str, tuple[str, ...]] = {
    "portico_rx.jobs.created": (CREATED,),
    "portico_rx.jobs.duplicates": (DUPLICATE,),
    "portico_rx.events.dropped": (DROPPED,),
    "portico_rx.events.stale": (STALE,),
}


def _count_of(kind: str) -> Callable[[OutcomeRecorder], int]:
    def read(recorder: OutcomeRecorder) -> int:
        return recorder.counts[kind]

    return read


class _Telemetry:
    """The tracer and the instruments of one :func:`enable` call, and the recorders of
    the triggers started since (through their observers, held weakly)."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from portico_rx._version import __version__

        tracer_provider = tracer_provider or _trace.get_tracer_provider()
        meter_provider = meter_provider or _metrics.get_meter_provider()
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        meter = meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
        self.observers: weakref.WeakSet[_EventObserver] = weakref.WeakSet()
        d = METRICS
        meter.create_observable_counter(
            "portico_rx.events", [self._received], "{event}", d["portico_rx.events"]
        )
        for name, kinds in _COUNTS.items():
            meter.create_observable_counter(name, [self._counted(kinds)], "{event}", d[name])
        name = "portico_rx.dead_letters"
        meter.create_observable_counter(name, [self._dead_letters], "{event}", d[name])
        name = "portico_rx.events.in_flight"
        meter.create_observable_up_down_counter(name, [self._held], "{event}", d[name])
        name = "portico_rx.event.lateness"
        self.lateness = meter.create_histogram(
            name, "s", d[name], explicit_bucket_boundaries_advisory=_LATENESS_BUCKETS
        )
        name = "portico_rx.store.duration"
        self.store = meter.create_histogram(
            name, "s", d[name], explicit_bucket_boundaries_advisory=_STORE_BUCKETS
        )

    def _by_trigger(self, read: Callable[[OutcomeRecorder], int]) -> dict[str, int]:
        """``read(recorder)`` added up per trigger name (one recorder per trigger object;
        two triggers of one name count together)."""
        totals: dict[str, int] = {}
        seen: set[int] = set()
        for observer in list(self.observers):
            recorder = observer.recorder
            if id(recorder) in seen:
                continue
            seen.add(id(recorder))
            totals[recorder.trigger] = totals.get(recorder.trigger, 0) + read(recorder)
        return totals

    def _received(self, _options: Any) -> list[Observation]:
        totals = self._by_trigger(lambda recorder: recorder.received)
        return [Observation(value, {"trigger": name}) for name, value in totals.items()]

    def _counted(self, kinds: tuple[str, ...]) -> Callable[[Any], list[Observation]]:
        def observe(_options: Any) -> list[Observation]:
            def read(recorder: OutcomeRecorder) -> int:
                summary = recorder.summary()
                return sum(summary[kind] for kind in kinds)

            totals = self._by_trigger(read)
            return [Observation(value, {"trigger": name}) for name, value in totals.items()]

        return observe

    def _dead_letters(self, _options: Any) -> list[Observation]:
        found: list[Observation] = []
        for kind in (DEAD_LETTERED, REQUEUED):
            totals = self._by_trigger(_count_of(kind))
            found.extend(
                Observation(value, {"trigger": name, "outcome": kind})
                for name, value in totals.items()
            )
        return found

    def _held(self, _options: Any) -> list[Observation]:
        totals = self._by_trigger(lambda recorder: recorder.held)
        return [Observation(value, {"trigger": name}) for name, value in totals.items()]


class _EventObserver:
    """One trigger's :class:`~portico_rx.pipeline.instrument.OutcomeObserver`: a span per
    event and its lateness; the counts are read from ``recorder`` when collected."""

    __slots__ = ("__weakref__", "_state", "attributes", "recorder")

    def __init__(self, state: _Telemetry, recorder: OutcomeRecorder) -> None:
        self._state = state
        self.recorder = recorder
        self.attributes = {"trigger": recorder.trigger}
        state.observers.add(self)

    def watched(self, delivery: Delivery) -> None:
        state = self._state
        attributes = delivery.attributes
        parent = _PROPAGATOR.extract(attributes) if TRACEPARENT in attributes else None
        span_attributes: dict[str, Any] = {
            "portico_rx.trigger": self.recorder.trigger,
            "portico_rx.source": delivery.source,
        }
        if delivery.event_id is not None:
            span_attributes["portico_rx.event_id"] = str(delivery.event_id)
        span = state.tracer.start_span(
            "portico_rx.event", context=parent, kind=_CONSUMER, attributes=span_attributes
        )
        delivery._span = span
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=_trace.set_span_in_context(span))
            # the job's metadata carries the event span's context (see provenance)
            delivery.attributes = {**attributes, **carrier}
        if delivery.occurred_at is not None:  # a source with no time of its own: none
            state.lateness.record(max(lateness(delivery), 0.0), self.attributes)

    def settled(self, delivery: Delivery, kind: str, stage: str | None, error: str | None) -> None:
        span = getattr(delivery, "_span", None)
        if span is None:
            return
        del delivery._span
        if span.is_recording():
            span.set_attribute("portico_rx.outcome", kind)
            if stage is not None:
                span.set_attribute("portico_rx.stage", stage)
            job_ids = delivery.job_ids
            if job_ids:
                span.set_attribute("portico_rx.job_id", str(job_ids[0]))
                if len(job_ids) > 1:
                    span.set_attribute("portico_rx.job_ids", [str(job) for job in job_ids])
            if kind in _ERROR_KINDS:
                span.set_status(Status(StatusCode.ERROR, error or kind))
        span.end()


class TimedJobQueue(JobQueue):
    """A :class:`~portico_rx.ports.job_queue.JobQueue` that records how long each call
    to ``queue`` takes (``portico_rx.store.duration``). ``JobService`` and ``JobWorker``
    wrap their queue in one while telemetry is enabled; any other attribute is
    ``queue``'s own."""

    def __init__(self, queue: JobQueue, state: _Telemetry | None = None) -> None:
        current = state or _state
        if current is None:
            raise ConfigurationError(
                "TimedJobQueue(queue): call portico_rx.telemetry.enable() first"
            )
        self.queue = queue
        self._histogram = current.store
        self._attributes = {
            name: {"operation": name, "store": type(queue).__name__}
            for name in (
                "open",
                "close",
                "enqueue",
                "enqueue_many",
                "dequeue",
                "complete",
                "fail",
                "cancel",
                "get",
                "get_by_key",
                "list",
                "greatest_keys",
            )
        }

    def __repr__(self) -> str:
        return f"TimedJobQueue({self.queue!r})"

    def __getattr__(self, name: str) -> Any:
        queue = self.__dict__.get("queue")
        if queue is None:  # not built yet (copy, pickle)
            raise AttributeError(name)
        return getattr(queue, name)

    async def _timed(self, operation: str, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return await call
        finally:
            self._histogram.record(time.perf_counter() - start, self._attributes[operation])

    async def open(self) -> None:
        await self._timed("open", self.queue.open())

    async def close(self) -> None:
        await self._timed("close", self.queue.close())

    async def enqueue(self, job: Job) -> tuple[Job, bool]:
        result: tuple[Job, bool] = await self._timed("enqueue", self.queue.enqueue(job))
        return result

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[tuple[Job, bool]]:
        result: list[tuple[Job, bool]] = await self._timed(
            "enqueue_many", self.queue.enqueue_many(jobs)
        )
        return result

    async def dequeue(self, *args: Any, **kwargs: Any) -> Job | None:
        result: Job | None = await self._timed("dequeue", self.queue.dequeue(*args, **kwargs))
        return result

    async def complete(self, *args: Any, **kwargs: Any) -> Job:
        result: Job = await self._timed("complete", self.queue.complete(*args, **kwargs))
        return result

    async def fail(self, *args: Any, **kwargs: Any) -> Job:
        result: Job = await self._timed("fail", self.queue.fail(*args, **kwargs))
        return result

    async def cancel(self, *args: Any, **kwargs: Any) -> Job:
        result: Job = await self._timed("cancel", self.queue.cancel(*args, **kwargs))
        return result

    async def get(self, *args: Any, **kwargs: Any) -> Job | None:
        result: Job | None = await self._timed("get", self.queue.get(*args, **kwargs))
        return result

    async def get_by_key(self, *args: Any, **kwargs: Any) -> Job | None:
        result: Job | None = await self._timed("get_by_key", self.queue.get_by_key(*args, **kwargs))
        return result

    async def list(self, *args: Any, **kwargs: Any) -> list[Job]:
        result: list[Job] = await self._timed("list", self.queue.list(*args, **kwargs))
        return result

    async def greatest_keys(self, prefixes: Sequence[str]) -> dict[str, str]:
        result: dict[str, str] = await self._timed(
            "greatest_keys", self.queue.greatest_keys(prefixes)
        )
        return result

    async def wait_for_jobs(self, timeout: float) -> None:
        await self.queue.wait_for_jobs(timeout)  # waiting, not store latency: not timed


async def _run_job(state: _Telemetry, job: Job, worker: str, call: Awaitable[Any]) -> Any:
    """Await ``call`` (a handler running ``job``) inside a ``portico_rx.job`` span: a
    child of the context in the job's metadata (and linked to it), else a new trace."""
    metadata = job.metadata
    if TRACEPARENT in metadata:
        parent = _PROPAGATOR.extract(metadata)
        origin = _trace.get_current_span(parent).get_span_context()
        links = [Link(origin)] if origin.is_valid else None
    else:
        parent, links = Context(), None
    attributes = {
        "portico_rx.job_id": str(job.id),
        "portico_rx.job_type": job.job_type,
        "portico_rx.queue_name": job.queue_name,
        "portico_rx.worker": worker,
        "portico_rx.attempt": job.attempts,
    }
    with state.tracer.start_as_current_span(
        "portico_rx.job", context=parent, kind=_CONSUMER, links=links, attributes=attributes
    ):
        return await call


def enable(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Trace events and jobs and record metrics, from now on.

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one,
            ``opentelemetry.trace.get_tracer_provider()``).
        meter_provider: an OpenTelemetry ``MeterProvider`` (default: the global one).
            For ``GET /metrics`` give it a ``PrometheusMetricReader`` (or let
            ``create_app(metrics=True)`` make one).

    Triggers started, and ``JobService``/``JobWorker`` built, after this call are
    instrumented; calling it again replaces the providers for those built after.
    """
    global _state
    state = _Telemetry(tracer_provider, meter_provider)
    _state = state
    hooks = instrument.hooks
    hooks.outcomes = lambda recorder: _EventObserver(state, recorder)
    hooks.store = lambda queue: (
        queue if isinstance(queue, TimedJobQueue) else TimedJobQueue(queue, state)
    )
    hooks.job = lambda job, worker, call: _run_job(state, job, worker, call)


def disable() -> None:
    """Stop instrumenting what is built or started from now on."""
    global _state
    _state = None
    instrument.hooks.clear()


def is_enabled() -> bool:
    """Whether :func:`enable` was called (and :func:`disable` not since)."""
    return _state is not None


def metrics_router(path: str = "/metrics") -> APIRouter:
    """A FastAPI router answering ``GET {path}`` with the Prometheus text format of
    ``prometheus_client``'s default registry (where a ``PrometheusMetricReader``
    registers itself). ``create_app(metrics=True)`` mounts it.

    When telemetry is not enabled yet, it is enabled with a ``MeterProvider`` of its own
    holding a ``PrometheusMetricReader`` (and the global tracer provider).

    Raises:
        MissingDependencyError: ``prometheus_client``, or (to enable telemetry) the
            OpenTelemetry SDK or its Prometheus exporter, is not installed.
        ConfigurationError: ``path`` does not start with ``/``.
    """
    if not path.startswith("/"):
        raise ConfigurationError(f"path={path!r}: use a path starting with '/', e.g. '/metrics'")
    require("prometheus_client", "otel")
    require("fastapi", "webhook")
    from fastapi import APIRouter
    from fastapi.responses import Response
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    if _state is None:
        require("opentelemetry.sdk.metrics", "otel")
        require("opentelemetry.exporter.prometheus", "otel")
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider

        enable(meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]))
    router = APIRouter()

    async def prometheus_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    router.add_api_route(
        path,
        prometheus_metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        include_in_schema=False,
        response_class=Response,
    )
    return router
