"""Health counters every trigger keeps, and their snapshot as a TriggerHealth."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portico_rx.models import RunState, TriggerHealth

__all__ = ["HealthCounters", "job_store_health"]


def job_store_health(job_creator: object) -> dict[str, Any] | None:
    """What the job store behind ``job_creator`` last knew of its server, if it says.

    ``JobService`` over ``PostgresJobQueue`` or ``RedisJobQueue`` (whose ``health()``
    gives ``url``, ``available``, ``last_error`` …, from the last call: no I/O here);
    ``None`` for stores without a server (memory, SQLite) and for other creators.
    """
    store = getattr(job_creator, "job_queue", job_creator)
    health = getattr(store, "health", None)
    if not callable(health):
        return None
    try:
        value = health()
    except Exception as exc:  # a broken health() must not break get_health()
        return {"available": False, "last_error": f"{type(exc).__name__}: {exc}"}
    if inspect.isawaitable(value):  # not a store's passive health (e.g. a mock)
        close = getattr(value, "close", None)
        if callable(close):
            close()
        return None
    return value if isinstance(value, dict) else None


@dataclass
class HealthCounters:
    """Mutable counters behind ``get_health()``; updated on the event loop only."""

    events_seen: int = 0
    jobs_created: int = 0
    """Jobs written new (and those a creator cannot tell apart: it reports no flag)."""
    duplicates: int = 0
    """Requests whose job existed already (a repeated idempotency key): not created."""
    stale: int = 0
    """Events older than ``max_age`` (dead-lettered, or created anyway per ``stale``)."""
    errors: int = 0
    dead_lettered: int = 0
    dead_letters_stored: int = 0
    """Dead letters written to the trigger's dead letter store."""
    dead_letters_unstored: int = 0
    """Dead letters the store refused (kept in memory only, and logged)."""
    retries: int = 0
    restarts: int = 0
    in_flight: int = 0
    overflowed: int = 0
    consecutive_failures: int = 0
    last_job_created: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def record_error(self, message: str, at: datetime) -> None:
        self.errors += 1
        self.last_error = message
        self.last_error_at = at

    def record_job(self, at: datetime) -> None:
        self.jobs_created += 1
        self.last_job_created = at
        self.consecutive_failures = 0

    def record_duplicate(self) -> None:
        """A request found its job existing: the store works, nothing was created."""
        self.duplicates += 1
        self.consecutive_failures = 0

    def snapshot(
        self,
        *,
        name: str,
        state: RunState,
        healthy: bool | None = None,
        details: dict[str, Any] | None = None,
        job_store: dict[str, Any] | None = None,
        untracked: int = 0,
        outcomes: dict[str, int] | None = None,
    ) -> TriggerHealth:
        """The counters as a TriggerHealth. A ``job_store`` (see :func:`job_store_health`)
        goes into ``details["job_store"]``; a store that is not available makes the
        trigger unhealthy: it cannot create jobs, whatever its own state. ``outcomes``
        (an :class:`~portico_rx.pipeline.outcomes.OutcomeRecorder`'s summary: events per
        outcome and ``held``) goes into ``details["outcomes"]``, ``dropped_count`` and
        ``held_count``."""
        outcomes = outcomes or {}
        if outcomes:
            details = {**(details or {}), "outcomes": outcomes}
        running = state is RunState.RUNNING
        if healthy is None:
            healthy = running and self.consecutive_failures < 3
        if job_store is not None:
            details = {**(details or {}), "job_store": job_store}
            healthy = healthy and job_store.get("available", True) is not False
        return TriggerHealth(
            is_running=running,
            last_job_created=self.last_job_created,
            jobs_created_count=self.jobs_created,
            errors_count=self.errors,
            name=name,
            state=state,
            healthy=healthy,
            events_seen=self.events_seen,
            in_flight=self.in_flight,
            dead_lettered_count=self.dead_lettered,
            retries_count=self.retries,
            restarts_count=self.restarts,
            untracked_count=untracked,
            duplicates_count=self.duplicates,
            stale_count=self.stale,
            dropped_count=outcomes.get("dropped", 0),
            held_count=outcomes.get("held", 0),
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            details=details or {},
        )
