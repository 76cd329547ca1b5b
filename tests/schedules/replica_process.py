"""One replica of a ScheduleTrigger service, run as a real process by test_replicas.py.

Usage: python replica_process.py DB_PATH
Prints ``ready`` once the trigger runs, stops when a line arrives on stdin, then prints
one JSON line: {"created": <jobs_created_count>, "duplicates": <duplicates_count>,
"outcomes": <details["outcomes"]>, "errors": <errors_count>, "pid": <pid>}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import structlog

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.kits.job.job_service import JobService


async def main(path: str) -> None:
    service = JobService(job_queue=SQLiteJobQueue(path, synchronous="NORMAL"))
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[
            ScheduleConfig(cron="* * * * * *", job_type="tick.second"),
            ScheduleConfig(every=2, job_type="tick.two"),
        ],
        name="replicated",
    )
    await trigger.start()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await trigger.stop()
    await service.close()
    health = trigger.get_health()
    print(
        json.dumps(
            {
                "created": health.jobs_created_count,
                "duplicates": health.duplicates_count,
                "outcomes": health.details["outcomes"],
                "errors": health.errors_count,
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(sys.argv[1]))
