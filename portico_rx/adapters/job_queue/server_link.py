"""The link from a server-backed JobQueue to its server: redacted URL, reconnect, health.

Shared by :mod:`~portico_rx.adapters.job_queue.postgres` and
:mod:`~portico_rx.adapters.job_queue.redis`. A call that fails because the server
cannot be reached is retried with exponential backoff (a :class:`~portico_rx.pipeline.retry.
RetryPolicy`); when every attempt failed it raises
:class:`~portico_rx.errors.QueueUnavailableError` naming the URL with its password
replaced by ``***``. :meth:`ServerLink.health` tells whether the last call reached the
server, so a health endpoint can show an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from portico_rx.errors import QueueUnavailableError
from portico_rx.logs import get_logger
from portico_rx.models import utcnow
from portico_rx.pipeline.retry import RetryPolicy
from portico_rx.url_redaction import redact_url

__all__ = ["ServerLink", "redact_url"]  # redact_url: re-exported from portico_rx.url_redaction

T = TypeVar("T")

logger = get_logger("portico_rx.job_queue")


@dataclass
class ServerLink:
    """Reconnect-with-backoff and health for one server URL.

    Args:
        url: the server URL (kept only in redacted form).
        kind: what the server is, for messages (``"PostgreSQL"``, ``"Redis"``).
        unreachable: exception types that mean "server not reachable" (retried).
        retry: backoff between attempts of one call (default: 5 attempts from 0.1 s).
    """

    url: str
    kind: str
    unreachable: tuple[type[BaseException], ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    available: bool = True
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0

    def __post_init__(self) -> None:
        self.url = redact_url(self.url)

    def unavailable(self, exc: BaseException, *, action: str) -> QueueUnavailableError:
        """A :class:`QueueUnavailableError` for ``exc`` naming the (redacted) URL."""
        self.available = False
        self.last_error = redact_url(f"{type(exc).__name__}: {exc}")
        self.last_error_at = utcnow()
        self.failures += 1
        return QueueUnavailableError(
            f"cannot {action} the {self.kind} job queue at {self.url} ({self.last_error}); "
            f"check that the server runs and that the URL is right"
        )

    async def call(self, action: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``, retrying with backoff while the server is unreachable.

        Returns:
            What ``operation`` returned.

        Raises:
            QueueUnavailableError: every attempt failed to reach the server.
        """
        attempt = 1
        while True:
            try:
                result = await operation()
            except self.unreachable as exc:
                if attempt >= self.retry.max_attempts:
                    raise self.unavailable(exc, action=action) from exc
                delay = self.retry.delay(attempt)
                self.available = False
                self.last_error = redact_url(f"{type(exc).__name__}: {exc}")
                self.last_error_at = utcnow()
                logger.warning(
                    "job_queue_server_unreachable",
                    kind=self.kind,
                    url=self.url,
                    action=action,
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    error=self.last_error,
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if not self.available:
                logger.info("job_queue_server_reachable", kind=self.kind, url=self.url)
            self.available = True
            return result

    def health(self) -> dict[str, Any]:
        """``{"url", "available", "last_error", "last_error_at", "failures"}`` for health views."""
        return {
            "url": self.url,
            "available": self.available,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "failures": self.failures,
        }
