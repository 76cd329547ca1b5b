"""Dead letters: events that could not become jobs, kept so nothing is lost silently."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portico_rx.models import JobRequest

__all__ = ["DeadLetter"]


@dataclass(frozen=True)
class DeadLetter:
    """One event the trigger gave up on.

    Attributes:
        trigger: the trigger's name.
        stage: where it failed: ``"create_job"`` (out of retries), ``"to_job"`` (the
            event could not be converted), ``"pipeline"`` (a user operator raised),
            ``"stop"`` (still in flight when ``stop()`` timed out).
        error: the error, as text.
        at: scheduler time of the decision.
        request: the job request, when one was built.
        event: the event, when known.
        source: the delivery's source, when known.
        event_id: the delivery's event id, when known.
        attempts: ``create_job`` attempts made.
    """

    trigger: str
    stage: str
    error: str
    at: datetime
    request: JobRequest | None = None
    event: Any = None
    source: str | None = None
    event_id: str | None = None
    attempts: int = 0
