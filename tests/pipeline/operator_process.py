"""A RabbitMQ pipeline through one stock reactivex operator, in a process of its own (run
by test_stock_operators_rabbitmq.py, which SIGKILLs it while the operator holds a message).

Usage: python operator_process.py QUEUE DB OPERATOR SECONDS [--block]

``sources.rabbitmq(QUEUE) → OPERATOR(SECONDS) → to_job("job.e")`` into the SQLite job
store DB; prints READY once consuming. ``--block``: the job creator never returns (the
process dies with the request in the sink, its job not created). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any
from uuid import UUID

import reactivex
import structlog
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

import portico_rx as prx
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import Job
from portico_rx.ports.job_creator import JobCreator

URL = "amqp://guest:guest@127.0.0.1:5672/"


def operator(name: str, seconds: float) -> Callable[[Any], Any]:
    """The stock operator under test (the table in docs/operators.md)."""
    loop = asyncio.get_running_loop()
    table: dict[str, Callable[[Any], Any]] = {
        "delay": ops.delay(seconds),
        "debounce": ops.debounce(seconds),
        "throttle_with_timeout": ops.throttle_with_timeout(seconds),
        "timeout": ops.timeout(seconds),
        "flat_map_timer": ops.flat_map(
            lambda m: reactivex.timer(seconds).pipe(ops.map(lambda _: m))
        ),
        "observe_on": ops.observe_on(prx.tracked(AsyncIOScheduler(loop))),
    }
    return table[name]


class Blocking(JobCreator):
    """Never returns from create_job: the process is killed with the request pending."""

    async def create_job(self, *args: Any, **kwargs: Any) -> Job:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def get_job(self, job_id: UUID) -> Job | None:
        return None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("db")
    parser.add_argument("operator")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--block", action="store_true")
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    store = SQLiteJobQueue(args.db)
    creator: JobCreator = Blocking() if args.block else JobService(store)
    source = prx.sources.rabbitmq(URL, args.queue)
    trigger = prx.PipelineTrigger(
        source.pipe(
            operator(args.operator, args.seconds),
            prx.to_job("job.e", payload=lambda m: json.loads(m.body)),
        ),
        job_creator=creator,
        name="ops",
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await trigger.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await stop.wait()
    await trigger.stop()
    # a bare pipeline does not wait for its source's connection to close (the named
    # queue triggers do): without this, asyncio.run may cancel aio-pika mid-close
    await source.wait_closed(timeout=15)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
