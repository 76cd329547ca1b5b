"""CeleryJobCreator: triggers hand their jobs to an existing Celery deployment.

``create_job`` sends a Celery task (task id = job id, Celery queue = ``queue_name``,
Celery priority from ``priority``, payload as keyword arguments); ``get_job`` reads the
task's state back from the result backend (``AsyncResult`` -> :class:`JobStatus`).

Idempotency, honestly:

* The task id is derived from the idempotency key (``uuid5``), so the same key gives the
  same task id in every process, and the job id a trigger sees is stable.
* Celery itself does **not** refuse a second message with a known task id. So before
  sending, the bridge *claims* the id: with a Redis result backend it does an atomic
  ``SET NX`` on ``portico-celery-job:<task id>`` (shared by every process using that
  backend: one send per key across replicas, for ``claim_ttl`` seconds); with any other
  backend it falls back to this process's memory plus the backend's task state, which
  cannot stop two processes racing on one key. Make such tasks idempotent on their id.
* If sending fails after the claim, the claim is released so a retry can send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from portico_rx.errors import ConfigurationError, InvalidJobError, QueueUnavailableError, require
from portico_rx.logs import get_logger
from portico_rx.models import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    Job,
    JobStatus,
    check_idempotency_key,
    check_job_fields,
    utcnow,
)
from portico_rx.ports.job_creator import JobCreator

__all__ = ["CELERY_JOB_NAMESPACE", "CeleryJobCreator", "celery_state_to_status"]

logger = get_logger("portico_rx.celery_bridge")

CELERY_JOB_NAMESPACE = UUID("6f1c0e3a-9d4b-5f2e-8a71-2c3b4d5e6f70")
"""``uuid5`` namespace of task ids derived from idempotency keys."""

_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}$")

_STATES = {
    "PENDING": JobStatus.PENDING,
    "RECEIVED": JobStatus.PENDING,
    "STARTED": JobStatus.RUNNING,
    "RETRY": JobStatus.SCHEDULED,
    "SUCCESS": JobStatus.COMPLETED,
    "FAILURE": JobStatus.FAILED,
    "REVOKED": JobStatus.CANCELLED,
    "REJECTED": JobStatus.FAILED,
    "IGNORED": JobStatus.COMPLETED,
}


def celery_state_to_status(state: str) -> JobStatus:
    """The :class:`JobStatus` of a Celery task state (unknown custom states: ``RUNNING``).

    >>> celery_state_to_status("SUCCESS")
    <JobStatus.COMPLETED: 'completed'>
    """
    return _STATES.get(state, JobStatus.RUNNING)


def _job_to_json(job: Job) -> str:
    return job.model_dump_json(
        include={"id", "job_type", "queue_name", "payload", "priority", "metadata"}
        | {"created_at", "idempotency_key", "max_retries"}
    )


class CeleryJobCreator(JobCreator):
    """A JobCreator that sends Celery tasks.

    Args:
        app: the ``celery.Celery`` application (its broker receives the tasks).
        task_name: the task that runs every job type not in ``task_map`` (default: none).
        task_map: ``{job_type: task_name}`` (default: none). At least one of the two.
        claim_ttl: seconds a sent key stays claimed in a Redis result backend, i.e. how
            long a repeated key is recognised across processes (default 7 days).
        priority_inverted: ``True`` when a lower Celery priority runs first (the Redis
            transport); default: guessed from ``app.conf.broker_url``.
        remembered: jobs kept in memory for ``get_job`` of pending tasks (default 10000).

    Priority: ``priority`` (-100..100, higher first) becomes a Celery priority 0..9 in the
    order the transport understands. RabbitMQ queues need ``x-max-priority`` for it to
    matter. For ``get_job`` to report ``RUNNING`` set ``task_track_started=True``.

    Raises:
        ConfigurationError: neither ``task_name`` nor ``task_map`` given, or bad values.
        MissingDependencyError: ``celery`` is not installed (``portico_rx[celery]``).

    Example::

        app = Celery("shop", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/0")
        creator = CeleryJobCreator(app, task_map={"email.send": "shop.tasks.send_email"})
        trigger = WebhookTrigger(config, creator)
    """

    def __init__(
        self,
        app: Any,
        *,
        task_name: str | None = None,
        task_map: Mapping[str, str] | None = None,
        claim_ttl: float = 7 * 24 * 3600,
        priority_inverted: bool | None = None,
        remembered: int = 10_000,
    ) -> None:
        require("celery", "celery")
        import kombu.exceptions

        unreachable: list[type[BaseException]] = [
            OSError,
            ConnectionError,
            TimeoutError,
            kombu.exceptions.OperationalError,
        ]
        with contextlib.suppress(ImportError):
            import redis.exceptions

            unreachable += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
        self._unreachable = tuple(unreachable)
        if not hasattr(app, "send_task") or not hasattr(app, "AsyncResult"):
            raise ConfigurationError(f"app={app!r}: pass a celery.Celery application")
        if task_name is None and not task_map:
            raise ConfigurationError(
                "task_name=None and task_map empty: name the Celery task to send, e.g. "
                "task_name='tasks.run_job' or task_map={'email.send': 'tasks.send_email'}"
            )
        for job_type, name in dict(task_map or {}).items():
            if not isinstance(name, str) or not name:
                raise ConfigurationError(
                    f"task_map[{job_type!r}]={name!r}: use a Celery task name, e.g. 'tasks.x'"
                )
        if task_name is not None and (not isinstance(task_name, str) or not task_name):
            raise ConfigurationError(f"task_name={task_name!r}: use a Celery task name")
        if claim_ttl <= 0:
            raise ConfigurationError(f"claim_ttl={claim_ttl!r}: use a positive number of seconds")
        if remembered < 0:
            raise ConfigurationError(f"remembered={remembered!r}: use 0 or more")
        self.app = app
        self.task_name = task_name
        self.task_map = dict(task_map or {})
        self.claim_ttl = claim_ttl
        if priority_inverted is None:
            broker = str(app.conf.broker_url or "")
            priority_inverted = broker.startswith(("redis", "rediss", "sentinel"))
        self.priority_inverted = priority_inverted
        self._remembered = remembered
        self._jobs: OrderedDict[UUID, Job] = OrderedDict()

    def __repr__(self) -> str:
        return f"CeleryJobCreator(app={self.app.main!r}, task_name={self.task_name!r})"

    # -- helpers ---------------------------------------------------------------------

    def task_for(self, job_type: str) -> str:
        """The Celery task name that runs ``job_type``.

        Raises:
            InvalidJobError: ``job_type`` is not in ``task_map`` and there is no ``task_name``.
        """
        name = self.task_map.get(job_type, self.task_name)
        if name is None:
            raise InvalidJobError(
                "job_type",
                job_type,
                f"add it to task_map (known: {sorted(self.task_map)}) or give task_name",
            )
        return name

    def celery_priority(self, priority: int) -> int:
        """Celery's 0..9 priority for a portico priority (-100..100, higher first)."""
        step = round((priority - PRIORITY_MIN) * 9 / (PRIORITY_MAX - PRIORITY_MIN))
        return 9 - step if self.priority_inverted else step

    @staticmethod
    def task_id_for(idempotency_key: str) -> UUID:
        """The task (and job) id every process derives from ``idempotency_key``."""
        return uuid5(CELERY_JOB_NAMESPACE, idempotency_key)

    def _claims(self) -> Any:
        backend = self.app.backend
        if type(backend).__name__ in {"RedisBackend", "SentinelBackend"}:
            return backend.client
        return None

    def _has_backend(self) -> bool:
        return type(self.app.backend).__name__ != "DisabledBackend"

    @staticmethod
    def _claim_key(job_id: UUID) -> str:
        return f"portico-celery-job:{job_id}"

    def _remember(self, job: Job) -> None:
        if self._remembered == 0:
            return
        self._jobs[job.id] = job
        self._jobs.move_to_end(job.id)
        while len(self._jobs) > self._remembered:
            self._jobs.popitem(last=False)

    def _claim(self, job: Job) -> Job | None:
        """Claim ``job.id``; returns the job that holds it already, or ``None`` if claimed."""
        client = self._claims()
        if client is not None:
            if client.set(
                self._claim_key(job.id), _job_to_json(job), nx=True, ex=int(self.claim_ttl)
            ):
                return None
            stored = client.get(self._claim_key(job.id))
            return Job.model_validate_json(stored) if stored else job
        known = self._jobs.get(job.id)
        if known is not None:
            return known
        if self._has_backend() and self.app.AsyncResult(str(job.id)).state != "PENDING":
            return job
        return None

    def _release(self, job_id: UUID) -> None:
        client = self._claims()
        if client is not None:
            client.delete(self._claim_key(job_id))
        self._jobs.pop(job_id, None)

    # -- the port --------------------------------------------------------------------

    async def create_job(
        self,
        job_type: str,
        payload: dict[str, Any],
        queue_name: str = "default",
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        """Send a Celery task for the job; a repeated idempotency key sends nothing.

        Returns:
            The job (``PENDING``); for a repeated key, the job that was sent first.

        Raises:
            InvalidJobError: a field is invalid or ``job_type`` has no task.
            QueueUnavailableError: the broker or result backend cannot be reached.
        """
        job_type, payload, queue_name, priority, metadata = check_job_fields(
            job_type, payload, queue_name, priority, metadata
        )
        key = check_idempotency_key(idempotency_key, metadata)
        task = self.task_for(job_type)
        job = Job(
            id=self.task_id_for(key) if key is not None else uuid4(),
            job_type=job_type,
            queue_name=queue_name,
            payload=payload,
            priority=priority,
            metadata=metadata,
            idempotency_key=key,
            created_at=utcnow(),
        )
        try:
            if key is not None:
                existing = await asyncio.to_thread(self._claim, job)
                if existing is not None:
                    logger.debug("celery_task_already_sent", job_id=str(job.id), key=key)
                    return await self.get_job(job.id) or existing
            self._remember(job)
            await asyncio.to_thread(self._send, task, job)
        except self._unreachable as exc:
            if key is not None:
                with contextlib.suppress(*self._unreachable):
                    await asyncio.to_thread(self._release, job.id)
            raise QueueUnavailableError(
                f"cannot send Celery task {task!r} for job {job.id} "
                f"({type(exc).__name__}: {exc}); check the broker and result backend"
            ) from exc
        logger.info(
            "celery_task_sent", job_id=str(job.id), task=task, queue=queue_name, job_type=job_type
        )
        return job

    def _send(self, task: str, job: Job) -> None:
        self.app.send_task(
            task,
            kwargs=job.payload,
            task_id=str(job.id),
            queue=job.queue_name,
            priority=self.celery_priority(job.priority),
            headers={
                "portico_job_type": job.job_type,
                "portico_metadata": json.dumps(job.metadata),
                "portico_idempotency_key": job.idempotency_key,
            },
            retries=0,
        )

    async def get_job(self, job_id: UUID) -> Job | None:
        """The job with its Celery state, result and error.

        Returns:
            The job, or ``None`` when neither this process nor the result backend knows
            the id (Celery reports unknown ids as ``PENDING``).
        """
        return await asyncio.to_thread(self._read, job_id)

    def _read(self, job_id: UUID) -> Job | None:
        known = self._jobs.get(job_id)
        if known is None:
            client = self._claims()
            stored = client.get(self._claim_key(job_id)) if client is not None else None
            if stored:
                known = Job.model_validate_json(stored)
        if not self._has_backend():
            return known
        result = self.app.AsyncResult(str(job_id))
        state = str(result.state)
        if known is None:
            if state == "PENDING":
                return None
            known = Job(id=job_id, job_type=_job_type_of(result), created_at=utcnow())
        status = celery_state_to_status(state)
        update: dict[str, Any] = {"status": status}
        if status in (JobStatus.COMPLETED, JobStatus.FAILED):
            update["completed_at"] = _aware(result.date_done)
            update["attempts"] = max(1, known.attempts)
        if status is JobStatus.COMPLETED:
            update["result"] = result.result
        elif status is JobStatus.FAILED:
            error = result.result
            update["error"] = f"{type(error).__name__}: {error}" if error is not None else state
        elif status is JobStatus.RUNNING:
            update["attempts"] = max(1, known.attempts)
        return known.model_copy(update=update)


def _aware(moment: object) -> datetime | None:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _job_type_of(result: Any) -> str:
    name = str(getattr(result, "name", None) or "celery.task")
    return name if _TASK_NAME.match(name) else "celery.task"
