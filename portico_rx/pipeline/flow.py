"""``flow``: a pipeline written step by step, each step's functions typed by the event.

``source.pipe(ops.filter(lambda e: ...), to_job(..., payload=lambda e: ...))`` runs, but
a type checker cannot tell the lambdas what ``e`` is: each operator is a generic
function called before ``pipe`` sees it, so mypy types ``e`` as ``object`` (its
python/mypy#6164) and pyright's strict mode reports it unknown. A :class:`Flow` knows
its event type, so every method's functions are checked against it::

    flow(signups).filter(lambda e: e.plan != "free").to_job("email.welcome", ...)

Each method is the operator of the same name (``reactivex.operators.filter`` / ``map``
with per-event isolation, :mod:`portico_rx.operators`, :func:`~portico_rx.to_job`),
applied with the same arguments: a ``Flow`` adds no mechanism and no per-event cost
beyond the operators it applies. :meth:`Flow.apply` takes any other operator.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.models import JobRequest
from portico_rx.operators import Excess, changed, debounce_by, dedupe, rate_limit, throttle_by
from portico_rx.pipeline.isolation import EventFailed, guarded
from portico_rx.pipeline.to_job import Delay, to_job

__all__ = ["Flow", "flow"]

T = TypeVar("T")
U = TypeVar("U")


def flow(source: Observable[T]) -> Flow[T]:
    """Start a typed pipeline over ``source`` (any observable: a source of
    :mod:`portico_rx.sources`, a ``reactivex.Subject[Event]``, ...).

    Example:
        >>> import reactivex, portico_rx as prx
        >>> prx.flow(reactivex.of({"id": 7})).to_job(
        ...     "email.welcome", payload=lambda e: {"user": e["id"]}
        ... ).run().payload
        {'user': 7}
    """
    return Flow(source)


class Flow(Generic[T]):
    """A pipeline under construction whose events are ``T`` (see :func:`flow`).

    Items an earlier step turned into an
    :class:`~portico_rx.pipeline.isolation.EventFailed` pass every later step untouched
    (no user function sees them) on their way to the sink, so the type stays ``T``.

    Attributes:
        observable: the pipeline so far, a plain ``reactivex.Observable`` (of ``T``
            and ``EventFailed`` items).
    """

    __slots__ = ("observable",)

    def __init__(self, observable: Observable[Any]) -> None:
        self.observable: Observable[Any] = observable

    def apply(self, operator: Callable[[Observable[T]], Observable[U | EventFailed]]) -> Flow[U]:
        """Any operator, e.g. ``.apply(ops.debounce(1.0))`` or ``.apply(batch(100, 5))``."""
        return Flow(self.observable.pipe(operator))

    def filter(self, predicate: Callable[[T], bool]) -> Flow[T]:
        """Only events for which ``predicate`` is true (``reactivex.operators.filter``;
        a predicate that raises turns that event into an ``EventFailed``)."""
        return Flow(self.observable.pipe(_isolated("filter", predicate, keep=True)))

    def map(self, function: Callable[[T], U]) -> Flow[U]:
        """``function(event)`` for each event (``reactivex.operators.map``; a function
        that raises turns that event into an ``EventFailed``)."""
        return Flow(self.observable.pipe(_isolated("map", function, keep=False)))

    def dedupe(
        self,
        key: Callable[[T], Hashable] | None = None,
        ttl: float | timedelta | None = None,
        *,
        max_keys: int = 100_000,
        scheduler: abc.SchedulerBase | None = None,
    ) -> Flow[T]:
        """:func:`portico_rx.operators.dedupe`."""
        return self.apply(dedupe(key, ttl, max_keys=max_keys, scheduler=scheduler))

    def debounce_by(
        self,
        key: Callable[[T], Hashable],
        duration: float | timedelta,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> Flow[T]:
        """:func:`portico_rx.operators.debounce_by`."""
        return self.apply(debounce_by(key, duration, scheduler=scheduler))

    def throttle_by(
        self,
        key: Callable[[T], Hashable],
        duration: float | timedelta,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> Flow[T]:
        """:func:`portico_rx.operators.throttle_by`."""
        return self.apply(throttle_by(key, duration, scheduler=scheduler))

    def rate_limit(
        self,
        count: int,
        per: float | timedelta,
        key: Callable[[T], Hashable] | None = None,
        *,
        excess: Excess = "drop",
        max_delayed: int = 10_000,
        scheduler: abc.SchedulerBase | None = None,
    ) -> Flow[T]:
        """:func:`portico_rx.operators.rate_limit`."""
        return self.apply(
            rate_limit(count, per, key, excess=excess, max_delayed=max_delayed, scheduler=scheduler)
        )

    def changed(
        self,
        key: Callable[[T], Any] | None = None,
        *,
        group: Callable[[T], Hashable] | None = None,
        max_groups: int = 100_000,
    ) -> Flow[T]:
        """:func:`portico_rx.operators.changed`."""
        return self.apply(changed(key, group=group, max_groups=max_groups))

    def to_job(
        self,
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
    ) -> Observable[JobRequest | EventFailed]:
        """:func:`portico_rx.to_job`: the finished pipeline, for a ``PipelineTrigger``."""
        operator: Callable[[Observable[T]], Observable[JobRequest | EventFailed]] = to_job(
            job_type,
            payload,
            queue_name=queue_name,
            priority=priority,
            idempotency_key=idempotency_key,
            metadata=metadata,
            idempotency_window=idempotency_window,
            delay=delay,
            run_at=run_at,
        )
        return self.observable.pipe(operator)


def _isolated(
    stage: str, function: Callable[[Any], Any], *, keep: bool
) -> Callable[[Observable[Any]], Observable[Any]]:
    """``filter`` (``keep=True``: emit the event when ``function`` is true) or ``map``
    (emit what ``function`` returns), passing ``EventFailed`` items through and turning
    a raising call into one."""

    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(event: Any) -> None:
                if type(event) is EventFailed:
                    observer.on_next(event)
                    return
                result = guarded(stage, function, event)
                if type(result) is EventFailed or not keep:
                    observer.on_next(result)
                elif result:
                    observer.on_next(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    return operator
