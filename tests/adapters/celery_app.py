"""The Celery app the bridge tests run in a real worker process.

Configured from the environment so the worker and the test agree:
``PORTICO_CELERY_BROKER`` / ``PORTICO_CELERY_BACKEND`` (default: the local Redis, db 0).
"""

from __future__ import annotations

import os

import redis
from celery import Celery

BROKER = os.environ.get("PORTICO_CELERY_BROKER", "redis://127.0.0.1:6379/0")
BACKEND = os.environ.get("PORTICO_CELERY_BACKEND", "redis://127.0.0.1:6379/0")

app = Celery("portico_celery_test", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_track_started=True,
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_extended=True,
)


@app.task(name="portico_test.add")
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="portico_test.record")
def record(counter: str, value: str) -> str:
    """Count executions in Redis under ``counter`` so a test can see duplicates."""
    client = redis.Redis.from_url(BACKEND)
    client.rpush(counter, value)
    client.expire(counter, 600)
    return value


@app.task(name="portico_test.boom")
def boom(reason: str) -> None:
    raise ValueError(reason)


@app.task(name="portico_test.slow")
def slow(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
