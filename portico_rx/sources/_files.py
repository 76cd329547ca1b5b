"""``files``: a folder watched with watchfiles, emitting one ``FileEvent`` per settled file.

The settle rule: a file fires once its size and modification time have stayed the same
for ``settle`` seconds. Every write seen by the watcher, and every check that finds a
different size or mtime, restarts the window; so a file that is still being written
(an upload, a copy) does not fire until it is complete. The window is measured in
scheduler time, so tests drive it with a virtual clock.

Nothing the OS watcher misses is lost: a folder that appears is scanned at once (the
files written into it before the watcher had a watch on it), and the whole tree is
rescanned every ``rescan_interval`` seconds, which finds what a lost batch of events
(an inotify queue overflow, which watchfiles does not report) left out. A file is
emitted once per version (size and mtime): a scan never emits a file again that the
watch has already accounted for.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import functools
import math
import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import reactivex
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.logs import get_logger
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import file_key, source_time
from portico_rx.pipeline.readiness import announce
from portico_rx.sources import _watchfiles_notify

__all__ = [
    "DEFAULT_IGNORE",
    "FileChange",
    "FileEvent",
    "FileSource",
    "FileStat",
    "SettleRule",
    "Stable",
    "check_patterns",
    "files",
    "scan_files",
]

logger = get_logger("portico_rx.sources._files")

DEFAULT_IGNORE: tuple[str, ...] = (".*", "*~", "*.swp", "*.tmp", "*.part", "*.crdownload")
"""Names skipped unless ``ignore=`` says otherwise: hidden files and partial downloads."""

DEFAULT_RESCAN_INTERVAL = 60.0
"""Seconds between full rescans of the watched tree (see the module docstring)."""


class FileChange(enum.StrEnum):
    """What happened to a file."""

    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    EXISTING = "existing"
    """Found by ``include_existing=True`` when the watch started."""


class FileEvent(BaseModel):
    """A settled file in a watched folder.

    Attributes:
        path: absolute path of the file (inside the resolved watch root).
        change: ``added``, ``modified``, ``deleted`` or ``existing``.
        size: size in bytes when it settled (for ``deleted``: the last size seen, or 0).
        mtime: modification time, POSIX seconds (for ``deleted``: last seen, or 0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    change: FileChange
    size: int
    mtime: float


@dataclass(frozen=True)
class FileStat:
    """The part of ``os.stat`` the settle rule compares."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Stable:
    """``SettleRule.check`` verdict: the file has settled with this stat."""

    change: FileChange
    stat: FileStat


@dataclass
class _Window:
    change: FileChange
    stat: FileStat
    since: float


class SettleRule:
    """The settle rule as a pure state machine over (path, stat, time in seconds).

    ``observe`` records a change seen by the watcher and returns when to check the file;
    ``check`` compares a fresh stat with the recorded one and returns :class:`Stable`
    when it has not changed for ``settle`` seconds, else the next time to check (or
    ``None`` when the file is gone). The source drives it with scheduler timers; tests
    drive it directly.
    """

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._windows: dict[str, _Window] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._windows

    def __len__(self) -> int:
        return len(self._windows)

    def observe(self, path: str, change: FileChange, stat: FileStat, now: float) -> float:
        """A change was seen at ``now``; returns the time to check the file."""
        window = self._windows.get(path)
        if window is None:
            window = self._windows[path] = _Window(change, stat, now)
        elif window.stat != stat:
            window.stat, window.since = stat, now
        return window.since + self.settle

    def check(self, path: str, stat: FileStat | None, now: float) -> Stable | float | None:
        """Verdict for ``path`` at ``now`` given its current ``stat`` (``None``: gone)."""
        window = self._windows.get(path)
        if window is None:
            return None
        if stat is None:
            del self._windows[path]
            return None
        if stat != window.stat:
            window.stat, window.since = stat, now
            return now + self.settle
        due = window.since + self.settle
        if now + 1e-9 < due:
            return due
        del self._windows[path]
        return Stable(window.change, stat)

    def forget(self, path: str) -> FileStat | None:
        """Drop ``path`` (deleted); returns the last stat seen, if any."""
        window = self._windows.pop(path, None)
        return window.stat if window is not None else None


def _check_pattern(argument: str, pattern: object) -> str:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigurationError(
            f"{argument}: pattern {pattern!r} is empty or not a string; use a glob like '*.csv'"
        )
    if "\x00" in pattern:
        raise ConfigurationError(f"{argument}: pattern {pattern!r} contains a NUL character")
    if pattern.startswith("/") or (len(pattern) > 1 and pattern[1] == ":"):
        raise ConfigurationError(
            f"{argument}: pattern {pattern!r} is absolute; patterns match paths relative to "
            "the watched folder, e.g. 'invoices/*.pdf'"
        )
    depth = 0
    for char in pattern:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
    if depth:
        raise ConfigurationError(
            f"{argument}: pattern {pattern!r} has an unclosed '['; close the character class "
            "(e.g. '[0-9]') or match a literal bracket with '[[]'"
        )
    return pattern


def check_patterns(argument: str, patterns: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate glob patterns; returns them as a tuple.

    A pattern without ``/`` matches the file name (``*.csv``); one with ``/`` matches the
    path relative to the watched folder (``invoices/*.pdf``).

    Raises:
        ConfigurationError: a pattern is empty, absolute, or has an unclosed ``[``.
    """
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        patterns = (patterns,)
    return tuple(_check_pattern(argument, pattern) for pattern in patterns)


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(relative if "/" in pattern else name, pattern) for pattern in patterns
    )


