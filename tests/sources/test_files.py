"""files / FileTrigger: real folders, real writes, settle in virtual time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler
from structlog.testing import capture_logs

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger
from portico_rx.sources._files import FileChange, FileStat, SettleRule, Stable
from portico_rx.testing import RecordingJobCreator, advance


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (wall clock) until ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_a_new_file_becomes_one_job_with_the_spec_payload(tmp_path: Path) -> None:
    """The spec's FileTrigger: a file lands, one job with {"file_path": ...} is created."""
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, tmp_path, "file.process", settle=0.02, priority=3)
    await trigger.start()
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    await wait_for(lambda: len(creator.jobs) == 1)
    await asyncio.sleep(0.1)  # nothing else is on its way
    await trigger.stop()
    [job] = creator.jobs
    assert job.job_type == "file.process"
    assert job.queue_name == "file_processing"
    assert job.priority == 3
    assert job.payload == {"file_path": str((tmp_path / "report.csv").resolve())}
    stat = (tmp_path / "report.csv").stat()
    assert job.idempotency_key == (
        f"{trigger.name}:file.process:report.csv:{stat.st_size}:{stat.st_mtime_ns}"
    )
    assert job.metadata["change"] == "added"
    assert trigger.get_health().jobs_created_count == 1


async def test_spec_signature_with_keywords_and_default_job_type(tmp_path: Path) -> None:
    creator = RecordingJobCreator()
    trigger = FileTrigger(job_creator=creator, watch_path=tmp_path)
    assert (trigger.job_type, trigger.queue_name) == ("file.process", "file_processing")
    assert not trigger.is_running
    await trigger.start()
    assert trigger.is_running
    await trigger.stop()
    assert not trigger.is_running


async def test_a_file_being_written_fires_once_after_its_last_write(tmp_path: Path) -> None:
    """Chunks written with gaps shorter than settle: one event, with the final size,
    no earlier than settle after the last write (virtual time)."""
    scheduler = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))
    events: list[Any] = []
    source = sources.files(tmp_path, settle=2.0, scheduler=scheduler)
    subscription = source.subscribe(events.append, scheduler=scheduler)
    target = tmp_path / "upload.bin"
    last_write = scheduler.now
    try:
        with target.open("wb") as handle:
            for _chunk in range(5):
                handle.write(b"x" * 1000)
                handle.flush()
                last_write = scheduler.now
                await asyncio.sleep(0.05)  # let the watcher see the write
                await advance(scheduler, 1.0, step=0.5)  # half the settle window
        assert events == []  # still being written: nothing fired
        await wait_for_event(scheduler, events)
    finally:
        subscription.dispose()
    [event] = events
    assert event.size == 5000
    assert event.change is FileChange.ADDED
    assert (scheduler.now - last_write).total_seconds() >= 2.0


async def wait_for_event(scheduler: HistoricalScheduler, events: list[Any]) -> None:
    """Advance virtual time until an event arrives (the watcher runs on the wall clock)."""
    deadline = time.monotonic() + 10
    while not events:
        assert time.monotonic() < deadline, "no event"
        await advance(scheduler, 0.5, step=0.5)
        await asyncio.sleep(0.01)


async def test_restart_does_not_recreate_jobs_and_picks_up_files_that_arrived_while_stopped(
    tmp_path: Path,
) -> None:
    creator = RecordingJobCreator()

    def make() -> FileTrigger:
        return FileTrigger(
            creator, tmp_path, "file.process", settle=0.02, include_existing=True, name="inbox"
        )

    first = make()
    await first.start()
    (tmp_path / "one.txt").write_text("1")
    await wait_for(lambda: len(creator.jobs) == 1)
    await first.stop()

    (tmp_path / "two.txt").write_text("22")  # arrives while nothing watches

    second = make()
    await second.start()
    await wait_for(lambda: len(creator.jobs) == 2)
    await asyncio.sleep(0.1)
    await second.stop()
    third = make()  # and once more: everything is already handled
    await third.start()
    await asyncio.sleep(0.15)
    await third.stop()
    assert sorted(Path(j.payload["file_path"]).name for j in creator.jobs) == [
        "one.txt",
        "two.txt",
    ]
    assert len(creator.calls) == 5  # one.txt re-offered twice, deduplicated by its key
    assert len({c["metadata"]["idempotency_key"] for c in creator.calls}) == 2


