"""Backfills: the runs of a past window of one schedule, each with its normal key.

``ScheduleTrigger.backfill``
plans the window here (fire times, keys, which already exist in the job store), then
emits the missing runs through the trigger's own pipeline (runner -> delivery -> to_job
-> JobSink), so a backfilled run is created, retried and dead-lettered like any other
and carries the same key: backfilling a window twice creates nothing new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portico_rx.errors import InvalidScheduleError
from portico_rx.ports.job_queue import JobQueue
from portico_rx.schedule.tick import from_micros

__all__ = ["BackfillReport", "BackfillRun", "check_window", "existing_keys", "planned_runs"]

Progress = Callable[[int, int], None]
"""``on_progress(done, total)``: called as the runs of a backfill are settled."""


@dataclass(frozen=True, slots=True)
class BackfillRun:
    """One run of a backfill window.

    Attributes:
        scheduled_at: the fire time (UTC).
        idempotency_key: the run's job key, as the live timer forms it.
        existed: a job with this key was already in the store before the backfill.
        outcome: ``"existing"``, ``"planned"`` (a dry run), ``"created"`` or ``"failed"``.
    """

    scheduled_at: datetime
    idempotency_key: str
    existed: bool
    outcome: str


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill planned or did.

    Attributes:
        schedule: the schedule's name.
        start, end: the window ``[start, end)`` (UTC).
        dry_run: nothing was created (the preview).
        runs: every fire time of the window, in order.
    """

    schedule: str
    start: datetime
    end: datetime
    dry_run: bool
    runs: list[BackfillRun] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """How many runs had ``outcome``."""
        return sum(1 for run in self.runs if run.outcome == outcome)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def existing(self) -> int:
        return self.count("existing")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def __str__(self) -> str:
        verb = "would create" if self.dry_run else "created"
        todo = self.count("planned") if self.dry_run else self.created
        return (
            f"backfill of {self.schedule!r} {self.start.isoformat()} .. {self.end.isoformat()}: "
            f"{len(self.runs)} runs, {self.existing} already in the store, {verb} {todo}"
            + ("" if self.dry_run else f", {self.failed} failed")
        )

    def to_frame(self) -> Any:
        """The runs as a pandas DataFrame (extra ``notebook``)."""
        from portico_rx.errors import require

        pd: Any = require("pandas", "notebook")
        return pd.DataFrame(
            [
                {
                    "scheduled_at": run.scheduled_at,
                    "idempotency_key": run.idempotency_key,
                    "existed": run.existed,
                    "outcome": run.outcome,
                }
                for run in self.runs
            ],
            columns=["scheduled_at", "idempotency_key", "existed", "outcome"],
        )


async def existing_keys(job_creator: Any, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the job store holds: by key in the creator's job queue, else
    through ``find_jobs``. Asked 200 at a time (stores batch concurrent reads)."""
    queue = getattr(job_creator, "job_queue", None)
    found: set[str] = set()
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        if isinstance(queue, JobQueue):
            jobs = await asyncio.gather(*(queue.get_by_key(key) for key in chunk))
            found.update(key for key, job in zip(chunk, jobs, strict=True) if job is not None)
        else:
            lists = await asyncio.gather(
                *(job_creator.find_jobs(key_prefix=key, limit=5) for key in chunk)
            )
            for key, jobs in zip(chunk, lists, strict=True):
                if any(job.idempotency_key == key for job in jobs):
                    found.add(key)
    return found


def planned_runs(nominals: list[int], keys: list[str], existing: set[str]) -> list[BackfillRun]:
    """The window's runs before anything is created (what a dry run returns)."""
    return [
        BackfillRun(
            scheduled_at=from_micros(nominal),
            idempotency_key=key,
            existed=key in existing,
            outcome="existing" if key in existing else "planned",
        )
        for nominal, key in zip(nominals, keys, strict=True)
    ]


def check_window(start: datetime, end: datetime, now: datetime) -> None:
    """A backfill window is past: ``start < end <= now``.

    Raises:
        InvalidScheduleError: ``end`` not after ``start``, or in the future.
    """
    if end <= start:
        raise InvalidScheduleError(
            f"end={end.isoformat()} is not after start={start.isoformat()}: give a window "
            "with start before end"
        )
    if end > now:
        raise InvalidScheduleError(
            f"end={end.isoformat()} is after now ({now.isoformat()}): a backfill creates "
            "past runs; the running timer creates the rest. Give end=now at the latest"
        )