def _check_changes(changes: Iterable[str | FileChange]) -> frozenset[FileChange]:
    if isinstance(changes, str):
        changes = (changes,)
    allowed = {FileChange.ADDED, FileChange.MODIFIED, FileChange.DELETED}
    chosen: set[FileChange] = set()
    for change in changes:
        try:
            value = FileChange(change)
        except ValueError:
            value = None
        if value not in allowed:
            raise ConfigurationError(
                f"changes: {change!r} is not a change kind; use 'added', 'modified' or 'deleted'"
            )
        assert value is not None
        chosen.add(value)
    if not chosen:
        raise ConfigurationError("changes: empty; use e.g. ('added', 'modified')")
    return frozenset(chosen)


def check_settle(settle: object) -> float:
    """``settle`` as seconds; raises ConfigurationError unless it is a finite number >= 0."""
    if (
        isinstance(settle, bool)
        or not isinstance(settle, int | float)
        or not math.isfinite(settle)
        or settle < 0
    ):
        raise ConfigurationError(
            f"settle={settle!r}: use seconds as a finite number >= 0, e.g. settle=0.25"
        )
    return float(settle)


def _open_root(path: Path) -> Path:
    if not path.exists():
        raise TriggerStartError(
            f"watch path {str(path)!r} does not exist; create the folder or fix the path"
        )
    if not path.is_dir():
        raise TriggerStartError(
            f"watch path {str(path)!r} is not a folder; watch the folder that holds the file "
            f"and use patterns=[{path.name!r}]"
        )
    root = path.resolve()
    if not os.access(root, os.R_OK | os.X_OK):
        raise TriggerStartError(
            f"watch path {str(root)!r} is not readable by this process; fix its permissions"
        )
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise TriggerStartError(f"watch path {str(root)!r} cannot be listed: {exc}") from exc
    return root


def check_rescan_interval(interval: object) -> float | None:
    """``rescan_interval`` as seconds (``None``: never); raises ConfigurationError."""
    if interval is None:
        return None
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval <= 0
    ):
        raise ConfigurationError(
            f"rescan_interval={interval!r}: use seconds as a positive number (e.g. 60), "
            "or None to rely on the OS watcher alone"
        )
    return float(interval)


def scan_files(
    top: str, recursive: bool, skip_folder: Callable[[str], bool]
) -> list[tuple[str, FileStat]]:
    """Every regular file under ``top`` with its stat, symlinks not followed.

    Args:
        top: the folder to walk.
        recursive: walk sub-folders too.
        skip_folder: called with each sub-folder's path; ``True`` prunes it.
    """
    found: list[tuple[str, FileStat]] = []
    for directory, subdirs, names in os.walk(top):
        if recursive:
            subdirs[:] = sorted(d for d in subdirs if not skip_folder(os.path.join(directory, d)))
        else:
            subdirs.clear()
        for name in sorted(names):
            file_path = os.path.join(directory, name)
            stat = _stat(file_path)
            if stat is not None:
                found.append((file_path, stat))
    return found


