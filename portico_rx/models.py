"""The values portico_rx passes around: jobs, job requests and trigger health.

Field rules (enforced by :func:`check_job_fields`, by the models and by every adapter):

* ``job_type``: 1-200 characters, letters, digits and ``_ . : -``, starting with a letter,
  digit or ``_`` (``"email.send"``, ``"report:daily"``).
* ``queue_name``: 1-100 characters, letters, digits and ``_ . -``.
* ``priority``: an integer from ``PRIORITY_MIN`` (-100) to ``PRIORITY_MAX`` (100); higher
  runs first.
* ``payload`` and ``metadata``: a ``dict`` with string keys that ``json.dumps`` accepts
  (no NaN/Infinity, no sets, no datetimes: convert them to strings first).
* the idempotency key (``idempotency_key=`` or ``metadata["idempotency_key"]``): ``None``
  or a non-empty string of at most ``IDEMPOTENCY_KEY_MAX`` (512) characters, enforced by
  :func:`check_idempotency_key` in every job creator.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from portico_rx.errors import InvalidJobError

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "Job",
    "JobRequest",
    "JobStatus",
    "RunState",
    "TriggerHealth",
    "attach_claim",
    "check_idempotency_key",
    "check_job_fields",
    "fields_of",
    "request_claim",
    "trusted",
    "trusted_request",
    "utcnow",
]

PRIORITY_MIN = -100
PRIORITY_MAX = 100
IDEMPOTENCY_KEY_MAX = 512
"""Longest idempotency key a job creator accepts (the stores index it)."""
_STRICT_JSON = json.JSONEncoder(allow_nan=False)  # one encoder: json.dumps builds one per call
_JOB_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


def utcnow() -> datetime:
    """Wall-clock now, tz-aware UTC. Only stores use it; sources take time from a scheduler."""
    return datetime.now(UTC)


def _check_job_type(value: object) -> str:
    if not isinstance(value, str) or not _JOB_TYPE.match(value):
        raise InvalidJobError(
            "job_type",
            value,
            "use 1-200 letters, digits or '_ . : -', e.g. 'email.send'",
        )
    return value


def _check_queue_name(value: object) -> str:
    if not isinstance(value, str) or not _QUEUE_NAME.match(value):
        raise InvalidJobError(
            "queue_name",
            value,
            "use 1-100 letters, digits or '_ . -', e.g. 'emails'",
        )
    return value


def _check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJobError("priority", value, "use an integer")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidJobError(
            "priority", value, f"use an integer from {PRIORITY_MIN} to {PRIORITY_MAX}"
        )
    return value


def _reject_non_finite(value: Any, field: str, _seen: set[int] | None = None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobError(field, value, "NaN and Infinity are not JSON; send null or a number")
    if isinstance(value, dict | list | tuple):
        seen = set() if _seen is None else _seen
        if id(value) in seen:  # circular: the encoder's own error says so
            return
        seen.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            _reject_non_finite(item, field, seen)


_JSON_SCALARS = frozenset({str, int, bool, type(None)})
_PLAIN_JSON_DEPTH = 16


def _plainly_json(value: Any, depth: int = 0) -> bool:
    """``True`` when ``value`` is JSON by its types alone: dicts with ``str`` keys and
    lists, nested at most 16 deep, of exactly ``str``, ``int``, ``bool``, ``None`` and
    finite ``float`` values (what ``json.loads`` returns). ``False`` means "ask the
    encoder" (subclasses, tuples, other key types, NaN, deeper or circular structures).
    Several times faster than encoding for the payloads webhooks and sources carry."""
    if depth > _PLAIN_JSON_DEPTH:
        return False
    kind = type(value)
    if kind is dict:
        if not _str_keys(value):
            return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for item in items:
        item_kind = type(item)
        if item_kind in _JSON_SCALARS:
            continue
        if item_kind is float:
            if not math.isfinite(item):
                return False
        elif not _plainly_json(item, depth + 1):
            return False
    return True


def _check_json_object(field: str, value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidJobError(field, value, "use a JSON object (a dict with string keys)")
    if _plainly_json(value):
        return value
    try:
        _STRICT_JSON.encode(value)
    except (TypeError, ValueError) as exc:
        _reject_non_finite(value, field)
        raise InvalidJobError(
            field, value, f"it must be JSON-serialisable ({exc}); convert such values to strings"
        ) from None
    return value


def check_job_fields(
    job_type: object,
    payload: object,
    queue_name: object = "default",
    priority: object = 0,
    metadata: object = None,
) -> tuple[str, dict[str, Any], str, int, dict[str, Any]]:
    """Validate the fields of a job before anything is written.

    Returns:
        The fields, normalised (``None`` payload/metadata become ``{}``).

    Raises:
        InvalidJobError: naming the first invalid field, its value and the fix.
    """
    return (
        _check_job_type(job_type),
        _check_json_object("payload", payload),
        _check_queue_name(queue_name),
        _check_priority(priority),
        _check_json_object("metadata", metadata),
    )


def check_idempotency_key(key: object, metadata: dict[str, Any]) -> str | None:
    """The job's idempotency key: ``key`` if given, else ``metadata["idempotency_key"]``.

    Every job creator calls it once, after :func:`check_job_fields` (``metadata`` is the
    checked dict), so the rule below is the same for ``JobService``, the Celery bridge
    and ``RecordingJobCreator``.

    Returns:
        ``None`` (no key) or the key: a non-empty string of at most
        :data:`IDEMPOTENCY_KEY_MAX` characters.

    Raises:
        InvalidJobError: ``field == "idempotency_key"``, naming the value and the fix.
    """
    if key is None:
        key = metadata.get("idempotency_key")
        if key is None:
            return None
    if not isinstance(key, str) or not key or len(key) > IDEMPOTENCY_KEY_MAX:
        fix = f"use a non-empty string of at most {IDEMPOTENCY_KEY_MAX} characters"
        if isinstance(key, str) and key:
            fix = f"it has {len(key)} characters; {fix} (e.g. a hash of the long part)"
        else:
            fix = f"{fix}, e.g. 'orders:1234'"
        raise InvalidJobError("idempotency_key", key, fix)
    return key


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    PENDING = "pending"
    """Waiting to be picked up by a worker."""
    SCHEDULED = "scheduled"
    """Waiting for ``scheduled_at`` (a delayed job, or a retry after backoff)."""
    RUNNING = "running"
    """Claimed by a worker."""
    COMPLETED = "completed"
    FAILED = "failed"
    """Failed and out of retries."""
    CANCELLED = "cancelled"


class RunState(enum.StrEnum):
    """Lifecycle of a trigger or worker."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Job(BaseModel):
    """A unit of background work, as stored in a job queue.

    ``Job(id=uuid4(), job_type="x", queue_name="default", payload={})`` is a valid job.
    Jobs are values: stores return new copies (``job.model_copy(update=...)``).
    """

    model_config = ConfigDict(frozen=True)

    id: UUID = Field(default_factory=uuid4)
    job_type: str
    queue_name: str = "default"
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0
    max_retries: int = 3
    created_at: datetime = Field(default_factory=utcnow)
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    idempotency_key: str | None = None
    result: Any = None
    error: str | None = None

    @field_validator("job_type")
    @classmethod
    def _job_type(cls, value: str) -> str:
        return _check_job_type(value)

    @field_validator("queue_name")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        return _check_queue_name(value)

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: int) -> int:
        return _check_priority(value)


