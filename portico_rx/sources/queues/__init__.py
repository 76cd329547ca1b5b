"""Message-queue sources: RabbitMQ, Redis Streams, NATS JetStream and MQTT.

Each returns a :class:`~portico_rx.sources.queues.consumer.QueueSource` of
:class:`~portico_rx.sources.queues.message.QueueMessage`, acked only after the
pipeline settled the message (see ``docs/queues.md``). Import them from
``portico_rx.sources`` (``sources.rabbitmq(...)``); each broker module imports its
client library only when used.
"""

from portico_rx.sources.queues.consumer import ConnectionStatus, QueueSource
from portico_rx.sources.queues.message import InvalidMessageError, QueueMessage

__all__ = ["ConnectionStatus", "InvalidMessageError", "QueueMessage", "QueueSource"]
