"""Server-backed job queues against their raw drivers, measured in the same run.

For PostgresJobQueue (asyncpg) and RedisJobQueue (redis-py):

(a) create_job: ``JobService.create_job`` with an idempotency key, from concurrent
    callers, against the raw driver writing the same row the same way (asyncpg:
    ``INSERT … ON CONFLICT DO NOTHING RETURNING`` into an identical table, with the same
    indexes and NOTIFY trigger; redis-py: ``SET NX`` key + ``HSET`` job + ``ZADD`` index).
(b) dequeue+complete: claim and complete every job, against the raw driver's claim
    (asyncpg: the same ``UPDATE … FOR UPDATE SKIP LOCKED``, then ``UPDATE … completed``;
    redis-py: ``ZPOPMIN`` + ``HSET running``, then ``HSET completed``).

Target: adapter >= 0.5x the raw rate. Needs PostgreSQL and Redis on 127.0.0.1.

    python benchmarks/bench_scaling.py            # full run (3 rounds of 3000 jobs per case)
    python benchmarks/bench_scaling.py --quick    # a tiny run (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog

from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.kits.job.job_service import JobService

DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = {"user_id": 42, "template": "welcome", "tags": ["a", "b"]}
TARGET = 0.5


async def rate(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Operations per second of ``one(i)`` for i in range(n), ``concurrency`` at a time."""
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def line(adapter: str, case: str, ours: float, raw: float, peer: str) -> str:
    ratio = ours / raw
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    return (
        f"{adapter:8} {case:17} adapter {ours:8.0f} ops/s   {peer:14} {raw:8.0f} ops/s   "
        f"ratio {ratio:.2f}x (target >= {TARGET}x, {verdict})"
    )


