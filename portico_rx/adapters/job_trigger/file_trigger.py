"""FileTrigger: the spec's file-system trigger, as a settled ``files`` pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reactivex.abc import SchedulerBase

from portico_rx.pipeline import PipelineTrigger
from portico_rx.pipeline.to_job import to_job
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources._files import (
    DEFAULT_IGNORE,
    DEFAULT_RESCAN_INTERVAL,
    FileChange,
    FileEvent,
    FileSource,
    files,
)

__all__ = ["FileTrigger"]


class FileTrigger(PipelineTrigger):
    """Create a job for each file that lands (and settles) in a folder.

    Each job has the payload ``{"file_path": "<absolute path>"}`` and the idempotency key
    ``<name>:<job_type>:<relative path>:<size>:<mtime_ns>``, so restarting the trigger
    (or running it on two replicas over one shared folder) does not create a second job
    for the same file version.

    Args:
        job_creator: where jobs are created.
        watch_path: the folder to watch; missing or unreadable -> ``TriggerStartError``
            from ``start()``.
        job_type: the job type of every job (default ``"file.process"``).
        queue_name: the queue of every job (default ``"file_processing"``).
        patterns: globs a file must match (default every file; see ``sources.files``).
        ignore: globs to skip (default hidden and partial files).
        recursive: watch sub-folders too (default ``True``).
        changes: which changes create jobs (default added and modified).
        settle: seconds a file must stay unchanged before its job is created (default 0.25).
        include_existing: create jobs for files already there at start (default ``False``;
            already-handled files are deduplicated by their idempotency key).
        rescan_interval: seconds between full rescans of the folder (default 60;
            ``None``: never). Folders created while running are scanned at once; the
            rescan finds what the OS watcher lost (an event-queue overflow).
        priority: priority of every job (default 0).
        name: trigger name (default ``"files:<watch_path>"``).
        scheduler: Rx scheduler (default the running loop); pass a virtual one in tests.
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger` (retry, …).

    Example:
        >>> from pathlib import Path
        >>> from portico_rx.testing import RecordingJobCreator
        >>> trigger = FileTrigger(RecordingJobCreator(), Path("/uploads"), "file.process")
        >>> trigger.queue_name
        'file_processing'
    """

    def __init__(
        self,
        job_creator: JobCreator,
        watch_path: Path | str,
        job_type: str = "file.process",
        queue_name: str = "file_processing",
        *,
        patterns: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = DEFAULT_IGNORE,
        recursive: bool = True,
        changes: Iterable[str | FileChange] = (FileChange.ADDED, FileChange.MODIFIED),
        settle: float = 0.25,
        include_existing: bool = False,
        rescan_interval: float | None = DEFAULT_RESCAN_INTERVAL,
        priority: int = 0,
        name: str | None = None,
        scheduler: SchedulerBase | None = None,
        **options: Any,
    ) -> None:
        as_requests = to_job(
            job_type, payload=_file_payload, queue_name=queue_name, priority=priority
        )
        self.watch_path = Path(os.fspath(watch_path))
        self.job_type = job_type
        self.queue_name = queue_name
        source = files(
            self.watch_path,
            patterns=patterns,
            ignore=ignore,
            recursive=recursive,
            changes=changes,
            settle=settle,
            include_existing=include_existing,
            rescan_interval=rescan_interval,
            scheduler=scheduler,
        )
        assert isinstance(source, FileSource)
        self.source = source
        pipeline = source.pipe(as_requests)
        super().__init__(
            pipeline,
            job_creator,
            name=name or f"files:{self.watch_path}",
            scheduler=scheduler,
            **options,
        )

    def health_details(self) -> dict[str, Any]:
        return {
            "watch_path": str(self.watch_path),
            "job_type": self.job_type,
            "rescans": self.source.rescans,
            "found_by_scan": self.source.found_by_scan,
        }


def _file_payload(event: FileEvent) -> dict[str, Any]:
    return {"file_path": event.path}
