"""``MqttTrigger``: jobs from an MQTT topic, over a persistent MQTT v5 session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from portico_rx.adapters.job_trigger.message_envelope import UnknownEventType
from portico_rx.adapters.job_trigger.queue_trigger import QueueTrigger
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources.queues.mqtt import DEFAULT_MAX_IN_FLIGHT, default_client_id, mqtt

__all__ = ["MqttTrigger"]


class MqttTrigger(QueueTrigger):
    """Create jobs from MQTT messages carrying the spec's JSON envelope
    ``{"event_type", "payload", "queue", "priority"}``.

    A message is acked (``PUBACK``) only once its job exists; the persistent session
    (``clean_start=False``) keeps messages published while the trigger is down. MQTT has
    no dead-letter mechanism: bad messages are logged with their id, counted in health,
    republished to ``dead_letter_topic`` if given, and acked. Publish with the v5 user
    property ``message-id`` so a redelivery returns the same job.

    Args:
        job_creator: where jobs are created.
        host: broker host, e.g. ``"127.0.0.1"``.
        topic: topic filter to subscribe to.
        job_type_mapping: event type -> job type.
        qos: 1 (default) or 2.
        client_id: stable MQTT client id (default derived from host name and topic).
        port: broker port (default 1883).
        shared_group: share the topic with other instances (``$share/<group>/<topic>``).
        name: trigger name (default ``"mqtt:<topic>"``); competing instances must share it.
        max_in_flight: unacked messages at most (default 32).
        dead_letter_topic: where bad messages are republished (default none).
        payload_schemas: job type -> pydantic model validating the payload (default none).
        unknown_event_type: ``"dead_letter"`` (default) or ``"drop"``.
        reconnect_delay: first wait before reconnecting after the broker was lost, in
            seconds (default 0.5), doubling up to ``reconnect_max_delay`` (default 15).
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger`.
    """

    def __init__(
        self,
        job_creator: JobCreator,
        host: str,
        topic: str,
        job_type_mapping: dict[str, str],
        *,
        qos: int = 1,
        client_id: str | None = None,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        shared_group: str | None = None,
        name: str | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        dead_letter_topic: str | None = None,
        payload_schemas: Mapping[str, type[BaseModel]] | None = None,
        unknown_event_type: UnknownEventType = "dead_letter",
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = 15.0,
        **options: Any,
    ) -> None:
        self.host = host
        self.topic = topic
        self.client_id = client_id or default_client_id(topic)
        source = mqtt(
            host,
            topic,
            qos,
            client_id=self.client_id,
            port=port,
            username=username,
            password=password,
            shared_group=shared_group,
            max_in_flight=max_in_flight,
            dead_letter_topic=dead_letter_topic,
            scheduler=options.get("scheduler"),
            reconnect_delay=reconnect_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        super().__init__(
            source,
            job_creator,
            job_type_mapping,
            name=name or f"mqtt:{topic}",
            payload_schemas=payload_schemas,
            unknown_event_type=unknown_event_type,
            **options,
        )