async def bench_postgres(n: int, concurrency: int) -> list[float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    queue = PostgresJobQueue(DSN, schema=schema, pool_max=concurrency)
    twin = PostgresJobQueue(DSN, schema=schema, table="raw_jobs")  # identical layout
    await queue.open()
    await twin.open()
    await twin.close()
    pool = await asyncpg.create_pool(DSN, min_size=concurrency, max_size=concurrency)
    raw_table = f'"{schema}".raw_jobs'
    service = JobService(queue)
    run = uuid.uuid4().hex[:6]
    try:
        ours_create = await rate(
            n,
            concurrency,
            lambda i: service.create_job(
                "bench.job", PAYLOAD, metadata={"idempotency_key": f"{run}:{i}"}
            ),
        )
        insert = (
            f"INSERT INTO {raw_table} (id, job_type, queue_name, payload, priority, metadata, "
            "status, attempts, max_retries, created_at, idempotency_key) "
            "VALUES ($1, 'bench.job', 'default', $2::jsonb, 0, $3::jsonb, 'pending', 0, 3, $4, $5) "
            "ON CONFLICT DO NOTHING RETURNING *"
        )

        async def raw_create(i: int) -> None:
            key = f"{run}:{i}"
            await pool.fetchrow(
                insert,
                uuid.uuid4(),
                json.dumps(PAYLOAD),
                json.dumps({"idempotency_key": key}),
                datetime.now(UTC),
                key,
            )

        raw_create_rate = await rate(n, concurrency, raw_create)

        async def ours_cycle(_: int) -> None:
            job = await queue.dequeue(["default"])
            assert job is not None
            await queue.complete(job.id, {"ok": True})

        ours_cycle_rate = await rate(n, concurrency, ours_cycle)
        claim = f"""
            WITH next AS (
                SELECT id FROM {raw_table}
                WHERE queue_name = $1 AND status IN ('pending', 'scheduled')
                  AND (scheduled_at IS NULL OR scheduled_at <= $2)
                ORDER BY priority DESC, created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
            UPDATE {raw_table} AS job SET status = 'running', attempts = job.attempts + 1,
                started_at = $2 FROM next WHERE job.id = next.id RETURNING job.*
        """
        finish = (
            f"UPDATE {raw_table} SET status = 'completed', result = $2::jsonb, "
            "completed_at = $3 WHERE id = $1 RETURNING *"
        )

        async def raw_cycle(_: int) -> None:
            row = await pool.fetchrow(claim, "default", datetime.now(UTC))
            assert row is not None
            await pool.fetchrow(finish, row["id"], json.dumps({"ok": True}), datetime.now(UTC))

        raw_cycle_rate = await rate(n, concurrency, raw_cycle)
    finally:
        await queue.close()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
    return [ours_create, raw_create_rate, ours_cycle_rate, raw_cycle_rate]


async def bench_redis(n: int, concurrency: int) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    raw_prefix = prefix + "-raw"
    queue = RedisJobQueue(REDIS_URL, prefix=prefix, max_connections=concurrency * 2)
    await queue.open()
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    service = JobService(queue)
    try:
        ours_create = await rate(
            n,
            concurrency,
            lambda i: service.create_job(
                "bench.job", PAYLOAD, metadata={"idempotency_key": f"k{i}"}
            ),
        )

        async def raw_create(i: int) -> None:
            job_id = str(uuid.uuid4())
            key = f"k{i}"
            if not await client.set(f"{raw_prefix}:key:{key}", job_id, nx=True):
                return
            body = json.dumps(
                {
                    "id": job_id,
                    "job_type": "bench.job",
                    "queue_name": "default",
                    "payload": PAYLOAD,
                    "priority": 0,
                    "metadata": {"idempotency_key": key},
                    "max_retries": 3,
                    "created_at": datetime.now(UTC).isoformat(),
                    "idempotency_key": key,
                }
            )
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(
                    f"{raw_prefix}:job:{job_id}",
                    mapping={"body": body, "status": "pending", "attempts": 0},
                )
                pipe.zadd(f"{raw_prefix}:ready:default", {job_id: 100 * 2**40 + i})
                pipe.zadd(f"{raw_prefix}:all", {job_id: time.time() * 1e6})
                await pipe.execute()

        raw_create_rate = await rate(n, concurrency, raw_create)

        async def ours_cycle(_: int) -> None:
            job = await queue.dequeue(["default"])
            assert job is not None
            await queue.complete(job.id, {"ok": True})

        ours_cycle_rate = await rate(n, concurrency, ours_cycle)

        async def raw_cycle(_: int) -> None:
            popped = await client.zpopmin(f"{raw_prefix}:ready:default")
            assert popped
            job = f"{raw_prefix}:job:{popped[0][0]}"
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(job, mapping={"status": "running", "started_at": time.time()})
                pipe.hincrby(job, "attempts", 1)
                pipe.hgetall(job)
                await pipe.execute()
            await client.hset(
                job,
                mapping={
                    "status": "completed",
                    "result": json.dumps({"ok": True}),
                    "completed_at": time.time(),
                },
            )

        raw_cycle_rate = await rate(n, concurrency, raw_cycle)
    finally:
        await queue.drop()
        await queue.close()
        keys = [key async for key in client.scan_iter(match=f"{raw_prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()
    return [ours_create, raw_create_rate, ours_cycle_rate, raw_cycle_rate]


async def main(quick: bool) -> None:
    n, rounds = (200, 1) if quick else (3000, 3)
    concurrency = 8
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(
        f"bench_scaling: {n} jobs per case, {concurrency} concurrent callers, "
        f"median of {rounds} round(s) (adapter, then raw driver, per round)"
    )
    results: dict[str, list[list[float]]] = {"postgres": [], "redis": []}
    for _ in range(rounds):
        results["postgres"].append(await bench_postgres(n, concurrency))
        results["redis"].append(await bench_redis(n, concurrency))
    for adapter, peer in (("postgres", "raw asyncpg"), ("redis", "raw redis-py")):
        rates = [statistics.median(column) for column in zip(*results[adapter], strict=True)]
        print(line(adapter, "create_job", rates[0], rates[1], peer))
        print(line(adapter, "dequeue+complete", rates[2], rates[3], peer))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    asyncio.run(main(parser.parse_args().quick))
