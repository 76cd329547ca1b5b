"""Deliveries: where an event came from, and how to settle it with its source.

A source wraps each event it emits in a :class:`Delivery` and emits it with
:func:`deliver`. While the event travels synchronously down the pipeline the delivery
is *current* (a context variable), so :func:`~portico_rx.to_job` can claim it even after
user operators have mapped the event into something else. The rules:

* every job request built from the event holds a :class:`Claim`;
* when the sink has created the job it resolves the claim ``ok``; when it gives up
  (dead letter) it resolves it failed;
* once the source has finished emitting (``seal``) and every claim is resolved, the
  delivery is settled exactly once: ``ack`` if every claim succeeded **or no claim was
  taken** (the pipeline dropped the event on purpose, e.g. with ``filter``), ``nack``
  otherwise.

Operators that hold an event past the synchronous call (debounce, batch, …) take a claim
with :meth:`Delivery.claim`, re-emit inside :func:`activate`, and resolve their own claim
afterwards. Stock reactivex operators that shift time (``delay``, ``debounce``,
``observe_on``) do not know about claims: the event is settled as dropped when the
synchronous call returns. Use the ``portico_rx.operators`` versions in pipelines whose
source redelivers (queues).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import inspect
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from portico_rx.logs import get_logger

if TYPE_CHECKING:
    from portico_rx.pipeline.outcomes import OutcomeRecorder
    from portico_rx.pipeline.tracking import Tracker

__all__ = [
    "Claim",
    "Delivery",
    "Outcome",
    "activate",
    "claim_current",
    "current_delivery",
    "deliver",
]

logger = get_logger("portico_rx.pipeline.delivery")

Settle = Callable[[], Awaitable[None] | None]
NackSettle = Callable[[bool], Awaitable[None] | None]

_current: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "portico_rx_current_delivery", default=None
)
_tracker: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar(
    "portico_rx_tracker", default=None
)
"""The settlement tracker of the trigger whose pipeline runs now (see ``tracking``)."""
_NO_ATTRIBUTES: dict[str, Any] = {}  # shared by deliveries without attributes: never written
_source_trackers: dict[str, Tracker] = {}
"""Source name -> the tracker of the running trigger whose pipeline holds its events,
for events emitted from outside any pipeline's context (a Subject fed by the caller, a
callback of a foreign thread or library)."""


class Outcome(enum.StrEnum):
    """How a delivery was settled."""

    PENDING = "pending"
    CREATED = "created"
    """Every job built from the event exists; the source was acked."""
    DROPPED = "dropped"
    """The pipeline dropped the event on purpose; the source was acked."""
    FAILED = "failed"
    """At least one job could not be created; the source was nacked."""


_PENDING = Outcome.PENDING  # a module constant: ``Outcome.PENDING`` is an enum class lookup
_CREATED = Outcome.CREATED
_DROPPED = Outcome.DROPPED
_FAILED = Outcome.FAILED


class Delivery:
    """One event's provenance (source, id, key, times) and its settlement callbacks.

    Args:
        source: who emitted the event, e.g. ``"cron:0 9 * * *"`` or ``"rabbitmq:orders"``.
        seen_at: when the source saw the event (scheduler time).
        event_id: the source's id for the event (message id, stream entry id …).
        idempotency_key: a deterministic key for the event, the same on every replica and
            on redelivery (cron: fire time; queue: message id); ``None`` if there is none.
        attributes: extra provenance copied into each job's metadata (JSON values).
        occurred_at: the source's own time for the event (broker publish time, webhook
            timestamp, file mtime, planned fire time), timezone-aware; ``None`` when the
            source has none (then the event is as old as ``seen_at``). A job's
            ``lateness_s`` and the trigger's ``max_age`` are measured from it.
        ack: called once when the event is settled successfully.
        nack: called once with ``requeue`` when it is settled as failed.
    """

    __slots__ = (
        "_callbacks",
        "_existing",
        "_made",
        "_nack_requeue",
        "_ok",
        "_pending",
        "_recorder",
        "_sealed",
        "_settle_task",
        "_span",  # set by portico_rx.telemetry only (never initialised: read with getattr)
        "ack",
        "attributes",
        "event",
        "event_id",
        "failure",
        "idempotency_key",
        "job_ids",
        "nack",
        "occurred_at",
        "outcome",
        "seen_at",
        "source",
    )

    _span: Any  # the event's span while telemetry is enabled (see portico_rx.telemetry)

    def __init__(
        self,
        *,
        source: str,
        seen_at: datetime,
        event_id: str | None = None,
        idempotency_key: str | None = None,
        attributes: dict[str, Any] | None = None,
        ack: Settle | None = None,
        nack: NackSettle | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        self.source = source
        self.occurred_at = occurred_at
        self.seen_at = seen_at
        self.event_id = event_id
        self.idempotency_key = idempotency_key
        self.attributes = attributes if attributes is not None else _NO_ATTRIBUTES
        self.ack = ack
        self.nack = nack
        self.outcome = _PENDING
        self.event: Any = None
        self.job_ids: list[str] | tuple[str, ...] = ()  # a list once a job exists
        self._pending = 0
        self._existing = 0  # how many of job_ids the creator found already existing
        self._made = False  # a job was made that has no id to report (a create step's)
        self._sealed = False
        self._ok = True
        self._nack_requeue = True  # until a claim fails for good: then it is dead
        self._callbacks: list[Callable[[Delivery], None]] | None = None
        self._settle_task: asyncio.Future[None] | None = None
        self._recorder: OutcomeRecorder | None = None  # the trigger's, once it saw this
        self.failure: tuple[str, str, str] | None = None  # (outcome, stage, error)

    def __repr__(self) -> str:
        return (
            f"Delivery(source={self.source!r}, event_id={self.event_id!r}, "
            f"outcome={self.outcome.value}, pending={self._pending})"
        )

    @property
    def settled(self) -> bool:
        return self.outcome is not _PENDING

    @property
    def duplicate(self) -> bool:
        """Every job it got already existed (the creator said so: a repeated key).

        ``False`` when a job was new, when there is none, or when the creator cannot
        tell (its ``create_job`` returns only the job)."""
        return bool(self.job_ids) and self._existing == len(self.job_ids)

    @property
    def requeued(self) -> bool:
        """Settled as failed and given back to its source to be delivered again."""
        return self.outcome is _FAILED and self._nack_requeue

    def note_failure(self, outcome: str, stage: str, error: str) -> None:
        """Say why a claim on it is about to fail (the sink: dead letter, stale,
        overflow); the first reason is the one its outcome records."""
        if self.failure is None:
            self.failure = (outcome, stage, error)

    @property
    def unclaimed(self) -> bool:
        """Nothing holds it and nothing failed: sealed now, it would settle as dropped."""
        return self._pending == 0 and self._ok and not self.job_ids and not self.settled

    def claim(self) -> Claim:
        """Take a claim: the delivery will not settle before the claim is resolved."""
        if self.outcome is not _PENDING:
            raise RuntimeError(f"{self!r} is already settled; it cannot be claimed again")
        self._pending += 1
        return Claim(self)  # the one-delivery form: no tuple

    def seal(self) -> None:
        """The source has finished emitting this event; settle if nothing holds it."""
        self._sealed = True
        self._maybe_settle(True)

    def add_done_callback(self, callback: Callable[[Delivery], None]) -> None:
        """Call ``callback(delivery)`` once it is settled (at once if it already is)."""
        if self.settled:
            callback(self)
        else:
            if self._callbacks is None:
                self._callbacks = [callback]
            else:
                self._callbacks.append(callback)

    async def wait_settled(self) -> Outcome:
        """Wait until settled (including an async ack/nack) and return the outcome."""
        if not self.settled:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.add_done_callback(lambda _d: None if future.done() else future.set_result(None))
            await future
        if self._settle_task is not None:
            with contextlib.suppress(Exception):
                await self._settle_task
        return self.outcome

    def _resolve(
        self, ok: bool, requeue: bool, job_id: str | None, existing: bool, made: bool = False
    ) -> None:
        self._pending -= 1
        if made:
            self._made = True
        if existing:
            self._existing += 1
        if job_id is not None:
            if isinstance(self.job_ids, list):
                self.job_ids.append(job_id)
            else:
                self.job_ids = [job_id]
        if not ok:
            self._ok = False
            self._nack_requeue = self._nack_requeue and requeue  # a failure for good wins
        self._maybe_settle()

    def _maybe_settle(self, at_seal: bool = False) -> None:
        if not self._sealed or self._pending > 0 or self.outcome is not _PENDING:
            return
        if not self._ok:
            self.outcome = _FAILED
            nack, requeue = self.nack, self._nack_requeue
            call = (lambda: nack(requeue)) if nack is not None else None
        else:
            self.outcome = _CREATED if self.job_ids or self._made else _DROPPED
            call = self.ack
        if call is not None:
            self._run_settle(call)
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:  # a callback must not break settlement of others
                logger.exception("delivery_callback_failed", source=self.source)
        recorder = self._recorder
        if recorder is not None:
            recorder.settled(self, at_seal)

    def _run_settle(self, call: Callable[[], Awaitable[None] | None]) -> None:
        try:
            result = call()
        except Exception as exc:
            logger.error(
                "delivery_settle_failed",
                source=self.source,
                event_id=self.event_id,
                outcome=self.outcome.value,
                error=str(exc),
            )
            return
        if result is not None and inspect.isawaitable(result):  # a plain ack returns None
            self._settle_task = asyncio.ensure_future(result)
            self._settle_task.add_done_callback(self._log_settle_error)

    def _log_settle_error(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "delivery_settle_failed",
                source=self.source,
                event_id=self.event_id,
                outcome=self.outcome.value,
                error=str(task.exception()),
            )


class Claim:
    """A hold on one or more deliveries; resolve it exactly once.

    The common claim holds one delivery (``Delivery.claim``) and keeps it alone, without
    a tuple: a pending event keeps one object fewer alive. ``Claim.on`` holds several.
    """

    __slots__ = ("_deliveries", "_delivery", "_resolved")

    def __init__(self, *deliveries: Delivery) -> None:
        if len(deliveries) == 1:
            self._delivery: Delivery | None = deliveries[0]
            self._deliveries: tuple[Delivery, ...] | None = None
        else:
            self._delivery = None
            self._deliveries = deliveries
        self._resolved = False

    @classmethod
    def on(cls, deliveries: list[Delivery]) -> Claim:
        """One claim over several deliveries (a batch built from many events)."""
        for delivery in deliveries:
            delivery._pending += 1
        return cls(*deliveries)

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        delivery = self._delivery
        if delivery is not None:
            return (delivery,)
        assert self._deliveries is not None
        return self._deliveries

    @property
    def resolved(self) -> bool:
        return self._resolved

    def resolve(
        self,
        ok: bool,
        *,
        requeue: bool = False,
        job_id: str | None = None,
        existing: bool = False,
        made: bool = False,
    ) -> None:
        """Resolve the claim: ``ok`` when the job exists, else failed (``requeue`` asks the
        source to redeliver rather than dead-letter; ``existing``: the job ``job_id``
        existed before, a repeated key; ``made``: a job was made that has no id to
        report, so the event is settled as created, not dropped). A second call does
        nothing."""
        if self._resolved:
            return
        self._resolved = True
        delivery = self._delivery
        if delivery is not None:
            delivery._resolve(ok, requeue, job_id, existing, made)
            return
        for each in self._deliveries or ():
            each._resolve(ok, requeue, job_id, existing, made)


def current_delivery() -> Delivery | None:
    """The delivery of the event being emitted right now, if any."""
    return _current.get()


def claim_current() -> Claim | None:
    """Claim the current delivery, or return ``None`` when the event has none."""
    delivery = _current.get()
    if delivery is None or delivery.settled:
        return None
    return delivery.claim()


@contextlib.contextmanager
def activate(delivery: Delivery | None) -> Iterator[None]:
    """Make ``delivery`` current while re-emitting an event that was held."""
    token = _current.set(delivery)
    try:
        yield
    finally:
        _current.reset(token)


def deliver(observer: Any, event: Any, delivery: Delivery) -> None:
    """Emit ``event`` to ``observer`` with ``delivery`` current, then seal the delivery.

    Sources call this instead of ``observer.on_next(event)``. Inside a trigger, the
    trigger's tracker may park the delivery first (see :mod:`portico_rx.pipeline.tracking`).
    """
    delivery.event = event
    token = _current.set(delivery)
    try:
        observer.on_next(event)
    finally:
        _current.reset(token)
        tracker = _tracker.get() or _source_trackers.get(delivery.source)
        if tracker is not None:
            tracker.emitted(event, delivery)
        delivery.seal()
