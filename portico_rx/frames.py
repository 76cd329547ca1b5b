"""Jobs and event outcomes as tables: ``jobs_frame`` for any store, ``JobHistory`` and
``OutcomeList`` for a trigger (``history()``, ``outcomes()``). Core: pandas (the
``notebook`` extra) is imported only when a frame is made, by ``to_frame()``."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from portico_rx.errors import ConfigurationError, require
from portico_rx.models import Job, JobStatus

if TYPE_CHECKING:  # pandas is imported when a frame is made (the notebook extra)
    import pandas

    from portico_rx.pipeline.outcomes import EventOutcome

__all__ = [
    "JOB_FRAME_COLUMNS",
    "OUTCOME_FRAME_COLUMNS",
    "JobHistory",
    "OutcomeList",
    "jobs_frame",
    "jobs_to_frame",
    "outcomes_to_frame",
]

JOB_FRAME_COLUMNS = [
    "created_at",
    "job_type",
    "queue_name",
    "priority",
    "status",
    "payload",
    "idempotency_key",
    "trigger",
    "source",
    "scheduled_at",
    "attempts",
    "error",
    "id",
    "metadata",
]
"""The columns of :func:`jobs_to_frame` / :func:`jobs_frame`, in order."""


def jobs_to_frame(jobs: Iterable[Job]) -> pandas.DataFrame:
    """``jobs`` as a DataFrame, one row per job, with :data:`JOB_FRAME_COLUMNS`.

    ``trigger`` and ``source`` come from the job's metadata (where the trigger put them).

    Example:
        >>> from portico_rx import Job
        >>> jobs_to_frame([Job(job_type="email.send", payload={"to": "a@b.c"})])["job_type"][0]
        'email.send'
    """
    pd: Any = require("pandas", "notebook")
    rows = [
        {
            "created_at": job.created_at,
            "job_type": job.job_type,
            "queue_name": job.queue_name,
            "priority": job.priority,
            "status": job.status.value,
            "payload": job.payload,
            "idempotency_key": job.idempotency_key,
            "trigger": job.metadata.get("trigger"),
            "source": job.metadata.get("source"),
            "scheduled_at": job.scheduled_at,
            "attempts": job.attempts,
            "error": job.error,
            "id": str(job.id),
            "metadata": job.metadata,
        }
        for job in jobs
    ]
    frame: pandas.DataFrame = pd.DataFrame(rows, columns=JOB_FRAME_COLUMNS)
    for column in ("created_at", "scheduled_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


async def jobs_frame(
    store_or_creator: Any,
    *,
    job_type: str | None = None,
    queue_name: str | None = None,
    status: JobStatus | str | None = None,
    limit: int = 1000,
) -> pandas.DataFrame:
    """The jobs held by ``store_or_creator`` as a DataFrame, oldest first.

    ``store_or_creator`` is any of: a ``JobQueue`` (memory, SQLite, PostgreSQL, Redis), a
    ``JobCreator`` with ``find_jobs`` (``JobService``, ``RecordingJobCreator``), a
    trigger (its recent ``history()``), or an iterable of ``Job``. A coroutine because
    stores are read over I/O: ``await jobs_frame(service)`` in a notebook cell.

    Args:
        store_or_creator: where to read jobs from (see above).
        job_type: only this job type (default: all).
        queue_name: only this queue (default: all).
        status: only this status (default: all).
        limit: at most this many jobs, the newest ones (default 1000).

    Returns:
        A DataFrame with :data:`JOB_FRAME_COLUMNS`, oldest first.

    Raises:
        ConfigurationError: ``store_or_creator`` holds no jobs we can read, or a bad
            filter value.
    """
    if limit < 1:
        raise ConfigurationError(f"limit={limit!r}: use 1 or more")
    wanted = None
    if status is not None:
        try:
            wanted = JobStatus(status)
        except ValueError:
            raise ConfigurationError(
                f"status={status!r}: use one of {[s.value for s in JobStatus]}"
            ) from None
    jobs: list[Job]
    if hasattr(store_or_creator, "find_jobs"):
        jobs = list(
            await store_or_creator.find_jobs(
                job_type=job_type, queue_name=queue_name, status=wanted, limit=limit
            )
        )
        jobs.reverse()
    elif hasattr(store_or_creator, "enqueue") and hasattr(store_or_creator, "list"):
        jobs = list(
            await store_or_creator.list(
                job_type=job_type, queue_name=queue_name, status=wanted, limit=limit
            )
        )
        jobs.reverse()
    else:
        source = store_or_creator.history() if hasattr(store_or_creator, "history") else None
        if source is None:
            if isinstance(store_or_creator, str | bytes) or not isinstance(
                store_or_creator, Iterable
            ):
                raise ConfigurationError(
                    f"store_or_creator={store_or_creator!r}: pass a JobQueue, a JobCreator with "
                    "find_jobs (JobService, RecordingJobCreator), a trigger, or a list of Job"
                )
            source = store_or_creator
        jobs = [
            job
            for job in source
            if (job_type is None or job.job_type == job_type)
            and (queue_name is None or job.queue_name == queue_name)
            and (wanted is None or job.status == wanted)
        ][-limit:]
    return jobs_to_frame(jobs)


class JobHistory(list[Job]):
    """A trigger's recently created jobs (a ``list`` of ``Job``, oldest first).

    Shows itself as a table in Jupyter; :meth:`to_frame` gives a DataFrame.
    """

    def to_frame(self) -> pandas.DataFrame:
        """These jobs as a DataFrame (see :func:`jobs_to_frame`)."""
        return jobs_to_frame(self)

    def _repr_html_(self) -> str:
        return jobs_table_html(self, limit=20)


def jobs_table_html(jobs: list[Job], *, limit: int = 10) -> str:
    """The last ``limit`` jobs as a small HTML table (newest first); pandas not needed."""
    shown = list(reversed(jobs[-limit:])) if limit > 0 else []
    if not shown:
        return "<p><em>no jobs yet</em></p>"
    head = "".join(
        f"<th style='text-align:left'>{name}</th>"
        for name in ("created", "job_type", "queue", "priority", "payload", "key")
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='text-align:left'>{html.escape(str(value))}</td>"
            for value in (
                job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                job.job_type,
                job.queue_name,
                job.priority,
                _short(job.payload),
                job.idempotency_key or "",
            )
        )
        + "</tr>"
        for job in shown
    )
    more = f"<p><em>{len(jobs) - limit} older not shown</em></p>" if len(jobs) > limit else ""
    return f"<table class='portico-jobs'><tr>{head}</tr>{body}</table>{more}"


def _short(value: Any, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


OUTCOME_FRAME_COLUMNS = [
    "seen_at",
    "source",
    "event_id",
    "idempotency_key",
    "outcome",
    "stage",
    "job_id",
    "job_ids",
    "error",
]
"""The columns of :func:`outcomes_to_frame`, in order (``EventOutcome``'s fields)."""


def outcomes_to_frame(outcomes: Iterable[EventOutcome]) -> pandas.DataFrame:
    """``EventOutcome`` values as a DataFrame, one row per event (``trigger.outcomes()``)."""
    pd: Any = require("pandas", "notebook")
    rows = [
        {column: getattr(outcome, column) for column in OUTCOME_FRAME_COLUMNS}
        for outcome in outcomes
    ]
    frame: pandas.DataFrame = pd.DataFrame(rows, columns=OUTCOME_FRAME_COLUMNS)
    frame["seen_at"] = pd.to_datetime(frame["seen_at"], utc=True)
    return frame


class OutcomeList(list["EventOutcome"]):
    """A trigger's recent event outcomes (a ``list`` of ``EventOutcome``, oldest first).

    Shows itself as a table in Jupyter; :meth:`to_frame` gives a DataFrame.
    """

    def to_frame(self) -> pandas.DataFrame:
        """These outcomes as a DataFrame (see :func:`outcomes_to_frame`)."""
        return outcomes_to_frame(self)

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th>{html.escape(c)}</th>"
            for c in ("seen_at", "source", "event_id", "outcome", "stage", "job_id", "error")
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(_short(value))}</td>"
                for value in (
                    o.seen_at.isoformat() if o.seen_at else "",
                    o.source or "",
                    o.event_id or "",
                    o.outcome,
                    o.stage or "",
                    o.job_id or "",
                    o.error or "",
                )
            )
            + "</tr>"
            for o in reversed(self[-20:])
        )
        return (
            f"<p>{len(self)} event outcomes (newest first)</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
