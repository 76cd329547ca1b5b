"""``changed``: emit an event only when its value differs from the previous one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from portico_rx.operators._arguments import positive_count
from portico_rx.operators._keys import KeyFunction, NoEvent, failed
from portico_rx.operators._table import KeyedTable
from portico_rx.pipeline.isolation import EventFailed

__all__ = ["changed"]

T = TypeVar("T")
_NOTHING = object()


def _identity(event: Any) -> Any:
    return event


def _no_group(_event: Any) -> None:
    return None


def changed(
    key: Callable[[Any], Any] | None = None,
    *,
    group: KeyFunction | None = None,
    max_groups: int = 100_000,
) -> Callable[[Observable[T]], Observable[T | EventFailed]]:
    """Emit an event when ``key(event)`` differs (``!=``) from the value of the previous
    event of its group; the first event of each group is emitted.

    Without ``group`` the whole stream is one group (reactivex's
    ``distinct_until_changed``). With ``group`` each entity is compared with its own
    previous value: ``changed(lambda r: r.status, group=lambda r: r.order_id)`` emits an
    order each time *its* status changes. At most ``max_groups`` groups are remembered
    (the least recently changed is forgotten first; its next event counts as a change).

    Settlement: an unchanged event is dropped synchronously and acked as dropped.

    Marble (key = the letter)::

        events:  -a-a-b-b-b-a-|
        changed: -a---b-----a-|

    Args:
        key: the compared value (default the event itself).
        group: which entity the event is about (hashable; default: one group).
        max_groups: most groups remembered at once (default 100 000).

    Returns:
        An operator for ``Observable.pipe``. A ``key`` or ``group`` function that
        raises for one event turns that event into an ``EventFailed``.

    Raises:
        ConfigurationError: ``max_groups`` is not positive.

    Example:
        >>> from portico_rx.operators import changed
        >>> from portico_rx.testing import run_pipeline
        >>> polls = [(0, "green"), (60, "green"), (120, "red"), (180, "red")]
        >>> run_pipeline(changed(), events=polls, until=200)
        [(0.0, 'green'), (120.0, 'red')]
    """
    limit = positive_count("max_groups", max_groups)
    value_of = key if key is not None else _identity
    group_of = group if group is not None else _no_group

    def operator(source: Observable[T]) -> Observable[T | EventFailed]:
        def subscribe(
            observer: abc.ObserverBase[T | EventFailed],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            table: KeyedTable[Any] = KeyedTable(None, limit=limit, ttl=None)
            last = table.entries
            get, move_to_end, cap = last.get, last.move_to_end, table.cap
            emit = observer.on_next
            plain: type = NoEvent  # the class of the last event that was no failure

            def on_next(event: T) -> None:
                nonlocal plain
                if event.__class__ is not plain:  # isinstance once per change of class
                    if isinstance(event, EventFailed):
                        emit(event)
                        return
                    plain = event.__class__
                # Three ``try`` blocks (free when nothing raises) name the failing stage.
                try:
                    name = group_of(event)
                    previous = get(name, _NOTHING)  # an unhashable group raises here
                except Exception as exc:
                    emit(failed("changed.group", event, exc))
                    return
                try:
                    value = value_of(event)
                except Exception as exc:
                    emit(failed("changed.key", event, exc))
                    return
                if previous is _NOTHING:  # a new group: appended, maybe over the bound
                    last[name] = value
                    if len(last) > cap:
                        table.settle(None)
                else:
                    try:
                        if value == previous:
                            return
                    except Exception as exc:
                        emit(failed("changed.compare", event, exc))
                        return
                    last[name] = value
                    move_to_end(name)  # the least recently changed group goes first
                emit(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=subscribe_scheduler
            )

        return reactivex.create(subscribe)

    return operator
