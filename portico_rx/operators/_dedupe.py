"""``dedupe``: emit each key once, remembering keys for a ttl and at most ``max_keys``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_count, positive_duration
from portico_rx.operators._keys import KeyFunction, failed
from portico_rx.operators._scheduling import pick_scheduler
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["dedupe"]

T = TypeVar("T")


def _identity(event: Any) -> Any:
    return event


def dedupe(
    key: KeyFunction | None = None,
    ttl: float | timedelta | None = None,
    *,
    max_keys: int = 100_000,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Emit an event only if its key was not seen recently: each key at most once per
    ``ttl`` (counted from the emitted event; repeats do not extend it).

    Memory is bounded twice: a key is forgotten ``ttl`` after it was emitted, and the
    seen-set never holds more than ``max_keys`` keys (the oldest is forgotten first, so
    under more than ``max_keys`` distinct keys per ``ttl`` a very old key may pass
    again). With ``ttl=None`` only ``max_keys`` bounds it.

    Settlement: a duplicate is dropped (its delivery acked as deliberately dropped).

    Marble (``ttl`` = 5 ticks, key = the letter)::

        events: -a-b-a-b---a-|
        dedupe: -a-b-------a-|

    Args:
        key: the event's identity (hashable), e.g. ``lambda m: m.message_id``; default
            the event itself. A key function that raises for one event turns that event
            into an ``EventFailed``; the operator goes on.
        ttl: seconds (or a ``timedelta``) a key is remembered; ``None`` (default):
            until ``max_keys`` pushes it out.
        max_keys: most keys remembered at once (default 100 000).
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigurationError: ``ttl`` or ``max_keys`` is not positive.

    Example:
        >>> from portico_rx.operators import dedupe
        >>> from portico_rx.testing import run_pipeline
        >>> orders = [(0, "o-1"), (1, "o-2"), (2, "o-1"), (90, "o-1")]
        >>> run_pipeline(dedupe(ttl=60), events=orders, until=100)
        [(0.0, 'o-1'), (1.0, 'o-2'), (90.0, 'o-1')]
    """
    window = positive_duration("ttl", ttl) if ttl is not None else None
    limit = positive_count("max_keys", max_keys)
    key_function = key if key is not None else _identity

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            seen: OrderedDict[Any, datetime | None] = OrderedDict()
            # The oldest key's expiry (or later, after max_keys pushed one out): sweep then.
            front: list[datetime | None] = [None]

            def sweep(now: datetime) -> None:
                while seen:  # keys expire in insertion order: sweep the front
                    oldest, until = next(iter(seen.items()))
                    if until is None or until > now:
                        front[0] = until
                        return
                    del seen[oldest]
                front[0] = None

            def on_next(event: T) -> None:
                if isinstance(event, EventFailed):
                    observer.on_next(event)
                    return
                now = None
                if window is not None:
                    now = clock.now
                    due = front[0]
                    if due is not None and due <= now:
                        sweep(now)
                try:
                    name = key_function(event)
                    if name in seen:  # an unhashable key raises here, for this event only
                        return
                except Exception as exc:
                    observer.on_next(failed("dedupe.key", event, exc))
                    return
                expires = None if now is None or window is None else now + window
                seen[name] = expires
                if front[0] is None:
                    front[0] = expires
                if len(seen) > limit:
                    seen.popitem(last=False)
                observer.on_next(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=subscribe_scheduler
            )

        return reactivex.create(subscribe)

    return operator
