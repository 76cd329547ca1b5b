"""portico_rx.telemetry: spans and metrics, read back through the OpenTelemetry SDK's
in-memory exporters, and ``GET /metrics`` scraped from a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import reactivex
import uvicorn
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from reactivex import abc
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx import telemetry
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.instrument import trace_context
from portico_rx.testing.virtual_time import advance
from portico_rx.web import create_app

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def total(self, name: str, **attributes: Any) -> float:
        return sum(
            point.value
            for point in self.points(name)
            if all(point.attributes.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    state = Telemetry()
    telemetry.enable(tracer_provider=state.tracer_provider, meter_provider=state.meter_provider)
    yield state
    telemetry.disable()
    state.meter_provider.shutdown()
    state.tracer_provider.shutdown()


def timed(events: list[tuple[float, Any, timedelta | None]]) -> reactivex.Observable[Any]:
    """Emit (seconds after START, event, age) with a delivery each, in virtual time."""

    def subscribe(observer: abc.ObserverBase[Any], scheduler: Any = None) -> Any:
        disposables = []
        for index, (at, event, age) in enumerate(events):

            def emit(
                sched: Any, _s: Any = None, i: int = index, e: Any = event, a: Any = age
            ) -> None:
                seen = sched.now
                delivery = Delivery(
                    source="test:timed",
                    seen_at=seen,
                    event_id=f"e{i}",
                    idempotency_key=f"e{i}",
                    occurred_at=seen - a if a is not None else None,
                    attributes={"traceparent": TRACEPARENT} if e.get("traced") else None,
                )
                deliver(observer, e, delivery)

            disposables.append(scheduler.schedule_absolute(START + timedelta(seconds=at), emit))
        return reactivex.disposable.CompositeDisposable(*disposables)

    return reactivex.create(subscribe)


def boom(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("boom"):
        raise ValueError("no payload for this one")
    return {"key": event["key"]}


async def test_every_outcome_is_counted_and_every_event_gets_a_span(otel: Telemetry) -> None:
    events = [
        (1, {"key": "a", "traced": True}, timedelta(seconds=2)),
        (2, {"key": "b"}, None),
        (3, {"key": "a"}, None),  # a duplicate of the first
        (4, {"key": "c", "skip": True}, None),  # filtered out: dropped
        (5, {"key": "d"}, timedelta(hours=2)),  # older than max_age: stale
        (6, {"key": "e", "boom": True}, None),  # its payload raises: dead-lettered
    ]
    pipeline = timed(events).pipe(
        ops.filter(lambda e: not e.get("skip")),
        prx.to_job("t.otel", payload=boom, idempotency_key=lambda e: f"k:{e['key']}"),
    )
    queue = MemoryJobQueue()
    vt = HistoricalScheduler(initial_clock=START)
    trigger = prx.PipelineTrigger(
        pipeline, prx.JobService(queue), name="otel", scheduler=vt, max_age=3600
    )
    await trigger.start()
    await advance(vt, timedelta(seconds=30), step=1)
    await trigger.stop()

    summary = trigger.get_health().details["outcomes"]
    assert (summary["created"], summary["duplicate"], summary["dropped"]) == (2, 1, 1)
    assert (summary["stale"], summary["dead_lettered"]) == (1, 1)
    assert otel.total("portico_rx.events", trigger="otel") == 6
    assert otel.total("portico_rx.jobs.created", trigger="otel") == 2
    assert otel.total("portico_rx.jobs.duplicates", trigger="otel") == 1
    assert otel.total("portico_rx.events.dropped", trigger="otel") == 1
    assert otel.total("portico_rx.events.stale", trigger="otel") == 1
    assert otel.total("portico_rx.dead_letters", trigger="otel", outcome="dead_lettered") == 1
    assert otel.total("portico_rx.dead_letters", trigger="otel", outcome="requeued") == 0
    assert otel.total("portico_rx.events.in_flight", trigger="otel") == 0
    [lateness] = otel.points("portico_rx.event.lateness")
    # the two events whose source told their time (the others have no lateness_s either)
    assert lateness.count == 2 and lateness.max == pytest.approx(7200)
    assert lateness.min == pytest.approx(2)
    enqueues = [
        p
        for p in otel.points("portico_rx.store.duration")
        if p.attributes == {"operation": "enqueue", "store": "MemoryJobQueue"}
    ]
    assert enqueues and sum(p.count for p in enqueues) == 3  # a, b and the duplicate a

    spans = otel.finished("portico_rx.event")
    assert len(spans) == 6
    outcomes = {
        s.attributes["portico_rx.event_id"]: s.attributes["portico_rx.outcome"] for s in spans
    }
    assert outcomes == {
        "e0": "created",
        "e1": "created",
        "e2": "duplicate",
        "e3": "dropped",
        "e4": "stale",
        "e5": "dead_lettered",
    }
    by_id = {s.attributes["portico_rx.event_id"]: s for s in spans}
    traced = by_id["e0"]
    assert traced.parent is not None and traced.parent.is_remote
    assert format(traced.context.trace_id, "032x") == TRACE_ID
    assert format(traced.parent.span_id, "016x") == PARENT_ID
    assert by_id["e1"].parent is None  # no trace context came with it: a trace of its own
    assert by_id["e4"].status.status_code is trace.StatusCode.ERROR
    # each job's metadata carries its event span's context
    jobs = {job.payload["key"]: job for job in await queue.list()}
    for key, event_id in (("a", "e0"), ("b", "e1")):
        context = by_id[event_id].context
        assert (
            jobs[key]
            .metadata["traceparent"]
            .startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
        )
    assert by_id["e0"].attributes["portico_rx.job_id"] == str(jobs["a"].id)
    assert by_id["e2"].attributes["portico_rx.job_id"] == str(jobs["a"].id)  # the duplicate


async def test_one_trace_from_the_webhook_through_the_job_to_the_handler(
    otel: Telemetry,
) -> None:
    """A webhook POST with a traceparent, its job, and the worker's handler: one trace."""
    seen: list[trace.SpanContext] = []

    async def handler(job: Job) -> dict[str, Any]:
        seen.append(trace.get_current_span().get_span_context())
        return {"ok": True}

    webhook_service = prx.JobService(MemoryJobQueue())
    hook = WebhookTrigger(job_creator=webhook_service)
    app = create_app([hook])
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        answer = await http.post(
            "/webhooks/jobs",
            json={"job_type": "invoice.send", "payload": {"id": 7}},
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=x1"},
        )
    assert answer.status_code == 201
    worker = JobWorker(webhook_service.job_queue, {"invoice.send": handler}, name="w1")
    assert await worker.run_until_idle(timeout=10) == 1

    [event] = otel.finished("portico_rx.event")
    [job_span] = otel.finished("portico_rx.job")
    assert {format(s.context.trace_id, "032x") for s in (event, job_span)} == {TRACE_ID}
    assert event.parent is not None and format(event.parent.span_id, "016x") == PARENT_ID
    assert job_span.parent is not None and job_span.parent.span_id == event.context.span_id
    assert [link.context.span_id for link in job_span.links] == [event.context.span_id]
    assert job_span.attributes["portico_rx.job_id"] == answer.json()["job_id"]
    assert job_span.attributes["portico_rx.worker"] == "w1"
    [inside] = seen  # the handler runs inside the job span: its own spans join the trace
    assert inside.span_id == job_span.context.span_id
    [job] = await webhook_service.list_jobs()
    assert job.metadata["traceparent"].split("-")[1] == TRACE_ID
    assert job.metadata["tracestate"] == "vendor=x1"
    operations = {p.attributes["operation"] for p in otel.points("portico_rx.store.duration")}
    assert {"enqueue", "dequeue", "complete"} <= operations


