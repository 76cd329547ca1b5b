"""``portico-rx preview FILE.py --days N``: the runs the file's schedules would make.

::

    portico-rx preview FILE.py [--days 7] [--start ISO] [--limit 50] [--json]

Loads FILE.py over a private in-memory queue (nothing is created anywhere, no store is
opened), walks every :class:`ScheduleTrigger`'s schedules through ``upcoming`` — the same
fire-time engine the live timer uses — from ``--start`` (default now) for ``--days``, and
prints a table of the first ``--limit`` runs with a per-schedule summary, or every run as
JSON lines. Windows longer than a week show a progress bar on stderr while they are read.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
from portico_rx.cli.app_file import check_app_path, load_app_file
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService

__all__ = ["PROGRESS_AFTER_DAYS", "Run", "preview", "runs_between"]

PROGRESS_AFTER_DAYS = 7
"""Windows longer than this many days show a progress bar."""

_CHUNK = 500  # fire times asked of each schedule per step


@dataclass(frozen=True)
class Run:
    """One run a schedule would make."""

    at: datetime  # in the schedule's zone
    trigger: str
    schedule: str
    job_type: str
    queue_name: str

    def as_json(self) -> str:
        return json.dumps(
            {
                "scheduled_at": self.at.isoformat(),
                "trigger": self.trigger,
                "schedule": self.schedule,
                "job_type": self.job_type,
                "queue_name": self.queue_name,
            }
        )


def runs_between(
    trigger: ScheduleTrigger,
    start: datetime,
    end: datetime,
    on_progress: Callable[[datetime], None] | None = None,
) -> Iterator[Run]:
    """Every run of ``trigger``'s schedules in ``[start, end)``, by time.

    Asks ``upcoming`` for the next fire times of every schedule a chunk at a time, and
    keeps those up to the earliest chunk end (the *horizon*; beyond it a dense schedule
    may have runs not asked for yet), so every run is yielded once and in order however
    different the schedules' rates. ``on_progress`` gets the horizon after each step.
    """
    configs = {c.schedule_name: c for c in trigger.schedules}
    cursor = start
    while cursor < end:
        found = trigger.upcoming(_CHUNK, after=cursor)
        full = [times[-1] for times in found.values() if len(times) == _CHUNK]
        horizon = min([end, *(t.astimezone(UTC) for t in full)])
        step = [
            (at, name)
            for name, times in found.items()
            for at in times
            if at < end and at <= horizon
        ]
        step.sort(key=lambda item: (item[0], item[1]))
        for at, name in step:
            config = configs[name]
            yield Run(at, trigger.name, name, config.job_type, config.queue_name)
        if horizon >= end:
            break
        cursor = horizon + timedelta(microseconds=1)
        if on_progress is not None:
            on_progress(cursor)


def _table(runs: list[Run], total: int, start: datetime, end: datetime) -> Table:
    table = Table(
        title=f"first {len(runs)} of {total} runs from {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} {start.tzname()}",
        title_justify="left",
    )
    for column in ("scheduled at", "trigger", "schedule", "job type", "queue"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(
            run.at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            run.trigger,
            run.schedule,
            run.job_type,
            run.queue_name,
        )
    return table


@dataclass
class _Tally:
    runs: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, at: datetime) -> None:
        self.runs += 1
        self.first = self.first or at
        self.last = at


def _summary(tallies: dict[tuple[str, str], _Tally]) -> Table:
    table = Table(title="per schedule", title_justify="left")
    for column in ("trigger", "schedule", "runs", "first", "last"):
        table.add_column(column, no_wrap=True)
    for (trigger, schedule), tally in sorted(tallies.items()):
        first, last = ((f"{t:%Y-%m-%d %H:%M %Z}" if t else "-") for t in (tally.first, tally.last))
        table.add_row(trigger, schedule, str(tally.runs), first, last)
    return table


async def _schedule_triggers(file: str) -> list[ScheduleTrigger]:
    async with JobService(MemoryJobQueue()) as service:  # a preview creates nothing
        app_file = await load_app_file(file, service)
    triggers = [t for t in app_file.triggers if isinstance(t, ScheduleTrigger)]
    if not triggers:
        raise ConfigurationError(
            f"{file} has no ScheduleTrigger: preview shows the runs of ScheduleTrigger "
            "schedules (build(service) returning ScheduleTrigger(...))"
        )
    return triggers


async def preview(
    file: str,
    *,
    days: float,
    start: datetime | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """``portico-rx preview``: the runs of the file's schedules in the next ``days``
    (from ``start``, default now), in time order. Returns the exit code (0).

    Raises:
        ConfigurationError: the file has no ScheduleTrigger, ``start`` is naive, or
            ``days`` is not positive.
    """
    check_app_path(file)
    if days <= 0:
        raise ConfigurationError(f"--days {days!r}: use a positive number of days")
    begin = start or datetime.now(UTC)
    if begin.tzinfo is None:
        raise ConfigurationError(
            f"--start {begin.isoformat()!r}: give a time zone, e.g. {begin.isoformat()}+00:00"
        )
    end = begin + timedelta(days=days)
    triggers = await _schedule_triggers(file)
    shown: list[Run] = []
    tallies = {(t.name, c.schedule_name): _Tally() for t in triggers for c in t.schedules}
    window = (end - begin).total_seconds()
    with Progress(
        TextColumn("[bold]preview[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=days <= PROGRESS_AFTER_DAYS,
    ) as bar:
        tasks = {t.name: bar.add_task(t.name, total=window) for t in triggers}

        def walk(trigger: ScheduleTrigger) -> Iterator[Run]:
            task = tasks[trigger.name]

            def advance(horizon: datetime) -> None:
                bar.update(task, completed=(horizon - begin).total_seconds())

            yield from runs_between(trigger, begin, end, advance)
            bar.update(task, completed=window)

        for run in heapq.merge(*(walk(t) for t in triggers), key=lambda r: r.at):
            tallies[(run.trigger, run.schedule)].add(run.at)
            if as_json:
                sys.stdout.write(run.as_json() + "\n")
            elif len(shown) < limit:
                shown.append(run)
    if not as_json:
        out = Console() if sys.stdout.isatty() else Console(width=160)
        total = sum(t.runs for t in tallies.values())
        out.print(_table(shown, total, begin, end))
        out.print(_summary(tallies))
    return 0
