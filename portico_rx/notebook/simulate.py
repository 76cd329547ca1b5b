"""Simulation in virtual time: which jobs a pipeline *would* create, as a DataFrame.

:func:`simulate` runs a pipeline on a ``HistoricalScheduler`` from ``start`` to ``end``
(recorded events replayed at their times, timers firing at theirs) and collects the
job requests it emits instead of creating them: nothing is written anywhere, nothing
waits on the wall clock. :func:`diff` simulates two pipelines over the same events and
reports the jobs that appear, disappear or change: shadow mode before deploying.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.scheduler import HistoricalScheduler

from portico_rx.errors import ConfigurationError, InvalidScheduleError, require
from portico_rx.models import JobRequest, request_claim
from portico_rx.pipeline import clock, readiness
from portico_rx.pipeline.delivery import Delivery
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.provenance import Provenance
from portico_rx.sources._replay import ReplayPlan, as_utc, check_window, replay_plan

__all__ = ["JOB_COLUMNS", "diff", "simulate"]

JOB_COLUMNS = [
    "scheduled_at",
    "created_at",
    "lateness",
    "job_type",
    "queue_name",
    "priority",
    "payload",
    "idempotency_key",
    "source",
    "event_id",
    "metadata",
]
"""The columns of the frame :func:`simulate` returns, in order."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Pipeline = Observable[Any] | Callable[[Observable[Any]], Observable[Any]] | Any

_IO_ADVICE = (
    "simulate() runs in virtual time and cannot run it; record its events first "
    "(frame = await portico_rx.notebook.record(source, duration=...), or a DataFrame from "
    "your logs) and simulate your operators over them: simulate(lambda events: "
    "events.pipe(...), events=frame), which replays them; or build the pipeline on a "
    "virtual-time source (sources.cron, sources.interval, sources.replay)"
)