_JOB_ARGUMENTS = (
    "job_type",
    "queue_name",
    "payload",
    "priority",
    "metadata",
    "idempotency_key",
    "scheduled_at",
    "status",
    "max_retries",
)
# BaseModel's own slots, written through their descriptors (cheaper than by name).
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__

M = TypeVar("M", bound=BaseModel)


def trusted(
    model: type[M],
    fields: dict[str, Any],
    fields_set: set[str] | frozenset[str],
    private: dict[str, Any] | None = None,
) -> M:
    """An instance of ``model`` from ``fields`` that were already checked, unvalidated.

    The one place that skips pydantic validation (``model_construct`` minus its generic
    bookkeeping, for the hot paths: a job per event, hundreds of ticks per timer
    wake-up). ``fields`` must hold every field of ``model``, of the right types;
    ``tests/test_models.py`` pins the result equal to the validated model on every
    path that uses it.
    """
    instance = model.__new__(model)
    _set_dict(instance, fields)
    # A ``set`` is used as given (pass a fresh one, or one shared by many instances of a
    # frozen model: pydantic copies it before it changes it, as in ``model_copy``).
    _set_fields_set(instance, fields_set if type(fields_set) is set else set(fields_set))
    _set_extra(instance, None)
    _set_private(instance, private)
    return instance


