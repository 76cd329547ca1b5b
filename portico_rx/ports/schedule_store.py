"""The ScheduleStore port: schedules kept in the job store, changed at runtime.

A ``ScheduleTrigger`` whose job store offers this port (the memory, SQLite, PostgreSQL
and Redis job queues do) keeps its schedules there: adding, changing, pausing, resuming
or removing one — from Python, the CLI or a dashboard — is a write to the store, and every
replica of the trigger applies it within one poll interval.

Each schedule is a row ``(trigger, name)`` holding its ``ScheduleConfig`` serialised
(``model_dump(mode="json")``), its ``paused`` flag and a ``revision``: a number from one
store-wide counter, raised by every write, so ``list_schedules(trigger, since=r)`` is
every change after ``r`` — one indexed lookup per poll, however many schedules there are.
A removed schedule stays as a *tombstone* (``removed=True``, a new revision) so replicas
see the removal, and ``reconcile="store_wins"`` does not bring a removed code-defined
schedule back at the next start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portico_rx.errors import ConfigurationError

__all__ = ["ScheduleStore", "StoredSchedule", "check_schedule_id"]


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """One schedule as the store holds it.

    Attributes:
        trigger: the trigger's name (first part of every run's idempotency key).
        name: the schedule's name.
        config: the ``ScheduleConfig`` as ``model_dump(mode="json")`` gives it.
        paused: ``True`` while paused (``pause_schedule``).
        revision: the store-wide revision of the last write to this row.
        updated_at: when the row was last written (UTC).
        removed: a tombstone: the schedule was removed at ``revision``.
    """

    trigger: str
    name: str
    config: dict[str, Any]
    paused: bool
    revision: int
    updated_at: datetime
    removed: bool = False


def check_schedule_id(trigger: object, name: object = "-") -> None:
    """Refuse a trigger or schedule name a store cannot key a row by.

    Raises:
        ConfigurationError: an empty name, not a string, or a schedule name with ``':'``.
    """
    if not isinstance(trigger, str) or not trigger:
        raise ConfigurationError(f"trigger={trigger!r}: give the trigger's name, e.g. 'schedules'")
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigurationError(f"schedule={name!r}: give a non-empty schedule name without ':'")


class ScheduleStore(ABC):
    """Schedules of triggers, with a revision per write (see the module docstring).

    Every method is one atomic store call; concurrent writers (replicas, the CLI) never
    lose a write, and the last write to a schedule wins.
    """

    @abstractmethod
    async def save_schedule(
        self, trigger: str, name: str, config: Mapping[str, Any], *, paused: bool | None = None
    ) -> StoredSchedule:
        """Add or replace a schedule's config (a removed one comes back).

        ``paused``: the new flag; ``None`` keeps the stored one (``False`` for a new or
        removed schedule). Returns the row as written (its new revision).
        """

    async def save_schedules(
        self, trigger: str, entries: Sequence[tuple[str, Mapping[str, Any], bool | None]]
    ) -> list[StoredSchedule]:
        """Save each ``(name, config, paused)`` of ``entries`` as :meth:`save_schedule`
        would: the writes of a trigger's start-up (thousands of code-defined schedules)
        in as few store calls as the store can make them.

        Returns:
            The rows as written, one per entry, in the order given; each write takes
            its own revision.

        This default makes one :meth:`save_schedule` call per entry, in order (the
        memory, PostgreSQL and Redis stores use it: a start-up writes its never-stored
        schedules in the background, so ``start()`` does not wait for them); the SQLite
        store writes them all in one transaction.
        """
        return [await self.save_schedule(trigger, n, c, paused=p) for n, c, p in entries]

    @abstractmethod
    async def set_schedule_paused(
        self, trigger: str, name: str, paused: bool
    ) -> StoredSchedule | None:
        """Pause or resume a stored schedule; ``None`` if there is no such schedule
        (never stored, or removed). A write even when the flag is unchanged."""

    @abstractmethod
    async def delete_schedule(self, trigger: str, name: str) -> bool:
        """Remove a schedule (it becomes a tombstone); ``False`` if there was none."""

    @abstractmethod
    async def list_schedules(
        self, trigger: str | None = None, *, since: int | None = None
    ) -> list[StoredSchedule]:
        """The schedules of ``trigger`` (``None``: of every trigger).

        ``since=None``: the live schedules (no tombstones), by trigger and name.
        ``since=r``: every row written after revision ``r``, tombstones included, by
        revision — the changes a replica that has seen ``r`` has not applied yet.
        """
