"""The JobTrigger port: adapters that create jobs from external events."""

from __future__ import annotations

from abc import ABC, abstractmethod

from portico_rx.models import RunState, TriggerHealth

__all__ = ["JobTrigger"]


class JobTrigger(ABC):
    """A source of jobs: webhooks, schedules, files, message queues, database rows …

    Contract for every implementation:

    * ``start()`` begins listening. A second ``start()`` while running logs
      ``trigger_already_running`` and does nothing.
    * ``stop()`` stops listening, waits (bounded) for job creations in flight and frees
      resources. Idempotent: stopping a stopped trigger does nothing.
    * ``is_running`` is ``True`` exactly while the trigger listens for events.
    * ``get_health()`` is cheap and synchronous, safe to call from a health endpoint.

    Only ``start``, ``stop`` and ``is_running`` are abstract, so triggers written to the
    spec (which defines no ``get_health``) still instantiate; they report the default
    health below until they override it.
    """

    @abstractmethod
    async def start(self) -> None:
        """Start listening for events and creating jobs.

        Raises:
            TriggerStartError: the event source cannot be opened (missing path,
                unreachable broker …); the trigger stays stopped.
            QueueUnavailableError: the job store cannot be opened.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop gracefully: no new events; in-flight creations finish or are settled."""

    @property
    @abstractmethod
    def is_running(self) -> bool:
        """``True`` while the trigger is active and creating jobs from events."""

    def get_health(self) -> TriggerHealth:
        """Counters and state for monitoring and health checks.

        The default knows only ``is_running`` (and the class name); the library's
        triggers override it with counters, errors and dead letters.
        """
        running = self.is_running
        return TriggerHealth(
            is_running=running,
            name=type(self).__name__,
            state=RunState.RUNNING if running else RunState.STOPPED,
            healthy=running,
        )