def fields_of(instance: BaseModel) -> dict[str, Any]:
    """The field values of a model instance, as stored (no copy: do not change it)."""
    return instance.__dict__


def _str_keys(mapping: dict[Any, Any]) -> bool:
    for key in mapping:  # noqa: SIM110  (a loop: faster than all() over a generator)
        if type(key) is not str:
            return False
    return True


def _new_job(
    job_type: str,
    queue_name: str,
    payload: dict[str, Any],
    priority: int,
    metadata: dict[str, Any],
    idempotency_key: str | None,
    scheduled_at: datetime | None,
    status: JobStatus,
    max_retries: int,
    *,
    own_metadata: bool = False,
) -> Job:
    """``Job(job_type=..., ..., max_retries=...)`` for fields already checked by
    :func:`check_job_fields` (and the caller), without validating them again.

    The hot path of ``JobService.create_job``: the job is equal to the validated one,
    with the same fields set and its own (shallow) copies of ``payload`` and
    ``metadata``, as pydantic makes them (``own_metadata=True``: ``metadata`` is the
    caller's fresh dict and becomes the job's). Arguments of other than the plain types
    (``int`` subclasses, datetime subclasses, keys that are not ``str`` …) take
    pydantic's path, which converts or refuses them.
    ``tests/test_models_job_fast_path.py`` pins both.
    """
    if not (
        type(priority) is int
        and type(max_retries) is int
        and type(job_type) is str
        and type(queue_name) is str
        and (idempotency_key is None or type(idempotency_key) is str)
        and (scheduled_at is None or type(scheduled_at) is datetime)
        and type(status) is JobStatus
        and _str_keys(payload)
        and _str_keys(metadata)
    ):
        return Job(
            job_type=job_type,
            queue_name=queue_name,
            payload=payload,
            priority=priority,
            metadata=metadata,
            idempotency_key=idempotency_key,
            scheduled_at=scheduled_at,
            status=status,
            max_retries=max_retries,
        )
    return trusted(
        Job,
        {
            "id": uuid4(),
            "job_type": job_type,
            "queue_name": queue_name,
            "payload": dict(payload),
            "priority": priority,
            "metadata": metadata if own_metadata else dict(metadata),
            "status": status,
            "attempts": 0,
            "max_retries": max_retries,
            "created_at": datetime.now(UTC),
            "scheduled_at": scheduled_at,
            "started_at": None,
            "completed_at": None,
            "idempotency_key": idempotency_key,
            "result": None,
            "error": None,
        },
        set(_JOB_ARGUMENTS),
    )


class JobRequest(BaseModel):
    """What a pipeline asks a :class:`~portico_rx.ports.job_creator.JobCreator` to create.

    Built by :func:`portico_rx.to_job`; validated on construction.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    queue_name: str = "default"
    priority: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    scheduled_at: datetime | None = None
    """Run the job no earlier than this (tz-aware): ``to_job(delay=/run_at=)``, a
    webhook's or queue message's ``run_at`` / ``delay_seconds``. ``None``: at once."""

    # Set by ``to_job``: the claim on the source event's delivery, and the delivery.
    _claim: Any = PrivateAttr(default=None)
    _delivery: Any = PrivateAttr(default=None)

    @field_validator("job_type")
    @classmethod
    def _job_type(cls, value: str) -> str:
        return _check_job_type(value)

    @field_validator("queue_name")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        return _check_queue_name(value)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> int:
        return _check_priority(value)

    @field_validator("payload", "metadata", mode="before")
    @classmethod
    def _json(cls, value: object, info: Any) -> dict[str, Any]:
        return _check_json_object(info.field_name, value)

    @field_validator("scheduled_at")
    @classmethod
    def _scheduled_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_aware("scheduled_at", value)


def check_aware(field: str, value: datetime) -> datetime:
    """``value`` if it is a timezone-aware datetime.

    Raises:
        InvalidJobError: naming ``field``, for a naive datetime (or not a datetime).
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJobError(
            field, value, "use a timezone-aware datetime, e.g. datetime(2030, 1, 1, tzinfo=UTC)"
        )
    return value


MAX_DELAY = timedelta(days=3650)
"""The longest delay a job can be given (``to_job(delay=)``, ``delay_seconds``): ten years."""


