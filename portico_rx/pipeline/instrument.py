"""The instrumentation points of the core, and W3C trace context read from headers.

Nothing here imports OpenTelemetry. :data:`hooks` holds what
:func:`portico_rx.telemetry.enable` installs (``None`` until then), and the core reads
it where it builds its objects, not per event:

* ``hooks.outcomes(recorder)``: an :class:`OutcomeObserver` for a trigger's
  :class:`~portico_rx.pipeline.outcomes.OutcomeRecorder`, taken when the trigger starts
  (as its logging is decided), so a trigger started before ``enable()`` keeps none;
* ``hooks.store(queue)``: the job queue ``JobService`` and ``JobWorker`` call, wrapped to
  time each call (taken when they are built);
* ``hooks.job(job, worker, call)``: the awaitable a ``JobWorker`` awaits to run a handler
  (a span around it).

Trace context (:func:`trace_context`) is read by the sources that have headers (a
webhook's HTTP headers, a broker message's headers) into the delivery's attributes,
whence it is written into every job's metadata under :data:`TRACEPARENT` and
:data:`TRACESTATE`, with or without OpenTelemetry installed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from portico_rx.models import Job
    from portico_rx.pipeline.delivery import Delivery
    from portico_rx.pipeline.outcomes import OutcomeRecorder
    from portico_rx.ports.job_queue import JobQueue

__all__ = ["TRACEPARENT", "TRACESTATE", "Hooks", "OutcomeObserver", "hooks", "trace_context"]

TRACEPARENT = "traceparent"
"""The job metadata key (and header name) of the W3C ``traceparent``."""
TRACESTATE = "tracestate"
"""The job metadata key (and header name) of the W3C ``tracestate``."""

# version-trace id-parent id-flags (a later version may append fields: W3C says keep them)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[^\s]*)?")
_MAX_TRACESTATE = 512  # W3C: 32 members of at most 256 characters; keep the first 512


def trace_context(headers: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The W3C trace context in ``headers`` (lower-case ``traceparent`` and
    ``tracestate``; a ``Traceparent`` spelled so by a broker client too), as job
    metadata entries, or ``None`` when there is no valid ``traceparent``.

    Bytes are decoded as ASCII; a malformed ``traceparent`` is ignored (the event is not
    part of a trace then), and so is the ``tracestate`` that came with it.
    """
    if not headers:
        return None
    parent = headers.get(TRACEPARENT)
    if parent is None:
        parent = headers.get("Traceparent")
        if parent is None:
            return None
    parent = _text(parent)
    if parent is None or _TRACEPARENT.fullmatch(parent) is None or parent.startswith("ff"):
        return None
    context = {TRACEPARENT: parent}
    state = headers.get(TRACESTATE, headers.get("Tracestate"))
    state = _text(state) if state is not None else None
    if state:
        context[TRACESTATE] = state[:_MAX_TRACESTATE]
    return context


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("ascii").strip()
        except UnicodeDecodeError:
            return None
    if isinstance(value, list | tuple) and value:  # a header given as a list of values
        return _text(value[0])
    return None


class OutcomeObserver(Protocol):
    """What an :class:`~portico_rx.pipeline.outcomes.OutcomeRecorder` tells its observer
    (the counts it reads from the recorder itself)."""

    def watched(self, delivery: Delivery) -> None:
        """A trigger received ``delivery``'s event (before its job's metadata is built)."""

    def settled(self, delivery: Delivery, kind: str, stage: str | None, error: str | None) -> None:
        """``delivery`` settled with outcome ``kind``."""


class Hooks:
    """The installed instrumentation (every slot ``None``: nothing is instrumented)."""

    __slots__ = ("job", "outcomes", "store")

    def __init__(self) -> None:
        self.outcomes: Callable[[OutcomeRecorder], OutcomeObserver] | None = None
        self.store: Callable[[JobQueue], JobQueue] | None = None
        self.job: Callable[[Job, str, Awaitable[Any]], Awaitable[Any]] | None = None

    def clear(self) -> None:
        self.outcomes = self.store = self.job = None

    def wrap_store(self, queue: JobQueue) -> JobQueue:
        """``queue``, timed when a store hook is installed."""
        return queue if self.store is None else self.store(queue)


hooks = Hooks()
"""The one set of hooks of this process (see the module's docstring)."""
