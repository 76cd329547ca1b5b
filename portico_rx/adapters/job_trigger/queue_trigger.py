"""``QueueTrigger``: the shared shape of the message-queue triggers.

A queue source whose messages the spec's envelope decoder (``{"event_type", "payload",
"queue", "priority"}``) turns into job requests, each claiming its message's delivery,
run as a :class:`~portico_rx.pipeline.PipelineTrigger`. Bad messages become dead
letters; a message is acked only after its job exists.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from reactivex import Observable
from reactivex import operators as ops

from portico_rx.adapters.job_trigger.message_envelope import EnvelopeDecoder, UnknownEventType
from portico_rx.models import JobRequest, TriggerHealth
from portico_rx.pipeline import PipelineTrigger, clock
from portico_rx.pipeline.isolation import EventFailed, guarded
from portico_rx.pipeline.to_job import requests
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources.queues.consumer import QueueSource, check_positive
from portico_rx.sources.queues.message import QueueMessage

__all__ = ["QueueTrigger"]


def _is_kept(item: JobRequest | EventFailed | None) -> bool:
    return item is not None


class QueueTrigger(PipelineTrigger):
    """Create a job per message of ``source``, mapping ``event_type`` to a job type.

    ``start()`` returns once the consumer is connected and has declared what it
    consumes (or raises :class:`~portico_rx.errors.TriggerStartError` /
    :class:`~portico_rx.errors.ConfigurationError`): the one mechanism of
    :mod:`portico_rx.pipeline.readiness`, the same for a bare ``PipelineTrigger``.
    ``get_health()`` is
    unhealthy while the broker is unreachable; ``details["connection"]`` holds the
    :class:`~portico_rx.sources.queues.consumer.ConnectionStatus` (outages, reconnects,
    dead letters, in flight). ``stop()`` stops consuming, lets jobs in flight be created
    and acked, then closes the connection.

    Args:
        source: the queue source.
        job_creator: where jobs are created.
        job_type_mapping: event type -> job type.
        name: the trigger's name (competing instances must share it: it scopes the
            idempotency keys).
        payload_schemas: job type -> pydantic model validating the payload (default none).
        unknown_event_type: ``"dead_letter"`` (default) or ``"drop"``.
        connect_timeout: seconds ``start()`` waits for the broker (default 15).
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger` (``retry``,
            ``max_concurrency``, ``stop_timeout``, ``alert``, ``on_dead_letter``,
            ``scheduler`` …).
    """

    def __init__(
        self,
        source: QueueSource,
        job_creator: JobCreator,
        job_type_mapping: Mapping[str, str],
        *,
        name: str,
        payload_schemas: Mapping[str, type[BaseModel]] | None = None,
        unknown_event_type: UnknownEventType = "dead_letter",
        connect_timeout: float = 15.0,
        **options: Any,
    ) -> None:
        check_positive("connect_timeout", connect_timeout)
        self.decoder = EnvelopeDecoder(job_type_mapping, payload_schemas, unknown_event_type)
        self.source = source
        # ``delay_seconds`` counts from the trigger's scheduler time (read only then)
        decoder = functools.partial(self.decoder, now=self._now)

        def decode(message: QueueMessage) -> JobRequest | EventFailed | None:
            return guarded("decode", decoder, message)

        pipeline: Observable[Any] = source.pipe(ops.map(decode), ops.filter(_is_kept), requests())
        super().__init__(
            pipeline, job_creator, name=name, connect_timeout=connect_timeout, **options
        )

    def _now(self) -> datetime:
        return clock.now(clock.resolve_scheduler(self.scheduler))

    @property
    def job_type_mapping(self) -> dict[str, str]:
        return self.decoder.job_type_mapping

    def health_details(self) -> dict[str, Any]:
        return {"connection": self.source.status.as_dict()}

    def get_health(self) -> TriggerHealth:
        health = super().get_health()
        if health.healthy and not self.source.status.connected:
            return health.model_copy(update={"healthy": False})
        return health
