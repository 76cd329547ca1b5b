"""``throttle_by``: per key, let the first event through, then ignore the key for a while."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_duration
from portico_rx.operators._dedupe import once_per_window
from portico_rx.operators._keys import KeyFunction
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["throttle_by"]

T = TypeVar("T")


def throttle_by(
    key: KeyFunction,
    duration: float | timedelta,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Per key, emit the first event, then drop events of that key until ``duration``
    has passed since the emitted one (reactivex's ``throttle_first``, per key).

    Memory holds one deadline per key whose window is open; closed windows are swept as
    time moves on (at most an eighth of ``duration`` late), so a stream of ever-new keys
    stays bounded by the keys seen within ``duration`` and an eighth. It is ``dedupe``
    with ``ttl=duration`` and no ``max_keys``: the same rule, one implementation.

    Settlement: an event is emitted or dropped synchronously; a dropped event's delivery
    is acked as deliberately dropped (nothing is held).

    Marble (``duration`` = 4 ticks, key = the letter)::

        events:      -a-a-b-a---a-b-|
        throttle_by: -a---b-----a-b-|

    Args:
        key: the event's key (hashable). A key function that raises for one event turns
            that event into an ``EventFailed``; the operator goes on.
        duration: seconds (or a ``timedelta``) a key stays closed after it emitted.
        scheduler: where time comes from (default: the subscriber's).

    Returns:
        An operator for ``Observable.pipe``.

    Raises:
        ConfigurationError: ``duration`` is not positive.

    Example:
        >>> from portico_rx.operators import throttle_by
        >>> from portico_rx.testing import run_pipeline
        >>> alarms = [(0, "disk"), (1, "disk"), (2, "cpu"), (11, "disk")]
        >>> run_pipeline(throttle_by(lambda name: name, 10), events=alarms, until=20)
        [(0.0, 'disk'), (2.0, 'cpu'), (11.0, 'disk')]
    """
    window = positive_duration("duration", duration)
    return once_per_window("throttle_by.key", key, window, None, scheduler)
