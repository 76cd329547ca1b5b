"""``RedisStreamTrigger``: jobs from a Redis stream, read through a consumer group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from portico_rx.adapters.job_trigger.message_envelope import UnknownEventType
from portico_rx.adapters.job_trigger.queue_trigger import QueueTrigger
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources.queues.redis_stream import (
    DEFAULT_COUNT,
    default_consumer_name,
    redis_stream,
)

__all__ = ["RedisStreamTrigger"]


class RedisStreamTrigger(QueueTrigger):
    """Create jobs from stream entries whose ``body`` field is the spec's JSON envelope
    ``{"event_type", "payload", "queue", "priority"}``.

    Entries are ``XACK``-ed only once their job exists; bad entries are copied to the
    stream ``<stream>.dead`` and acked; entries of a consumer that died are claimed after
    ``claim_idle`` seconds. Several instances with the same ``group`` (and their own
    ``consumer`` names) share the entries.

    Args:
        job_creator: where jobs are created.
        redis_url: Redis URL, e.g. ``"redis://127.0.0.1:6379/0"``.
        stream: the stream key.
        group: the consumer group (created if missing).
        job_type_mapping: event type -> job type.
        consumer: this instance's consumer name (default: the host name, so a restarted
            process resumes its own pending entries at once).
        name: trigger name (default ``"redis:<stream>:<group>"``); competing instances
            must share it.
        count: entries in flight at most (default 32).
        claim_idle: seconds before a dead consumer's entries are claimed (default 60).
        dead_letter_stream: default ``""`` = ``<stream>.dead``; ``None`` for none.
        payload_schemas: job type -> pydantic model validating the payload (default none).
        unknown_event_type: ``"dead_letter"`` (default) or ``"drop"``.
        reconnect_delay: first wait before reconnecting after the broker was lost, in
            seconds (default 0.5), doubling up to ``reconnect_max_delay`` (default 15).
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger`.
    """

    def __init__(
        self,
        job_creator: JobCreator,
        redis_url: str,
        stream: str,
        group: str,
        job_type_mapping: dict[str, str],
        *,
        consumer: str | None = None,
        name: str | None = None,
        count: int = DEFAULT_COUNT,
        claim_idle: float = 60.0,
        dead_letter_stream: str | None = "",
        payload_schemas: Mapping[str, type[BaseModel]] | None = None,
        unknown_event_type: UnknownEventType = "dead_letter",
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 15.0,
        **options: Any,
    ) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer_name()
        source = redis_stream(
            redis_url,
            stream,
            group,
            self.consumer,
            count=count,
            claim_idle=claim_idle,
            dead_letter_stream=dead_letter_stream,
            scheduler=options.get("scheduler"),
            reconnect_delay=reconnect_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        super().__init__(
            source,
            job_creator,
            job_type_mapping,
            name=name or f"redis:{stream}:{group}",
            payload_schemas=payload_schemas,
            unknown_event_type=unknown_event_type,
            **options,
        )
