"""The status table ``portico-rx run`` and ``worker`` keep on screen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.table import Table

from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import RunState
from portico_rx.ports.job_trigger import JobTrigger

__all__ = ["status_table"]

_STATE_STYLE = {
    RunState.RUNNING: "green",
    RunState.STARTING: "yellow",
    RunState.STOPPING: "yellow",
    RunState.STOPPED: "red",
}


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value is not None else "-"


def _name(trigger: JobTrigger) -> str:
    name = getattr(trigger, "name", None)
    return name if isinstance(name, str) and name else type(trigger).__name__


def _last_job(trigger: JobTrigger, at: datetime | None) -> str:
    history = getattr(trigger, "history", None)
    jobs = history() if callable(history) else []
    if jobs:
        return f"{_when(at)} {jobs[-1].job_type} {str(jobs[-1].id)[:8]}"
    return _when(at)


def status_table(
    triggers: Sequence[JobTrigger], workers: Sequence[JobWorker] = (), *, title: str = ""
) -> Table:
    """One row per trigger (state, events, jobs, errors, dead letters, last job) and
    per worker (state, completed, failed, in flight, last error).

    Returns:
        A ``rich.table.Table``; print it, or give it to ``rich.live.Live``.
    """
    table = Table(title=title or None, title_justify="left", expand=False)
    for column in ("name", "kind", "state", "events", "jobs", "errors", "dead", "last job"):
        table.add_column(column, no_wrap=column in ("name", "state"))
    table.add_column("last error", overflow="fold", max_width=60)
    for trigger in triggers:
        try:
            health = trigger.get_health()
        except Exception as exc:
            table.add_row(_name(trigger), type(trigger).__name__, "?", "", "", "", "", "", str(exc))
            continue
        state = (
            health.state
            if health.state is not RunState.STOPPED
            else (RunState.RUNNING if health.is_running else RunState.STOPPED)
        )
        table.add_row(
            _name(trigger),
            type(trigger).__name__,
            f"[{_STATE_STYLE[state]}]{state.value}[/]",
            str(health.events_seen),
            str(health.jobs_created_count),
            str(health.errors_count),
            str(health.dead_lettered_count),
            _last_job(trigger, health.last_job_created),
            health.last_error or "",
        )
    for worker in workers:
        w = worker.get_health()
        table.add_row(
            w.name,
            "JobWorker",
            f"[{_STATE_STYLE[w.state]}]{w.state.value}[/]"
            + (f" ({w.in_flight} busy)" if w.in_flight else ""),
            "-",
            f"{w.jobs_completed} done",
            str(w.errors_count),
            f"{w.jobs_failed} failed",
            _when(w.last_job_finished),
            w.last_error or "",
        )
    return table