async def test_a_failing_handler_marks_its_span_as_an_error(otel: Telemetry) -> None:
    async def handler(job: Job) -> None:
        raise RuntimeError("the printer is on fire")

    queue = MemoryJobQueue()
    await prx.JobService(queue, max_retries=0).create_job("t.fail", {})
    assert await JobWorker(queue, {"t.fail": handler}).run_until_idle(timeout=10) == 1
    [span] = otel.finished("portico_rx.job")
    assert span.parent is None  # a job made without a trace context starts its own
    assert span.status.status_code is trace.StatusCode.ERROR
    assert "the printer is on fire" in (span.status.description or "")


async def test_events_held_by_a_paused_trigger_are_in_flight(otel: Telemetry) -> None:
    pipeline = timed([(n, {"n": n}, None) for n in range(3)]).pipe(prx.to_job("t.held"))
    vt = HistoricalScheduler(initial_clock=START)
    trigger = prx.PipelineTrigger(
        pipeline, prx.JobService(MemoryJobQueue()), name="held", scheduler=vt
    )
    await trigger.start()
    trigger.pause()
    await advance(vt, timedelta(seconds=10), step=1)
    held = trigger.get_health().details["outcomes"]["held"]
    assert held == 3
    assert otel.total("portico_rx.events.in_flight", trigger="held") == held
    assert otel.finished("portico_rx.event") == []  # open until they settle
    trigger.resume()
    await advance(vt, timedelta(seconds=10), step=1)
    assert otel.total("portico_rx.events.in_flight", trigger="held") == 0
    assert otel.total("portico_rx.jobs.created", trigger="held") == 3
    assert len(otel.finished("portico_rx.event")) == 3
    await trigger.stop()


