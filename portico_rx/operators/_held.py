"""Holding an event past the synchronous ``on_next`` without losing its settlement.

An operator that keeps an event for later (debounce, delay, batch) takes a claim on the
event's delivery so the source is not acked before the event was used. Later it either
re-emits the event with its delivery current (:func:`release`), drops it on purpose
(:func:`discard`: acked as dropped), or hands it back because the pipeline is going away
(:func:`give_back`: nacked with ``requeue=True`` so a broker redelivers it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from portico_rx.pipeline.delivery import Claim, Delivery, activate, current_delivery

__all__ = ["Held", "discard", "give_back", "hold", "release"]

T = TypeVar("T")


@dataclass(slots=True)
class Held(Generic[T]):
    """An event kept by an operator, with the delivery it came with and our claim on it."""

    value: T
    delivery: Delivery | None
    claim: Claim | None


def hold(value: T) -> Held[T]:
    """Keep ``value``: claim the current delivery (if any) so it cannot settle yet."""
    delivery = current_delivery()
    if delivery is None or delivery.settled:
        return Held(value, delivery, None)
    return Held(value, delivery, delivery.claim())


def release(observer: Any, held: Held[Any], value: Any = None) -> None:
    """Emit the held event (or ``value`` built from it) with its delivery current, then
    resolve our claim: the delivery settles once downstream claims are resolved too."""
    try:
        with activate(held.delivery):
            observer.on_next(held.value if value is None else value)
    finally:
        if held.claim is not None:
            held.claim.resolve(True)


def discard(held: Held[Any]) -> None:
    """Drop the held event on purpose (merged away, superseded): acked as dropped."""
    if held.claim is not None:
        held.claim.resolve(True)


def give_back(held: Held[Any]) -> None:
    """The pipeline stops with the event still held: nack it with ``requeue=True``."""
    if held.claim is not None:
        held.claim.resolve(False, requeue=True)
