"""files / FileTrigger: files that land in folders created while the trigger runs, and
events the OS watcher loses (a full rescan finds them)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portico_rx.adapters.job_trigger.file_trigger import FileTrigger
from portico_rx.sources import _watchfiles_notify
from portico_rx.sources._files import scan_files
from portico_rx.testing import RecordingJobCreator


async def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (wall clock) until ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def assert_one_job_per_file(creator: RecordingJobCreator, trigger: FileTrigger, files: list[Path]):
    """Exactly one job per file: its payload path and its idempotency key."""
    paths = [job.payload["file_path"] for job in creator.jobs]
    assert sorted(paths) == sorted(str(path.resolve()) for path in files)
    keys = [job.idempotency_key for job in creator.jobs]
    root = trigger.watch_path.resolve()
    expected = []
    for path in files:
        stat = path.stat()
        relative = path.resolve().relative_to(root).as_posix()
        expected.append(f"{trigger.name}:file.process:{relative}:{stat.st_size}:{stat.st_mtime_ns}")
    assert sorted(keys) == sorted(expected)
    assert len(set(keys)) == len(keys)


async def test_a_file_written_into_a_fresh_date_folder_becomes_a_job(tmp_path: Path) -> None:
    """``mkdir -p uploads/2026/12 && write uploads/2026/12/report.csv`` while running,
    twelve times over (one month each): twelve jobs. The folder and the file appear
    before the OS watcher has a watch on the folder, so only a scan of the new folder
    finds the file."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, uploads, "file.process", settle=0.02)
    await trigger.start()
    written = []
    try:
        for month in range(1, 13):
            folder = uploads / "2026" / f"{month:02d}"
            folder.mkdir(parents=True)
            (folder / "report.csv").write_text(f"month,{month}\n")
            written.append(folder / "report.csv")
        await wait_for(lambda: len(creator.jobs) >= 12, timeout=10)
        await asyncio.sleep(0.2)  # nothing else is on its way
    finally:
        await trigger.stop()
    assert_one_job_per_file(creator, trigger, written)


async def test_a_thousand_files_across_fifty_fresh_nested_folders(tmp_path: Path) -> None:
    """1,000 files written across 50 freshly created nested folders while running:
    1,000 jobs, none twice (keys and payload paths)."""
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, tmp_path, "file.process", settle=0.05)
    await trigger.start()
    written = []
    try:
        for folder_number in range(50):
            folder = tmp_path / f"day-{folder_number // 10}" / f"batch-{folder_number}" / "in"
            folder.mkdir(parents=True)
            for file_number in range(20):
                target = folder / f"file-{file_number:02d}.csv"
                target.write_text(f"{folder_number},{file_number}\n")
                written.append(target)
        await wait_for(lambda: len(creator.jobs) >= 1000, timeout=60)
        await asyncio.sleep(0.3)  # nothing else is on its way
    finally:
        await trigger.stop()
    assert len(creator.jobs) == 1000
    assert_one_job_per_file(creator, trigger, written)


class _LosingNotifier:
    """The OS watcher, losing every batch until ``lose`` is cleared: what an inotify
    queue overflow does (watchfiles reports nothing for it)."""

    lose = True

    def __init__(self, real: Any) -> None:
        self.real = real

    def watch(self, stop_event: Any) -> Any:
        changes = self.real.watch(stop_event)
        if _LosingNotifier.lose and isinstance(changes, set) and changes:
            return set()
        return changes

    def close(self) -> None:
        self.real.close()


async def test_events_the_watcher_lost_are_found_by_the_periodic_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every watcher batch is lost: the rescan every ``rescan_interval`` finds the new
    files, the changed one and none of the files that were there before start."""
    (tmp_path / "before.txt").write_text("there before start")
    (tmp_path / "changed.txt").write_text("v1")
    real_open = _watchfiles_notify.open_notifier
    monkeypatch.setattr(
        _watchfiles_notify,
        "open_notifier",
        lambda root, recursive: _LosingNotifier(real_open(root, recursive)),
    )
    _LosingNotifier.lose = True
    creator = RecordingJobCreator()
    trigger = FileTrigger(creator, tmp_path, "file.process", settle=0.01, rescan_interval=0.2)
    await trigger.start()
    try:
        fresh = tmp_path / "a" / "b"
        fresh.mkdir(parents=True)
        written = [fresh / f"{n}.txt" for n in range(30)]
        for path in written:
            path.write_text(path.name)
        changed = tmp_path / "changed.txt"
        changed.write_text("v2, longer")
        written.append(changed)
        await wait_for(lambda: len(creator.jobs) >= 31, timeout=10)
        await asyncio.sleep(0.5)  # two more rescans: nothing found twice
    finally:
        await trigger.stop()
    assert_one_job_per_file(creator, trigger, written)
    assert trigger.get_health().details["rescans"] >= 2


def test_the_watchfiles_reach_is_pinned(tmp_path: Path) -> None:
    """The one private reach into watchfiles (``_rust_notify.RustNotify``, used because
    the public ``watchfiles.watch`` arms its watcher lazily, inside the first iteration,
    so ``start()`` could not know it is armed): its signature and its results, checked
    against the installed watchfiles so a change there fails here, loudly."""
    notifier = _watchfiles_notify.open_notifier(str(tmp_path), True)
    try:
        (tmp_path / "one.txt").write_text("1")
        deadline = time.monotonic() + 10
        seen: set[tuple[int, str]] = set()
        while time.monotonic() < deadline and not seen:
            seen = notifier.watch(None)
    finally:
        notifier.close()
    assert (_watchfiles_notify.ADDED, str(tmp_path / "one.txt")) in seen
    _watchfiles_notify.check_watchfiles()  # raises if the private API moved


def test_the_pin_fails_when_watchfiles_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pin really checks: a RustNotify with another signature is refused."""
    import watchfiles._rust_notify as rust

    class Changed:
        """``RustNotify`` as a future watchfiles might have it."""

        __text_signature__ = "(watch_paths, debug)"

    monkeypatch.setattr(rust, "RustNotify", Changed)
    with pytest.raises(RuntimeError, match="changed its private notifier"):
        _watchfiles_notify.check_watchfiles()


def test_the_folder_scan_skips_ignored_folders(tmp_path: Path) -> None:
    """The scan of a new folder does not walk into ignored folders (``.git``)."""
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    (tmp_path / ".git" / "objects" / "x").write_text("x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("a")
    found = scan_files(str(tmp_path), True, lambda folder: os.path.basename(folder) == ".git")
    assert [os.path.relpath(path, tmp_path) for path, _stat in found] == ["data/a.csv"]
