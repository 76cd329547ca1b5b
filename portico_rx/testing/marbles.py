"""Run a pipeline over events at virtual times and look at what came out — in three lines.

>>> from portico_rx.operators import debounce_by
>>> from portico_rx.testing import marble_events, run_pipeline, to_marbles
>>> out = run_pipeline(debounce_by(str, 3), events=marble_events("-a-a-b-a"), until=12)
>>> to_marbles(out)
'------a-b-a'

Every input event travels with a real :class:`~portico_rx.pipeline.delivery.Delivery`, and what
reaches the end of the pipeline is treated as a sink would (job requests and other items
are "created", ``EventFailed`` items are dead-lettered), so :func:`trace_pipeline` also
tells how each input event was settled: ``"created"``, ``"dropped"``, ``"failed"``,
``"requeued"`` (handed back when the pipeline stopped) or ``None`` (never settled — a
bug in an operator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.scheduler import HistoricalScheduler

from portico_rx.errors import ConfigurationError
from portico_rx.models import JobRequest
from portico_rx.pipeline.delivery import Delivery, Outcome, claim_current, deliver
from portico_rx.pipeline.isolation import EventFailed

__all__ = [
    "EPOCH",
    "PipelineTrace",
    "marble_events",
    "run_pipeline",
    "to_marbles",
    "trace_pipeline",
]

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""Where virtual time starts in these helpers: 2025-01-01T00:00:00Z."""

Operator = Callable[[Observable[Any]], Observable[Any]]
TimedEvents = Iterable[tuple[float, Any]]


@dataclass
class PipelineTrace:
    """What one run of :func:`trace_pipeline` saw.

    Attributes:
        emitted: ``(seconds since start, item)`` for every item the pipeline emitted.
        settlements: per input event, in input order: ``"created"`` (its item reached
            the end), ``"dropped"`` (the pipeline dropped it on purpose: acked),
            ``"failed"`` (dead-lettered: nacked), ``"requeued"`` (still held when the
            run stopped: nacked with requeue) or ``None`` (never settled).
        error: the error the pipeline ended with, if any.
        completed_at: seconds since start when the pipeline completed, if it did.
    """

    emitted: list[tuple[float, Any]] = field(default_factory=list)
    settlements: list[str | None] = field(default_factory=list)
    error: Exception | None = None
    completed_at: float | None = None

    @property
    def items(self) -> list[Any]:
        """The emitted items without their times."""
        return [item for _, item in self.emitted]

    @property
    def requests(self) -> list[tuple[float, JobRequest]]:
        """The emitted job requests with their times."""
        return [(t, item) for t, item in self.emitted if isinstance(item, JobRequest)]

    @property
    def failures(self) -> list[EventFailed]:
        """The ``EventFailed`` items (events a user function raised for)."""
        return [item for _, item in self.emitted if isinstance(item, EventFailed)]


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=float(value))


def trace_pipeline(
    pipeline: Operator,
    events: TimedEvents,
    *,
    until: float | None = None,
    complete_at: float | None = None,
    start: datetime = EPOCH,
    source: str = "marbles",
) -> PipelineTrace:
    """Run ``pipeline`` in virtual time over ``events`` and record everything.

    Args:
        pipeline: an operator, e.g. ``debounce_by(key, 5)`` or
            ``reactivex.compose(dedupe(), to_job("x"))``.
        events: ``(seconds from start, event)`` pairs; each is emitted at its time with
            a delivery (``event_id`` = its index, idempotency key ``"<source>:<index>"``).
        until: seconds to run (default: the last event's time, or ``complete_at``); the
            subscription is then disposed, so anything still held is handed back.
        complete_at: if given, the source completes at this time.
        start: the virtual start time (default :data:`EPOCH`).
        source: the deliveries' ``source`` name.

    Returns:
        A :class:`PipelineTrace`.

    Raises:
        ConfigurationError: an event time is negative, or ``until`` is before the last event.
    """
    timeline = [(float(t), event) for t, event in events]
    if any(t < 0 for t, _ in timeline):
        raise ConfigurationError(f"events={timeline!r}: event times must be 0 or more seconds")
    last = max([t for t, _ in timeline] + [complete_at or 0.0, 0.0])
    end = last if until is None else float(until)
    if end < last:
        raise ConfigurationError(
            f"until={until!r}: it is before the last event or completion at {last}; "
            f"use until={last} or more"
        )
    scheduler = HistoricalScheduler(initial_clock=start - timedelta(microseconds=1))
    trace = PipelineTrace(settlements=[None] * len(timeline))
    timed = _timed_source(scheduler, timeline, start, source, complete_at, trace)
    observable = pipeline(timed)
    tracer = _Tracer(trace, scheduler, start)
    subscription = reactivex.disposable.SingleAssignmentDisposable()

    def subscribe(_s: abc.SchedulerBase, _state: Any = None) -> None:
        subscription.disposable = observable.subscribe(
            tracer.on_next, tracer.on_error, tracer.on_completed, scheduler=scheduler
        )

    # Subscribe *at* ``start`` from a clock one microsecond earlier: a virtual clock that
    # is not advanced runs nothing, not even what is due at once.
    scheduler.schedule_absolute(start, subscribe)
    scheduler.advance_to(start + _seconds(end))
    subscription.dispose()
    return trace


def _settle_as(trace: PipelineTrace, index: int, delivery: Delivery) -> None:
    """Record how the delivery of event ``index`` settles in ``trace.settlements``."""

    def ack() -> None:
        trace.settlements[index] = "created" if delivery.outcome is Outcome.CREATED else "dropped"

    def nack(requeue: bool) -> None:
        trace.settlements[index] = "requeued" if requeue else "failed"

    delivery.ack = ack
    delivery.nack = nack