async def test_patterns_ignore_and_recursion(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".cache").mkdir()
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, tmp_path, "csv.import", settle=0.02, patterns=["*.csv"])
    flat = RecordingJobCreator()
    flat_trigger = FileTrigger(
        flat, tmp_path, "csv.flat", settle=0.02, patterns="*.csv", recursive=False
    )
    await trigger.start()
    await flat_trigger.start()
    for name in ["a.csv", "b.txt", ".hidden.csv", "c.csv.part", "sub/d.csv", ".cache/e.csv"]:
        (tmp_path / name).write_text(name)
    await wait_for(lambda: len(creator.jobs) == 2 and len(flat.jobs) == 1)
    await asyncio.sleep(0.15)
    await trigger.stop()
    await flat_trigger.stop()
    root = tmp_path.resolve()
    assert sorted(j.payload["file_path"] for j in creator.jobs) == [
        str(root / "a.csv"),
        str(root / "sub/d.csv"),
    ]
    assert [j.payload["file_path"] for j in flat.jobs] == [str(root / "a.csv")]


async def test_relative_glob_with_a_folder(tmp_path: Path) -> None:
    (tmp_path / "invoices").mkdir()
    (tmp_path / "other").mkdir()
    events: list[Any] = []
    subscription = sources.files(tmp_path, patterns="invoices/*.pdf", settle=0.01).subscribe(
        events.append
    )
    try:
        (tmp_path / "other/x.pdf").write_text("x")
        (tmp_path / "invoices/1.pdf").write_text("1")
        await wait_for(lambda: len(events) == 1)
        await asyncio.sleep(0.1)
    finally:
        subscription.dispose()
    assert [Path(e.path).name for e in events] == ["1.pdf"]


async def test_symlinks_are_ignored_with_a_warning(tmp_path: Path) -> None:
    outside = Path(tempfile.mkdtemp())
    (outside / "secret.txt").write_text("s")
    watched = tmp_path / "watched"
    watched.mkdir()
    events: list[Any] = []
    with capture_logs() as logs:
        subscription = sources.files(watched, settle=0.01).subscribe(events.append)
        try:
            (watched / "escape.txt").symlink_to(outside / "secret.txt")
            (watched / "linked_dir").symlink_to(outside, target_is_directory=True)
            (watched / "real.txt").write_text("r")
            await wait_for(lambda: len(events) == 1)
            await asyncio.sleep(0.1)
        finally:
            subscription.dispose()
    assert [Path(e.path).name for e in events] == ["real.txt"]
    warned = {(e["event"], Path(e["path"]).name) for e in logs if e["log_level"] == "warning"}
    assert ("file_outside_root_ignored", "escape.txt") in warned


async def test_deleted_files_fire_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "gone.txt"
    target.write_text("bye")
    events: list[Any] = []
    subscription = sources.files(tmp_path, changes=["deleted"], settle=0.01).subscribe(
        events.append
    )
    try:
        target.unlink()
        await wait_for(lambda: len(events) == 1)
    finally:
        subscription.dispose()
    assert events[0].change is FileChange.DELETED
    assert events[0].path == str(target.resolve())


async def test_modified_files_fire_again_with_a_new_key(tmp_path: Path) -> None:
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, tmp_path, "file.process", settle=0.02)
    await trigger.start()
    target = tmp_path / "data.json"
    target.write_text("{}")
    await wait_for(lambda: len(creator.jobs) == 1)
    target.write_text('{"v": 2}')
    await wait_for(lambda: len(creator.jobs) == 2)
    await trigger.stop()
    assert [j.metadata["change"] for j in creator.jobs] == ["added", "modified"]
    assert creator.jobs[0].idempotency_key != creator.jobs[1].idempotency_key


async def test_missing_path_fails_start_with_a_clear_error(tmp_path: Path) -> None:
    trigger = FileTrigger(RecordingJobCreator(), tmp_path / "nope", "file.process")
    with pytest.raises(prx.TriggerStartError, match="does not exist"):
        await trigger.start()
    assert not trigger.is_running
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    with pytest.raises(prx.TriggerStartError, match="not a folder"):
        await FileTrigger(RecordingJobCreator(), a_file, "file.process").start()


