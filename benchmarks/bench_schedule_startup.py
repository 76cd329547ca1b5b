"""Schedule start-up against the size of the job store, on all four stores.

    python benchmarks/bench_schedule_startup.py               # 5 rounds (~2-3 minutes)
    python benchmarks/bench_schedule_startup.py --rounds 9
    python benchmarks/bench_schedule_startup.py --quick       # seconds: the smoke test

1. **Store size.** For each store (memory, SQLite file, PostgreSQL, Redis) two stores are
   filled once: an empty one, and one holding 50,000 jobs — 50 past runs of each of
   the 1,000 schedules (their keys share the schedules' prefixes, the hard case for a
   prefix lookup). Each round starts a fresh ``ScheduleTrigger`` of the 1,000 schedules
   on both (order alternating), timing ``start()`` (the last-run lookup and arming the
   timer; nothing is missed, so nothing is created). Printed: the medians and the
   median of the paired ratios full/empty (min-max), PASS when <= 2.
2. **100,000 schedules on SQLite.** In a fresh process per round (cold caches, as a real
   start-up): 100,000 ``ScheduleConfig`` built, the trigger built on a ``SQLiteJobQueue``
   file and started; wall and CPU time (the machine is shared: CPU time is the figure
   robust to load). PASS when the median is <= 3 s.

The library runs at its default configuration, logging included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
TRIGGER = "bench"


def spread(values: list[float], scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    low, mid, high = (v * scale for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def idle_hour() -> int:
    """An hour of the day at least 6 h away, so no schedule fires during a run."""
    return (datetime.now(UTC).hour + 12) % 24


def configs(count: int) -> list[Any]:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig

    hour = idle_hour()
    return [
        ScheduleConfig(cron=f"{i % 60} {hour} {1 + i % 28} * *", job_type=f"job.{i}")
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def store(kind: str, folder: Path) -> AsyncIterator[Any]:
    """An open, empty store of ``kind``, removed afterwards."""
    if kind == "memory":
        from portico_rx.adapters.job_queue.memory import MemoryJobQueue

        yield MemoryJobQueue()
        return
    if kind == "sqlite":
        from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue

        queue: Any = SQLiteJobQueue(folder / f"{uuid.uuid4().hex}.db")
    elif kind == "postgres":
        from portico_rx.adapters.job_queue.postgres import PostgresJobQueue

        queue = PostgresJobQueue(POSTGRES_DSN, schema=f"bench_{uuid.uuid4().hex[:10]}")
    else:
        from portico_rx.adapters.job_queue.redis import RedisJobQueue

        queue = RedisJobQueue(REDIS_URL, prefix=f"bench-{uuid.uuid4().hex[:10]}")
    await queue.open()
    try:
        yield queue
    finally:
        if kind == "postgres":
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_DSN)
            await connection.execute(f'DROP SCHEMA IF EXISTS "{queue.schema}" CASCADE')
            await connection.close()
        if kind == "redis":
            await queue.drop()
        await queue.close()


async def fill(queue: Any, schedules: int, runs: int) -> None:
    """``runs`` past runs of each schedule, the newest in the future (nothing missed)."""
    from portico_rx.models import Job
    from portico_rx.schedule.tick import key_time
    from portico_rx.schedule.timer import to_micros

    newest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    jobs = [
        Job(
            job_type=f"job.{n}",
            idempotency_key=f"{TRIGGER}:job.{n}:{key_time(to_micros(newest - timedelta(hours=k)))}",
        )
        for n in range(schedules)
        for k in range(runs)
    ]
    for start in range(0, len(jobs), 16):  # within a server store's connection pool
        await asyncio.gather(*(queue.enqueue(job) for job in jobs[start : start + 16]))
    if hasattr(queue, "schema"):  # PostgreSQL: as autovacuum leaves a long-lived table
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_DSN)
        await connection.execute(f'VACUUM ANALYZE "{queue.schema}"."{queue.table}"')
        await connection.close()


async def time_start(queue: Any, schedule_configs: list[Any]) -> float:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
    from portico_rx.kits.job.job_service import JobService

    trigger = ScheduleTrigger(
        job_creator=JobService(job_queue=queue), schedules=schedule_configs, name=TRIGGER
    )
    began = time.perf_counter()
    await trigger.start()
    elapsed = time.perf_counter() - began
    await trigger.stop()
    assert trigger.counters.jobs_created == 0, "a run was created: the bench is not idle"
    return elapsed


async def store_size(kinds: list[str], rounds: int, schedules: int, runs: int) -> None:
    print(
        f"== start-up of {schedules} schedules: empty store vs {schedules * runs} jobs "
        f"({runs} past runs per schedule), {rounds} rounds"
    )
    schedule_configs = configs(schedules)
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            async with store(kind, Path(folder)) as empty, store(kind, Path(folder)) as full:
                await fill(full, schedules, runs)
                await time_start(empty, schedule_configs)  # warm both once, untimed
                await time_start(full, schedule_configs)
                times: dict[str, list[float]] = {"empty": [], "full": []}
                for round_ in range(rounds):
                    order = ("empty", "full") if round_ % 2 == 0 else ("full", "empty")
                    for name in order:
                        queue = empty if name == "empty" else full
                        times[name].append(await time_start(queue, schedule_configs))
                ratios = [f / e for f, e in zip(times["full"], times["empty"], strict=True)]
                verdict = "PASS" if statistics.median(ratios) <= 2 else "FAIL"
                print(
                    f"{kind:8s} empty {spread(times['empty'], 1e3, ' ms', 1)}  "
                    f"full {spread(times['full'], 1e3, ' ms', 1)}  "
                    f"RATIO full/empty {spread(ratios, 1, 'x', 2)}  {verdict} (<= 2x)"
                )


async def hundred_thousand(count: int) -> dict[str, float]:
    """Child: configs -> started on a SQLite file, in a fresh process."""
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
    from portico_rx.kits.job.job_service import JobService

    with tempfile.TemporaryDirectory() as folder:
        service = JobService(job_queue=SQLiteJobQueue(Path(folder) / "jobs.db"))
        await service.open()
        wall, cpu = time.perf_counter(), time.process_time()
        trigger = ScheduleTrigger(job_creator=service, schedules=configs(count), name=TRIGGER)
        await trigger.start()
        result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        await trigger.stop()
        await service.close()
    return result


def run_child(count: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(count)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hundred_thousand_rounds(rounds: int, count: int) -> None:
    print(f"== {count} ScheduleConfigs -> started on a SQLite file, fresh process, {rounds} rounds")
    results = [run_child(count) for _ in range(rounds)]
    walls = [r["wall_s"] for r in results]
    cpus = [r["cpu_s"] for r in results]
    verdict = "PASS" if statistics.median(cpus) <= 3 else "FAIL"
    print(
        f"configs->started wall {spread(walls, 1, ' s', 2)}  CPU {spread(cpus, 1, ' s', 2)}  "
        f"TARGET <= 3 s: {verdict} (CPU median; wall shows the machine's load)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stores", default="memory,sqlite,postgres,redis")
    parser.add_argument("--child", nargs=1)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(hundred_thousand(int(args.child[0])))))
        return
    kinds = args.stores.split(",")
    if args.quick:
        asyncio.run(store_size([k for k in kinds if k in ("memory", "sqlite")], 2, 50, 20))
        hundred_thousand_rounds(1, 2_000)
        return
    asyncio.run(store_size(kinds, args.rounds, 1_000, 50))
    hundred_thousand_rounds(args.rounds, 100_000)


if __name__ == "__main__":
    main()
