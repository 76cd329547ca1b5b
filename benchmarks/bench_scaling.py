"""Server-backed job queues against their raw drivers, ours and raw alternating in rounds.

For PostgresJobQueue (asyncpg) and RedisJobQueue (redis-py), from 8 concurrent callers:

(a) create_job: ``JobService.create_job`` with an idempotency key, against the raw driver
    writing the same row the same way, in one round trip like ours (asyncpg:
    ``INSERT … ON CONFLICT DO NOTHING RETURNING *`` into an identical table: same
    columns, indexes and NOTIFY trigger, made by the queue's own migration; redis-py: one
    Lua call doing ``SET NX`` key + ``HSET`` job + ``ZADD`` ready + ``ZADD`` all).
(b) dequeue+complete: claim and complete every job of a backlog, against the raw claim
    (asyncpg: the same ``UPDATE … FOR UPDATE SKIP LOCKED``, then ``UPDATE … completed``;
    redis-py: ``ZPOPMIN`` + pipelined ``HSET running``/``HINCRBY``/``HGETALL``, then
    ``HSET completed``). The backlog is written before the timed part, on both sides.

Each round sets up a fresh schema / key prefix (not timed). The headline of each case is
the median of the paired speed ratios (min-max beside it); target >= 0.5x. The library
runs at its defaults, logging included. Needs PostgreSQL and Redis on 127.0.0.1.

    python benchmarks/bench_scaling.py            # 5 rounds of 1000 jobs per case
    python benchmarks/bench_scaling.py --quick    # a tiny run (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Pair, Result, compare, exit_code, load_average

from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.kits.job.job_service import JobService

DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = {"user_id": 42, "template": "welcome", "tags": ["a", "b"]}
TARGET = 0.5
CONCURRENCY = 8

RAW_CREATE_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('HSET', KEYS[2], 'body', ARGV[2], 'status', 'pending', 'attempts', 0)
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  return 1
end
return 0
"""


