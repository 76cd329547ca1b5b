"""Three real replica processes (ScheduleTrigger + WebhookTrigger + JobWorker) on one
PostgreSQL queue, under webhook load, one of them SIGKILLed midway.

Checks: every tick once (no gap, no double), every accepted request once, every job
processed once (effect recorded once; a job the killed replica was running comes back
after the lease and is finished by a survivor). Duration: ``PORTICO_REPLICA_SECONDS``
(default 40 s of load; the longer run is in docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

HERE = Path(__file__).parent
DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOAD_SECONDS = float(os.environ.get("PORTICO_REPLICA_SECONDS", "40"))
TICK_SECONDS = 1.0
VISIBILITY_TIMEOUT = 3.0
REPLICAS = 3
VICTIM = 1  # the replica that is SIGKILLed
SLOW_SECONDS = 2.0  # every 10th request holds its worker this long: a job to kill


async def in_flight_on(connection: asyncpg.Connection, schema: str, replica: str) -> set[Any]:
    """Slow jobs ``replica`` started less than a quarter of their hold ago: surely still running."""
    rows = await connection.fetch(
        f'SELECT a.job_id FROM "{schema}".attempts a '
        f"JOIN \"{schema}\".jobs j ON j.id = a.job_id AND j.payload ? 'slow' "
        "WHERE a.replica = $1 AND a.at > clock_timestamp() - make_interval(secs => $2) "
        f'AND NOT EXISTS (SELECT 1 FROM "{schema}".processed p WHERE p.job_id = a.job_id)',
        replica,
        SLOW_SECONDS / 4,
    )
    return {row["job_id"] for row in rows}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    def __init__(self, index: int, schema: str, log_dir: Path) -> None:
        self.name = f"replica-{index}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.alive = True
        self.log = (log_dir / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "replica_process.py"),
                "--dsn",
                DSN,
                "--schema",
                schema,
                "--port",
                str(self.port),
                "--name",
                self.name,
                "--tick-seconds",
                str(TICK_SECONDS),
                "--visibility-timeout",
                str(VISIBILITY_TIMEOUT),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return f"--- {self.name} ---\n{text[-3000:]}"


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(f'CREATE SCHEMA "{name}"')
        await connection.execute(
            f'CREATE TABLE "{name}".attempts (job_id uuid NOT NULL, replica text NOT NULL, '
            "at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        await connection.execute(
            f'CREATE TABLE "{name}".processed (job_id uuid PRIMARY KEY, job_type text, '
            "replica text NOT NULL)"
        )
        yield name
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await connection.close()


async def wait_healthy(client: httpx.AsyncClient, replicas: list[Replica]) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    pending = set(range(len(replicas)))
    while pending:
        for index in list(pending):
            replica = replicas[index]
            if replica.process.poll() is not None:
                raise AssertionError(f"{replica.name} exited early\n{replica.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{replica.url}/health/triggers")
                if response.status_code == 200:
                    pending.discard(index)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                "replicas not healthy:\n" + "\n".join(r.log_tail() for r in replicas)
            )
        await asyncio.sleep(0.2)


class Load:
    """Webhook senders that behave like a client behind a load balancer: a request that
    gets no answer is retried on another replica with the same Idempotency-Key."""

    def __init__(self, client: httpx.AsyncClient, replicas: list[Replica]) -> None:
        self.client = client
        self.replicas = replicas
        self.sent: set[str] = set()
        self.accepted: dict[str, str] = {}
        self.requests: dict[str, tuple[int, bool]] = {}  # key -> what was sent with it
        self.repeats_checked = 0
        self.failovers = 0
        self.slow = False  # send some slow jobs (only around the kill: they cost capacity)
        self._turn = itertools.count()

    def _next_replica(self) -> Replica:
        alive = [replica for replica in self.replicas if replica.alive]
        return alive[next(self._turn) % len(alive)]

    async def post(self, key: str, n: int, *, slow: bool = False) -> str:
        payload: dict[str, Any] = {"n": n, "slow": SLOW_SECONDS} if slow else {"n": n}
        for _attempt in range(20):
            replica = self._next_replica()
            try:
                response = await self.client.post(
                    f"{replica.url}/webhooks/jobs",
                    json={"job_type": "work", "payload": payload},
                    headers={"Idempotency-Key": key},
                )
            except httpx.HTTPError:
                self.failovers += 1
                await asyncio.sleep(0.05)
                continue
            if response.status_code >= 500:
                self.failovers += 1
                await asyncio.sleep(0.05)
                continue
            assert response.status_code in (200, 201), response.text
            return str(response.json()["job_id"])
        raise AssertionError(f"request {key} never accepted")

    async def sender(self, stop: asyncio.Event, seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            if self.accepted and rng.random() < 0.1:
                key = rng.choice(sorted(self.accepted))
                number, slow = self.requests[key]  # the same request again (another is a 409)
                assert await self.post(key, number, slow=slow) == self.accepted[key]
                self.repeats_checked += 1
            else:
                key = f"req-{seed}-{n}"
                n += 1
                self.sent.add(key)
                slow = self.slow and n % 10 == 0
                self.requests[key] = (n, slow)
                self.accepted[key] = await self.post(key, n, slow=slow)
            await asyncio.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(LOAD_SECONDS + 180)
async def test_three_replicas_lose_and_double_nothing_when_one_is_killed(
    schema: str, tmp_path: Path
) -> None:
    replicas = [Replica(index, schema, tmp_path) for index in range(REPLICAS)]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await wait_healthy(client, replicas)
            load = Load(client, replicas)
            stop = asyncio.Event()
            senders = [asyncio.create_task(load.sender(stop, seed)) for seed in range(6)]
            await asyncio.sleep(LOAD_SECONDS / 2)
            victim = replicas[VICTIM]
            load.slow = True
            watcher = await asyncpg.connect(DSN)
            try:  # kill it while it runs a job, so that job must come back
                deadline = asyncio.get_running_loop().time() + 30
                while not (killed_jobs := await in_flight_on(watcher, schema, victim.name)):
                    assert asyncio.get_running_loop().time() < deadline, "victim never busy"
                    await asyncio.sleep(0.02)
                victim.alive = False
                victim.process.send_signal(signal.SIGKILL)
                load.slow = False
            finally:
                await watcher.close()
            killed_at = datetime.now().astimezone()
            await asyncio.sleep(LOAD_SECONDS / 2)
            stop.set()
            await asyncio.gather(*senders)
        cutoff = datetime.now().astimezone()
        connection = await asyncpg.connect(DSN)
        try:
            jobs_table = f'"{schema}".jobs'
            deadline = asyncio.get_running_loop().time() + 60 + LOAD_SECONDS / 2
            while left := await connection.fetch(
                f"SELECT status, count(*) FROM {jobs_table} WHERE status <> 'completed' "
                "AND created_at < $1 GROUP BY status",
                cutoff,
            ):
                assert asyncio.get_running_loop().time() < deadline, (
                    f"jobs left unprocessed: {[tuple(row) for row in left]}"
                )
                await asyncio.sleep(0.5)
            for replica in replicas:
                if replica.alive:
                    replica.process.send_signal(signal.SIGTERM)
            for replica in replicas:
                if replica.alive:
                    assert replica.process.wait(timeout=60) == 0, replica.log_tail()
            jobs = await connection.fetch(
                f"SELECT id, job_type, status, idempotency_key, attempts, created_at "
                f"FROM {jobs_table}"
            )
            processed = await connection.fetch(f'SELECT job_id, replica FROM "{schema}".processed')
            attempts = await connection.fetch(f'SELECT job_id, replica FROM "{schema}".attempts')
        finally:
            await connection.close()
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()
            replica.log.close()

    report: dict[str, Any] = {
        "jobs": len(jobs),
        "accepted": len(load.accepted),
        "repeats_checked": load.repeats_checked,
        "failovers": load.failovers,
    }
    by_key = {row["idempotency_key"]: row for row in jobs}
    assert len(by_key) == len(jobs)  # one job per key (also a UNIQUE index)

    # every accepted request once: its key holds exactly the job id that was answered
    prefix = "webhook:webhook:work:"
    work = {key.removeprefix(prefix): row for key, row in by_key.items() if key.startswith(prefix)}
    for key, job_id in load.accepted.items():
        assert key in work, f"accepted request {key} has no job"
        assert str(work[key]["id"]) == job_id
    assert set(work) <= load.sent  # nothing made up
    assert load.repeats_checked > 0

    # every tick once: consecutive fire times, none missing, none doubled
    ticks = sorted(
        datetime.fromisoformat(key.rsplit(":tick:", 1)[1].replace("Z", "+00:00"))
        for key in by_key
        if key.startswith("replicas:tick:")
    )
    assert len(ticks) >= LOAD_SECONDS / TICK_SECONDS - 2
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert set(gaps) == {timedelta(seconds=TICK_SECONDS)}, sorted(set(gaps))
    assert ticks[-1] > killed_at + timedelta(seconds=LOAD_SECONDS / 4)  # ticked on after

    # every job processed once: completed, one recorded effect, nothing running or failed
    done = Counter(row["job_id"] for row in processed)
    for row in jobs:
        if row["created_at"] < cutoff:
            assert row["status"] == "completed", dict(row)
            assert done[row["id"]] == 1, dict(row)
        assert row["status"] in ("completed", "pending", "scheduled"), dict(row)
    assert set(done) <= {row["id"] for row in jobs}
    # re-runs happen only for jobs the killed replica had claimed
    runs = Counter(row["job_id"] for row in attempts)
    victims = {row["job_id"] for row in attempts if row["replica"] == replicas[VICTIM].name}
    rerun = {job_id for job_id, count in runs.items() if count > 1}
    assert rerun <= victims, rerun - victims
    assert killed_jobs <= rerun  # the job it was running was run again by a survivor…
    assert all(done[job_id] == 1 for job_id in killed_jobs)  # …and its effect is there once
    report.update(ticks=len(ticks), killed_in_flight=len(killed_jobs), reruns=len(rerun))
    print(f"replica test: {report}")
