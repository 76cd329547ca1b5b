"""``portico-rx schedules``: the schedules kept in the store, and backfills.

::

    portico-rx schedules list   [--store URL] [--trigger NAME] [--json]
    portico-rx schedules add    NAME (--cron EXPR | --every S | --at ISO) --job-type TYPE
                                [--payload JSON] [--queue Q] [--priority N] [--tz ZONE]
                                [--paused] [--replace] [--trigger NAME] [--store URL]
    portico-rx schedules pause  NAME [--trigger NAME] [--store URL]
    portico-rx schedules resume NAME [--trigger NAME] [--store URL]
    portico-rx schedules remove NAME [--trigger NAME] [--store URL]

``list``/``add``/``pause``/``resume``/``remove`` change the schedule store of the job
store (``--store``) directly: every running ``ScheduleTrigger`` of that name (default
``schedules``) on that store applies the change within its ``schedule_poll``. ``add``
validates the schedule as ``ScheduleConfig`` does; with ``--replace`` it changes an
existing one.

    portico-rx schedules backfill FILE.py --schedule NAME --start 2025-03-01 --end 2025-03-08
                                  [--trigger NAME] [--store URL] [--dry-run] [--max-runs N]

Loads FILE.py like ``run`` does, picks its :class:`ScheduleTrigger` holding ``NAME``,
prints the preview (runs in the window, how many already exist), then — unless
``--dry-run`` — starts the trigger with every schedule paused (so nothing fires or is
caught up meanwhile), backfills through its own pipeline with a progress bar, and stops.
Naive times are local time in the schedule's zone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.cli.app_file import check_app_path, load_app_file
from portico_rx.cli.store import job_queue_for
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService
from portico_rx.ports.schedule_store import ScheduleStore, StoredSchedule

__all__ = [
    "add_schedule",
    "backfill",
    "list_schedules",
    "parse_time",
    "remove_schedule",
    "set_paused",
]


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
        chosen.schedule_store = None  # pausing here changes no stored schedule
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


# -- the schedule store ------------------------------------------------------------------


@asynccontextmanager
async def _schedule_store(store: str, *, must_exist: bool) -> AsyncIterator[ScheduleStore]:
    queue = job_queue_for(store, must_exist=must_exist)
    if not isinstance(queue, ScheduleStore):
        raise ConfigurationError(f"--store {store!r} keeps no schedules: use a job store URL")
    await queue.open()
    try:
        yield queue
    finally:
        await queue.close()


def _row(schedule: StoredSchedule) -> dict[str, Any]:
    return {
        "trigger": schedule.trigger,
        "name": schedule.name,
        "paused": schedule.paused,
        "revision": schedule.revision,
        "updated_at": schedule.updated_at.isoformat(),
        "config": schedule.config,
    }


def _when(config: dict[str, Any]) -> str:
    if config.get("cron") is not None:
        return str(config["cron"])
    if config.get("every") is not None:
        return f"every {config['every']:g}s"
    return f"at {config.get('at')}"


async def list_schedules(
    *, store: str, trigger: str | None = None, as_json: bool = False, console: Console | None = None
) -> int:
    """``portico-rx schedules list``: the stored schedules (all triggers by default)."""
    console = console or Console()
    async with _schedule_store(store, must_exist=True) as schedules:
        rows = await schedules.list_schedules(trigger)
    if as_json:
        console.print_json(json.dumps([_row(r) for r in rows]))
        return 0
    from rich.table import Table

    table = Table("trigger", "name", "when", "job type", "queue", "paused", "revision")
    for row in rows:
        config = row.config
        table.add_row(
            row.trigger,
            row.name,
            _when(config),
            str(config.get("job_type")),
            str(config.get("queue_name", "default")),
            "yes" if row.paused else "",
            str(row.revision),
        )
    console.print(table if rows else "no schedules in the store")
    return 0


async def add_schedule(
    name: str,
    *,
    store: str,
    trigger: str = "schedules",
    cron: str | None = None,
    every: float | None = None,
    at: datetime | None = None,
    job_type: str,
    payload: str | None = None,
    queue_name: str = "default",
    priority: int = 0,
    tz: str | None = None,
    paused: bool = False,
    replace: bool = False,
    console: Console | None = None,
) -> int:
    """``portico-rx schedules add``: validate a schedule and write it to the store.

    Raises:
        ConfigurationError: a bad schedule or payload, or the name exists without
            ``--replace`` (or does not exist with it).
    """
    console = console or Console()
    try:
        body = {} if payload is None else json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"--payload {payload!r} is not JSON ({exc.msg}): give an object, e.g. '{{\"to\": 1}}'"
        ) from None
    if not isinstance(body, dict):
        raise ConfigurationError(f"--payload {payload!r}: give a JSON object, e.g. '{{}}'")
    try:
        config = ScheduleConfig(
            cron=cron,
            every=every,
            at=at,
            job_type=job_type,
            payload=body,
            queue_name=queue_name,
            priority=priority,
            name=name,
            tz=tz,
        )
    except ValueError as exc:  # pydantic's ValidationError names the field
        raise ConfigurationError(f"schedule {name!r}: {exc}") from None
    async with _schedule_store(store, must_exist=False) as schedules:
        exists = name in {r.name for r in await schedules.list_schedules(trigger)}
        if exists != replace:
            raise ConfigurationError(
                f"schedule {name!r} of trigger {trigger!r} "
                + (
                    "exists: pass --replace to change it"
                    if exists
                    else "does not exist: drop --replace to add it"
                )
            )
        row = await schedules.save_schedule(
            trigger, name, config.model_dump(mode="json"), paused=True if paused else None
        )
    verb = "changed" if replace else "added"
    console.print(f"{verb} {trigger}:{name} ({config.when}), revision {row.revision}")
    return 0


async def set_paused(
    name: str,
    *,
    store: str,
    trigger: str = "schedules",
    paused: bool,
    console: Console | None = None,
) -> int:
    """``portico-rx schedules pause|resume``.

    Raises:
        ConfigurationError: no such schedule in the store.
    """
    console = console or Console()
    async with _schedule_store(store, must_exist=True) as schedules:
        row = await schedules.set_schedule_paused(trigger, name, paused)
    if row is None:
        raise ConfigurationError(_missing(name, trigger, store))
    console.print(f"{'paused' if paused else 'resumed'} {trigger}:{name}, revision {row.revision}")
    return 0


async def remove_schedule(
    name: str, *, store: str, trigger: str = "schedules", console: Console | None = None
) -> int:
    """``portico-rx schedules remove``.

    Raises:
        ConfigurationError: no such schedule in the store.
    """
    console = console or Console()
    async with _schedule_store(store, must_exist=True) as schedules:
        removed = await schedules.delete_schedule(trigger, name)
    if not removed:
        raise ConfigurationError(_missing(name, trigger, store))
    console.print(f"removed {trigger}:{name}")
    return 0


def _missing(name: str, trigger: str, store: str) -> str:
    return (
        f"no schedule {name!r} of trigger {trigger!r} in the store {store!r}: see "
        "`portico-rx schedules list`, or pass --trigger"
    )