def _held_open(events: Observable[Any]) -> Observable[Any]:
    """The replayed events without their completion: a live source does not complete
    after its last event, so what a time-based operator holds then stays held (it is not
    released early by the replay ending) and is a job only if its time is inside the
    window."""

    def subscribe(
        observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return events.subscribe(observer.on_next, observer.on_error, scheduler=scheduler)

    return reactivex.create(subscribe)


class _Collector:
    """Collects what a simulated pipeline emits, column by column (fast for 1M rows)."""

    def __init__(self, scheduler: HistoricalScheduler, name: str) -> None:
        self.scheduler = scheduler
        self.name = name
        self._provenance = Provenance(name)
        self.columns: dict[str, list[Any]] = {column: [] for column in JOB_COLUMNS}
        self.dead_letters: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def on_next(self, item: Any) -> None:
        now = clock.now(self.scheduler)
        if isinstance(item, JobRequest):
            self._add(item, now)
        elif isinstance(item, EventFailed):
            if item.claim is not None:
                item.claim.resolve(False)
            self.dead_letters.append(
                {"at": now, "stage": item.stage, "error": str(item.error), "event": item.event}
            )
        else:
            self.dead_letters.append(
                {
                    "at": now,
                    "stage": "pipeline",
                    "error": f"the pipeline emitted {type(item).__name__}, not a JobRequest; "
                    "end it with portico_rx.to_job(...)",
                    "event": item,
                }
            )

    def _add(self, request: JobRequest, now: datetime) -> None:
        delivery: Delivery | None
        claim, delivery = request_claim(request)
        if claim is not None:
            claim.resolve(True)
        metadata = request.metadata
        scheduled: datetime = now
        key = self._provenance.key(request.job_type, request.idempotency_key, delivery)
        if delivery is not None:
            if delivery.attributes:
                metadata = {**metadata, **delivery.attributes}
            scheduled = delivery.seen_at
        planned = metadata.get("scheduled_at") or metadata.get("scheduled_time")
        if planned is not None:
            with contextlib.suppress(ConfigurationError):
                scheduled = as_utc(planned, "scheduled_at")
        columns = self.columns
        scheduled_us = (scheduled - _EPOCH) // _MICROSECOND
        created_us = (now - _EPOCH) // _MICROSECOND
        columns["scheduled_at"].append(scheduled_us)
        columns["created_at"].append(created_us)
        columns["lateness"].append(created_us - scheduled_us)
        columns["job_type"].append(request.job_type)
        columns["queue_name"].append(request.queue_name)
        columns["priority"].append(request.priority)
        columns["payload"].append(request.payload)
        columns["idempotency_key"].append(key)
        columns["source"].append(delivery.source if delivery is not None else "observable")
        columns["event_id"].append(delivery.event_id if delivery is not None else None)
        columns["metadata"].append(metadata)

    def on_error(self, error: Exception) -> None:
        self.error = error

    def frame(self) -> Any:
        pd: Any = require("pandas", "notebook")
        columns = self.columns
        frame = pd.DataFrame(
            {
                **columns,
                "scheduled_at": pd.to_datetime(
                    pd.array(columns["scheduled_at"], dtype="int64"), unit="us", utc=True
                ),
                "created_at": pd.to_datetime(
                    pd.array(columns["created_at"], dtype="int64"), unit="us", utc=True
                ),
                "lateness": pd.to_timedelta(
                    pd.array(columns["lateness"], dtype="int64"), unit="us"
                ),
            },
            columns=JOB_COLUMNS,
        )
        frame.attrs["dead_letters"] = self.dead_letters
        return frame


def _resolve_pipeline(
    pipeline: Pipeline, plan: ReplayPlan | None, source: str
) -> tuple[Observable[Any], str | None]:
    trigger_pipeline = getattr(pipeline, "pipeline", None)
    if isinstance(trigger_pipeline, Observable):
        if plan is not None:
            raise ConfigurationError(
                f"pipeline={pipeline!r} is a trigger with its own source, so events= cannot be "
                "fed to it; pass a function events -> observable (the trigger's operators) "
                "instead"
            )
        return trigger_pipeline, getattr(pipeline, "name", None)
    if isinstance(pipeline, Observable):
        if plan is not None:
            raise ConfigurationError(
                "pipeline is an observable, so events= has nowhere to go; pass a function "
                "events -> observable, e.g. lambda events: events.pipe(to_job('x'))"
            )
        return pipeline, None
    if callable(pipeline):
        if plan is None:
            raise ConfigurationError(
                "pipeline is a function of the events, but no events= were given; pass "
                "events=<a DataFrame with one row per event>"
            )
        built = pipeline(_held_open(replay_plan(plan, source=source)))
        if not isinstance(built, Observable):
            raise ConfigurationError(
                f"pipeline(events) returned {type(built).__name__}, not an observable; "
                "return events.pipe(..., to_job(...))"
            )
        return built, None
    raise ConfigurationError(
        f"pipeline={pipeline!r}: pass an observable, a PipelineTrigger, or a function "
        "events -> observable (with events=)"
    )


def simulate(
    pipeline: Pipeline,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    events: Any = None,
    time_column: str = "time",
    event_column: str | None = None,
    key_column: str | None = None,
    id_column: str | None = None,
    name: str | None = None,
) -> Any:
    """The jobs ``pipeline`` would create between ``start`` and ``end``, as a DataFrame.

    Runs in virtual time on a fresh ``HistoricalScheduler`` starting at ``start`` and
    advanced to ``end``; creates nothing. ``pipeline`` is one of:

    * a function ``events -> observable`` (with ``events=``): the recorded events are
      replayed through it (rows in ``[start, end)``);
    * an observable whose time-based sources take the subscription's scheduler
      (``sources.cron(...)`` with no ``scheduler=``);
    * a :class:`~portico_rx.PipelineTrigger` (its pipeline; its name scopes the keys).

    Returns:
        One row per job request, in emission order, with :data:`JOB_COLUMNS`:
        ``scheduled_at`` (the event's time, or the fire time a schedule put in metadata),
        ``created_at`` (virtual time the request reached the end of the pipeline),
        ``lateness`` (``created_at - scheduled_at``: debounce or batch delays show here),
        ``job_type``, ``queue_name``, ``priority``, ``payload``, ``idempotency_key`` (as
        the trigger's sink would build it), ``source``, ``event_id``, ``metadata``.
        Events the pipeline failed on are listed in ``frame.attrs["dead_letters"]``.
        Requests still held by a time-based operator at ``end`` are not included: the
        replayed events do not complete after the last one (a live source would not),
        so ``debounce_by`` / ``batch`` release what they hold at its time, and only if
        that time is inside the window. (An observable that completes by itself ends
        the pipeline as Rx defines it: operators release what they hold then.)

    Example:
        >>> import pandas as pd
        >>> from portico_rx import to_job
        >>> from portico_rx.notebook.simulate import simulate
        >>> events = pd.DataFrame({"time": ["2025-03-01 09:00", "2025-03-01 09:05"],
        ...                        "user": [1, 2]})
        >>> jobs = simulate(lambda ev: ev.pipe(to_job("email.send",
        ...                 payload=lambda e: {"user": e["user"]})), events=events)
        >>> jobs["payload"].tolist()
        [{'user': 1}, {'user': 2}]

    Args:
        pipeline: see above.
        start: window start (default: the first event's time; required without events).
        end: window end, exclusive (default: just after the last event; required without
            events).
        events: a DataFrame of recorded events, one row per event (default ``None``).
        time_column: the events' time column (default ``"time"``).
        event_column: emit this column instead of the row dict (default ``None``).
        key_column: the events' idempotency-key column (default: the event id).
        id_column: the events' id column (default: the index label; frames from
            ``record()`` name theirs).
        name: the trigger name keys are scoped by (default: the trigger's, else
            ``"simulate"``).

    Raises:
        InvalidScheduleError: the window ends before it starts, or is missing.
        ConfigurationError: bad events (missing or unsorted time column), a pipeline
            that does not fit the arguments, or a pipeline over a source that does I/O
            (files, a broker, HTTP, a database: the message names it and says how to
            record its events and simulate over them).
    """
    plan, begin, finish = _window(
        start,
        end,
        events,
        time_column,
        event_column=event_column,
        key_column=key_column,
        id_column=id_column,
    )
    observable, trigger_name = _resolve_pipeline(pipeline, plan, "replay")
    scheduler = HistoricalScheduler(initial_clock=begin)
    collector = _Collector(scheduler, name or trigger_name or "simulate")
    with readiness.collect(refuse=_IO_ADVICE) as announced:
        subscription = observable.subscribe(
            collector.on_next, collector.on_error, scheduler=scheduler
        )
    if announced:  # refused before it started any I/O, whatever operators did with it
        subscription.dispose()
        names = ", ".join(repr(source) for source in announced)
        raise ConfigurationError(f"{names} does I/O: {_IO_ADVICE}")
    try:
        scheduler.advance_to(finish)
    finally:
        subscription.dispose()
    if collector.error is not None:
        raise collector.error
    return collector.frame()


def _window(
    start: datetime | str | None,
    end: datetime | str | None,
    events: Any,
    time_column: str,
    *,
    event_column: str | None,
    key_column: str | None,
    id_column: str | None,
) -> tuple[ReplayPlan | None, datetime, datetime]:
    """:func:`simulate`'s replay plan (``None`` without events) and window: ``start`` /
    ``end``, else the first event and just after the last one."""
    begin, finish = check_window(start, end)
    plan: ReplayPlan | None = None
    if events is not None:
        plan = ReplayPlan.from_frame(
            events,
            time_column,
            event_column=event_column,
            key_column=key_column,
            id_column=id_column,
            start=begin,
            end=finish,
        )
        if begin is None:
            begin = plan.times[0] if len(plan) else None
        if finish is None and len(plan):
            finish = plan.times[-1] + timedelta(microseconds=1)
    if begin is None or finish is None:
        raise InvalidScheduleError(
            f"start={start!r}, end={end!r}: give both start= and end= (a window to simulate)"
            + (" — the events frame is empty" if events is not None else "")
        )
    if finish <= begin:
        raise InvalidScheduleError(
            f"the window ends before it starts: start={begin.isoformat()}, "
            f"end={finish.isoformat()}; give an end after the start"
        )
    return plan, begin, finish


def _identity(frame: Any) -> Any:
    """Match keys for :func:`diff`: the event (id or time), the job type, and the n-th."""
    event = frame["event_id"].where(frame["event_id"].notna(), frame["scheduled_at"].astype(str))
    ordinal = frame.groupby([event, frame["job_type"]]).cumcount()
    return event.astype(str) + "|" + frame["job_type"] + "|" + ordinal.astype(str)


def diff(
    old_pipeline: Pipeline,
    new_pipeline: Pipeline,
    events: Any = None,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    time_column: str = "time",
    event_column: str | None = None,
    key_column: str | None = None,
    id_column: str | None = None,
    compare: Sequence[str] = ("queue_name", "priority", "payload", "created_at"),
    include_unchanged: bool = False,
) -> Any:
    """Which jobs appear, disappear or change when ``old_pipeline`` becomes ``new_pipeline``.

    Both pipelines are :func:`simulate`-d over the same events and window. Jobs are
    matched by the event they came from (its id, or its time for timers), their job type
    and their order among that event's jobs of that type.

    Returns:
        A DataFrame with one row per matched job: ``change`` (``"added"``, ``"removed"``,
        ``"changed"``, or ``"unchanged"`` when ``include_unchanged``), ``event_id``,
        ``job_type``, ``scheduled_at``, ``changed`` (the names of the ``compare`` fields
        that differ) and ``old_<field>`` / ``new_<field>`` for each compared field.

    Example:
        >>> import pandas as pd
        >>> from portico_rx import to_job
        >>> from portico_rx.notebook.simulate import diff
        >>> events = pd.DataFrame({"time": ["2025-03-01 09:00", "2025-03-01 09:05"],
        ...                        "plan": ["free", "pro"]})
        >>> old = lambda ev: ev.pipe(to_job("welcome"))
        >>> from reactivex import operators as ops
        >>> new = lambda ev: ev.pipe(ops.filter(lambda e: e["plan"] == "pro"), to_job("welcome"))
        >>> diff(old, new, events)["change"].tolist()
        ['removed']

    Args:
        old_pipeline: the pipeline deployed today (any form :func:`simulate` accepts).
        new_pipeline: the changed pipeline.
        events: the recorded events to replay through both (default ``None``: timers only).
        start: window start (default: first event).
        end: window end (default: just after the last event).
        time_column: the events' time column (default ``"time"``).
        event_column: emit this column instead of the row dict (default ``None``).
        key_column: the events' idempotency-key column (default: the event id).
        id_column: the events' id column (default: the index label; frames from
            ``record()`` name theirs).
        compare: the job fields whose difference makes a job ``"changed"``.
        include_unchanged: also list jobs that are the same (default ``False``).

    Raises:
        ConfigurationError: an unknown ``compare`` field, or bad events / pipelines.
        InvalidScheduleError: the window ends before it starts.
    """
    pd: Any = require("pandas", "notebook")
    unknown = [field for field in compare if field not in JOB_COLUMNS]
    if unknown:
        raise ConfigurationError(f"compare={list(compare)!r}: unknown {unknown}; use {JOB_COLUMNS}")
    options: dict[str, Any] = {
        "events": events,
        "time_column": time_column,
        "event_column": event_column,
        "key_column": key_column,
        "id_column": id_column,
        "name": "diff",
    }
    old = simulate(old_pipeline, start, end, **options)
    new = simulate(new_pipeline, start, end, **options)
    old = old.assign(_match=_identity(old)).set_index("_match")
    new = new.assign(_match=_identity(new)).set_index("_match")
    rows: list[dict[str, Any]] = []
    for match in list(old.index) + [m for m in new.index if m not in old.index]:
        before = old.loc[match] if match in old.index else None
        after = new.loc[match] if match in new.index else None
        row = _diff_row(before, after, compare)
        if row["change"] == "unchanged" and not include_unchanged:
            continue
        rows.append(row)
    columns = ["change", "event_id", "job_type", "scheduled_at", "changed"] + [
        f"{side}_{field}" for field in compare for side in ("old", "new")
    ]
    return pd.DataFrame(rows, columns=columns)


def _diff_row(before: Any, after: Any, compare: Sequence[str]) -> dict[str, Any]:
    """One row of :func:`diff`: a job as the old pipeline made it (``before``) and as the
    new one does (``after``); either is ``None`` when that pipeline made no such job."""
    reference = after if after is not None else before
    assert reference is not None
    changed: list[str] = []
    if before is None:
        change = "added"
    elif after is None:
        change = "removed"
    else:
        changed = [f for f in compare if not _same(before[f], after[f])]
        change = "changed" if changed else "unchanged"
    row: dict[str, Any] = {
        "change": change,
        "event_id": reference["event_id"],
        "job_type": reference["job_type"],
        "scheduled_at": reference["scheduled_at"],
        "changed": changed,
    }
    for field in compare:
        row[f"old_{field}"] = before[field] if before is not None else None
        row[f"new_{field}"] = after[field] if after is not None else None
    return row


def _same(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except (TypeError, ValueError):
        return left is right