def _stat(path: str) -> FileStat | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat_module.S_ISREG(info.st_mode):
        return None
    return FileStat(info.st_size, info.st_mtime_ns)


def files(
    path: str | os.PathLike[str],
    patterns: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = DEFAULT_IGNORE,
    recursive: bool = True,
    changes: Iterable[str | FileChange] = (FileChange.ADDED, FileChange.MODIFIED),
    settle: float = 0.25,
    include_existing: bool = False,
    rescan_interval: float | None = DEFAULT_RESCAN_INTERVAL,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[FileEvent]:
    """Watch a folder and emit a :class:`FileEvent` for each file once it has settled.

    Subscribing arms the watcher before it returns (a file written right after
    ``start()`` is seen); disposing stops it. Each event's delivery carries the
    idempotency key ``relative path:size:mtime_ns``, so a restarted trigger does not
    create a second job for a file it already handled, and ``include_existing=True``
    handles files that arrived while it was stopped exactly once.

    Symlinks are never followed: a symlink, or a path that resolves outside the watched
    root, is ignored with a ``file_outside_root_ignored`` / ``file_symlink_ignored``
    warning. Directories never fire. A folder created while watched is scanned at once,
    and the whole tree every ``rescan_interval`` seconds, so files the OS watcher did not
    report (written into a folder before it was watched, or lost in an event-queue
    overflow) still fire, once.

    Args:
        path: the folder to watch.
        patterns: globs a file must match (default: every file). Without ``/`` a pattern
            matches the file name, with ``/`` the path relative to ``path``.
        ignore: globs to skip (default :data:`DEFAULT_IGNORE`: hidden files, ``*~``,
            ``*.swp``, ``*.tmp``, ``*.part``, ``*.crdownload``); ``None`` skips nothing.
        recursive: watch sub-folders too (default ``True``).
        changes: which changes fire: ``"added"``, ``"modified"``, ``"deleted"`` (default
            added and modified).
        settle: seconds a file's size and mtime must stay unchanged before it fires
            (default 0.25; 0 fires on the first stat after the watcher reports it).
        include_existing: also emit the files already there when the watch starts
            (change ``existing``; default ``False``).
        rescan_interval: seconds between full rescans of the tree (default 60, in
            scheduler time; ``None``: never). A rescan stats every file; a file that
            changed and was not reported fires as ``added`` / ``modified``.
        scheduler: scheduler for the settle timers and event times (default: the one
            given at subscribe, else an ``AsyncIOScheduler`` on the running loop).

    Returns:
        A cold observable of :class:`FileEvent`.

    Raises:
        ConfigurationError: at once, for bad patterns, changes, settle or rescan_interval.
        MissingDependencyError: at once, when watchfiles is not installed (extra ``files``).
        TriggerStartError: on subscribe, for a missing, non-folder or unreadable path.

    Marble::

        writes:  --w-w-w------------x---------
        files:   ----------A(settle)---B------   (A: the file after its last write)

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.files("uploads", patterns="*.csv").pipe(
        ...     to_job("csv.import", payload=lambda e: {"file_path": e.path}))
    """
    require("watchfiles", "files")
    spec = _WatchSpec(
        root=Path(os.fspath(path)),
        wanted=check_patterns("patterns", patterns),
        skipped=check_patterns("ignore", ignore),
        recursive=recursive,
        kinds=_check_changes(changes),
        settle=check_settle(settle),
        include_existing=include_existing,
        rescan_interval=check_rescan_interval(rescan_interval),
    )
    return FileSource(spec, scheduler)


@dataclass(frozen=True)
class _WatchSpec:
    """The validated arguments of :func:`files`."""

    root: Path
    wanted: tuple[str, ...]
    skipped: tuple[str, ...]
    recursive: bool
    kinds: frozenset[FileChange]
    settle: float
    include_existing: bool
    rescan_interval: float | None


class FileSource(reactivex.Observable[FileEvent]):
    """What :func:`files` returns: a cold observable of :class:`FileEvent`; each
    subscription runs one :class:`_FolderWatch`.

    Attributes:
        rescans: full rescans done (all subscriptions).
        found_by_scan: files found by a scan (a new folder's, or a rescan's) that the OS
            watcher had not reported.
    """

    def __init__(self, spec: _WatchSpec, scheduler: abc.SchedulerBase | None) -> None:
        super().__init__(self._subscribe_watch)
        self.spec = spec
        self._scheduler = scheduler
        self.rescans = 0
        self.found_by_scan = 0

    def __repr__(self) -> str:
        return f"FileSource({str(self.spec.root)!r})"

    def _subscribe_watch(
        self, observer: abc.ObserverBase[FileEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        announce(self)
        watch = _FolderWatch(self, observer, self._scheduler or scheduler)
        return Disposable(watch.dispose)


class _Wake:
    """The watcher's stop event: set when the watch stops or a rescan is due, so the
    OS watcher returns at once for either."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


class _FolderWatch:
    """One subscription of a :class:`FileSource`: a watcher thread feeding the settle
    rule on the loop, and one scheduler timer per file waiting to settle.

    ``known`` holds the stat each file had when it was last accounted for (there at
    start, or settled): a scan or a late watcher event with that same stat is not a
    change, so nothing fires twice.
    """

    def __init__(
        self,
        owner: FileSource,
        observer: abc.ObserverBase[FileEvent],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        spec = owner.spec
        self.owner = owner
        self.spec = spec
        self.observer = observer
        self.root = _open_root(spec.root)
        self.root_text = str(self.root)
        self.scheduler = clock.resolve_scheduler(scheduler)
        self.loop = asyncio.get_running_loop()
        self.rule = SettleRule(spec.settle)
        self.timers: dict[str, abc.DisposableBase] = {}
        self.known: dict[str, FileStat] = {}
        self.stopped = threading.Event()
        self.rescan_due = threading.Event()
        self.disposed = False
        self.rescan_timer: abc.DisposableBase | None = None
        existing = self._scan(self.root_text)  # before arming: what is there at start
        try:
            self.watcher = _watchfiles_notify.open_notifier(self.root_text, spec.recursive)
        except (FileNotFoundError, PermissionError, OSError) as exc:
            raise TriggerStartError(
                f"watch path {self.root_text!r} cannot be watched: {exc}"
            ) from exc
        if spec.include_existing:
            self._on_scan(existing, change=FileChange.EXISTING)
        else:
            self.known.update(existing)
        thread = threading.Thread(
            target=self._watch_thread, name=f"portico-files:{self.root}", daemon=True
        )
        thread.start()
        self._arm_rescan()
        logger.info(
            "file_watch_started",
            path=self.root_text,
            settle_s=spec.settle,
            rescan_interval_s=spec.rescan_interval,
        )

    def _seconds(self) -> float:
        return clock.now(self.scheduler).timestamp()

    # -- which paths count -------------------------------------------------------------

    def _relative_of(self, file_path: str) -> str | None:
        """The path relative to root, or None when it must be ignored."""
        root_text = self.root_text
        try:
            relative = os.path.relpath(file_path, root_text)
        except ValueError:
            relative = ".."
        if relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative):
            logger.warning("file_outside_root_ignored", path=file_path, root=root_text)
            return None
        if self._crosses_symlink(file_path, relative):
            return None
        relative = relative.replace(os.sep, "/")
        spec = self.spec
        if not spec.recursive and "/" in relative:
            return None
        if spec.skipped and any(
            _matches(part_path, spec.skipped) for part_path in _prefixes(relative)
        ):
            return None
        if spec.wanted and not _matches(relative, spec.wanted):
            return None
        return relative

    def _crosses_symlink(self, file_path: str, relative: str) -> bool:
        """Whether a part of ``relative`` (under root) is a symlink; logs it if so."""
        root_text = self.root_text
        current = root_text
        for part in relative.split(os.sep):
            current = os.path.join(current, part)
            if os.path.islink(current):
                target = os.path.realpath(current)
                outside = not (target == root_text or target.startswith(root_text + os.sep))
                logger.warning(
                    "file_outside_root_ignored" if outside else "file_symlink_ignored",
                    path=file_path,
                    target=target,
                    root=root_text,
                )
                return True
        return False

    # -- settling and emitting ---------------------------------------------------------

    def _emit(self, file_path: str, relative: str, change: FileChange, stat: FileStat) -> None:
        event = FileEvent(path=file_path, change=change, size=stat.size, mtime=stat.mtime_ns / 1e9)
        key = file_key(relative, stat.size, stat.mtime_ns)
        if change is FileChange.DELETED:
            key = file_key(relative, stat.size, stat.mtime_ns, deleted=True)
        delivery = Delivery(
            source=f"files:{self.root_text}",
            seen_at=clock.now(self.scheduler),
            event_id=key,
            idempotency_key=key,
            occurred_at=source_time(stat.mtime_ns / 1e9),
            attributes={"file_path": file_path, "change": change.value},
        )
        logger.debug("file_settled", path=file_path, change=change.value, size=stat.size)
        deliver(self.observer, event, delivery)

    def _schedule_check(self, file_path: str, relative: str, due: float) -> None:
        if file_path in self.timers:
            return
        delay = max(0.0, due - self._seconds())

        def run(_scheduler: Any, _state: Any = None) -> None:
            self._check(file_path, relative)

        self.timers[file_path] = self.scheduler.schedule_relative(timedelta(seconds=delay), run)

    def _check(self, file_path: str, relative: str) -> None:
        self.timers.pop(file_path, None)
        if self.disposed:
            return
        verdict = self.rule.check(file_path, _stat(file_path), self._seconds())
        if isinstance(verdict, Stable):
            self.known[file_path] = verdict.stat
            if verdict.change in self.spec.kinds or verdict.change is FileChange.EXISTING:
                self._emit(file_path, relative, verdict.change, verdict.stat)
        elif verdict is not None:
            self._schedule_check(file_path, relative, verdict)

    def _on_change(self, file_path: str, change: FileChange) -> None:
        relative = self._relative_of(file_path)
        if relative is None:
            return
        kinds = self.spec.kinds
        if change is FileChange.DELETED:
            timer = self.timers.pop(file_path, None)
            if timer is not None:
                timer.dispose()
            accounted = self.known.pop(file_path, None)
            last = self.rule.forget(file_path) or accounted
            if FileChange.DELETED in kinds and _stat(file_path) is None:
                self._emit(file_path, relative, FileChange.DELETED, last or FileStat(0, 0))
            return
        stat = _stat(file_path)
        if stat is None:
            return
        if file_path not in self.rule and self.known.get(file_path) == stat:
            return  # this version was accounted for already
        if change not in kinds and change is not FileChange.EXISTING and file_path not in self.rule:
            self.known[file_path] = stat
            return
        due = self.rule.observe(file_path, change, stat, self._seconds())
        self._schedule_check(file_path, relative, due)

    def _on_batch(self, raw: set[tuple[int, str]], found: list[tuple[str, FileStat]]) -> None:
        """A batch of the OS watcher, and the files found in the folders it created."""
        if self.disposed:
            return
        codes: dict[str, set[int]] = {}
        for code, file_path in raw:
            codes.setdefault(file_path, set()).add(code)
        for file_path in sorted(codes):
            seen = codes[file_path]
            if _watchfiles_notify.DELETED in seen and not os.path.lexists(file_path):
                self._on_change(file_path, FileChange.DELETED)
            elif _watchfiles_notify.ADDED in seen:
                self._on_change(file_path, FileChange.ADDED)
            else:
                self._on_change(file_path, FileChange.MODIFIED)
        self._on_scan(found)

    def _on_scan(
        self,
        found: list[tuple[str, FileStat]],
        *,
        full: bool = False,
        change: FileChange | None = None,
    ) -> None:
        """Files found by a scan: those not accounted for in this version are changes;
        after a full rescan, accounted files that are gone are deletions."""
        if self.disposed:
            return
        known, rule = self.known, self.rule
        fresh = 0
        for file_path, stat in found:
            if file_path in rule or known.get(file_path) == stat:
                continue
            if self._relative_of(file_path) is None:
                known[file_path] = stat  # not watched: remembered, so not checked again
                continue
            fresh += 1
            kind = change or (FileChange.MODIFIED if file_path in known else FileChange.ADDED)
            self._on_change(file_path, kind)
        if full:
            self.owner.rescans += 1
            present = {file_path for file_path, _stat in found}
            for file_path in [path for path in known if path not in present]:
                if not os.path.lexists(file_path):
                    self._on_change(file_path, FileChange.DELETED)
        if change is None and fresh:
            self.owner.found_by_scan += fresh
            logger.info(
                "file_scan_found_unreported",
                path=self.root_text,
                files=fresh,
                scan="rescan" if full else "new_folder",
            )

    # -- scans ---------------------------------------------------------------------------

    def _skips_folder(self, folder: str) -> bool:
        """Whether a sub-folder is ignored (an ``ignore`` glob matches it or a parent)."""
        skipped = self.spec.skipped
        if not skipped:
            return False
        relative = os.path.relpath(folder, self.root_text).replace(os.sep, "/")
        return any(_matches(part, skipped) for part in _prefixes(relative))

    def _scan(self, top: str) -> list[tuple[str, FileStat]]:
        return scan_files(top, self.spec.recursive, self._skips_folder)

    def _new_folders_files(self, raw: set[tuple[int, str]]) -> list[tuple[str, FileStat]]:
        """The files inside the folders this batch reports as created (watcher thread):
        written before the OS watcher had a watch on their folder, they have no event."""
        if not self.spec.recursive:
            return []
        found: list[tuple[str, FileStat]] = []
        for code, path in raw:
            if code != _watchfiles_notify.ADDED or os.path.islink(path):
                continue
            if os.path.isdir(path) and not self._skips_folder(path):
                found.extend(self._scan(path))
        return found

    def _arm_rescan(self) -> None:
        interval = self.spec.rescan_interval
        if interval is None or self.disposed:
            return

        def due(_scheduler: Any, _state: Any = None) -> None:
            self.rescan_due.set()
            self._arm_rescan()

        self.rescan_timer = self.scheduler.schedule_relative(timedelta(seconds=interval), due)

    # -- the watcher thread ------------------------------------------------------------

    def _watch_thread(self) -> None:
        wake = _Wake(self.stopped, self.rescan_due)
        try:
            while not self.stopped.is_set():
                result = self.watcher.watch(wake)
                if self.stopped.is_set():
                    break
                if not os.path.isdir(self.root_text):
                    raise TriggerStartError(
                        f"watch path {self.root_text!r} disappeared while watched; "
                        "restore it (the trigger retries with backoff)"
                    )
                if isinstance(result, set) and result:
                    found = self._new_folders_files(result)
                    self.loop.call_soon_threadsafe(self._on_batch, result, found)
                if self.rescan_due.is_set():
                    self.rescan_due.clear()
                    everything = self._scan(self.root_text)
                    self.loop.call_soon_threadsafe(
                        functools.partial(self._on_scan, everything, full=True)
                    )
        except Exception as exc:  # the watcher died: end the stream, the trigger restarts
            if not self.stopped.is_set():
                self.loop.call_soon_threadsafe(self._fail, exc)
        finally:
            self.watcher.close()

    def _fail(self, error: Exception) -> None:
        if not self.disposed:
            self.observer.on_error(error)

    def dispose(self) -> None:
        """Stop the watcher thread, the rescans and every settle timer."""
        self.disposed = True
        self.stopped.set()
        if self.rescan_timer is not None:
            self.rescan_timer.dispose()
        for timer in list(self.timers.values()):
            timer.dispose()
        self.timers.clear()
        logger.info("file_watch_stopped", path=self.root_text)


def _prefixes(relative: str) -> list[str]:
    """``a/b/c.txt`` -> ``["a", "a/b", "a/b/c.txt"]``: ignore globs apply to folders too."""
    parts = relative.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]
