"""How a trigger shows itself in Jupyter: a compact HTML card (``_repr_html_``).

Name, class, state, the sources it has seen, its next fire times (when the trigger has
``upcoming(n)``, as schedule triggers do), its counters and its latest jobs. Pure HTML:
no pandas or ipywidgets needed.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from portico_rx.frames import jobs_table_html

__all__ = ["next_fire_times", "state_label", "trigger_html"]

_STATE_COLOURS = {
    "running": "#2e7d32",
    "paused": "#ef6c00",
    "starting": "#1565c0",
    "stopping": "#6a1b9a",
    "stopped": "#616161",
}


def state_label(trigger: Any) -> str:
    """``"running"``, ``"paused"``, ``"starting"``, ``"stopping"`` or ``"stopped"``."""
    state = getattr(trigger, "state", None)
    value = getattr(state, "value", None) or ("running" if trigger.is_running else "stopped")
    if value == "running" and getattr(trigger, "paused", False):
        return "paused"
    return str(value)


def next_fire_times(trigger: Any, count: int = 5) -> list[datetime]:
    """The trigger's next ``count`` fire times (all schedules merged, soonest first), or
    ``[]`` if it has no ``upcoming``."""
    upcoming = getattr(trigger, "upcoming", None)
    if not callable(upcoming):
        return []
    try:
        found = upcoming(count)
    except Exception:  # a preview must never break the display
        return []
    if isinstance(found, dict):  # ScheduleTrigger: {schedule name: [times]}
        found = [t for times in found.values() for t in times]
    times = [t for t in found if isinstance(t, datetime)]
    return sorted(times)[:count]


def _sources(trigger: Any) -> list[str]:
    seen: list[str] = []
    for job in getattr(trigger, "recent_jobs", ()):
        source = job.metadata.get("source")
        if isinstance(source, str) and source not in seen:
            seen.append(source)
    return seen


def _row(label: str, value: Any, width: int = 160) -> str:
    text = str(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return (
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(label)}</th>"
        f"<td style='text-align:left'>{html.escape(text)}</td></tr>"
    )


def trigger_html(trigger: Any, *, jobs: int = 5) -> str:
    """An HTML card for ``trigger`` (any ``JobTrigger``; richer for ``PipelineTrigger``)."""
    state = state_label(trigger)
    colour = _STATE_COLOURS.get(state, "#616161")
    name = getattr(trigger, "name", type(trigger).__name__)
    health = trigger.get_health()
    rows = [
        _row("jobs created", health.jobs_created_count),
        _row("events seen", health.events_seen),
        _row("errors", health.errors_count),
        _row("dead letters", health.dead_lettered_count),
        _row("in flight", health.in_flight),
    ]
    if health.last_job_created is not None:
        rows.append(_row("last job", health.last_job_created.isoformat(timespec="seconds")))
    if health.last_error:
        rows.append(_row("last error", health.last_error))
    sources = _sources(trigger)
    if sources:
        rows.append(_row("sources", ", ".join(sources)))
    for key, value in sorted(health.details.items()):
        rows.append(_row(str(key), value))
    fire_times = next_fire_times(trigger)
    if fire_times:
        rows.append(
            _row("next fire times", ", ".join(t.isoformat(timespec="minutes") for t in fire_times))
        )
    recent = list(getattr(trigger, "recent_jobs", ()))
    table = jobs_table_html(recent, limit=jobs) if recent else ""
    return (
        "<div class='portico-trigger' style='border:1px solid #ddd;padding:6px;"
        "border-radius:4px;display:inline-block'>"
        f"<b>{html.escape(str(name))}</b> <small>{html.escape(type(trigger).__name__)}</small> "
        f"<span style='color:white;background:{colour};padding:1px 6px;border-radius:3px'>"
        f"{state}</span>"
        f"<table>{''.join(rows)}</table>{table}</div>"
    )
