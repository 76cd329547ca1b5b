"""``portico-rx --store URL`` on every store: the real command in a subprocess against a real
SQLite file, the PostgreSQL server (own schema) and the Redis server (own key prefix)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from portico_rx._version import __version__
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.adapters.job_queue.redis import RedisJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.cli import main
from portico_rx.models import Job, JobStatus
from portico_rx.ports.job_queue import JobQueue

COMMAND = str(Path(sys.executable).with_name("portico-rx"))
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"

APP = """
import reactivex
import portico_rx as prx

def build(service):
    items = reactivex.from_iterable([{"n": n} for n in range(5)])
    return [prx.PipelineTrigger(
        items.pipe(prx.to_job("cli.item", idempotency_key=lambda e: f"item:{e['n']}")),
        job_creator=service, name="items",
    )]

async def handle(job):
    return {"double": job.payload["n"] * 2}

handlers = {"cli.item": handle}
"""


@dataclass
class Store:
    """A store under test: its ``--store`` URL and how the test opens it by itself."""

    url: str
    open_queue: Callable[[], JobQueue]

    async def jobs(self, **filters: Any) -> list[Job]:
        queue = self.open_queue()
        await queue.open()
        try:
            return await queue.list(limit=1000, **filters)
        finally:
            await queue.close()

    async def enqueue(self, *jobs: Job) -> None:
        queue = self.open_queue()
        await queue.open()
        try:
            for job in jobs:
                await queue.enqueue(job)
        finally:
            await queue.close()


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def _drop_prefix(prefix: str) -> None:
    queue = RedisJobQueue(REDIS_URL, prefix=prefix)
    await queue.open()
    await queue.drop()
    await queue.close()


@contextlib.contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "jobs.db"
    yield Store(f"sqlite:///{path}", lambda: SQLiteJobQueue(path))  # four slashes: absolute


@contextlib.contextmanager
def _postgres(tmp_path: Path) -> Iterator[Store]:
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    try:
        yield Store(
            f"{POSTGRES_DSN}?schema={schema}", lambda: PostgresJobQueue(POSTGRES_DSN, schema=schema)
        )
    finally:
        asyncio.run(_drop_schema(schema))


@contextlib.contextmanager
def _redis(tmp_path: Path) -> Iterator[Store]:
    prefix = f"cli-{uuid.uuid4().hex[:12]}"
    try:
        yield Store(f"{REDIS_URL}?prefix={prefix}", lambda: RedisJobQueue(REDIS_URL, prefix=prefix))
    finally:
        asyncio.run(_drop_prefix(prefix))


@pytest.fixture(
    params=[
        pytest.param(_sqlite, id="sqlite"),
        pytest.param(_postgres, marks=pytest.mark.postgres, id="postgres"),
        pytest.param(_redis, marks=pytest.mark.redis, id="redis"),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with request.param(tmp_path) as opened:
        yield opened


def portico(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``portico-rx ARGS`` in ``cwd``: ``run`` as the installed command in a subprocess, as a
    user runs it; every other command through the same :func:`main` in this process, its
    stdout and stderr captured (a fresh interpreter per call cost most of this module's
    time: the real command is exercised by ``run`` and by tests/cli/test_cli.py)."""
    argv = ["--log-level", "warning", *args]
    if args[0] == "run":
        return subprocess.run(
            [COMMAND, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess([COMMAND, *argv], code, out.getvalue(), err.getvalue())


def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(APP))
    return path


def item(n: int, **fields: Any) -> Job:
    return Job(job_type="cli.item", payload={"n": n}, **fields)


def test_run_creates_and_processes_the_jobs_in_the_store(store: Store, tmp_path: Path) -> None:
    done = portico(
        "run", str(app_file(tmp_path)), "--store", store.url, "--duration", "2.5", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    jobs = asyncio.run(store.jobs())
    assert sorted(j.idempotency_key or "" for j in jobs) == [f"item:{n}" for n in range(5)]
    assert all(j.status is JobStatus.COMPLETED for j in jobs), [j.status for j in jobs]
    assert sorted(j.result["double"] for j in jobs) == [0, 2, 4, 6, 8]
    again = portico(  # a second run creates nothing new: the keys are in the store
        "run", str(app_file(tmp_path)), "--store", store.url, "--duration", "1.5", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert len(asyncio.run(store.jobs())) == 5


def test_jobs_lists_the_store_as_a_table_and_as_json(store: Store, tmp_path: Path) -> None:
    asyncio.run(store.enqueue(item(1), item(2, queue_name="other"), item(3, priority=5)))
    listed = portico("jobs", "--store", store.url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    stored = asyncio.run(store.jobs())
    for job in stored:
        assert str(job.id) in listed.stdout  # the whole id: what `jobs cancel` takes
    as_json = portico("jobs", "--store", store.url, "--json", "--queue", "other", cwd=tmp_path)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(row["payload"], row["queue_name"]) for row in rows] == [({"n": 2}, "other")]


def test_jobs_cancel_then_the_worker_never_runs_it(store: Store, tmp_path: Path) -> None:
    keep, drop, later = item(1), item(2), item(3, status=JobStatus.SCHEDULED)
    asyncio.run(store.enqueue(keep, drop, later))
    cancelled = portico("jobs", "cancel", str(drop.id), "--store", store.url, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled job {drop.id} (cli.item)" in cancelled.stdout
    # --store before the action works too, and --json prints the cancelled job
    as_json = portico("jobs", "--store", store.url, "cancel", str(later.id), "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["status"] == "cancelled"

    worked = portico(
        "worker", str(app_file(tmp_path)), "--store", store.url, "--duration", "2", cwd=tmp_path
    )
    assert worked.returncode == 0, worked.stderr
    by_id = {j.id: j for j in asyncio.run(store.jobs())}
    assert by_id[keep.id].status is JobStatus.COMPLETED and by_id[keep.id].result == {"double": 2}
    for job_id in (drop.id, later.id):
        assert by_id[job_id].status is JobStatus.CANCELLED and by_id[job_id].attempts == 0

    listed = portico("jobs", "--store", store.url, "--status", "cancelled", "--json", cwd=tmp_path)
    assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == {
        str(drop.id),
        str(later.id),
    }


def test_cancel_refusals_exit_1_with_the_reason(store: Store, tmp_path: Path) -> None:
    done = item(1, status=JobStatus.COMPLETED)
    asyncio.run(store.enqueue(done))
    refused = portico("jobs", "cancel", str(done.id), "--store", store.url, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: cannot cancel job {done.id}: it is completed")
    missing = uuid.uuid4()
    unknown = portico("jobs", "cancel", str(missing), "--store", store.url, cwd=tmp_path)
    assert unknown.returncode == 1
    assert f"cannot cancel job {missing}: no job with this id" in unknown.stderr
    garbled = portico("jobs", "cancel", "abc123", "--store", store.url, cwd=tmp_path)
    assert garbled.returncode == 1 and "'abc123' is not a UUID" in garbled.stderr
    for result in (refused, unknown, garbled):
        assert "Traceback" not in result.stderr
    [still] = asyncio.run(store.jobs())
    assert still.status is JobStatus.COMPLETED


def test_db_stays_an_alias_of_store(tmp_path: Path) -> None:
    path = tmp_path / "alias.db"
    job = item(7)

    async def seed() -> None:
        async with SQLiteJobQueue(path) as queue:
            await queue.enqueue(job)

    asyncio.run(seed())
    cancelled = portico("jobs", "cancel", str(job.id), "--db", str(path), cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    listed = portico("jobs", "--db", "alias.db", "--json", cwd=tmp_path)  # a relative path
    assert json.loads(listed.stdout)["status"] == "cancelled"
    relative = portico("jobs", "--store", "sqlite:///alias.db", "--json", cwd=tmp_path)
    assert json.loads(relative.stdout)["id"] == str(job.id)


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://app:s3cret@db/jobs", "--store 'mysql://app:***@db/jobs': unknown scheme 'mysql'"),
        ("sqlite://host/jobs.db", "a SQLite URL is sqlite:/// followed by the file's path"),
        ("redis://127.0.0.1:6379/0?schema=x", "a redis store takes no 'schema' option"),
        ("postgresql://postgres@127.0.0.1:5432/test?schema=bad-name", "schema"),
    ],
)
def test_a_bad_store_url_is_one_line_naming_it_and_the_forms(
    tmp_path: Path, url: str, message: str
) -> None:
    for args in (["jobs"], ["worker", str(app_file(tmp_path)), "--duration", "1"]):
        done = portico(*args, "--store", url, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error:") and message in done.stderr
        assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
        if "scheme" in message or "SQLite" in message:
            assert "accepted: sqlite:///" in done.stderr and "redis://" in done.stderr


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    done = portico("jobs", "--store", "redis://:s3cret@127.0.0.1:1/0", cwd=tmp_path, timeout=90)
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "127.0.0.1:1" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def test_version_and_exit_codes_in_the_help(tmp_path: Path) -> None:
    version = portico("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"portico-rx {__version__}"
    for args in ([], ["run"], ["worker"], ["jobs"], ["jobs", "cancel"], ["schedules", "backfill"]):
        shown = portico(*args, "--help", cwd=tmp_path)
        assert shown.returncode == 0
        assert "exit codes:" in shown.stdout and "130" in shown.stdout
        assert "redis://" in shown.stdout and "postgresql://" in shown.stdout
    assert portico("jobs", "--limit", "0", cwd=tmp_path).returncode == 2


def test_every_option_of_every_command_has_help(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from portico_rx.cli import build_parser

    added: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    original = argparse.ArgumentParser.add_argument

    def recording(self: argparse.ArgumentParser, *names: str, **options: Any) -> Any:
        added.append((names, options))
        return original(self, *names, **options)

    monkeypatch.setattr(argparse.ArgumentParser, "add_argument", recording)
    build_parser()
    missing = [names for names, options in added if not options.get("help")]
    assert missing == []
    assert len(added) > 30  # every command's options were seen


DOWN_APP = """
import reactivex
import portico_rx as prx

class EngineDown(prx.JobCreator):
    '''A job engine that is down for good: every event is dead-lettered.'''

    async def create_job(self, *args, **kwargs):
        raise ConnectionError("the engine is down")

    async def get_job(self, job_id):
        return None

def build(service):
    items = reactivex.from_iterable([{"n": n} for n in range(3)])
    return [prx.PipelineTrigger(
        items.pipe(prx.to_job("cli.item", payload=lambda e: e,
                              idempotency_key=lambda e: f"item:{e['n']}")),
        job_creator=EngineDown(), name="items", on_complete="stop",
        retry=prx.RetryPolicy(max_attempts=1),
        dead_letter_store=service.dead_letter_store,
    )]
"""


def test_dead_letters_list_show_redrive_discard(store: Store, tmp_path: Path) -> None:
    app = tmp_path / "down.py"
    app.write_text(textwrap.dedent(DOWN_APP))
    ran = portico("run", str(app), "--store", store.url, "--duration", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    listed = portico("dead-letters", "list", "--store", store.url, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(letter["request"]["payload"]["n"] for letter in letters) == [0, 1, 2]
    assert {letter["stage"] for letter in letters} == {"create_job"}
    assert all("the engine is down" in letter["error"] for letter in letters)
    by_n = {letter["request"]["payload"]["n"]: letter["id"] for letter in letters}
    table = portico(
        "dead-letters", "--store", store.url, "list", "--trigger", "items", cwd=tmp_path
    )
    assert table.returncode == 0 and all(i in table.stdout for i in by_n.values())

    shown = portico("dead-letters", "show", by_n[0], "--store", store.url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["provenance"]["idempotency_key"] == "item:0" and detail["attempts"] == 1

    redriven = portico("dead-letters", "redrive", by_n[0], "--store", store.url, cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stderr
    assert "key item:0" in redriven.stdout
    again = portico(
        "dead-letters", "redrive", by_n[0], "--store", store.url, "--json", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    [job] = asyncio.run(store.jobs())
    assert json.loads(again.stdout)["id"] == str(job.id) and job.idempotency_key == "item:0"
    assert job.payload == {"n": 0} and job.metadata["redriven_from"] == by_n[0]

    dropped = portico("dead-letters", "discard", by_n[1], "--store", store.url, cwd=tmp_path)
    assert dropped.returncode == 0 and f"discarded dead letter {by_n[1]}" in dropped.stdout
    still = portico("dead-letters", "list", "--store", store.url, "--json", cwd=tmp_path)
    assert [json.loads(line)["id"] for line in still.stdout.splitlines()] == [by_n[2]]
    every = portico(
        "dead-letters", "list", "--status", "all", "--store", store.url, "--json", cwd=tmp_path
    )
    assert {json.loads(line)["status"] for line in every.stdout.splitlines()} == {
        "open",
        "redriven",
        "discarded",
    }

    refused = portico("dead-letters", "redrive", by_n[1], "--store", store.url, cwd=tmp_path)
    assert refused.returncode == 1 and "is already discarded" in refused.stderr
    missing = str(uuid.uuid4())
    for action in ("show", "redrive", "discard"):
        unknown = portico("dead-letters", action, missing, "--store", store.url, cwd=tmp_path)
        assert unknown.returncode == 1 and f"no dead letter with id {missing}" in unknown.stderr
        assert "Traceback" not in unknown.stderr
    garbled = portico("dead-letters", "show", "abc123", "--store", store.url, cwd=tmp_path)
    assert garbled.returncode == 1 and "'abc123' is not a UUID" in garbled.stderr
    usage = portico(
        "dead-letters", "list", "--status", "closed", "--store", store.url, cwd=tmp_path
    )
    assert usage.returncode == 2
    assert len(asyncio.run(store.jobs())) == 1
