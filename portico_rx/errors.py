"""Every error portico_rx raises on purpose.

The tree (each class also subclasses the builtin that fits, so ``except ValueError``
keeps working for code that does not know portico_rx)::

    PorticoError
    ├── ConfigurationError (ValueError)        bad argument or config, raised at construction
    │   ├── InvalidJobError                    job_type / payload / priority / queue_name
    │   ├── InvalidCronError                   a cron expression that does not parse
    │   └── InvalidScheduleError               time zone, start/end window, jitter, misfire policy
    ├── JobNotFoundError (LookupError)         complete/fail of a job id the queue does not hold
    │   └── DeadLetterNotFoundError            a dead letter id the store does not hold
    ├── JobQueueError (RuntimeError)           the store itself misbehaves
    │   ├── QueueUnavailableError (ConnectionError)  cannot open / reach / write the store
    │   └── SchemaVersionError                 the store was written by a newer portico_rx
    ├── TriggerError (RuntimeError)            a trigger cannot do what was asked
    │   ├── TriggerStartError                  start() failed: missing path, unreachable broker …
    │   └── TriggerNotRunningError             an event arrived at a stopped trigger
    ├── JobCreationError (RuntimeError)        create_job failed after every retry
    └── MissingDependencyError (ImportError)   an optional extra is not installed

Messages name the offending value and say how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DeadLetterNotFoundError",
    "InvalidCronError",
    "InvalidJobError",
    "InvalidScheduleError",
    "JobCreationError",
    "JobNotFoundError",
    "JobQueueError",
    "MissingDependencyError",
    "PorticoError",
    "QueueUnavailableError",
    "SchemaVersionError",
    "TriggerError",
    "TriggerNotRunningError",
    "TriggerStartError",
]


class PorticoError(Exception):
    """Root of every error raised on purpose by portico_rx."""


class ConfigurationError(PorticoError, ValueError):
    """An argument or configuration value is invalid; raised before anything runs."""


class InvalidJobError(ConfigurationError):
    """A job field (job_type, payload, priority, queue_name, …) is invalid.

    ``field`` names the field and ``value`` holds the rejected value.
    """

    def __init__(self, field: str, value: object, fix: str) -> None:
        self.field = field
        self.value = value
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"invalid {field} {shown}: {fix}")


class InvalidCronError(ConfigurationError):
    """A cron expression does not parse; the message names the expression and the field."""


class InvalidScheduleError(ConfigurationError):
    """A schedule setting (time zone, window, jitter, misfire policy) is invalid."""


class JobNotFoundError(PorticoError, LookupError):
    """The job queue holds no job with the given id."""


class DeadLetterNotFoundError(JobNotFoundError):
    """The dead letter store holds no dead letter with the given id."""


class JobQueueError(PorticoError, RuntimeError):
    """The job store misbehaved."""


class QueueUnavailableError(JobQueueError, ConnectionError):
    """The job store cannot be opened, reached or written."""


class SchemaVersionError(JobQueueError):
    """The store's schema was written by a newer portico_rx; refusing to touch it."""


class TriggerError(PorticoError, RuntimeError):
    """A trigger cannot do what was asked."""


class TriggerStartError(TriggerError):
    """``start()`` failed: the event source could not be opened."""


class TriggerNotRunningError(TriggerError):
    """An event arrived at a trigger that is not running."""


class JobCreationError(PorticoError, RuntimeError):
    """``create_job`` failed after every retry; the event was dead-lettered."""


class MissingDependencyError(PorticoError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module!r} is not installed; install it with: pip install 'portico_rx[{extra}]'"
        )
        self.extra = extra


def require(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(module, extra) from exc
