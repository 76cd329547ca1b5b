"""The ports (interfaces) of portico_rx. Adapters depend on these, never on each other."""

from portico_rx.ports.dead_letter_store import DeadLetterRecord, DeadLetterStore
from portico_rx.ports.job_creator import JobCreator
from portico_rx.ports.job_handler import JobHandler
from portico_rx.ports.job_queue import JobQueue
from portico_rx.ports.job_trigger import JobTrigger
from portico_rx.ports.schedule_store import ScheduleStore

__all__ = [
    "DeadLetterRecord",
    "DeadLetterStore",
    "JobCreator",
    "JobHandler",
    "JobQueue",
    "JobTrigger",
    "ScheduleStore",
]
