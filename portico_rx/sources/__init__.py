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
import sys
import types
from typing import Any

_LAZY: dict[str, str] = {
    "cron": "portico_rx.sources.cron",
    "interval": "portico_rx.sources.cron",
    "at": "portico_rx.sources.cron",
    "Tick": "portico_rx.sources.cron",
    "files": "portico_rx.sources.files",
    "FileEvent": "portico_rx.sources.files",
    "http_poll": "portico_rx.sources.http_poll",
    "HttpChange": "portico_rx.sources.http_poll",
    "db_rows": "portico_rx.sources.db_poll",
    "RowEvent": "portico_rx.sources.db_poll",
    "pg_notify": "portico_rx.sources.pg_notify",
    "Notification": "portico_rx.sources.pg_notify",
    "webhook": "portico_rx.sources.webhook",
    "WebhookEvent": "portico_rx.sources.webhook",
    "QueueMessage": "portico_rx.sources.queues.message",
    "rabbitmq": "portico_rx.sources.queues.rabbitmq",
    "redis_stream": "portico_rx.sources.queues.redis_stream",
    "nats": "portico_rx.sources.queues.nats",
    "mqtt": "portico_rx.sources.queues.mqtt",
    "replay": "portico_rx.sources.replay",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'portico_rx.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _SourcesModule(types.ModuleType):
    """Keeps ``sources.files`` the function after ``portico_rx.sources.files`` (the module of
    the same name) is imported: the import system sets the submodule as an attribute of the
    package, which would shadow the lazily exported function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _SourcesModule
