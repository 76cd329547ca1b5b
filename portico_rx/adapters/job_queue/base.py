"""Code shared by JobQueue adapters."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from portico_rx.errors import ConfigurationError, JobNotFoundError
from portico_rx.models import Job, JobStatus

__all__ = [
    "DUE_STATUSES",
    "KEY_CEILING",
    "ORDER_BY",
    "cancel_refused",
    "check_list_args",
    "check_prefixes",
    "check_queue_names",
    "job_matches",
]

ORDER_BY = ("created_at", "idempotency_key")
DUE_STATUSES = (JobStatus.PENDING, JobStatus.SCHEDULED)
KEY_CEILING = "\U0010ffff"
"""The highest code point: every key starting with ``p`` sorts below ``p + KEY_CEILING``."""


def check_queue_names(queue_names: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Normalise the ``queue_names`` argument of ``dequeue`` (``None``: every queue)."""
    if queue_names is None:
        return None
    names = (queue_names,) if isinstance(queue_names, str) else tuple(queue_names)
    if not names:
        raise ConfigurationError(
            "queue_names is empty: name at least one queue to dequeue from, or pass None "
            "for every queue"
        )
    return names


def check_list_args(limit: int, order_by: str) -> None:
    if limit < 1:
        raise ConfigurationError(f"limit={limit!r}: use 1 or more")
    if order_by not in ORDER_BY:
        raise ConfigurationError(f"order_by={order_by!r}: use one of {', '.join(ORDER_BY)}")


def job_matches(
    job: Job,
    *,
    status: JobStatus | None = None,
    job_type: str | None = None,
    queue_name: str | None = None,
    key_prefix: str | None = None,
) -> bool:
    """``True`` when ``job`` passes every given ``list`` filter (``None`` means any)."""
    return (
        (status is None or job.status == status)
        and (job_type is None or job.job_type == job_type)
        and (queue_name is None or job.queue_name == queue_name)
        and (
            key_prefix is None
            or (job.idempotency_key is not None and job.idempotency_key.startswith(key_prefix))
        )
    )


def check_prefixes(prefixes: Sequence[str]) -> list[str]:
    """The distinct prefixes of ``greatest_keys``, in order.

    Raises:
        ConfigurationError: a prefix is empty or not a string.
    """
    if isinstance(prefixes, str):
        raise ConfigurationError(
            f"prefixes={prefixes!r}: give a list of key prefixes, e.g. ['schedules:sync:']"
        )
    wanted = list(dict.fromkeys(prefixes))
    for prefix in wanted:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"key prefix {prefix!r}: give a non-empty string, e.g. 'schedules:sync:'"
            )
    return wanted


def cancel_refused(job_id: UUID, job: Job | None, where: str) -> Exception:
    """The error of a ``cancel`` that found no pending or scheduled job ``job_id``.

    ``job`` is the job as stored (``None``: no such id); ``where`` names the store.
    """
    if job is None:
        return JobNotFoundError(f"cannot cancel job {job_id}: no job with this id in {where}")
    return ConfigurationError(
        f"cannot cancel job {job_id}: it is {job.status.value}; only pending or scheduled "
        "jobs can be cancelled (a running job finishes or fails by its handler)"
    )
