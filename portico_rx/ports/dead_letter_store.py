"""The DeadLetterStore port: dead letters kept in the job store, so a restart keeps them.

A dead letter is an event a trigger gave up on (its job could not be created, a user
operator raised, it was too old, …). The trigger's sink keeps the recent ones in memory
(``trigger.dead_letters``) and, when its job creator offers a store (``JobService`` over
a job queue that implements this port: memory, SQLite, PostgreSQL, Redis), writes each
one there as a :class:`DeadLetterRecord`. From there it can be listed, inspected,
redriven (its job created, with the original idempotency key) or discarded, from Python
(:class:`~portico_rx.kits.job.job_service.JobService`), the ``portico-rx dead-letters``
command and the dashboard. See ``docs/dead-letters.md``.

One contract suite (``tests/contract/test_dead_letter_store_contract.py``) checks every
store against the rules written on :class:`DeadLetterStore`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import to_jsonable_python

from portico_rx.errors import ConfigurationError, DeadLetterNotFoundError
from portico_rx.models import JobRequest, trusted

__all__ = [
    "DEAD_LETTER_STATUSES",
    "DeadLetterRecord",
    "DeadLetterStatus",
    "DeadLetterStore",
    "check_dead_letter_query",
    "check_resolution",
    "dead_letter_store_of",
    "json_safe",
    "letters_entry",
    "new_record",
]

DeadLetterStatus = Literal["open", "redriven", "discarded"]
"""``open``: waiting for a decision; ``redriven``: its job was created (``job_id``);
``discarded``: dropped on purpose."""
DEAD_LETTER_STATUSES: tuple[str, ...] = get_args(DeadLetterStatus)
_RESOLUTIONS = ("redriven", "discarded")


def json_safe(value: Any) -> Any:
    """``value`` as JSON values (dicts, lists, strings, numbers, booleans, ``None``).

    Pydantic models, dataclasses, datetimes, UUIDs, sets … become their JSON form (bytes
    as UTF-8 text, or base64 text when they are not UTF-8); anything else becomes its
    ``repr``, so every event can be stored.
    """
    try:
        return to_jsonable_python(value, fallback=repr)
    except (ValueError, TypeError):  # bytes that are not UTF-8, mostly
        try:
            return to_jsonable_python(value, fallback=repr, bytes_mode="base64")
        except (ValueError, TypeError):
            return repr(value)


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ConfigurationError(
            f"dead letter {field}={value!r} has no time zone: give a timezone-aware "
            "datetime (e.g. datetime.now(UTC))"
        )
    return value.astimezone(UTC)


class DeadLetterRecord(BaseModel):
    """One dead letter, as a store keeps it.

    Attributes:
        id: the letter's id (also ``DeadLetter.id`` of the in-memory copy).
        trigger: the trigger's name.
        stage: where it failed: ``"create_job"`` (out of retries), ``"to_job"``,
            ``"pipeline"`` (a user operator raised), ``"stale"`` (older than
            ``max_age``), ``"overflow"`` (``max_pending`` reached), ``"stop"`` (still in
            flight when ``stop()`` timed out).
        error: the error, as text.
        at: when the trigger gave up (its scheduler's time, UTC).
        attempts: ``create_job`` attempts made.
        request: the job request, when one was built (what a redrive creates).
        event: the event in its JSON form (see :func:`json_safe`), when known.
        source: the delivery's source (``"rabbitmq:orders"``), when known.
        event_id: the delivery's event id (message id, stream entry id), when known.
        provenance: the job's metadata as the sink built it: trigger, source,
            ``seen_at``, event id, ``lateness_s`` and the ``idempotency_key`` a redrive
            creates the job with.
        requeued: the event was also given back to its source (stages ``"stop"`` and
            ``"overflow"``), which redelivers it; redriving it as well still makes one
            job (same key).
        status: ``"open"``, ``"redriven"`` or ``"discarded"``.
        job_id: the job a redrive created (or found, for its key).
        resolved_at: when it was redriven or discarded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UUID = Field(default_factory=uuid4)
    trigger: str
    stage: str
    error: str
    at: datetime
    attempts: int = 0
    request: JobRequest | None = None
    event: Any = None
    source: str | None = None
    event_id: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    requeued: bool = False
    status: DeadLetterStatus = "open"
    job_id: UUID | None = None
    resolved_at: datetime | None = None

    @field_validator("at", "resolved_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: Any) -> datetime | None:
        return _utc(value, info.field_name)

    @field_validator("event", "provenance", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return json_safe(value)

    @property
    def idempotency_key(self) -> str | None:
        """The key the job of this letter is created with (``provenance``'s)."""
        key = self.provenance.get("idempotency_key")
        if key is None and self.request is not None:
            key = self.request.idempotency_key
        return key if isinstance(key, str) else None

    def resolved(
        self, status: str, job_id: UUID | None = None, *, at: datetime | None = None
    ) -> DeadLetterRecord:
        """This letter, ``status`` (``"redriven"``/``"discarded"``) as of ``at`` (now).

        Raises:
            ConfigurationError: ``status`` is not a resolution, or the letter is not
                open (the message names its status).
        """
        check_resolution(self, status)
        return self.model_copy(
            update={
                "status": status,
                "job_id": job_id,
                "resolved_at": _utc(at, "resolved_at") or datetime.now(UTC),
            }
        )


_RECORD_FIELDS = tuple(DeadLetterRecord.model_fields)
_GIVEN_FIELDS = frozenset(_RECORD_FIELDS) - {"status", "job_id", "resolved_at"}
_GIVEN_FIELDS_SET = set(_GIVEN_FIELDS)  # shared by the records new_record makes (frozen)


def new_record(
    *,
    id: UUID,
    trigger: str,
    stage: str,
    error: str,
    at: datetime,
    attempts: int,
    request: JobRequest | None,
    event: Any,
    source: str | None,
    event_id: str | None,
    provenance: dict[str, Any],
    requeued: bool,
) -> DeadLetterRecord:
    """``DeadLetterRecord(id=..., ..., requeued=...)``, an open letter, validated as the
    model validates it (``at`` made UTC, ``event`` and ``provenance`` in their JSON
    form) without pydantic's generic path: what the sink's writer builds per letter (a
    burst makes hundreds of thousands). The record is equal to the validated one, with
    the same fields set (one set shared by all of them: ~0.7 KB less per letter a store
    keeps in memory). Arguments of other than the plain types take pydantic's path,
    which converts or refuses them; ``tests/pipeline/test_dead_letter.py`` pins both.
    """
    if not (
        type(id) is UUID
        and type(trigger) is str
        and type(stage) is str
        and type(error) is str
        and type(at) is datetime
        and at.tzinfo is not None
        and type(attempts) is int
        and (request is None or type(request) is JobRequest)
        and (source is None or type(source) is str)
        and (event_id is None or type(event_id) is str)
        and type(provenance) is dict
        and type(requeued) is bool
    ):
        return DeadLetterRecord(
            id=id,
            trigger=trigger,
            stage=stage,
            error=error,
            at=at,
            attempts=attempts,
            request=request,
            event=event,
            source=source,
            event_id=event_id,
            provenance=provenance,
            requeued=requeued,
        )
    return trusted(
        DeadLetterRecord,
        {
            "id": id,
            "trigger": trigger,
            "stage": stage,
            "error": error,
            "at": at.astimezone(UTC),
            "attempts": attempts,
            "request": request,
            "event": json_safe(event),
            "source": source,
            "event_id": event_id,
            "provenance": json_safe(provenance),
            "requeued": requeued,
            "status": "open",
            "job_id": None,
            "resolved_at": None,
        },
        _GIVEN_FIELDS_SET,
    )


def check_dead_letter_query(status: object, limit: object) -> None:
    """Raise ``ConfigurationError`` for a bad ``list_dead_letters`` filter."""
    if status is not None and status not in DEAD_LETTER_STATUSES:
        raise ConfigurationError(
            f"status={status!r}: use one of {', '.join(DEAD_LETTER_STATUSES)} (or None for all)"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit={limit!r}: use a whole number, 1 or more")


def check_resolution(record: DeadLetterRecord | None, status: str, letter_id: Any = None) -> None:
    """Raise unless ``record`` (``None``: not stored) is open and ``status`` resolves it.

    Raises:
        ConfigurationError: ``status`` is not ``"redriven"``/``"discarded"``, or the
            letter was already resolved (named in the message).
        DeadLetterNotFoundError: ``record`` is ``None``.
    """
    if status not in _RESOLUTIONS:
        raise ConfigurationError(
            f"status={status!r}: a dead letter is resolved as 'redriven' or 'discarded'"
        )
    if record is None:
        raise DeadLetterNotFoundError(
            f"no dead letter with id {letter_id}: list them with `portico-rx dead-letters list`"
        )
    if record.status != "open":
        job = f" (job {record.job_id})" if record.job_id is not None else ""
        raise ConfigurationError(
            f"dead letter {record.id} is already {record.status}{job}; only open dead "
            "letters can be redriven or discarded"
        )


class DeadLetterStore(ABC):
    """Keeps dead letters across restarts.

    Contract:

    * ``add_dead_letter`` stores a record under its id (adding an id again replaces
      nothing and returns the stored record); ``add_dead_letters`` stores many, each as
      ``add_dead_letter`` would, in order;
    * ``list_dead_letters`` returns the newest first (by ``at``, then by when added);
    * ``resolve_dead_letter`` moves an open letter to ``"redriven"`` or
      ``"discarded"`` atomically: of two concurrent resolutions one wins, the other
      raises ``ConfigurationError``;
    * unknown ids raise :class:`~portico_rx.errors.DeadLetterNotFoundError` (a
      ``JobNotFoundError``); an unreachable store raises ``QueueUnavailableError``.
    """

    @abstractmethod
    async def add_dead_letter(self, record: DeadLetterRecord) -> DeadLetterRecord:
        """Store ``record``; returns the stored record."""

    async def add_dead_letters(self, records: Sequence[DeadLetterRecord]) -> list[DeadLetterRecord]:
        """Store ``records``, in order, each as :meth:`add_dead_letter` does; returns
        the stored records (for an id stored already, the stored one).

        What a trigger's sink calls with the letters made since its last write (a burst
        overflowing ``max_pending`` makes thousands in one loop turn). A store
        overrides this to write them in one call (one transaction); this default adds
        them one after another.

        Raises:
            Exception: whatever ``add_dead_letter`` raises. Which of the records were
                stored is then unknown; adding them again is safe (an id stored already
                is kept).
        """
        return [await self.add_dead_letter(record) for record in records]

    @abstractmethod
    async def get_dead_letter(self, letter_id: UUID) -> DeadLetterRecord | None:
        """The record with ``letter_id``, or ``None``."""

    @abstractmethod
    async def list_dead_letters(
        self, *, trigger: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[DeadLetterRecord]:
        """Records of ``trigger`` (any when ``None``) with ``status`` (any when
        ``None``), newest first, at most ``limit``.

        Raises:
            ConfigurationError: ``status`` is not a status or ``limit`` is below 1.
        """

    @abstractmethod
    async def resolve_dead_letter(
        self, letter_id: UUID, status: str, job_id: UUID | None = None
    ) -> DeadLetterRecord:
        """Mark the open letter ``letter_id`` ``status`` (with the redrive's ``job_id``).

        Returns:
            The updated record (``resolved_at`` set).

        Raises:
            DeadLetterNotFoundError: no letter has this id.
            ConfigurationError: ``status`` is not ``"redriven"``/``"discarded"``, or the
                letter is not open (the message names its status).
        """


LettersEntry = Callable[[Sequence[DeadLetterRecord]], Awaitable[list[DeadLetterRecord]]]


def letters_entry(store: DeadLetterStore) -> LettersEntry:
    """The callable the sink writes its dead letters with: ``store.add_dead_letters``
    when the store's own class provides it at least as specifically as
    ``add_dead_letter``, else the port's default (one ``add_dead_letter`` after
    another).

    The rule of :func:`~portico_rx.ports.job_creator.batch_entry`: a subclass that
    overrides only ``add_dead_letter`` (to count, to refuse, to forward), or an
    instance whose ``add_dead_letter`` was patched, sees every letter through it.
    """
    try:
        own = vars(store)
    except TypeError:  # __slots__: no instance attributes to patch
        own = {}
    if "add_dead_letters" in own:  # patched itself: that is what to call
        return store.add_dead_letters  # type: ignore[no-any-return]
    if "add_dead_letter" not in own:
        by_many = by_one = None
        for klass in type(store).__mro__:
            if by_many is None and "add_dead_letters" in vars(klass):
                by_many = klass
            if by_one is None and "add_dead_letter" in vars(klass):
                by_one = klass
        if by_many is not None and by_one is not None and issubclass(by_many, by_one):
            return store.add_dead_letters
    return lambda records: DeadLetterStore.add_dead_letters(store, records)


def dead_letter_store_of(owner: object) -> DeadLetterStore | None:
    """The dead letter store ``owner`` offers: ``owner`` itself when it is one, else its
    ``dead_letter_store`` attribute when that is one (``JobService``), else ``None``."""
    if isinstance(owner, DeadLetterStore):
        return owner
    store = getattr(owner, "dead_letter_store", None)
    return store if isinstance(store, DeadLetterStore) else None