# -- trace context from headers --------------------------------------------------------


def test_trace_context_is_read_from_every_header_form() -> None:
    assert trace_context({"traceparent": TRACEPARENT}) == {"traceparent": TRACEPARENT}
    assert trace_context({"Traceparent": TRACEPARENT.encode(), "Tracestate": b"a=1"}) == {
        "traceparent": TRACEPARENT,
        "tracestate": "a=1",
    }
    assert trace_context({"traceparent": [TRACEPARENT]}) == {"traceparent": TRACEPARENT}
    for bad in ("00-xyz", "ff" + TRACEPARENT[2:], "", b"\xff"):
        assert trace_context({"traceparent": bad, "tracestate": "a=1"}) is None
    assert trace_context(None) is None and trace_context({"other": "x"}) is None


@pytest.mark.rabbitmq
async def test_an_amqp_message_with_a_traceparent_header_is_the_event_spans_parent(
    otel: Telemetry,
) -> None:
    """Every broker keeps a message's trace context in its job (the queue-source contract,
    tests/contract); with telemetry enabled it is the parent of the event's span."""
    import aio_pika

    from portico_rx import sources

    name = f"otel-{os.getpid()}"
    url = "amqp://guest:guest@127.0.0.1:5672/"
    queue = MemoryJobQueue()
    trigger = prx.PipelineTrigger(
        sources.rabbitmq(url, name).pipe(prx.to_job("t.amqp")),
        prx.JobService(queue),
        name="otel-amqp",
    )
    connection = await aio_pika.connect(url)
    try:
        await trigger.start()
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body=b"{}", message_id="m-1", headers={"traceparent": TRACEPARENT}),
            routing_key=name,
        )
        for _ in range(200):
            if await queue.list():
                break
            await asyncio.sleep(0.02)
        await trigger.stop()
        [job] = await queue.list()
        [span] = otel.finished("portico_rx.event")
        assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.attributes["portico_rx.source"] == f"rabbitmq:{name}"
        assert job.metadata["traceparent"].split("-")[1:3] == [
            TRACE_ID,
            format(span.context.span_id, "016x"),
        ]
    finally:
        await trigger.stop()
        cleanup = await connection.channel()
        for each in (name, f"{name}.dead"):
            with contextlib.suppress(Exception):
                await cleanup.queue_delete(each)
        await connection.close()


