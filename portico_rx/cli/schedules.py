"""``portico-rx schedules backfill``: create the runs of a past window of one schedule.

::

    portico-rx schedules backfill FILE.py --schedule NAME --start 2025-03-01 --end 2025-03-08
                                  [--trigger NAME] [--store URL] [--dry-run] [--max-runs N]

Loads FILE.py like ``run`` does, picks its :class:`ScheduleTrigger` holding ``NAME``,
prints the preview (runs in the window, how many already exist), then — unless
``--dry-run`` — starts the trigger with every schedule paused (so nothing fires or is
caught up meanwhile), backfills through its own pipeline with a progress bar, and stops.
Naive times are local time in the schedule's zone.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleTrigger
from portico_rx.cli.app_file import check_app_path, load_app_file
from portico_rx.cli.store import job_queue_for
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService

__all__ = ["backfill", "parse_time"]


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time for ``--start``/``--end`` (argparse type)."""
    import argparse

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give an ISO 8601 date or time, e.g. 2025-03-01 or 2025-03-01T09:00+01:00"
        ) from None


def _pick(triggers: list[object], schedule: str, trigger: str | None, file: str) -> ScheduleTrigger:
    found = [
        t
        for t in triggers
        if isinstance(t, ScheduleTrigger)
        and (trigger is None or t.name == trigger)
        and schedule in {c.schedule_name for c in t.schedules}
    ]
    if len(found) == 1:
        return found[0]
    names = sorted(
        f"{t.name}:{c.schedule_name}"
        for t in triggers
        if isinstance(t, ScheduleTrigger)
        for c in t.schedules
    )
    if not found:
        raise ConfigurationError(
            f"{file} has no schedule {schedule!r}"
            + (f" in a trigger named {trigger!r}" if trigger else "")
            + f": its schedules are {names or 'none'} (trigger:schedule)"
        )
    raise ConfigurationError(
        f"{len(found)} triggers of {file} have a schedule {schedule!r}: pick one with "
        f"--trigger ({', '.join(t.name for t in found)})"
    )


async def backfill(
    file: str,
    *,
    schedule: str,
    start: datetime,
    end: datetime,
    trigger: str | None = None,
    store: str = "portico.db",
    dry_run: bool = False,
    max_runs: int = 10_000,
    console: Console | None = None,
) -> int:
    """``portico-rx schedules backfill``. Returns the exit code (1 if a run failed)."""
    check_app_path(file)
    console = console or Console(stderr=False)
    service = JobService(job_queue_for(store))
    await service.open()
    try:
        app_file = await load_app_file(file, service)
        chosen = _pick(list(app_file.triggers), schedule, trigger, file)
        preview = await chosen.backfill(schedule, start, end, dry_run=True, max_runs=max_runs)
        console.print(str(preview))
        if dry_run or not preview.count("planned"):
            return 0
        for name in [c.schedule_name for c in chosen.schedules]:
            chosen.pause_schedule(name)  # nothing fires or is caught up meanwhile
        await chosen.start()
        try:
            with Progress(
                TextColumn("[bold]backfill[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=False,
            ) as bar:
                task = bar.add_task(schedule, total=preview.count("planned"))
                report = await chosen.backfill(
                    schedule,
                    start,
                    end,
                    max_runs=max_runs,
                    on_progress=lambda done, _total: bar.update(task, completed=done),
                )
        finally:
            await chosen.stop()
        console.print(str(report))
        return 1 if report.failed else 0
    finally:
        await service.close()
