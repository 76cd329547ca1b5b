"""Calling a user's key function for one event, isolated from the stream."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from portico_rx.pipeline.delivery import claim_current
from portico_rx.pipeline.isolation import EventFailed, guarded

__all__ = ["KeyFunction", "NoEvent", "failed", "key_of"]

KeyFunction = Callable[[Any], Hashable]


class NoEvent:
    """The class of no event: where a per-event hot path starts the class it remembers.

    The keyed operators pass an :class:`EventFailed` on untouched. Their hot paths
    remember the class of the last event that was none (``plain``) and call
    ``isinstance(event, EventFailed)`` only when an event's class differs, which in a
    stream of one kind of event is its first event (and each failure, and the event
    after it): ``event.__class__ is not plain`` is a third of ``isinstance``'s cost on a
    miss. The answer is ``isinstance``'s (it depends on the class only, unless a
    subclass of ``EventFailed`` reports another ``__class__``).
    """


def _hashed(key: KeyFunction, event: Any) -> Hashable:
    value = key(event)
    hash(value)  # an unhashable key fails here, for this event only
    return value


def key_of(stage: str, key: KeyFunction, event: Any) -> Hashable | EventFailed:
    """``key(event)`` (checked to be hashable), or an :class:`EventFailed` to emit
    downstream when the key function raises; the operator goes on with the next event."""
    return guarded(stage, lambda e: _hashed(key, e), event)


def failed(stage: str, event: Any, error: Exception) -> EventFailed:
    """The :class:`EventFailed` for ``event`` whose ``stage`` raised ``error`` (claiming the
    current delivery), as :func:`key_of` builds it.

    The per-event hot paths of the keyed operators call the key function and look the
    key up inside one ``try`` (an unhashable key raises ``TypeError`` at the lookup) and
    build the failure here, instead of paying :func:`key_of`'s extra calls per event."""
    return EventFailed(event=event, error=error, stage=stage, claim=claim_current())