async def rate(n: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Operations per second of ``one(i)`` for i in range(n), ``CONCURRENCY`` at a time."""
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - started)


# -- PostgreSQL -------------------------------------------------------------------------


async def _pg_schema() -> tuple[str, PostgresJobQueue]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    twin = PostgresJobQueue(DSN, schema=schema, table="raw_jobs")  # the identical layout
    await twin.open()
    await twin.close()
    return schema, PostgresJobQueue(DSN, schema=schema, pool_max=CONCURRENCY)


async def _pg_drop(schema: str) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await connection.close()


def _raw_insert(table: str) -> str:
    return (
        f"INSERT INTO {table} (id, job_type, queue_name, payload, priority, metadata, "
        "status, attempts, max_retries, created_at, idempotency_key) "
        "VALUES ($1, 'bench.job', 'default', $2::jsonb, 0, $3::jsonb, 'pending', 0, 3, $4, $5) "
        "ON CONFLICT DO NOTHING RETURNING *"
    )


async def _raw_create_row(pool: Any, insert: str, key: str) -> None:
    await pool.fetchrow(
        insert,
        uuid.uuid4(),
        json.dumps(PAYLOAD),
        json.dumps({"idempotency_key": key}),
        datetime.now(UTC),
        key,
    )


async def pg_ours(n: int, cycle: bool) -> float:
    schema, queue = await _pg_schema()
    try:
        await queue.open()
        service = JobService(queue)

        def create(i: int) -> Awaitable[Any]:
            return service.create_job("bench.job", PAYLOAD, metadata={"idempotency_key": f"{i}"})

        if not cycle:
            return await rate(n, create)
        await rate(n, create)  # the backlog, not timed

        async def one(_: int) -> None:
            job = await queue.dequeue(["default"])
            assert job is not None
            await queue.complete(job.id, {"ok": True})

        return await rate(n, one)
    finally:
        await queue.close()
        await _pg_drop(schema)


async def pg_raw(n: int, cycle: bool) -> float:
    schema, _queue = await _pg_schema()
    table = f'"{schema}".raw_jobs'
    insert = _raw_insert(table)
    pool = await asyncpg.create_pool(DSN, min_size=CONCURRENCY, max_size=CONCURRENCY)
    try:

        def create(i: int) -> Awaitable[Any]:
            return _raw_create_row(pool, insert, f"{i}")

        if not cycle:
            return await rate(n, create)
        await rate(n, create)
        claim = f"""
            WITH next AS (
                SELECT id FROM {table}
                WHERE queue_name = $1 AND status IN ('pending', 'scheduled')
                  AND (scheduled_at IS NULL OR scheduled_at <= $2)
                ORDER BY priority DESC, created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
            UPDATE {table} AS job SET status = 'running', attempts = job.attempts + 1,
                started_at = $2 FROM next WHERE job.id = next.id RETURNING job.*
        """
        finish = (
            f"UPDATE {table} SET status = 'completed', result = $2::jsonb, "
            "completed_at = $3 WHERE id = $1 RETURNING *"
        )

        async def one(_: int) -> None:
            row = await pool.fetchrow(claim, "default", datetime.now(UTC))
            assert row is not None
            await pool.fetchrow(finish, row["id"], json.dumps({"ok": True}), datetime.now(UTC))

        return await rate(n, one)
    finally:
        await pool.close()
        await _pg_drop(schema)


# -- Redis ------------------------------------------------------------------------------


async def redis_ours(n: int, cycle: bool) -> float:
    queue = RedisJobQueue(
        REDIS_URL, prefix=f"bench-{uuid.uuid4().hex[:10]}", max_connections=CONCURRENCY * 2
    )
    await queue.open()
    service = JobService(queue)
    try:

        def create(i: int) -> Awaitable[Any]:
            return service.create_job("bench.job", PAYLOAD, metadata={"idempotency_key": f"k{i}"})

        if not cycle:
            return await rate(n, create)
        await rate(n, create)

        async def one(_: int) -> None:
            job = await queue.dequeue(["default"])
            assert job is not None
            await queue.complete(job.id, {"ok": True})

        return await rate(n, one)
    finally:
        await queue.drop()
        await queue.close()


async def redis_raw(n: int, cycle: bool) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:10]}-raw"
    client = aioredis.Redis.from_url(
        REDIS_URL, decode_responses=True, max_connections=CONCURRENCY * 2
    )
    script = client.register_script(RAW_CREATE_LUA)

    async def create(i: int) -> None:
        job_id = str(uuid.uuid4())
        key = f"k{i}"
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
        await script(
            keys=[f"{prefix}:key:{key}", f"{prefix}:job:{job_id}", f"{prefix}:ready:default",
                  f"{prefix}:all"],
            args=[job_id, body, 100 * 2**40 + i, int(time.time() * 1e6)],
        )  # fmt: skip

    async def one(_: int) -> None:
        popped = await client.zpopmin(f"{prefix}:ready:default")
        assert popped
        job = f"{prefix}:job:{popped[0][0]}"
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

    try:
        if not cycle:
            return await rate(n, create)
        await rate(n, create)
        return await rate(n, one)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per round and case")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds")
    args = parser.parse_args(argv)
    n = args.jobs or (200 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 5)
    load_average("before")
    print(f"bench_scaling: {n} jobs per case and round, {CONCURRENCY} concurrent callers")
    results: list[Result] = []
    cases = [
        ("postgres", pg_ours, pg_raw, "raw asyncpg"),
        ("redis", redis_ours, redis_raw, "raw redis-py"),
    ]
    for adapter, ours, raw, peer in cases:
        for case, cycle in (("create_job", False), ("dequeue+complete", True)):
            results.append(
                compare(
                    Pair(
                        f"{adapter} adapter {case}",
                        lambda ours=ours, cycle=cycle: ours(n, cycle),
                        f"{peer} {case}",
                        lambda raw=raw, cycle=cycle: raw(n, cycle),
                    ),
                    rounds=rounds,
                    measure="rate",
                    target=TARGET,
                    unit="ops/s",
                    name=f"{adapter} {case} adapter/raw",
                )
            )
    load_average("after")
    return 0 if args.quick else exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
