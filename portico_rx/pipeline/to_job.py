"""``to_job``: the operator that turns events into job requests."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import reactivex
from pydantic import BaseModel
from reactivex import Observable, abc
from reactivex.scheduler import ImmediateScheduler

from portico_rx.errors import ConfigurationError, InvalidJobError
from portico_rx.models import (
    MAX_DELAY,
    JobRequest,
    _check_job_type,
    _check_json_object,
    _check_priority,
    _check_queue_name,
    attach_claim,
    check_aware,
    request_claim,
    trusted_request,
)
from portico_rx.pipeline.clock import now
from portico_rx.pipeline.delivery import Claim, Delivery, current_delivery
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.provenance import window_key
from portico_rx.pipeline.tracking import Tracker, UntrackedEventError, current_tracker

__all__ = ["check_delay", "default_payload", "job_request_claim", "requests", "to_job"]

T = TypeVar("T")
Field = Callable[[T], Any] | Any
Delay = timedelta | float


def default_payload(event: Any) -> dict[str, Any]:
    """The payload used when ``to_job`` is given none.

    A ``dict`` is used as is; a pydantic model or dataclass is dumped to JSON values;
    anything else becomes ``{"event": event}``.
    """
    if isinstance(event, dict):
        return event
    if isinstance(event, BaseModel):
        return event.model_dump(mode="json")
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return dataclasses.asdict(event)
    return {"event": event}


def _resolve(value: Field[T], event: T) -> Any:
    return value(event) if callable(value) else value


def _check_string_keys(field: str, value: dict[Any, Any]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise InvalidJobError(field, value, f"key {key!r} is not a string; use string keys")


_ATOMS = frozenset({str, int, bool, type(None)})


def _is_flat_json(value: object) -> bool:
    """``True`` for the common payload: a dict of string keys to str/int/bool/None
    (JSON for sure, checked without encoding it); anything else takes the full check."""
    if type(value) is not dict:
        return False
    for key, item in value.items():
        if type(key) is not str or type(item) not in _ATOMS:
            return False
    return True


def job_request_claim(request: JobRequest) -> tuple[Claim | None, Delivery | None]:
    """The claim and delivery ``to_job`` attached to ``request`` (``None`` if built by hand)."""
    claim, delivery = request_claim(request)
    return claim, delivery


def attribute(
    tracker: Tracker, event: Any, delivery: Delivery | None
) -> tuple[Delivery | None, Claim | None, str | None]:
    """Which delivery ``event`` belongs to, inside a trigger: ``(delivery, claim, kind)``.

    An event a tracked operator held finds its own delivery (by identity) or the one of
    the action that re-emits it. What cannot be attributed gets the operator ``kind`` of
    :data:`~portico_rx.pipeline.tracking.ADVICE` and is reported; it keeps a settled
    delivery for its provenance but claims nothing, except a batch released by a time
    operator, which claims every parked delivery (none is acked before its job exists).
    """
    held = tracker.delivery_of(event)
    running = tracker.running
    if held is not None:
        delivery = held
        tracker.unpark(held)
    elif tracker.delivering:
        kind = _untracked_kind(tracker, event, delivery)
        if kind is not None:
            tracker.report(kind, event)
            if kind == "batched":
                return None, tracker.parked_claim(), kind
            live = delivery is not None and not delivery.settled
            return delivery, (delivery.claim() if live and delivery else None), kind
    if running is not None and running.delivery is delivery:
        running.claims += 1
    return delivery, None, None


_SEQUENCES = (list, tuple)


def _untracked_kind(tracker: Tracker, event: Any, delivery: Delivery | None) -> str | None:
    if isinstance(event, _SEQUENCES) and (delivery is None or delivery.event is not event):
        return "buffer"
    if delivery is None:  # from a continuation with others parked: a batch of delay's
        return "batched" if tracker.running is not None and tracker.has_parked else "timer"
    if delivery.settled:
        return "scheduler"
    running = tracker.running
    if (
        running is not None
        and running.delivery is delivery
        and running.claims > 0  # a second request from this action's delivery …
        and tracker.has_parked  # … while other deliveries wait behind it
    ):
        return "batched"
    return None


def to_job(
    job_type: str | Callable[[T], str],
    payload: Callable[[T], dict[str, Any]] | dict[str, Any] | None = None,
    *,
    queue_name: str | Callable[[T], str] = "default",
    priority: int | Callable[[T], int] = 0,
    idempotency_key: Callable[[T], str | None] | None = None,
    metadata: Callable[[T], dict[str, Any]] | dict[str, Any] | None = None,
    idempotency_window: timedelta | None = None,
    delay: Delay | Callable[[T], Delay | None] | None = None,
    run_at: datetime | Callable[[T], datetime | None] | None = None,
) -> Callable[[Observable[T]], Observable[JobRequest | EventFailed]]:
    """Map each event to a :class:`~portico_rx.models.JobRequest`.

    Every argument is a value or a function of the event. ``payload`` defaults to
    :func:`default_payload`. ``idempotency_key`` defaults to the key of the event's
    delivery (cron fire time, message id, …), which the sink scopes by trigger name and
    job type; events without one get no key.

    ``idempotency_window`` (a ``timedelta``) makes the key ``{key}@{window start, UTC}``
    (:func:`~portico_rx.pipeline.provenance.window_key`): one job per key per window in
    any store and across replicas ("once per customer per day"); see docs/accounting.md.

    ``delay`` (a ``timedelta`` or seconds, 0 or more) or ``run_at`` (a timezone-aware
    ``datetime``), each a value or a function of the event (returning ``None``: at
    once), make the job ``SCHEDULED``: no worker takes it before its ``scheduled_at``,
    which is ``run_at`` or the scheduler's now plus ``delay`` (virtual time under a
    virtual-time scheduler). Give one of them, not both.

    An event whose conversion raises (a payload function that fails, an invalid job
    type, a payload that is not JSON) becomes an
    :class:`~portico_rx.pipeline.isolation.EventFailed` for the sink to count and dead-letter;
    the stream goes on.

    Marble::

        events:   --a----b----c--|
        to_job:   --A----B----C--|      (A = JobRequest built from a)

    Example:
        >>> import reactivex
        >>> from portico_rx import to_job
        >>> reactivex.of({"id": 7}).pipe(
        ...     to_job("email.welcome", payload=lambda e: {"user": e["id"]})
        ... ).run().payload
        {'user': 7}
    """

    # Constant fields are validated once, here (a bad one fails at construction);
    # per event only what functions return is checked.
    window = _check_window(idempotency_window, idempotency_key)
    schedule = _schedule(delay, run_at)
    fixed_type = None if callable(job_type) else _check_job_type(job_type)
    fixed_queue = None if callable(queue_name) else _check_queue_name(queue_name)
    fixed_priority = None if callable(priority) else _check_priority(priority)
    fixed_payload = (
        None if payload is None or callable(payload) else _check_json_object("payload", payload)
    )
    fixed_metadata = (
        None if metadata is None or callable(metadata) else _check_json_object("metadata", metadata)
    )

    def make_request(
        event: T,
        scheduler: abc.SchedulerBase | None,
        delivery: Delivery | None,
        claim: Claim | None,
    ) -> JobRequest:
        if fixed_payload is not None:
            body = dict(fixed_payload)
        else:
            body = default_payload(event) if payload is None else payload(event)  # type: ignore[operator]
            if not _is_flat_json(body):
                body = _check_json_object("payload", body)  # None becomes {}
                _check_string_keys("payload", body)
        if metadata is None:
            meta: dict[str, Any] = {}
        elif fixed_metadata is not None:
            meta = dict(fixed_metadata)
        else:
            meta = dict(_check_json_object("metadata", _resolve(metadata, event)))
            _check_string_keys("metadata", meta)
        if delivery is None and scheduler is not None:
            meta.setdefault("seen_at", now(scheduler).isoformat())
        key = idempotency_key(event) if idempotency_key is not None else None
        if key is not None:
            if not isinstance(key, str):
                raise InvalidJobError("idempotency_key", key, "return a string or None")
            if window is not None:
                key = window_key(key, _event_time(delivery, scheduler), window)
        return trusted_request(
            scheduled_at=None if schedule is None else schedule(event, scheduler),
            job_type=fixed_type or _check_job_type(_resolve(job_type, event)),
            payload=body,
            queue_name=fixed_queue or _check_queue_name(_resolve(queue_name, event)),
            priority=(
                fixed_priority
                if fixed_priority is not None
                else _check_priority(_resolve(priority, event))
            ),
            metadata=meta,
            idempotency_key=key,
            claim=claim,
            delivery=delivery,
        )

    return _claiming(make_request, "to_job")


def _check_window(window: object, key: object) -> timedelta | None:
    if window is None:
        return None
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise ConfigurationError(
            f"idempotency_window={window!r}: use a positive timedelta, e.g. timedelta(days=1)"
        )
    if key is None:
        raise ConfigurationError(
            "idempotency_window needs idempotency_key=: the window scopes a key of yours, "
            'e.g. to_job(..., idempotency_key=lambda e: e["customer"], '
            "idempotency_window=timedelta(days=1))"
        )
    return window


def check_delay(field: str, value: object) -> timedelta:
    """``value`` (a ``timedelta`` or seconds) as a ``timedelta`` from 0 to
    ``portico_rx.models.MAX_DELAY`` (ten years).

    Raises:
        InvalidJobError: naming ``field`` for anything else (a negative or non-finite
            delay, a bool, a string).
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise InvalidJobError(field, value, "use a timedelta or a number of seconds, 0 or more")
    if seconds < 0:
        raise InvalidJobError(field, value, "a delay cannot be negative; use 0 or more")
    if seconds > MAX_DELAY.total_seconds():
        raise InvalidJobError(field, value, "use at most ten years (MAX_DELAY); or give run_at=")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _schedule(
    delay: object, run_at: object
) -> Callable[[Any, abc.SchedulerBase | None], datetime | None] | None:
    """When the job of an event may run, as a function of the event and the scheduler
    (``None``: no ``delay``/``run_at``, nothing to compute per event)."""
    if delay is not None and run_at is not None:
        raise ConfigurationError(
            f"to_job got delay={delay!r} and run_at={run_at!r}: give one of them, e.g. "
            "delay=timedelta(minutes=5) or run_at=lambda e: e.due"
        )
    try:
        if run_at is not None:
            if callable(run_at):
                return lambda event, _scheduler: _optional_aware(run_at(event))
            fixed_at = check_aware("run_at", run_at)  # type: ignore[arg-type]
            return lambda _event, _scheduler: fixed_at
        if delay is not None:
            if callable(delay):
                return lambda event, scheduler: _after(
                    scheduler, None if (d := delay(event)) is None else check_delay("delay", d)
                )
            fixed = check_delay("delay", delay)
            return lambda _event, scheduler: _after(scheduler, fixed)
    except InvalidJobError as exc:
        raise ConfigurationError(f"to_job: {exc}") from None
    return None


