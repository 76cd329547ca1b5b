"""Health counters every trigger keeps, and their snapshot as a TriggerHealth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portico_rx.models import RunState, TriggerHealth

__all__ = ["HealthCounters"]


@dataclass
class HealthCounters:
    """Mutable counters behind ``get_health()``; updated on the event loop only."""

    events_seen: int = 0
    jobs_created: int = 0
    errors: int = 0
    dead_lettered: int = 0
    retries: int = 0
    restarts: int = 0
    in_flight: int = 0
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

    def snapshot(
        self,
        *,
        name: str,
        state: RunState,
        healthy: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> TriggerHealth:
        running = state is RunState.RUNNING
        return TriggerHealth(
            is_running=running,
            last_job_created=self.last_job_created,
            jobs_created_count=self.jobs_created,
            errors_count=self.errors,
            name=name,
            state=state,
            healthy=running and self.consecutive_failures < 3 if healthy is None else healthy,
            events_seen=self.events_seen,
            in_flight=self.in_flight,
            dead_lettered_count=self.dead_lettered,
            retries_count=self.retries,
            restarts_count=self.restarts,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            details=details or {},
        )
