"""Pictures: a timeline of events -> jobs, and of upcoming fire times (matplotlib)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from portico_rx.errors import ConfigurationError, require
from portico_rx.sources._replay import as_utc

__all__ = ["plot_upcoming", "timeline"]


def _axes(ax: Any, width: float, height: float) -> Any:
    if ax is not None:
        return ax
    require("matplotlib", "notebook")
    import matplotlib.pyplot as plt

    _figure, axes = plt.subplots(figsize=(width, height))
    return axes


def timeline(
    events: Any = None,
    jobs: Any = None,
    *,
    upcoming: Iterable[datetime] | None = None,
    time_column: str = "time",
    job_time_column: str = "created_at",
    links: bool = True,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Plot events and the jobs they became on one time axis, one lane per job type.

    The bottom lane shows events (a frame from :func:`~portico_rx.notebook.record`, or any
    frame with a time column), one lane per ``job_type`` shows jobs (a frame from
    :func:`~portico_rx.notebook.simulate.simulate` or :func:`~portico_rx.notebook.jobs_frame`),
    and a top lane shows ``upcoming`` fire times. With ``links``, a faint line joins
    each job to its event (matched on ``event_id``), so delays and drops are visible.

    Returns:
        The matplotlib ``Axes`` (lanes on the y axis, UTC time on the x axis).

    Args:
        events: a DataFrame of events (default ``None``).
        jobs: a DataFrame of jobs (default ``None``).
        upcoming: future fire times, e.g. ``trigger.upcoming(10)`` (default ``None``).
        time_column: the events' time column (default ``"time"``).
        job_time_column: the jobs' time column (default ``"created_at"``).
        links: draw event -> job lines where ``event_id`` matches (default ``True``).
        ax: draw into these axes (default: a new figure).
        title: the plot title (default none).

    Raises:
        ConfigurationError: nothing to plot, or a missing time column.
    """
    pd: Any = require("pandas", "notebook")
    upcoming_times = [as_utc(t, "upcoming") for t in upcoming or ()]
    if events is None and jobs is None and not upcoming_times:
        raise ConfigurationError("timeline() needs events=, jobs= or upcoming= to plot")
    for label, frame, column in (("events", events, time_column), ("jobs", jobs, job_time_column)):
        if frame is not None and column not in frame.columns:
            raise ConfigurationError(
                f"{label} has no column {column!r} (columns: {list(map(str, frame.columns))}); "
                f"pass {'time_column' if label == 'events' else 'job_time_column'}="
            )
    axes = _axes(ax, 10, 3)
    lanes: list[str] = []
    event_lane = 0
    event_times: dict[str, Any] = {}
    if events is not None:
        lanes.append("events")
        times = pd.to_datetime(events[time_column], utc=True)
        axes.scatter(times, [event_lane] * len(times), marker="|", s=200, color="#546e7a")
        if "event_id" in events.columns:
            event_times = dict(zip(events["event_id"].astype(str), times, strict=True))
        else:
            event_times = dict(zip(map(str, events.index), times, strict=True))
    if jobs is not None and len(jobs):
        job_times = pd.to_datetime(jobs[job_time_column], utc=True)
        types = list(dict.fromkeys(jobs["job_type"])) if "job_type" in jobs else ["jobs"]
        for job_type in types:
            lane = len(lanes)
            lanes.append(str(job_type))
            mask = jobs["job_type"] == job_type if "job_type" in jobs else slice(None)
            axes.scatter(job_times[mask], [lane] * len(job_times[mask]), marker="o", s=30)
            if links and events is not None and "event_id" in jobs.columns:
                for event_id, at in zip(jobs["event_id"][mask], job_times[mask], strict=True):
                    origin = event_times.get(str(event_id))
                    if origin is not None:
                        axes.plot([origin, at], [event_lane, lane], color="#b0bec5", lw=0.6)
    if upcoming_times:
        lane = len(lanes)
        lanes.append("upcoming")
        axes.scatter(upcoming_times, [lane] * len(upcoming_times), marker="^", color="#ef6c00")
    axes.set_yticks(range(len(lanes)))
    axes.set_yticklabels(lanes)
    axes.set_ylim(-0.7, len(lanes) - 0.3)
    axes.set_xlabel("time (UTC)")
    axes.grid(axis="x", alpha=0.3)
    if title:
        axes.set_title(title)
    return axes


def plot_upcoming(
    times: Any,
    *,
    timezone: str | None = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Plot fire times as time of day against date: DST shifts show as steps.

    Args:
        times: datetimes, or a DataFrame with a ``scheduled_at`` / ``fire_time`` / ``time``
            column (e.g. a schedule's ``preview(start, end)``).
        timezone: show local time in this IANA zone (default: UTC).
        ax: draw into these axes (default: a new figure).
        title: the plot title (default none).

    Returns:
        The matplotlib ``Axes``.

    Raises:
        ConfigurationError: no times, or a frame without a time column.
    """
    pd: Any = require("pandas", "notebook")
    if isinstance(times, pd.DataFrame):
        column = next(
            (c for c in ("scheduled_at", "fire_time", "fire_at", "time") if c in times.columns),
            None,
        )
        if column is None:
            raise ConfigurationError(
                f"times has no scheduled_at / fire_time / time column (columns: "
                f"{list(map(str, times.columns))})"
            )
        values = pd.to_datetime(times[column], utc=True)
    else:
        values = pd.to_datetime(pd.Series(list(times)), utc=True)
    if len(values) == 0:
        raise ConfigurationError("plot_upcoming() got no fire times to plot")
    if timezone is not None:
        values = values.dt.tz_convert(timezone)
    hours = values.dt.hour + values.dt.minute / 60 + values.dt.second / 3600
    axes = _axes(ax, 10, 3)
    axes.scatter(values.dt.tz_localize(None), hours, s=8)
    axes.set_ylabel(f"time of day ({timezone or 'UTC'})")
    axes.set_xlabel("date")
    axes.grid(alpha=0.3)
    if title:
        axes.set_title(title)
    return axes