def test_unreadable_path_fails_start() -> None:
    """A 0700 folder of another user: the trigger runs as an unprivileged user
    (``nobody`` when the tests run as root, who reads everything) and cannot read it."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    folder.chmod(0o700 if os.geteuid() == 0 else 0)
    drop = "os.setgid(65534); os.setuid(65534)\n" if os.geteuid() == 0 else ""
    script = (
        "import asyncio, os\n"
        "import watchfiles._rust_notify\n"
        "from portico_rx.adapters.job_trigger.file_trigger import FileTrigger\n"
        "from portico_rx.testing import RecordingJobCreator\n"
        f"{drop}"
        "async def main():\n"
        f"    t = FileTrigger(RecordingJobCreator(), {str(folder)!r}, 'file.process')\n"
        "    try:\n"
        "        await t.start()\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "asyncio.run(main())\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    finally:
        folder.chmod(0o700)
        folder.rmdir()
    assert "TriggerStartError" in result.stdout, result.stdout + result.stderr
    assert "not readable" in result.stdout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patterns": ["[0-9"]}, "unclosed"),
        ({"patterns": [""]}, "empty"),
        ({"patterns": ["/abs/*.csv"]}, "absolute"),
        ({"ignore": [3]}, "not a string"),
        ({"changes": ["created"]}, "not a change kind"),
        ({"changes": []}, "empty"),
        ({"settle": -1}, "settle"),
        ({"settle": float("nan")}, "settle"),
    ],
)
def test_bad_arguments_are_rejected_at_once(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(prx.ConfigurationError, match=message):
        sources.files(".", **kwargs)


def test_bad_job_fields_are_rejected_at_construction(tmp_path: Path) -> None:
    with pytest.raises(prx.InvalidJobError, match="job_type"):
        FileTrigger(RecordingJobCreator(), tmp_path, "bad job type!")
    with pytest.raises(prx.InvalidJobError, match="queue_name"):
        FileTrigger(RecordingJobCreator(), tmp_path, "ok", queue_name="")


# -- the settle rule, as a property ------------------------------------------------------

writes = st.lists(
    st.tuples(st.floats(0.01, 5.0), st.integers(1, 100)), min_size=1, max_size=15
)  # (gap before this write, bytes appended)


@settings(max_examples=300, deadline=None)
@given(writes=writes, settle=st.floats(0.05, 3.0), observed=st.lists(st.booleans(), min_size=15))
def test_settle_rule_fires_only_on_stable_files(
    writes: list[tuple[float, int]], settle: float, observed: list[bool]
) -> None:
    """Drive the rule like the source does (the watcher may miss writes): every emission
    happens at least ``settle`` after the last write before it and carries the file's
    true stat; the final version of the file is always emitted; never twice per version."""
    times: list[float] = []
    sizes: list[int] = []
    now, size = 0.0, 0
    for gap, grow in writes:
        now += gap
        size += grow
        times.append(now)
        sizes.append(size)

    def stat_at(t: float) -> FileStat:
        index = max(i for i, w in enumerate(times) if w <= t + 1e-12)
        return FileStat(sizes[index], int(times[index] * 1e9))

    rule = SettleRule(settle)
    due: float | None = None
    emitted: list[tuple[float, FileStat]] = []
    actions = [(t, "write", i) for i, t in enumerate(times)]
    clock_now = 0.0
    while True:
        next_write = next((a for a in actions if a[0] > clock_now - 1e-12), None)
        if due is not None and (next_write is None or due < next_write[0]):
            clock_now = due
            verdict = rule.check("f", stat_at(clock_now), clock_now)
            due = None
            if isinstance(verdict, Stable):
                emitted.append((clock_now, verdict.stat))
            elif isinstance(verdict, float):
                due = verdict
            continue
        if next_write is None:
            break
        clock_now, _, index = next_write
        actions.remove(next_write)
        if "f" not in rule or observed[index % len(observed)]:
            proposed = rule.observe("f", FileChange.ADDED, stat_at(clock_now), clock_now)
            due = proposed if due is None else due
    assert emitted, "the final version must fire"
    assert emitted[-1][1] == FileStat(sizes[-1], int(times[-1] * 1e9))
    for at, stat in emitted:
        last_write = max(t for t in times if t <= at + 1e-12)
        assert at - last_write >= settle - 1e-6
        assert stat == stat_at(at)
    assert len({stat for _, stat in emitted}) == len(emitted)


def test_settle_rule_forgets_deleted_files() -> None:
    rule = SettleRule(1.0)
    rule.observe("f", FileChange.ADDED, FileStat(1, 1), 0.0)
    assert rule.check("f", None, 0.5) is None
    assert "f" not in rule
    assert rule.check("f", FileStat(1, 1), 2.0) is None


async def test_a_watch_root_that_disappears_is_reported_and_recovered(tmp_path: Path) -> None:
    """The folder is removed while watched: the trigger turns unhealthy and retries with
    backoff; once the folder is back, files become jobs again."""
    watched = tmp_path / "inbox"
    watched.mkdir()
    creator = RecordingJobCreator()
    trigger = FileTrigger(
        creator,
        watched,
        "file.process",
        settle=0.01,
        include_existing=True,
        restart_delay=0.05,
        restart_max_delay=0.2,
    )
    await trigger.start()
    watched.rmdir()
    await wait_for(lambda: not trigger.get_health().healthy)
    assert "inbox" in (trigger.get_health().last_error or "")
    watched.mkdir()
    (watched / "back.txt").write_text("b")  # found by include_existing on resubscribe
    await wait_for(lambda: len(creator.jobs) == 1)
    assert trigger.get_health().healthy
    await trigger.stop()
    assert trigger.get_health().restarts_count >= 1
