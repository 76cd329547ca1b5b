"""Real time and real processes: a 1-second schedule writes jobs to SQLite, and three
replica processes on one SQLite file create every tick exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.kits.job.job_service import JobService

HERE = Path(__file__).parent


def key_second(key: str) -> datetime:
    """The fire time of a key ``trigger:schedule:2025-01-01T09:00:00Z``."""
    return datetime.strptime(key.split(":", 2)[2], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def test_one_second_schedule_creates_real_jobs_in_sqlite(tmp_path: Path) -> None:
    service = JobService(job_queue=SQLiteJobQueue(tmp_path / "jobs.db"))
    trigger = ScheduleTrigger(
        job_creator=service,
        schedules=[ScheduleConfig(cron="* * * * * *", job_type="heartbeat", payload={"ok": True})],
        name="realtime",
    )
    await trigger.start()
    await asyncio.sleep(3.2)
    await trigger.stop()
    jobs = await service.find_jobs(key_prefix="realtime:heartbeat:", limit=100)
    await service.close()
    assert len(jobs) >= 2
    seconds = sorted(key_second(j.idempotency_key or "") for j in jobs)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(seconds))
    for job in jobs:
        assert job.payload == {"ok": True}
        scheduled = datetime.fromisoformat(job.metadata["scheduled_at"])
        assert scheduled == key_second(job.idempotency_key or "")
        assert job.metadata["lateness_s"] >= 0
        assert datetime.fromisoformat(job.metadata["seen_at"]) >= scheduled


async def test_three_replica_processes_create_each_tick_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with JobService(job_queue=SQLiteJobQueue(path)):
        pass  # create the schema once, as a deployment would
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "replica_process.py"), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:  # all three replicas run …
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert line.strip() == "ready"
    await asyncio.sleep(4.2)  # … together for four seconds
    reports = []
    for process in processes:
        out, err = process.communicate("stop\n", timeout=60)
        assert process.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    service = JobService(job_queue=SQLiteJobQueue(path))
    seconds_jobs = await service.find_jobs(key_prefix="replicated:tick.second:", limit=1000)
    two_jobs = await service.find_jobs(key_prefix="replicated:tick.two:", limit=1000)
    everything = await service.list_jobs(limit=1000)
    await service.close()
    assert len(everything) == len(seconds_jobs) + len(two_jobs)
    keys = [j.idempotency_key for j in everything]
    assert len(keys) == len(set(keys))  # one job per key …
    ticks = sorted(key_second(k or "") for k in (j.idempotency_key for j in seconds_jobs))
    assert len(ticks) >= 4
    assert all(
        b - a == timedelta(seconds=1) for a, b in itertools.pairwise(ticks)
    )  # … none missing
    twos = sorted(key_second(j.idempotency_key or "") for j in two_jobs)
    assert all(t.second % 2 == 0 for t in twos)
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(twos))
    assert all(r["errors"] == 0 for r in reports)
    # every replica fired the overlapping ticks; the store kept one job for each, and
    # only the replica that wrote it counts it as created: the others, as a duplicate
    assert sum(r["created"] for r in reports) == len(everything)
    assert sum(r["duplicates"] for r in reports) > 0
    for report in reports:  # each tick of a replica: exactly one outcome
        outcomes = report["outcomes"]
        assert outcomes["created"] == report["created"]
        assert outcomes["duplicate"] == report["duplicates"]
        assert outcomes["held"] == 0
    assert len({r["pid"] for r in reports}) == 3