def _timed_source(
    scheduler: HistoricalScheduler,
    timeline: list[tuple[float, Any]],
    start: datetime,
    source: str,
    complete_at: float | None,
    trace: PipelineTrace,
) -> Observable[Any]:
    """The events of ``timeline``, each at its time with a delivery of its own."""

    def subscribe_source(
        observer: abc.ObserverBase[Any], _scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        disposables = []
        for index, (at, event) in enumerate(timeline):

            def emit(
                _s: abc.SchedulerBase, _state: Any = None, i: int = index, e: Any = event
            ) -> None:
                delivery = Delivery(
                    source=source,
                    seen_at=scheduler.now,
                    event_id=str(i),
                    idempotency_key=f"{source}:{i}",
                )
                _settle_as(trace, i, delivery)
                deliver(observer, e, delivery)

            disposables.append(scheduler.schedule_absolute(start + _seconds(at), emit))
        if complete_at is not None:

            def complete(_s: abc.SchedulerBase, _state: Any = None) -> None:
                observer.on_completed()

            disposables.append(scheduler.schedule_absolute(start + _seconds(complete_at), complete))
        return reactivex.disposable.CompositeDisposable(*disposables)

    return reactivex.create(subscribe_source)


class _Tracer:
    """The pipeline's subscriber: records each item with its time and settles it the way
    a sink would (a job created for each claimed item, ``EventFailed`` nacked)."""

    def __init__(
        self, trace: PipelineTrace, scheduler: HistoricalScheduler, start: datetime
    ) -> None:
        self.trace = trace
        self.scheduler = scheduler
        self.start = start
        self.created = 0

    def elapsed(self) -> float:
        return (self.scheduler.now - self.start).total_seconds()

    def on_next(self, item: Any) -> None:
        self.trace.emitted.append((self.elapsed(), item))
        if isinstance(item, EventFailed):
            if item.claim is not None:
                item.claim.resolve(False)
            return
        claim = item._claim if isinstance(item, JobRequest) else claim_current()
        if claim is not None:
            self.created += 1
            claim.resolve(True, job_id=f"job-{self.created}")

    def on_error(self, error: Exception) -> None:
        self.trace.error = error

    def on_completed(self) -> None:
        self.trace.completed_at = self.elapsed()


def run_pipeline(
    pipeline: Operator,
    events: TimedEvents,
    *,
    until: float | None = None,
    complete_at: float | None = None,
    start: datetime = EPOCH,
) -> list[tuple[float, Any]]:
    """Run ``pipeline`` in virtual time over ``(seconds, event)`` pairs; return
    ``(seconds, item)`` for each item it emitted (see :func:`trace_pipeline`).

    Example:
        >>> from reactivex import operators as ops
        >>> run_pipeline(ops.map(lambda n: n * 10), events=[(0, 1), (2.5, 2)])
        [(0.0, 10), (2.5, 20)]
    """
    return trace_pipeline(
        pipeline, events, until=until, complete_at=complete_at, start=start
    ).emitted


def marble_events(
    diagram: str, values: Mapping[str, Any] | None = None, *, tick: float = 1.0
) -> list[tuple[float, Any]]:
    """``(seconds, event)`` pairs from a marble diagram.

    Each character is one ``tick`` of time: ``-`` nothing, any other character an
    event (``values[char]``, or the character itself), ``(ab)`` several events at the
    position of ``(``; spaces are ignored and ``|`` (completion) ends the diagram.

    Raises:
        ConfigurationError: ``tick`` is not positive, or a group is not closed.

    Example:
        >>> marble_events("-a-(bc)-d", {"a": 1}, tick=10)
        [(10.0, 1), (30.0, 'b'), (30.0, 'c'), (80.0, 'd')]
    """
    if tick <= 0:
        raise ConfigurationError(f"tick={tick!r}: use a positive number of seconds")
    lookup = values or {}
    events: list[tuple[float, Any]] = []
    frames = diagram.replace(" ", "")
    group_at: int | None = None
    for position, char in enumerate(frames):
        if char == "|":
            break
        at = (group_at if group_at is not None else position) * tick
        if char == "(":
            group_at = position
        elif char == ")":
            group_at = None
        elif char != "-":
            events.append((float(at), lookup.get(char, char)))
    if group_at is not None:
        raise ConfigurationError(f"diagram={diagram!r}: a '(' group is not closed with ')'")
    return events


def to_marbles(
    emitted: Iterable[tuple[float, Any]],
    *,
    tick: float = 1.0,
    label: Callable[[Any], str] = str,
) -> str:
    """A marble diagram of ``(seconds, item)`` pairs (as :func:`run_pipeline` returns).

    Each item is drawn as ``label(item)`` at the frame ``round(seconds / tick)``; items
    sharing a frame are grouped as ``(ab)``, which takes its width in frames, as in
    RxJS. Trailing silence is not drawn.

    Example:
        >>> to_marbles([(1, "a"), (3, "b"), (3, "c"), (9, "d")])
        '-a-(bc)--d'
    """
    if tick <= 0:
        raise ConfigurationError(f"tick={tick!r}: use a positive number of seconds")
    frames: dict[int, list[str]] = {}
    for seconds, item in emitted:
        frames.setdefault(round(seconds / tick), []).append(label(item))
    drawn = ""
    for frame in sorted(frames):
        drawn += "-" * max(0, frame - len(drawn))
        labels = frames[frame]
        drawn += labels[0] if len(labels) == 1 else "(" + "".join(labels) + ")"
    return drawn
