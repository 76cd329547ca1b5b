"""Event accounting: what became of every event a trigger received.

Every event ends in exactly one recorded :class:`EventOutcome`:

================  =====================================================================
``created``       a job was created for it (at least one new job, for a fan-out)
``duplicate``     every job it asked for existed already (its idempotency key was taken)
``dropped``       the pipeline let it go on purpose; ``stage`` says where when known:
                  ``"filter"`` (the synchronous pipeline did not pass it on: ``filter``,
                  ``dedupe`` …), ``"operator"`` (an operator held it and let it go:
                  debounced away), ``"overflow"`` (``overflow="drop"``)
``stale``         older than the trigger's ``max_age`` (``stale="dead_letter"``);
                  dead-lettered with stage ``"stale"``
``dead_lettered`` its job could not be created (``stage``: ``create_job``, ``to_job``,
                  ``pipeline``, ``settlement`` …; ``error`` says why)
``requeued``      given back to its source to be delivered again (``stage``: ``stop``,
                  the trigger stopped first; ``overflow``, ``max_pending`` reached
                  with ``overflow="dead_letter"``); a dead letter is kept too
================  =====================================================================

An event not settled yet is **held** (by an operator, the sink, a paused trigger): it is
counted in ``get_health().held_count`` and gets its record when it settles.

One :class:`OutcomeRecorder` per trigger keeps the counts and the last ``outcomes_size``
records (a bounded deque of small tuples of strings, built into :class:`EventOutcome`
values only when asked),
and logs each outcome at ``outcome_log_level`` on the ``portico_rx.outcomes`` logger
when the standard ``logging`` logger of that name is enabled for that level (checked
when the trigger starts). The hook is the delivery's settlement
(:mod:`portico_rx.pipeline.delivery`): a delivery gets its trigger's recorder when the
trigger first sees it (the tracker at emission, the sink when it takes the request);
requests built without a delivery are recorded by the sink directly.

An observer (:class:`~portico_rx.pipeline.instrument.OutcomeObserver`, installed by
:func:`portico_rx.telemetry.enable`, taken when the trigger starts) sees each event when
the recorder first watches it and when it settles (its span), and reads the recorder's
counts when metrics are collected: no second count. Without one, each hook is one
``None`` check.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.pipeline import instrument
from portico_rx.pipeline.delivery import Outcome

if TYPE_CHECKING:
    from portico_rx.pipeline.delivery import Claim, Delivery

__all__ = [
    "DEFAULT_OUTCOMES_SIZE",
    "OUTCOME_KINDS",
    "EventOutcome",
    "OutcomeRecorder",
]

logger = get_logger("portico_rx.outcomes")

DEFAULT_OUTCOMES_SIZE = 1000
"""How many outcomes a trigger keeps by default (``outcomes_size``)."""

CREATED = "created"
DUPLICATE = "duplicate"
DROPPED = "dropped"
STALE = "stale"
DEAD_LETTERED = "dead_lettered"
REQUEUED = "requeued"
OUTCOME_KINDS = (CREATED, DUPLICATE, DROPPED, STALE, DEAD_LETTERED, REQUEUED)
"""Every outcome an event can end in."""

_CREATED_OUTCOME = Outcome.CREATED
_DROPPED_OUTCOME = Outcome.DROPPED
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_NO_JOBS: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What became of one event.

    Attributes:
        seen_at: when the trigger's source saw the event (scheduler time).
        source: the source that emitted it (``"rabbitmq:orders"``, ``"cron:0 9 * * *"``).
        event_id: the source's id for the event, when it has one.
        idempotency_key: the event's key at its source (the job key is scoped from it).
        outcome: one of :data:`OUTCOME_KINDS`.
        stage: where it was dropped or dead-lettered, when known.
        job_id: the job created (or found, for a duplicate); the first one of a fan-out.
        job_ids: every job made from the event.
        error: why it was dead-lettered.
    """

    seen_at: datetime | None
    source: str | None
    event_id: str | None
    idempotency_key: str | None
    outcome: str
    stage: str | None = None
    job_id: str | None = None
    job_ids: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The outcome as a dict of JSON values (``seen_at`` in ISO 8601)."""
        return {
            "seen_at": self.seen_at.isoformat() if self.seen_at is not None else None,
            "source": self.source,
            "event_id": self.event_id,
            "idempotency_key": self.idempotency_key,
            "outcome": self.outcome,
            "stage": self.stage,
            "job_id": self.job_id,
            "job_ids": list(self.job_ids),
            "error": self.error,
        }


def check_outcome_options(outcomes_size: object, outcome_log_level: object) -> None:
    """Raise ``ConfigurationError`` for a bad ``outcomes_size`` or ``outcome_log_level``."""
    if isinstance(outcomes_size, bool) or not isinstance(outcomes_size, int) or outcomes_size < 0:
        raise ConfigurationError(
            f"outcomes_size={outcomes_size!r}: use a whole number of outcomes to keep, 0 or "
            f"more (default {DEFAULT_OUTCOMES_SIZE})"
        )
    if outcome_log_level is not None and outcome_log_level not in _LEVELS:
        raise ConfigurationError(
            f"outcome_log_level={outcome_log_level!r}: use 'debug', 'info', 'warning' or "
            "None (no line per event)"
        )


class OutcomeRecorder:
    """Counts, keeps and logs the outcome of every event of one trigger.

    Args:
        trigger: the trigger's name (in log lines).
        size: how many recent outcomes to keep (0: count only).
        log_level: the level of the per-event ``event_outcome`` line, or ``None``.
    """

    __slots__ = (
        "_append",
        "_log",
        "_observer",
        "_records",
        "counts",
        "log_level",
        "received",
        "settled_count",
        "trigger",
    )

    def __init__(self, trigger: str, *, size: int, log_level: str | None = "debug") -> None:
        check_outcome_options(size, log_level)
        self.trigger = trigger
        self.log_level = log_level
        self._records: deque[tuple[Any, ...]] = deque(maxlen=size)
        self._append = self._records.append
        self.counts: dict[str, int] = dict.fromkeys(OUTCOME_KINDS, 0)
        self.received = 0  # deliveries given this recorder
        self.settled_count = 0  # … of which settled (recorded)
        self._log: Any = None
        self._observer: instrument.OutcomeObserver | None = None
        self.refresh_logging()

    def refresh_logging(self) -> None:
        """Decide (again) whether each outcome gets a log line: when the standard
        ``logging`` logger ``portico_rx.outcomes`` is enabled for ``log_level``; and
        whether an observer (:func:`portico_rx.telemetry.enable`) sees them too."""
        observe = instrument.hooks.outcomes
        self._observer = observe(self) if observe is not None else None
        level = _LEVELS.get(self.log_level or "")
        enabled = level is not None and logging.getLogger("portico_rx.outcomes").isEnabledFor(level)
        self._log = (
            getattr(logger.bind(trigger=self.trigger), self.log_level or "debug")
            if enabled
            else None
        )

    @property
    def held(self) -> int:
        """Events received and not settled yet (held by an operator, the sink, a pause)."""
        return self.received - self.settled_count

    # -- the hooks ---------------------------------------------------------------------

    def watch(self, delivery: Delivery) -> None:
        """Record ``delivery``'s outcome when it settles (once per delivery)."""
        if delivery._recorder is None and not delivery.settled:
            delivery._recorder = self
            self.received += 1
            if self._observer is not None:
                self._observer.watched(delivery)

    def watch_claim(self, claim: Claim) -> None:
        """Watch every delivery ``claim`` holds."""
        delivery = claim._delivery
        if delivery is not None:
            if delivery._recorder is None and not delivery.settled:
                delivery._recorder = self
                self.received += 1
                if self._observer is not None:
                    self._observer.watched(delivery)
            return
        for each in claim.deliveries:
            self.watch(each)

    def settled(self, delivery: Delivery, at_seal: bool) -> None:
        """Called once by ``delivery`` when it settles (``at_seal``: while the source
        sealed it, i.e. nothing held it past its synchronous emission).

        The hot path is a new job: one tuple appended. A record holds strings, a
        datetime and ``None`` only, so the garbage collector stops tracking it at its
        first pass (keeping the delivery itself would keep a tracked object per event
        alive); ``created`` is counted as what is left over."""
        self.settled_count += 1
        if delivery.outcome is _CREATED_OUTCOME and not delivery._existing:
            job_ids = delivery.job_ids
            self._append(
                (
                    delivery.seen_at,
                    delivery.source,
                    delivery.event_id,
                    delivery.idempotency_key,
                    CREATED,
                    None,
                    job_ids[0] if len(job_ids) == 1 else tuple(job_ids),
                    None,
                )
            )
            if self._log is not None:
                self._log_outcome(delivery, CREATED, None, None)
            if self._observer is not None:
                self._observer.settled(delivery, CREATED, None, None)
            return
        self._settled_otherwise(delivery, at_seal)

    def _settled_otherwise(self, delivery: Delivery, at_seal: bool) -> None:
        outcome = delivery.outcome
        stage = error = None
        if outcome is _CREATED_OUTCOME:  # some job existed: a duplicate if all did
            kind = DUPLICATE if delivery.duplicate else CREATED
        elif outcome is _DROPPED_OUTCOME:
            kind = DROPPED
            stage = "filter" if at_seal else "operator"
        else:
            failure = delivery.failure
            if failure is not None:
                kind, stage, error = failure
            elif delivery.requeued:
                kind, stage = REQUEUED, "stop"
            else:
                kind = DEAD_LETTERED
        if kind != CREATED:
            self.counts[kind] += 1
        job_ids = delivery.job_ids
        self._append(
            (
                delivery.seen_at,
                delivery.source,
                delivery.event_id,
                delivery.idempotency_key,
                kind,
                stage,
                (job_ids[0] if len(job_ids) == 1 else tuple(job_ids)) if job_ids else None,
                error,
            )
        )
        if self._log is not None:
            self._log_outcome(delivery, kind, stage, error)
        if self._observer is not None:
            self._observer.settled(delivery, kind, stage, error)

    def _log_outcome(
        self, delivery: Delivery, kind: str, stage: str | None, error: str | None
    ) -> None:
        self._log(
            "event_outcome",
            outcome=kind,
            source=delivery.source,
            event_id=delivery.event_id,
            stage=stage,
            job_ids=list(delivery.job_ids),
            error=error,
        )

    def record(
        self,
        outcome: str,
        *,
        seen_at: datetime | None = None,
        source: str | None = None,
        stage: str | None = None,
        job_id: str | None = None,
        key: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of a request that came with no delivery (a direct call,
        an observable of plain values): the sink calls this."""
        self.received += 1
        self.settled_count += 1
        if outcome != CREATED:
            self.counts[outcome] += 1
        self._append((seen_at, source, None, key, outcome, stage, job_id, error))
        if self._log is not None:
            self._log("event_outcome", outcome=outcome, source=source, stage=stage, error=error)

    def record_repeat(
        self, source: str, event_id: str, key: str, job_id: str, seen_at: datetime | None
    ) -> None:
        """A repeat its source answered itself (a webhook's idempotency cache gave the
        existing job's id): a ``duplicate`` that never reached the sink."""
        self.received += 1
        self.settled_count += 1
        self.counts[DUPLICATE] += 1
        self._append((seen_at, source, event_id, key, DUPLICATE, None, job_id, None))
        if self._log is not None:
            self._log("event_outcome", outcome=DUPLICATE, source=source, event_id=event_id)

    # -- queries -----------------------------------------------------------------------

    def outcomes(
        self, outcome: str | None = None, *, limit: int | None = None
    ) -> list[EventOutcome]:
        """The kept outcomes, oldest first; only ``outcome``'s kind when given, the last
        ``limit`` when given."""
        if outcome is not None and outcome not in OUTCOME_KINDS:
            raise ConfigurationError(
                f"outcome={outcome!r}: use one of {', '.join(OUTCOME_KINDS)} (or None for all)"
            )
        rows = [row for row in self._records if outcome is None or row[4] == outcome]
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return [_outcome(*row) for row in rows]

    def summary(self) -> dict[str, int]:
        """Counts per outcome since the trigger was built, plus ``held``."""
        counts = dict(self.counts)
        counts[CREATED] = self.settled_count - sum(counts.values())
        return {**counts, "held": self.held}


def _outcome(
    seen_at: datetime | None,
    source: str | None,
    event_id: str | None,
    key: str | None,
    kind: str,
    stage: str | None,
    jobs: str | tuple[str, ...] | None,
    error: str | None,
) -> EventOutcome:
    """One kept record as an EventOutcome (``jobs``: one job id, or a tuple of several)."""
    job_ids = (jobs,) if isinstance(jobs, str) else (jobs or _NO_JOBS)
    return EventOutcome(
        seen_at=seen_at,
        source=source,
        event_id=event_id,
        idempotency_key=key,
        outcome=kind,
        stage=stage,
        job_id=job_ids[0] if job_ids else None,
        job_ids=job_ids,
        error=error,
    )
