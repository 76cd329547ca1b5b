"""``portico-rx schedules list/add/pause/resume/remove``: real commands against a real
store file, applied by a running ScheduleTrigger on that store within one poll."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
from portico_rx.kits.job.job_service import JobService

CLI = [sys.executable, "-m", "portico_rx.cli"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


async def eventually(done: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the running trigger did not apply the change")


async def test_cli_changes_reach_a_running_trigger_within_one_poll(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    added = cli(
        "schedules", "add", "nightly", "--cron", "0 2 * * *", "--job-type", "backup",
        "--payload", '{"full": true}', "--trigger", "ops", "--store", db, cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added ops:nightly (0 2 * * *)" in added.stdout
    async with SQLiteJobQueue(db) as queue:
        trigger = ScheduleTrigger(JobService(queue), name="ops", schedule_poll=0.1)
        await trigger.start()
        try:
            assert [c.schedule_name for c in trigger.schedules] == ["nightly"]
            assert trigger.schedules[0].payload == {"full": True}
            paused = cli("schedules", "pause", "nightly", "--trigger", "ops", "--store", db,
                         cwd=tmp_path)  # fmt: skip
            assert paused.returncode == 0, paused.stderr
            await eventually(lambda: trigger.paused_schedules == ["nightly"])
            changed = cli(
                "schedules", "add", "nightly", "--every", "3600", "--job-type", "backup",
                "--replace", "--trigger", "ops", "--store", db, cwd=tmp_path,
            )  # fmt: skip
            assert changed.returncode == 0, changed.stderr
            await eventually(lambda: trigger.schedules[0].every == 3600)
            assert trigger.paused_schedules == ["nightly"]  # a change keeps the pause
            resumed = cli("schedules", "resume", "nightly", "--trigger", "ops", "--store", db,
                          cwd=tmp_path)  # fmt: skip
            assert resumed.returncode == 0, resumed.stderr
            await eventually(lambda: trigger.paused_schedules == [])
            listed = cli("schedules", "list", "--store", db, "--json", cwd=tmp_path)
            [row] = json.loads(listed.stdout)
            assert (row["trigger"], row["name"], row["paused"]) == ("ops", "nightly", False)
            assert row["config"]["every"] == 3600
            removed = cli("schedules", "remove", "nightly", "--trigger", "ops", "--store", db,
                          cwd=tmp_path)  # fmt: skip
            assert removed.returncode == 0, removed.stderr
            await eventually(lambda: trigger.schedules == [])
        finally:
            await trigger.stop()


@pytest.mark.postgres
def test_cli_against_postgres_lists_what_it_added(tmp_path: Path) -> None:
    schema = f"schedules_cli_{uuid.uuid4().hex[:8]}"
    store = f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}"
    try:
        added = cli("schedules", "add", "hourly", "--cron", "0 * * * *", "--job-type", "h",
                    "--paused", "--store", store, cwd=tmp_path)  # fmt: skip
        assert added.returncode == 0, added.stderr
        listed = cli("schedules", "list", "--store", store, cwd=tmp_path)
        assert "hourly" in listed.stdout and "yes" in listed.stdout
    finally:
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()

        asyncio.run(drop())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add", "x", "--cron", "bad", "--job-type", "r"], "invalid cron expression"),
        (["add", "x", "--every", "5", "--job-type", "r", "--payload", "[1]"], "JSON object"),
        (["add", "x", "--every", "5", "--job-type", "r", "--replace"], "drop --replace"),
        (["pause", "missing"], "no schedule 'missing'"),
        (["remove", "missing"], "schedules list"),
    ],
)
def test_cli_refuses_bad_input_with_the_fix(tmp_path: Path, args: list[str], words: str) -> None:
    db = str(tmp_path / "jobs.db")
    assert cli("schedules", "add", "seed", "--every", "60", "--job-type", "s", "--store", db,
               cwd=tmp_path).returncode == 0  # fmt: skip
    done = cli("schedules", *args, "--store", db, cwd=tmp_path)
    assert done.returncode == 1
    assert words in done.stderr


def test_every_schedules_option_has_help() -> None:
    import argparse

    from portico_rx.cli import build_parser

    def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:  # argparse has no public walk of its subcommands
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    schedules = subparsers(build_parser())["schedules"]
    actions = subparsers(schedules)
    assert {"list", "add", "pause", "resume", "remove", "backfill"} <= actions.keys()
    for name, parser in actions.items():
        for option in parser._actions:
            assert option.help, f"schedules {name} {option.option_strings or option.dest}"