# -- GET /metrics ----------------------------------------------------------------------


@pytest.fixture
async def metrics_server() -> AsyncIterator[tuple[str, MeterProvider]]:
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry.enable(meter_provider=provider)
    service = prx.JobService(MemoryJobQueue())
    app = create_app([WebhookTrigger(job_creator=service)], metrics=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}", provider
    finally:
        server.should_exit = True
        await task
        sock.close()
        telemetry.disable()
        provider.shutdown()  # the reader leaves prometheus_client's registry


async def test_metrics_are_scraped_in_the_prometheus_text_format(metrics_server: Any) -> None:
    url, _provider = metrics_server
    async with httpx.AsyncClient(base_url=url) as http:
        for key in ("one", "two", "one"):
            answer = await http.post(
                "/webhooks/jobs", json={"job_type": "a.b"}, headers={"Idempotency-Key": key}
            )
            assert answer.status_code in (200, 201)
        scraped = await http.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)

    def value(name: str, **labels: str) -> float:
        [sample] = [
            s for s in samples.get(name, ()) if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        return float(sample.value)

    assert value("portico_rx_events_total", trigger="webhook") == 3
    assert value("portico_rx_jobs_created_total", trigger="webhook") == 2
    assert value("portico_rx_jobs_duplicates_total", trigger="webhook") == 1
    assert value("portico_rx_events_in_flight", trigger="webhook") == 0
    assert value("portico_rx_store_duration_seconds_count", operation="enqueue") == 2
    assert value("portico_rx_store_duration_seconds_bucket", operation="enqueue", le="5.0") == 2


def test_metrics_router_refuses_a_relative_path() -> None:
    with pytest.raises(ConfigurationError, match="path='metrics'"):
        telemetry.metrics_router("metrics")


def test_a_timed_queue_keeps_the_stores_the_queue_offers(otel: Telemetry) -> None:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.kits.job.job_service import JobService

    queue = MemoryJobQueue()
    service = JobService(queue)
    assert isinstance(service.job_queue, telemetry.TimedJobQueue)  # timed ...
    assert service.dead_letter_store is queue and service.schedule_store is queue  # ... same stores
    hourly = ScheduleConfig(cron="0 * * * *", job_type="report")
    assert (
        ScheduleTrigger(service, [hourly], scheduler=HistoricalScheduler()).schedule_store is queue
    )


def test_a_timed_queue_needs_telemetry_enabled() -> None:
    with pytest.raises(ConfigurationError, match="enable"):
        telemetry.TimedJobQueue(MemoryJobQueue())


# -- nothing when it is not enabled ----------------------------------------------------


NOT_ENABLED = textwrap.dedent(
    """
    import asyncio, json, sys
    import reactivex
    import portico_rx as prx
    from portico_rx.adapters.job_queue.memory import MemoryJobQueue
    from portico_rx.kits.job.worker import JobWorker

    async def main():
        queue = MemoryJobQueue()
        subject = reactivex.Subject()
        trigger = prx.PipelineTrigger(
            subject.pipe(prx.to_job("t.x")), prx.JobService(queue), name="plain"
        )
        await trigger.start()
        for n in range(3):
            subject.on_next({"n": n})
        await asyncio.sleep(0.05)
        await trigger.stop()
        async def handle(job):
            return None
        done = await JobWorker(queue, {"t.x": handle}).run_until_idle(timeout=10)
        return done, type(prx.JobService(queue).job_queue).__name__

    done, store = asyncio.run(main())
    loaded = sorted(m for m in sys.modules
                    if m.split(".")[0] in ("opentelemetry", "prometheus_client")
                    or m == "portico_rx.telemetry")
    print(json.dumps({"done": done, "store": store, "loaded": loaded}))
    """
)


def test_import_and_a_pipeline_run_load_no_opentelemetry_unless_enabled() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NOT_ENABLED],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"done": 3, "store": "MemoryJobQueue", "loaded": []}
