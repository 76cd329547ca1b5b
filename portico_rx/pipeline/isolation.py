"""Per-event error isolation.

A user function that raises for one event must not end the stream (Rx would call
``on_error`` and the subscription would be over). Operators run user functions through
:func:`guarded`; a failure becomes an :class:`EventFailed` item that flows on to the
sink, which logs it, counts it in health, nacks the event's delivery (dead letter) and
keeps going. Operators pass ``EventFailed`` items through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from portico_rx.pipeline.delivery import Claim, claim_current

__all__ = ["EventFailed", "guarded"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class EventFailed:
    """An event whose processing raised inside the pipeline.

    Attributes:
        event: the event (as the failing stage saw it).
        error: the exception.
        stage: which stage failed, e.g. ``"to_job.payload"`` or ``"debounce_by.key"``.
        claim: a claim on the event's delivery, so it is nacked, not acked as dropped.
    """

    event: Any
    error: BaseException
    stage: str
    claim: Claim | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.stage}: {type(self.error).__name__}: {self.error}"


def guarded(stage: str, function: Callable[[T], R], event: T) -> R | EventFailed:
    """``function(event)``, or an :class:`EventFailed` (claiming the current delivery)."""
    try:
        return function(event)
    except Exception as exc:
        return EventFailed(event=event, error=exc, stage=stage, claim=claim_current())
