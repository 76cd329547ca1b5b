"""``dedupe``: emit each key once, remembering keys for a ttl and at most ``max_keys``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_count, positive_duration
from portico_rx.operators._keys import KeyFunction, NoEvent, failed
from portico_rx.operators._scheduling import pick_scheduler, time_reader
from portico_rx.operators._table import KeyedTable
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["dedupe", "once_per_window"]

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

    Memory is bounded twice: a key is forgotten ``ttl`` after it was emitted (its
    memory freed by a sweep within another eighth of ``ttl``, while events arrive),
    and the seen-set never holds more than ``max_keys`` keys (the oldest is forgotten
    first, so under more than ``max_keys`` distinct keys per ``ttl`` a very old key may
    pass again). With ``ttl=None`` only ``max_keys`` bounds it.

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
    return once_per_window("dedupe.key", key_function, window, limit, scheduler)


_KEPT = object()
"""The entry of a key remembered without a ttl (only ``max_keys`` forgets it)."""


def once_per_window(
    stage: str,
    key_function: KeyFunction,
    window: timedelta | None,
    limit: int | None,
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """The one implementation of ``dedupe`` and ``throttle_by`` (the same rule: a key
    passes when it did not pass within ``window``): the expiry of each key that passed,
    in a :class:`KeyedTable` (at most ``limit`` keys; ``window=None``: no expiry)."""

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            clock = pick_scheduler(scheduler, subscribe_scheduler)
            read_now = time_reader(clock)
            table: KeyedTable[Any] = KeyedTable(
                None if window is None else read_now(clock), limit=limit, ttl=window
            )
            entries = table.entries
            get, settle, cap = entries.get, table.settle, table.cap
            span = window if window is not None else timedelta(0)  # on_next: a window
            emit = observer.on_next
            plain: type = NoEvent  # the class of the last event that was no failure

            def on_next(event: T) -> None:  # with a window: each key once per window
                nonlocal plain
                if event.__class__ is not plain:  # isinstance once per change of class
                    if isinstance(event, EventFailed):
                        emit(event)
                        return
                    plain = event.__class__
                try:
                    name = key_function(event)
                    until = get(name)  # an unhashable key raises here, for this event only
                except Exception as exc:
                    emit(failed(stage, event, exc))
                    return
                now = read_now(clock)
                if until is None:
                    entries[name] = now + span
                    if len(entries) > cap or now >= table.due:
                        settle(now)
                elif until > now:  # remembered (an expired entry counts as gone)
                    return
                else:
                    table.put(name, now + span, now)
                emit(event)

            def on_next_kept(event: T) -> None:  # no window: each key once, while kept
                nonlocal plain
                if event.__class__ is not plain:  # isinstance once per change of class
                    if isinstance(event, EventFailed):
                        emit(event)
                        return
                    plain = event.__class__
                try:
                    name = key_function(event)
                    if name in entries:  # an unhashable key raises here
                        return
                except Exception as exc:
                    emit(failed(stage, event, exc))
                    return
                entries[name] = _KEPT
                if len(entries) > cap:
                    settle(None)
                emit(event)

            return source.subscribe(
                on_next if window is not None else on_next_kept,
                observer.on_error,
                observer.on_completed,
                scheduler=subscribe_scheduler,
            )

        return reactivex.create(subscribe)

    return operator
