"""One replica of a service: ScheduleTrigger + WebhookTrigger + JobWorker on PostgreSQL.

Run by ``test_replicas.py`` (three at once)::

    python replica_process.py --dsn DSN --schema S --port P --name replica-1

The handler records every attempt in ``<schema>.attempts`` and its effect once per job in
``<schema>.processed`` (``PRIMARY KEY job_id``, ``ON CONFLICT DO NOTHING``): at-least-once
execution plus an idempotent handler, the usual way to get exactly-once effects.
SIGTERM stops the triggers, then the worker (running jobs finish); SIGKILL is the crash.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import asyncpg

from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.kits.job.job_service import JobService
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job
from portico_rx.web import serve_async


async def main(args: argparse.Namespace) -> None:
    queue = PostgresJobQueue(
        args.dsn, schema=args.schema, visibility_timeout=args.visibility_timeout
    )
    service = JobService(queue)
    await service.open()
    effects = await asyncpg.create_pool(args.dsn, min_size=1, max_size=4)

    async def handle(job: Job) -> dict[str, Any]:
        async with effects.acquire() as connection:
            await connection.execute(
                f'INSERT INTO "{args.schema}".attempts (job_id, replica) VALUES ($1, $2)',
                job.id,
                args.name,
            )
            # a window for SIGKILL to hit; payload {"slow": s} holds the job s seconds
            await asyncio.sleep(float(job.payload.get("slow", args.handler_seconds)))
            await connection.execute(
                f'INSERT INTO "{args.schema}".processed (job_id, job_type, replica) '
                "VALUES ($1, $2, $3) ON CONFLICT (job_id) DO NOTHING",
                job.id,
                job.job_type,
                args.name,
            )
        return {"replica": args.name}

    worker = JobWorker(
        queue,
        {"tick": handle, "work": handle},
        concurrency=4,
        poll_interval=1.0,
        name=args.name,
    )
    schedule = ScheduleTrigger(
        service,
        [ScheduleConfig(every=args.tick_seconds, job_type="tick", name="tick")],
        name="replicas",
    )
    webhook = WebhookTrigger(service, WebhookConfig(allowed_job_types=["work"]))
    # uvicorn handles SIGTERM (graceful shutdown), then re-raises it to the handler that
    # was installed before: make that one a no-op so the worker below stops gracefully.
    signal.signal(signal.SIGTERM, lambda *_: None)
    await worker.start()
    try:
        await serve_async([schedule, webhook], port=args.port, log_level="warning")
    finally:
        await worker.stop()
        await effects.close()
        await service.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--tick-seconds", type=float, default=1.0)
    parser.add_argument("--visibility-timeout", type=float, default=3.0)
    parser.add_argument("--handler-seconds", type=float, default=0.02)
    asyncio.run(main(parser.parse_args()))
