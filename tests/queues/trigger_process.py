"""A trigger in a process of its own, for the SIGKILL tests (run by test_sigkill.py).

Usage: python trigger_process.py BROKER TARGET DB [--hold-after N]

Consumes TARGET (queue / stream / subject / topic) on the local BROKER into the SQLite
job store DB, printing READY once consuming. With ``--hold-after N`` every job after the
N-th is created and then never returned from ``create_job``: it exists in the store but
its message is never acked — exactly the window a crash must not turn into a loss or a
duplicate. SIGTERM stops the trigger gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any
from uuid import UUID

import structlog

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job
from portico_rx.pipeline import PipelineTrigger
from portico_rx.ports.job_creator import JobCreator

MAPPING = {"e": "job.e"}


class Holding(JobCreator):
    def __init__(self, inner: JobService, hold_after: int | None) -> None:
        self.inner = inner
        self.hold_after = hold_after
        self.created = 0

    async def open(self) -> None:
        await self.inner.open()

    async def create_job(self, *args: Any, **kwargs: Any) -> Job:
        job = await self.inner.create_job(*args, **kwargs)
        self.created += 1
        if self.hold_after is not None and self.created > self.hold_after:
            await asyncio.Event().wait()
        return job

    async def get_job(self, job_id: UUID) -> Job | None:
        return await self.inner.get_job(job_id)


def make_trigger(broker: str, target: str, creator: JobCreator) -> PipelineTrigger:
    if broker == "rabbitmq":
        from portico_rx.adapters.job_trigger.rabbitmq_trigger import RabbitMQTrigger

        return RabbitMQTrigger(
            creator, "amqp://guest:guest@127.0.0.1:5672/", target, MAPPING, prefetch=16
        )
    if broker == "redis":
        from portico_rx.adapters.job_trigger.redis_stream_trigger import RedisStreamTrigger

        return RedisStreamTrigger(
            creator, "redis://127.0.0.1:6379/0", target, "g", MAPPING, consumer="c", count=16
        )
    if broker == "nats":
        from portico_rx.adapters.job_trigger.nats_trigger import NatsTrigger

        return NatsTrigger(
            creator, "nats://127.0.0.1:4222", target, MAPPING, durable="d", batch=16, ack_wait=1
        )
    from portico_rx.adapters.job_trigger.mqtt_trigger import MqttTrigger

    return MqttTrigger(
        creator, "127.0.0.1", target, MAPPING, client_id=f"kill-{target}".replace("/", "-"),
        max_in_flight=16,
    )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("broker", choices=["rabbitmq", "redis", "nats", "mqtt"])
    parser.add_argument("target")
    parser.add_argument("db")
    parser.add_argument("--hold-after", type=int, default=None)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    creator = Holding(JobService(SQLiteJobQueue(args.db)), args.hold_after)
    trigger = make_trigger(args.broker, args.target, creator)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await trigger.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await stop.wait()
    await trigger.stop()
    await creator.inner.close()


if __name__ == "__main__":
    asyncio.run(main())
