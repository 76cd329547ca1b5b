"""Tick: what a schedule emits each time it fires, and the key its time gives a job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from portico_rx.models import trusted

__all__ = ["Tick", "from_micros", "key_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(micros: int) -> datetime:
    """Epoch microseconds as a tz-aware UTC datetime (exact)."""
    return _EPOCH + timedelta(microseconds=micros)


def key_time(micros: int) -> str:
    """The fire time as it appears in idempotency keys: UTC, fixed width, sortable.

    ``2025-01-01T09:00:00Z``; a fire time with a fraction of a second (a sub-second
    interval) gets ``.ffffff`` before the ``Z``.
    """
    moment = from_micros(micros)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Tick(BaseModel):
    """One firing of a schedule.

    Attributes:
        scheduled_at: the nominal fire time, tz-aware in the schedule's time zone.
        fired_at: when the timer actually fired (scheduler time, UTC).
        lateness_s: ``fired_at`` minus ``scheduled_at``, in seconds: how late the run is
            against its fire time, the jitter included (a run delayed on purpose by 40 s
            is 40 s late); large for missed runs caught up after downtime.
        jitter_s: the random delay added on purpose (0 without ``jitter``); the timer's
            own delay is ``lateness_s - jitter_s``.
        expression: the schedule, e.g. ``"0 9 * * *"``, ``"every 30s"``.
        sequence: 1 for the first tick of this subscription, then 2, 3, …
        schedule: the schedule's name inside a ``ScheduleTrigger`` (else the expression).
        catch_up: the run was missed (downtime, a late timer) and is being caught up.
        key: the scheduled time in idempotency-key form (``2025-01-01T09:00:00Z``).
    """

    model_config = ConfigDict(frozen=True)

    scheduled_at: datetime
    fired_at: datetime
    lateness_s: float
    jitter_s: float = 0.0
    expression: str
    sequence: int
    schedule: str = ""
    catch_up: bool = False
    key: str = ""

    def model_post_init(self, context: object) -> None:
        if not self.key:
            micros = (self.scheduled_at - _EPOCH) // timedelta(microseconds=1)
            object.__setattr__(self, "key", key_time(micros))

    @classmethod
    def trusted(cls, **values: object) -> Tick:
        """Build a Tick from values the runner computed (all fields, already valid),
        skipping validation: the timer emits hundreds per wake-up."""
        return trusted(cls, values, _FIELDS)


_FIELDS = frozenset(Tick.model_fields)
