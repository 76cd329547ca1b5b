"""Dead letters: events that could not become jobs, kept so nothing is lost silently.

The sink keeps the recent ones in memory (``trigger.dead_letters``, a
:class:`DeadLetter` each, holding the event itself) and, when the trigger has a
:class:`~portico_rx.ports.dead_letter_store.DeadLetterStore`, stores each one there as
its :meth:`DeadLetter.record` (the event in its JSON form), under the same ``id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from portico_rx.errors import ConfigurationError
from portico_rx.logs import get_logger
from portico_rx.models import Job, JobRequest
from portico_rx.pipeline.provenance import dead_letter_key
from portico_rx.ports.dead_letter_store import (
    DeadLetterRecord,
    DeadLetterStore,
    check_resolution,
    new_record,
)
from portico_rx.ports.job_creator import JobCreator, request_entry

__all__ = ["DeadLetter", "discard", "redrive"]

logger = get_logger("portico_rx.dead_letters")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event the trigger gave up on.

    Attributes:
        trigger: the trigger's name.
        stage: where it failed: ``"create_job"`` (out of retries), ``"to_job"`` (the
            event could not be converted), ``"pipeline"`` (a user operator raised),
            ``"stale"`` (older than ``max_age``), ``"overflow"`` (``max_pending``
            reached), ``"stop"`` (still in flight when ``stop()`` timed out).
        error: the error, as text.
        at: scheduler time of the decision.
        request: the job request, when one was built.
        event: the event, when known.
        source: the delivery's source, when known.
        event_id: the delivery's event id, when known.
        attempts: ``create_job`` attempts made.
        id: the letter's id; its stored record has the same one.
        provenance: the job's metadata as the sink built it (its ``idempotency_key`` is
            the one a redrive uses).
        requeued: the event was also given back to its source, which redelivers it.
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
    id: UUID = field(default_factory=uuid4)
    provenance: dict[str, Any] = field(default_factory=dict)
    requeued: bool = False

    def record(self) -> DeadLetterRecord:
        """This letter as a store keeps it (the event in its JSON form)."""
        return new_record(
            id=self.id,
            trigger=self.trigger,
            stage=self.stage,
            error=self.error,
            at=self.at,
            attempts=self.attempts,
            request=self.request,
            event=self.event,
            source=self.source,
            event_id=self.event_id,
            provenance=self.provenance,
            requeued=self.requeued,
        )


async def redrive(store: DeadLetterStore, creator: JobCreator, letter_id: UUID) -> Job:
    """Create the job of the stored dead letter ``letter_id`` through ``creator`` and
    mark the letter ``redriven`` with it: the one redrive, used by
    ``JobService.redrive_dead_letter``, ``PipelineTrigger.redrive_dead_letter``, the
    ``portico-rx dead-letters redrive`` command and the dashboard.

    The job is the stored request with the stored provenance as its metadata, plus
    ``redriven_from`` (the letter's id), created as the sink creates jobs
    (``create_from_request``), so it has the original idempotency key; a letter whose
    request had none gets ``dead-letter:{id}``. Redriving twice, or concurrently, makes
    one job; a ``redriven`` letter returns its job.

    Raises:
        DeadLetterNotFoundError: no dead letter has this id.
        ConfigurationError: the letter was discarded, or has no job request (it failed
            before ``to_job`` built one).
    """
    record = await store.get_dead_letter(letter_id)
    if record is not None and record.status == "redriven" and record.job_id is not None:
        job = await creator.get_job(record.job_id)
        if job is not None:
            return job
    if record is None or record.status != "open":
        check_resolution(record, "redriven", letter_id)
    assert record is not None
    if record.request is None:
        raise ConfigurationError(
            f"dead letter {record.id} (stage {record.stage!r}) has no job request to "
            "create: the event failed before to_job built one. Discard it "
            "(`portico-rx dead-letters discard`) or fix the pipeline and replay the event"
        )
    metadata = dict(record.provenance) or dict(record.request.metadata)
    metadata["idempotency_key"] = record.idempotency_key or dead_letter_key(record.id)
    metadata["redriven_from"] = str(record.id)
    job, _ = await request_entry(creator)(record.request, metadata)
    try:
        await store.resolve_dead_letter(record.id, "redriven", job.id)
    except ConfigurationError:
        again = await store.get_dead_letter(record.id)
        if again is None or again.status != "redriven":
            raise
        # a concurrent redrive resolved it first; its job has the same key: this one
    logger.info(
        "dead_letter_redriven",
        dead_letter_id=str(record.id),
        trigger=record.trigger,
        job_id=str(job.id),
        idempotency_key=metadata["idempotency_key"],
    )
    return job


async def discard(store: DeadLetterStore, letter_id: UUID) -> DeadLetterRecord:
    """Mark the open stored dead letter ``letter_id`` ``discarded`` (no job is created).

    Raises:
        DeadLetterNotFoundError: no dead letter has this id.
        ConfigurationError: the letter is not open (the message names its status).
    """
    record = await store.resolve_dead_letter(letter_id, "discarded")
    logger.info("dead_letter_discarded", dead_letter_id=str(record.id), trigger=record.trigger)
    return record
