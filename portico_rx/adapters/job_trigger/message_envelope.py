"""The spec's queue message format, decoded straight into a job request.

A message is a JSON object ``{"event_type", "payload", "queue", "priority"}``; the
trigger's ``job_type_mapping`` turns the event type into a job type; an optional
pydantic schema per job type validates the payload. The decoder checks each job field
once (the job type when it is configured, the queue name, priority and payload per
message) and builds the :class:`~portico_rx.models.JobRequest` with
:func:`~portico_rx.models.trusted_request`, so nothing downstream checks them again.
Anything else is a bad message:
:class:`~portico_rx.sources.queues.message.InvalidMessageError`, dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from portico_rx.errors import ConfigurationError, InvalidJobError
from portico_rx.models import (
    JobRequest,
    RunAtFields,
    _check_job_type,
    _check_json_object,
    _check_priority,
    _check_queue_name,
    trusted_request,
    utcnow,
)
from portico_rx.sources.queues.message import InvalidMessageError, QueueMessage

__all__ = ["EnvelopeDecoder", "MessageEnvelope", "UnknownEventType"]

UnknownEventType = Literal["dead_letter", "drop"]


class MessageEnvelope(RunAtFields):
    """A queue message as the spec's ``RabbitMQTrigger`` reads it.

    ``{"event_type": "user.created", "payload": {...}, "queue": "emails", "priority": 5}``;
    ``payload`` defaults to ``{}``, ``queue`` to ``"default"``, ``priority`` to 0. Unknown
    fields are rejected (a typo must not pass silently). An optional ``run_at`` (ISO 8601
    with an offset) or ``delay_seconds`` (counted from when the trigger decodes the
    message, in the trigger's scheduler time) delays the job: it is ``SCHEDULED``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str = "default"
    priority: StrictInt = 0


class EnvelopeDecoder:
    """Decode a :class:`QueueMessage` body as a :class:`MessageEnvelope` into a job request.

    Args:
        job_type_mapping: event type -> job type, e.g. ``{"user.created": "email.welcome"}``.
        payload_schemas: job type -> pydantic model validating the payload (default none);
            the job gets the validated model dumped to JSON values.
        unknown_event_type: ``"dead_letter"`` (default) or ``"drop"`` (ack and ignore, as
            the spec's example does) for event types missing from the mapping.

    Raises:
        ConfigurationError: the mapping is empty or not str -> str, a job type is invalid,
            a schema is not a pydantic model, or ``unknown_event_type`` is unknown.
    """

    def __init__(
        self,
        job_type_mapping: Mapping[str, str],
        payload_schemas: Mapping[str, type[BaseModel]] | None = None,
        unknown_event_type: UnknownEventType = "dead_letter",
    ) -> None:
        if not isinstance(job_type_mapping, Mapping) or not job_type_mapping:
            raise ConfigurationError(
                f"job_type_mapping={job_type_mapping!r}: give a non-empty dict of event type "
                "-> job type, e.g. {'user.created': 'email.welcome'}"
            )
        for event_type, job_type in job_type_mapping.items():
            if not isinstance(event_type, str) or not event_type:
                raise ConfigurationError(
                    f"job_type_mapping key {event_type!r}: event types are non-empty strings"
                )
            _check_job_type(job_type)
        schemas = dict(payload_schemas or {})
        for job_type, schema in schemas.items():
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise ConfigurationError(
                    f"payload_schemas[{job_type!r}]={schema!r}: use a pydantic model class"
                )
        if unknown_event_type not in ("dead_letter", "drop"):
            raise ConfigurationError(
                f"unknown_event_type={unknown_event_type!r}: use 'dead_letter' or 'drop'"
            )
        self.job_type_mapping = dict(job_type_mapping)
        self.payload_schemas = schemas
        self.unknown_event_type = unknown_event_type

    def __call__(
        self, message: QueueMessage, now: Callable[[], datetime] = utcnow
    ) -> JobRequest | None:
        """The job request for ``message``, or ``None`` for an unknown event type with
        ``"drop"``. ``now`` is the clock a ``delay_seconds`` counts from (the trigger
        passes its scheduler's).

        The request carries no claim: the trigger attaches the message's delivery.

        Raises:
            InvalidMessageError: not JSON, not an envelope, unknown event type
                (``"dead_letter"``), a queue name or priority a job cannot have, or a
                payload failing its schema; the message names the message id and the fix.
        """
        try:  # the fast path, parsing and validating in one go
            envelope = MessageEnvelope.model_validate_json(message.body)
        except ValidationError:
            envelope = self._explain(message)
        return self._request(envelope, message, now)

    def _explain(self, message: QueueMessage) -> MessageEnvelope:
        """The slow path: parse step by step to say exactly what is wrong."""
        data = message.json_body()
        try:
            return MessageEnvelope.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidMessageError(
                f"{_where(message)}: {str(data)[:80]!r} is not an event envelope "
                f"({problems}); publish "
                '{"event_type": ..., "payload": {...}, "queue": ..., "priority": ...} '
                '(optionally "run_at" or "delay_seconds")'
            ) from None

    def _request(
        self, envelope: MessageEnvelope, message: QueueMessage, now: Callable[[], datetime]
    ) -> JobRequest | None:
        job_type = self.job_type_mapping.get(envelope.event_type)
        if job_type is None:
            if self.unknown_event_type == "drop":
                return None
            raise InvalidMessageError(
                f"{_where(message)}: event_type {envelope.event_type!r} is not in job_type_mapping "
                f"(known: {sorted(self.job_type_mapping)}); add it to the mapping"
            )
        payload = envelope.payload
        schema = self.payload_schemas.get(job_type)
        if schema is not None:
            try:
                payload = schema.model_validate(payload).model_dump(mode="json")
            except ValidationError as exc:
                raise InvalidMessageError(
                    f"{_where(message)}: payload for {job_type!r} fails {schema.__name__}: "
                    f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']} at "
                    f"{exc.errors()[0]['loc']}; fix the publisher"
                ) from None
        try:
            queue_name = _check_queue_name(envelope.queue)
            priority = _check_priority(envelope.priority)
            payload = _check_json_object("payload", payload)
        except InvalidJobError as exc:
            raise InvalidMessageError(f"{_where(message)}: {exc}; fix the publisher") from None
        return trusted_request(
            job_type=job_type,
            payload=payload,
            queue_name=queue_name,
            priority=priority,
            metadata={},
            idempotency_key=None,
            scheduled_at=envelope.scheduled_at(now),
        )


def _where(message: QueueMessage) -> str:
    return f"message {message.message_id!r} from {message.broker} {message.destination!r}"
