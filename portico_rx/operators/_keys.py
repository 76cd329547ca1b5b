"""Calling a user's key function for one event, isolated from the stream."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from portico_rx.pipeline.isolation import EventFailed, guarded

__all__ = ["KeyFunction", "key_of"]

KeyFunction = Callable[[Any], Hashable]


def _hashed(key: KeyFunction, event: Any) -> Hashable:
    value = key(event)
    hash(value)  # an unhashable key fails here, for this event only
    return value


def key_of(stage: str, key: KeyFunction, event: Any) -> Hashable | EventFailed:
    """``key(event)`` (checked to be hashable), or an :class:`EventFailed` to emit
    downstream when the key function raises; the operator goes on with the next event."""
    return guarded(stage, lambda e: _hashed(key, e), event)
