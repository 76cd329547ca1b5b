"""``files``: a folder watched with watchfiles, emitting one ``FileEvent`` per settled file.

The settle rule: a file fires once its size and modification time have stayed the same
for ``settle`` seconds. Every write seen by the watcher, and every check that finds a
different size or mtime, restarts the window; so a file that is still being written
(an upload, a copy) does not fire until it is complete. The window is measured in
scheduler time, so tests drive it with a virtual clock.
"""

from __future__ import annotations

import asyncio
import enum
import fnmatch
import math
import os
import stat as stat_module
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import reactivex
import structlog
from pydantic import BaseModel, ConfigDict
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from portico_rx.errors import ConfigurationError, TriggerStartError, require
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.provenance import file_key, source_time

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
]

logger = structlog.get_logger("portico_rx.sources._files")

DEFAULT_IGNORE: tuple[str, ...] = (".*", "*~", "*.swp", "*.tmp", "*.part", "*.crdownload")
"""Names skipped unless ``ignore=`` says otherwise: hidden files and partial downloads."""

# watchfiles' defaults (debounce 1600 ms, step 50 ms) batch changes for up to 1.6 s. We
# settle files ourselves, so the watcher only has to report quickly.
_DEBOUNCE_MS = 20
_STEP_MS = 2
_TIMEOUT_MS = 1000


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
    warning. Directories never fire.

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
        scheduler: scheduler for the settle timers and event times (default: the one
            given at subscribe, else an ``AsyncIOScheduler`` on the running loop).

    Returns:
        A cold observable of :class:`FileEvent`.

    Raises:
        ConfigurationError: at once, for bad patterns, changes or settle.
        TriggerStartError: on subscribe, for a missing, non-folder or unreadable path.

    Marble::

        writes:  --w-w-w------------x---------
        files:   ----------A(settle)---B------   (A: the file after its last write)

    Example:
        >>> from portico_rx import sources, to_job
        >>> pipeline = sources.files("uploads", patterns="*.csv").pipe(
        ...     to_job("csv.import", payload=lambda e: {"file_path": e.path}))
    """
    spec = _WatchSpec(
        root=Path(os.fspath(path)),
        wanted=check_patterns("patterns", patterns),
        skipped=check_patterns("ignore", ignore),
        recursive=recursive,
        kinds=_check_changes(changes),
        settle=check_settle(settle),
        include_existing=include_existing,
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


class FileSource(reactivex.Observable[FileEvent]):
    """What :func:`files` returns: a cold observable of :class:`FileEvent`; each
    subscription runs one :class:`_FolderWatch`."""

    def __init__(self, spec: _WatchSpec, scheduler: abc.SchedulerBase | None) -> None:
        super().__init__(self._subscribe_watch)
        self.spec = spec
        self._scheduler = scheduler

    def __repr__(self) -> str:
        return f"FileSource({str(self.spec.root)!r})"

    def _subscribe_watch(
        self, observer: abc.ObserverBase[FileEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        watch = _FolderWatch(self.spec, observer, self._scheduler or scheduler)
        return Disposable(watch.dispose)


class _FolderWatch:
    """One subscription of a :class:`FileSource`: a watcher thread feeding the settle
    rule on the loop, and one scheduler timer per file waiting to settle."""

    def __init__(
        self,
        spec: _WatchSpec,
        observer: abc.ObserverBase[FileEvent],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        rust = require("watchfiles._rust_notify", "files")
        self.spec = spec
        self.observer = observer
        self.root = _open_root(spec.root)
        self.root_text = str(self.root)
        self.scheduler = clock.resolve_scheduler(scheduler)
        self.loop = asyncio.get_running_loop()
        self.rule = SettleRule(spec.settle)
        self.timers: dict[str, abc.DisposableBase] = {}
        self.stopped = threading.Event()
        self.disposed = False
        try:
            self.watcher: Any = rust.RustNotify(  # type: ignore[attr-defined]
                [self.root_text], False, False, 300, spec.recursive, True
            )
        except (FileNotFoundError, PermissionError, OSError) as exc:
            raise TriggerStartError(
                f"watch path {self.root_text!r} cannot be watched: {exc}"
            ) from exc
        if spec.include_existing:
            self._emit_existing()
        thread = threading.Thread(
            target=self._watch_thread, name=f"portico-files:{self.root}", daemon=True
        )
        thread.start()
        logger.info("file_watch_started", path=self.root_text, settle_s=spec.settle)

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
            last = self.rule.forget(file_path)
            if FileChange.DELETED in kinds and _stat(file_path) is None:
                self._emit(file_path, relative, FileChange.DELETED, last or FileStat(0, 0))
            return
        stat = _stat(file_path)
        if stat is None:
            return
        if change not in kinds and change is not FileChange.EXISTING and file_path not in self.rule:
            return
        due = self.rule.observe(file_path, change, stat, self._seconds())
        self._schedule_check(file_path, relative, due)

    def _on_batch(self, raw: set[tuple[int, str]]) -> None:
        if self.disposed:
            return
        codes: dict[str, set[int]] = {}
        for code, file_path in raw:
            codes.setdefault(file_path, set()).add(code)
        for file_path in sorted(codes):
            seen = codes[file_path]
            if 3 in seen and not os.path.lexists(file_path):
                self._on_change(file_path, FileChange.DELETED)
            elif 1 in seen:
                self._on_change(file_path, FileChange.ADDED)
            else:
                self._on_change(file_path, FileChange.MODIFIED)

    def _emit_existing(self) -> None:
        for directory, subdirs, names in os.walk(self.root_text):
            if not self.spec.recursive:
                subdirs.clear()
            for name in sorted(names):
                file_path = os.path.join(directory, name)
                if self._relative_of(file_path) is not None and _stat(file_path) is not None:
                    self._on_change(file_path, FileChange.EXISTING)

    # -- the watcher thread ------------------------------------------------------------

    def _watch_thread(self) -> None:
        try:
            while not self.stopped.is_set():
                result = self.watcher.watch(_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, self.stopped)
                if result == "stop":
                    break
                if not os.path.isdir(self.root_text):
                    raise TriggerStartError(
                        f"watch path {self.root_text!r} disappeared while watched; "
                        "restore it (the trigger retries with backoff)"
                    )
                if isinstance(result, set) and result:
                    self.loop.call_soon_threadsafe(self._on_batch, result)
        except Exception as exc:  # the watcher died: end the stream, the trigger restarts
            if not self.stopped.is_set():
                self.loop.call_soon_threadsafe(self._fail, exc)
        finally:
            self.watcher.close()

    def _fail(self, error: Exception) -> None:
        if not self.disposed:
            self.observer.on_error(error)

    def dispose(self) -> None:
        """Stop the watcher thread and every settle timer."""
        self.disposed = True
        self.stopped.set()
        for timer in list(self.timers.values()):
            timer.dispose()
        self.timers.clear()
        logger.info("file_watch_stopped", path=self.root_text)


def _prefixes(relative: str) -> list[str]:
    """``a/b/c.txt`` -> ``["a", "a/b", "a/b/c.txt"]``: ignore globs apply to folders too."""
    parts = relative.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]
