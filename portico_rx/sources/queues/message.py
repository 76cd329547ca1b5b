"""``QueueMessage``: one message from a broker, the same shape for every broker."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from portico_rx.errors import ConfigurationError
from portico_rx.models import trusted

__all__ = ["Broker", "InvalidMessageError", "QueueMessage"]

Broker = Annotated[str, Field(min_length=1)]
"""A broker's name, as its source writes it: ``"rabbitmq"``, ``"redis"``, ``"nats"``,
``"mqtt"``, or whatever name a new source picks (``"kafka"``): an open string."""


class InvalidMessageError(ConfigurationError):
    """A message cannot be used: its body is not JSON, or not the expected shape.

    A permanent failure: the message is dead-lettered, never retried.
    """


class QueueMessage(BaseModel):
    """A message received from a broker: RabbitMQ, a Redis stream, NATS JetStream, MQTT …

    Attributes:
        broker: the source's broker name: ``"rabbitmq"``, ``"redis"``, ``"nats"``,
            ``"mqtt"`` for the built-in sources; a new source names its own (``"kafka"``).
        destination: what the source consumes: queue, stream, subject filter or topic filter.
        subject: where this message was published: routing key, stream, subject or topic.
        message_id: the broker's (or publisher's) id: AMQP ``message_id``, stream entry
            id, JetStream stream sequence, MQTT ``message-id`` user property; ``None`` if
            the message carries none.
        body: the raw body.
        headers: AMQP headers, the other fields of a stream entry, NATS headers or MQTT
            user properties, as JSON values.
        redelivered: the broker delivered it before (a previous consumer did not ack);
            always ``False`` for MQTT (aiomqtt does not expose the DUP flag).
        delivery_count: how often it was delivered, when the broker says (JetStream;
            RabbitMQ quorum queues).
        published_at: when it was published, when the broker says.
        content_type: the declared content type, when given.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: Broker
    destination: str
    subject: str
    message_id: str | None = None
    body: bytes = b""
    headers: dict[str, Any] = Field(default_factory=dict)
    redelivered: bool = False
    delivery_count: int | None = None
    published_at: datetime | None = None
    content_type: str | None = None

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text (default UTF-8).

        Raises:
            InvalidMessageError: the body is not valid in ``encoding``.
        """
        try:
            return self.body.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InvalidMessageError(
                f"message {self.message_id!r} from {self.broker} {self.destination!r}: body "
                f"{self.body[:60]!r} is not {encoding} text ({exc}); publish UTF-8 JSON"
            ) from None

    def json_body(self) -> Any:
        """The body parsed as JSON.

        Raises:
            InvalidMessageError: the body is not JSON (names the message id and the body).
        """
        text = self.text()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidMessageError(
                f"message {self.message_id!r} from {self.broker} {self.destination!r}: body "
                f"{text[:60]!r} is not JSON ({exc}); publish a JSON document"
            ) from None

    @classmethod
    def received(
        cls,
        *,
        broker: str,
        destination: str,
        subject: str,
        message_id: str | None,
        body: bytes,
        headers: dict[str, Any],
        redelivered: bool,
        published_at: datetime | None,
        delivery_count: int | None = None,
        content_type: str | None = None,
    ) -> QueueMessage:
        """A message a source built from its client's values, already of the field types
        (``str``, ``bytes``, ``bool``, a ``dict`` of JSON values …): not validated again
        (:func:`~portico_rx.models.trusted`; one per message received).
        ``tests/queues/test_message.py`` pins it equal to the validated model."""
        return trusted(
            cls,
            {
                "broker": broker,
                "destination": destination,
                "subject": subject,
                "message_id": message_id,
                "body": body,
                "headers": headers,
                "redelivered": redelivered,
                "delivery_count": delivery_count,
                "published_at": published_at,
                "content_type": content_type,
            },
            _RECEIVED_FIELDS,
        )


_RECEIVED_FIELDS = set(QueueMessage.model_fields)  # shared: the model is frozen
