"""The job kit: JobService (a JobCreator over a JobQueue) and JobWorker."""

from portico_rx.kits.job.job_service import JobService

__all__ = ["JobService"]