def _optional_aware(value: object) -> datetime | None:
    return None if value is None else check_aware("run_at", value)  # type: ignore[arg-type]


def _after(scheduler: abc.SchedulerBase | None, delay: timedelta | None) -> datetime | None:
    if delay is None:
        return None
    return now(scheduler if scheduler is not None else ImmediateScheduler.singleton()) + delay


def _event_time(delivery: Delivery | None, scheduler: abc.SchedulerBase | None) -> datetime:
    """The time that picks an event's key window: its source's, else when it was seen."""
    if delivery is not None:
        return delivery.occurred_at or delivery.seen_at
    return now(scheduler if scheduler is not None else ImmediateScheduler.singleton())


def requests() -> Callable[[Observable[Any]], Observable[JobRequest | EventFailed]]:
    """Pass on job requests a decoder built (and checked) itself, claiming each one's
    delivery exactly as :func:`to_job` does (the same attribution and detection).

    The message-queue triggers use it after their envelope decoder; anything that is not
    a ``JobRequest`` becomes an :class:`~portico_rx.pipeline.isolation.EventFailed`.
    """

    def take(
        event: Any, _scheduler: abc.SchedulerBase | None, delivery: Delivery | None, claim: Any
    ) -> JobRequest:
        if not isinstance(event, JobRequest):
            raise TypeError(f"{type(event).__name__} {event!r:.80} is not a JobRequest")
        attach_claim(event, claim, delivery)
        return event

    return _claiming(take, "decode")


