"""``NatsTrigger``: jobs from a NATS JetStream durable consumer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from portico_rx.adapters.job_trigger.message_envelope import UnknownEventType
from portico_rx.adapters.job_trigger.queue_trigger import QueueTrigger
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources.queues.nats import DEFAULT_BATCH, default_durable_name, nats

__all__ = ["NatsTrigger"]


class NatsTrigger(QueueTrigger):
    """Create jobs from JetStream messages carrying the spec's JSON envelope
    ``{"event_type", "payload", "queue", "priority"}``.

    Messages are acked only once their job exists; bad messages are ``term``-ed (and
    copied to ``dead_letter_subject`` if given); instances sharing ``durable`` share the
    messages.

    Args:
        job_creator: where jobs are created.
        nats_url: NATS URL, e.g. ``"nats://127.0.0.1:4222"``.
        subject: the subject to consume (wildcards allowed).
        job_type_mapping: event type -> job type.
        durable: durable consumer name (default derived from ``subject``).
        stream: JetStream stream (default: the stream capturing ``subject``; created for
            the subject if named and missing).
        name: trigger name (default ``"nats:<durable>"``); competing instances must share it.
        batch: messages in flight at most (default 32).
        ack_wait: seconds before JetStream redelivers an unacked message (default 60).
        dead_letter_subject: where to publish a copy of bad messages (default none).
        payload_schemas: job type -> pydantic model validating the payload (default none).
        unknown_event_type: ``"dead_letter"`` (default) or ``"drop"``.
        reconnect_delay: first wait before reconnecting after the broker was lost, in
            seconds (default 0.5), doubling up to ``reconnect_max_delay`` (default 15).
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger`.
    """

    def __init__(
        self,
        job_creator: JobCreator,
        nats_url: str,
        subject: str,
        job_type_mapping: dict[str, str],
        *,
        durable: str | None = None,
        stream: str | None = None,
        name: str | None = None,
        batch: int = DEFAULT_BATCH,
        ack_wait: float = 60.0,
        dead_letter_subject: str | None = None,
        payload_schemas: Mapping[str, type[BaseModel]] | None = None,
        unknown_event_type: UnknownEventType = "dead_letter",
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 15.0,
        **options: Any,
    ) -> None:
        self.nats_url = nats_url
        self.subject = subject
        self.durable = durable or default_durable_name(subject)
        source = nats(
            nats_url,
            subject,
            durable=self.durable,
            stream=stream,
            batch=batch,
            ack_wait=ack_wait,
            dead_letter_subject=dead_letter_subject,
            scheduler=options.get("scheduler"),
            reconnect_delay=reconnect_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        super().__init__(
            source,
            job_creator,
            job_type_mapping,
            name=name or f"nats:{self.durable}",
            payload_schemas=payload_schemas,
            unknown_event_type=unknown_event_type,
            **options,
        )
