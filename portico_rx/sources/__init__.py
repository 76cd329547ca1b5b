"""Event sources: cold observables that start their I/O on subscribe and stop it on dispose.

Each is imported on first use, so a source whose optional extra is not installed costs
nothing until it is used (and then raises ``MissingDependencyError`` naming the extra).

==================  ============================================  ==============
name                what it emits                                 extra
==================  ============================================  ==============
``cron``            ``Tick`` on a cron schedule                    schedule
``interval``        ``Tick`` every fixed duration                  schedule
``at``              one ``Tick`` at a given time                   schedule
``files``           ``FileEvent`` for settled files in a folder    files
``http_poll``       ``HttpChange`` when a polled resource changes  http
``db_rows``         ``RowEvent`` for pending database rows         db
``pg_notify``       ``Notification`` from PostgreSQL LISTEN        db
``webhook``         ``WebhookEvent`` per HTTP POST                 webhook
``rabbitmq``        ``QueueMessage`` from a RabbitMQ queue         rabbitmq
``redis_stream``    ``QueueMessage`` from a Redis consumer group   redis
``nats``            ``QueueMessage`` from a JetStream consumer     nats
``mqtt``            ``QueueMessage`` from an MQTT topic            mqtt
``replay``          recorded events, in virtual time               notebook
==================  ============================================  ==============
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time each loads on first use
    from portico_rx.sources._cron import Tick, at, cron, interval
    from portico_rx.sources._db_poll import RowEvent, db_rows
    from portico_rx.sources._files import FileChange, FileEvent, FileStat, SettleRule, Stable, files
    from portico_rx.sources._http_poll import HttpChange, http_poll
    from portico_rx.sources._pg_notify import Notification, pg_notify
    from portico_rx.sources._replay import replay
    from portico_rx.sources._webhook import WebhookEvent, webhook
    from portico_rx.sources.queues.message import QueueMessage
    from portico_rx.sources.queues.mqtt import mqtt
    from portico_rx.sources.queues.nats import nats
    from portico_rx.sources.queues.rabbitmq import rabbitmq
    from portico_rx.sources.queues.redis_stream import redis_stream

_LAZY: dict[str, str] = {
    "cron": "portico_rx.sources._cron",
    "interval": "portico_rx.sources._cron",
    "at": "portico_rx.sources._cron",
    "Tick": "portico_rx.sources._cron",
    "files": "portico_rx.sources._files",
    "FileEvent": "portico_rx.sources._files",
    "FileChange": "portico_rx.sources._files",
    "FileStat": "portico_rx.sources._files",
    "SettleRule": "portico_rx.sources._files",
    "Stable": "portico_rx.sources._files",
    "http_poll": "portico_rx.sources._http_poll",
    "HttpChange": "portico_rx.sources._http_poll",
    "db_rows": "portico_rx.sources._db_poll",
    "RowEvent": "portico_rx.sources._db_poll",
    "pg_notify": "portico_rx.sources._pg_notify",
    "Notification": "portico_rx.sources._pg_notify",
    "webhook": "portico_rx.sources._webhook",
    "WebhookEvent": "portico_rx.sources._webhook",
    "QueueMessage": "portico_rx.sources.queues.message",
    "rabbitmq": "portico_rx.sources.queues.rabbitmq",
    "redis_stream": "portico_rx.sources.queues.redis_stream",
    "nats": "portico_rx.sources.queues.nats",
    "mqtt": "portico_rx.sources.queues.mqtt",
    "replay": "portico_rx.sources._replay",
}

__all__ = [
    "FileChange",
    "FileEvent",
    "FileStat",
    "HttpChange",
    "Notification",
    "QueueMessage",
    "RowEvent",
    "SettleRule",
    "Stable",
    "Tick",
    "WebhookEvent",
    "at",
    "cron",
    "db_rows",
    "files",
    "http_poll",
    "interval",
    "mqtt",
    "nats",
    "pg_notify",
    "rabbitmq",
    "redis_stream",
    "replay",
    "webhook",
]

assert sorted(__all__) == sorted(_LAZY), "every lazy name is exported, and only those"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portico_rx.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
