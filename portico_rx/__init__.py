"""portico_rx: turn external events into background jobs, reactively.

Event sources are observables; operators filter, debounce and map them; ``to_job``
turns events into job requests; a :class:`PipelineTrigger` runs the pipeline as a
:class:`~portico_rx.ports.job_trigger.JobTrigger` that creates jobs through a
:class:`~portico_rx.ports.job_creator.JobCreator`.
"""

from portico_rx import notebook as notebook  # registers the notebook presenter
from portico_rx import operators as operators
from portico_rx import sources as sources
from portico_rx._version import __version__ as __version__
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.errors import (
    ConfigurationError,
    InvalidCronError,
    InvalidJobError,
    InvalidScheduleError,
    JobCreationError,
    JobNotFoundError,
    JobQueueError,
    MissingDependencyError,
    PorticoError,
    QueueUnavailableError,
    SchemaVersionError,
    TriggerError,
    TriggerNotRunningError,
    TriggerStartError,
)
from portico_rx.kits.job.job_service import JobService
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job, JobRequest, JobStatus, RunState, TriggerHealth
from portico_rx.pipeline import PipelineTrigger
from portico_rx.pipeline.dead_letter import DeadLetter
from portico_rx.pipeline.delivery import (
    Claim,
    Delivery,
    Outcome,
    activate,
    current_delivery,
    deliver,
)
from portico_rx.pipeline.flow import Flow, flow
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.pipeline.to_job import to_job
from portico_rx.pipeline.tracking import tracked
from portico_rx.ports import JobCreator, JobHandler, JobQueue, JobTrigger

__all__ = [
    "Claim",
    "ConfigurationError",
    "DeadLetter",
    "Delivery",
    "EventFailed",
    "Flow",
    "InvalidCronError",
    "InvalidJobError",
    "InvalidScheduleError",
    "Job",
    "JobCreationError",
    "JobCreator",
    "JobHandler",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueError",
    "JobRequest",
    "JobService",
    "JobStatus",
    "JobTrigger",
    "JobWorker",
    "MemoryJobQueue",
    "MissingDependencyError",
    "Outcome",
    "PipelineTrigger",
    "PorticoError",
    "QueueUnavailableError",
    "RetryPolicy",
    "RunState",
    "SQLiteJobQueue",
    "ScheduleConfig",
    "ScheduleTrigger",
    "SchemaVersionError",
    "TriggerError",
    "TriggerHealth",
    "TriggerNotRunningError",
    "TriggerStartError",
    "activate",
    "current_delivery",
    "deliver",
    "flow",
    "to_job",
    "tracked",
]
