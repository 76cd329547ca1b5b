"""HttpPollingTrigger: create a job when a polled HTTP resource changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from reactivex.abc import SchedulerBase

from portico_rx.errors import ConfigurationError
from portico_rx.models import TriggerHealth
from portico_rx.pipeline import PipelineTrigger
from portico_rx.pipeline.to_job import to_job
from portico_rx.ports.job_creator import JobCreator
from portico_rx.sources._http_poll import (
    HttpChange,
    HttpPollStats,
    close_idle_clients,
    http_poll,
)
from portico_rx.url_redaction import redact_url

__all__ = ["HttpPollingTrigger"]


def default_http_payload(change: HttpChange) -> dict[str, Any]:
    """``{"url", "fingerprint", "status_code", "etag", "last_modified"}`` (+ ``item``)."""
    payload: dict[str, Any] = {
        "url": change.url,
        "fingerprint": change.fingerprint,
        "status_code": change.status_code,
        "etag": change.etag,
        "last_modified": change.last_modified,
    }
    if change.item is not None:
        payload["item"] = change.item
    return payload


class HttpPollingTrigger(PipelineTrigger):
    """Poll a URL and create a job each time it changes (or, with ``items=``, per new item).

    Health: ``get_health().healthy`` turns ``False`` after ``unhealthy_after``
    consecutive failed polls (network error, 4xx, 5xx, 429) and ``True`` again on the
    next success; ``details`` carries the poll counters (requests, 304s, bytes, …).

    Args:
        job_creator: where jobs are created.
        url: the http(s) URL to poll.
        job_type: job type of every job.
        every: seconds (or a timedelta) between polls (default 60).
        queue_name: queue of every job (default ``"default"``).
        payload: ``payload(change) -> dict`` (default :func:`default_http_payload`).
        priority: priority of every job (default 0).
        unhealthy_after: consecutive failures that make the trigger unhealthy (default 3).
        name: trigger name (default ``"http:<url>"``).
        scheduler: Rx scheduler (default the running loop); pass a virtual one in tests.
        method, headers, params, auth, timeout, key, items, item_key, emit_initial,
        max_backoff: as for :func:`portico_rx.sources._http_poll`.
        **options: passed to :class:`~portico_rx.pipeline.PipelineTrigger`.

    Example:
        >>> from portico_rx.testing import RecordingJobCreator
        >>> trigger = HttpPollingTrigger(
        ...     RecordingJobCreator(), "https://api.example.com/feed", "feed.changed", every=30)
        >>> trigger.get_health().details["polls"]
        0
    """

    def __init__(
        self,
        job_creator: JobCreator,
        url: str,
        job_type: str,
        every: float | timedelta = 60.0,
        queue_name: str = "default",
        *,
        payload: Callable[[HttpChange], dict[str, Any]] = default_http_payload,
        priority: int = 0,
        unhealthy_after: int = 3,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: Any = None,
        timeout: float = 10.0,
        key: Callable[[Any], object] | None = None,
        items: Callable[[Any], Iterable[Any]] | None = None,
        item_key: Callable[[Any], object] | None = None,
        emit_initial: bool = True,
        max_backoff: float = 300.0,
        name: str | None = None,
        scheduler: SchedulerBase | None = None,
        **options: Any,
    ) -> None:
        as_requests = to_job(job_type, payload=payload, queue_name=queue_name, priority=priority)
        if isinstance(unhealthy_after, bool) or not isinstance(unhealthy_after, int):
            raise ConfigurationError(f"unhealthy_after={unhealthy_after!r}: use an integer >= 1")
        if unhealthy_after < 1:
            raise ConfigurationError(f"unhealthy_after={unhealthy_after!r}: use 1 or more")
        self.url = url
        self.job_type = job_type
        self.unhealthy_after = unhealthy_after
        self.stats = HttpPollStats()
        extra: dict[str, Any] = {} if item_key is None else {"item_key": item_key}
        source = http_poll(
            url,
            every,
            method=method,
            headers=headers,
            params=params,
            auth=auth,
            timeout=timeout,
            key=key,
            items=items,
            emit_initial=emit_initial,
            max_backoff=max_backoff,
            stats=self.stats,
            scheduler=scheduler,
            **extra,
        )
        pipeline = source.pipe(as_requests)
        super().__init__(
            pipeline, job_creator, name=name or f"http:{url}", scheduler=scheduler, **options
        )

    async def _after_stop(self) -> None:
        await close_idle_clients()

    def get_health(self) -> TriggerHealth:
        health = super().get_health()
        if self.stats.consecutive_failures >= self.unhealthy_after:
            return health.model_copy(
                update={
                    "healthy": False,
                    "last_error": health.last_error or self.stats.last_error,
                }
            )
        return health

    def health_details(self) -> dict[str, Any]:
        return {"url": redact_url(self.url), **asdict(self.stats)}