def _claiming(
    build: Callable[[Any, abc.SchedulerBase | None, Delivery | None, Claim | None], JobRequest],
    stage: str,
) -> Callable[[Observable[Any]], Observable[JobRequest | EventFailed]]:
    """The operator behind :func:`to_job`: ``build`` each request and attach the claim
    on the delivery its event belongs to."""

    def operator(source: Observable[Any]) -> Observable[JobRequest | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[JobRequest | EventFailed],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            tracker = getattr(scheduler, "tracker", None) or current_tracker()

            def on_next(event: Any) -> None:
                if isinstance(event, EventFailed):
                    observer.on_next(event)
                    return
                delivery = current_delivery()
                claim: Claim | None = None
                kind: str | None = None
                if tracker is not None:
                    delivery, claim, kind = attribute(tracker, event, delivery)
                    if kind is not None and tracker.strict:
                        error = UntrackedEventError(kind)
                        observer.on_next(EventFailed(event, error, "settlement", claim))
                        return
                if claim is None and delivery is not None and not delivery.settled:
                    claim = delivery.claim()
                try:
                    request = build(event, scheduler, delivery, claim)
                except Exception as exc:
                    observer.on_next(EventFailed(event, exc, stage, claim))
                    return
                observer.on_next(request)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    return operator