class RunAtFields(BaseModel):
    """``run_at`` / ``delay_seconds``: when a job sent over the wire (a webhook body, a
    queue message envelope) may run. Give at most one; neither: at once."""

    run_at: AwareDatetime | None = Field(
        default=None,
        description="run the job no earlier than this: an ISO 8601 time with a UTC offset, "
        "e.g. '2030-01-01T09:00:00+00:00'",
    )
    delay_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY.total_seconds(),
        allow_inf_nan=False,
        description="run the job this many seconds after it was received (0 to ten years)",
    )

    @model_validator(mode="after")
    def _one_of(self) -> RunAtFields:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give run_at or delay_seconds, not both")
        return self

    def scheduled_at(self, now: datetime | Callable[[], datetime]) -> datetime | None:
        """The job's ``scheduled_at``: ``run_at``, or ``now`` plus ``delay_seconds`` (a
        function ``now`` is called only then), or ``None``."""
        if self.run_at is not None:
            return self.run_at
        if self.delay_seconds is not None:
            start = now if isinstance(now, datetime) else now()
            return start + timedelta(seconds=self.delay_seconds)
        return None


_REQUEST_FIELDS = frozenset(JobRequest.model_fields)
# Shared by every trusted request (~0.5 KB each): all fields, or all but ``scheduled_at``.
_REQUEST_FIELDS_SET = set(_REQUEST_FIELDS)
_UNSCHEDULED_FIELDS_SET = _REQUEST_FIELDS_SET - {"scheduled_at"}
_new_request = BaseModel.__new__


def trusted_request(
    *,
    job_type: str,
    payload: dict[str, Any],
    queue_name: str,
    priority: int,
    metadata: dict[str, Any],
    idempotency_key: str | None,
    claim: Any = None,
    delivery: Any = None,
    scheduled_at: datetime | None = None,
) -> JobRequest:
    """A :class:`JobRequest` from fields already checked (by ``to_job`` or a trigger's
    config), with the claim and delivery of the event it came from."""
    # ``trusted(JobRequest, ...)`` inlined: one request per event.
    request = _new_request(JobRequest)
    _set_dict(
        request,
        {
            "job_type": job_type,
            "payload": payload,
            "queue_name": queue_name,
            "priority": priority,
            "metadata": metadata,
            "idempotency_key": idempotency_key,
            "scheduled_at": scheduled_at,
        },
    )
    _set_fields_set(
        request, _UNSCHEDULED_FIELDS_SET if scheduled_at is None else _REQUEST_FIELDS_SET
    )
    _set_extra(request, None)
    _set_private(request, {"_claim": claim, "_delivery": delivery})
    return request


def request_claim(request: JobRequest) -> tuple[Any, Any]:
    """The ``(claim, delivery)`` attached to ``request`` (``(None, None)`` if none)."""
    private = request.__pydantic_private__  # pydantic's private-attribute lookup is slow
    if not private:
        return None, None
    return private.get("_claim"), private.get("_delivery")


def attach_claim(request: JobRequest, claim: Any, delivery: Any) -> None:
    """Attach the claim and delivery of the event ``request`` was built from."""
    _set_private(request, {"_claim": claim, "_delivery": delivery})


class TriggerHealth(BaseModel):
    """A trigger's health, as returned by ``JobTrigger.get_health()``.

    The first four fields are the spec's; the rest tell what an operator needs at 3 a.m.
    """

    model_config = ConfigDict(frozen=True)

    is_running: bool
    last_job_created: datetime | None = None
    jobs_created_count: int = 0
    errors_count: int = 0
    name: str = ""
    state: RunState = RunState.STOPPED
    healthy: bool = True
    events_seen: int = 0
    in_flight: int = 0
    dead_lettered_count: int = 0
    retries_count: int = 0
    restarts_count: int = 0
    untracked_count: int = 0
    """Events that reached ``to_job`` without a live delivery (see ``strict_settlement``)."""
    duplicates_count: int = 0
    """Job requests whose idempotency key had a job already: found, not created (not in
    ``jobs_created_count``)."""
    stale_count: int = 0
    """Events older than the trigger's ``max_age``."""
    dropped_count: int = 0
    """Events the pipeline dropped on purpose (a filter, a debounce, ``overflow="drop"``)."""
    held_count: int = 0
    """Events received and not settled yet (held by an operator, queued in the sink)."""
    last_error: str | None = None
    last_error_at: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
