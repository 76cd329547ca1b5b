"""Token-bucket rate limits per job type and per client, on scheduler time."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RateLimit", "RateLimiter"]

_MAX_BUCKETS = 10_000


class RateLimit(BaseModel):
    """How many requests a route accepts per window, per job type and per client.

    A token bucket per key: it holds up to the limit, refills evenly over
    ``window_seconds``, and each accepted request takes one token. A request finding an
    empty bucket is refused (HTTP 429) with ``Retry-After`` = seconds until a token is
    back.

    Args:
        per_job_type: requests per window for each job type (``None``: no limit).
        per_client: requests per window for each client address (``None``: no limit).
        window_seconds: the window, in seconds (default 60).

    Example:
        >>> RateLimit(per_job_type=600, per_client=60).window_seconds
        60.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_job_type: int | None = Field(default=None, ge=1)
    per_client: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if self.per_job_type is None and self.per_client is None:
            raise ValueError("give per_job_type=, per_client= or both (requests per window)")
        return self


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Keeps the buckets of one :class:`RateLimit`.

    Args:
        limit: the limits.
        now: the clock (a function returning an aware datetime; the trigger passes its
            scheduler's time so limits work in virtual time too).
    """

    def __init__(self, limit: RateLimit, now: Callable[[], datetime]) -> None:
        self.limit = limit
        self._now = now
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _refilled(self, key: tuple[str, str], capacity: int, at: float) -> _Bucket:
        rate = capacity / self.limit.window_seconds
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(at)
            bucket = self._buckets[key] = _Bucket(float(capacity), at)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (at - bucket.updated) * rate)
            bucket.updated = at
        return bucket

    def _forget_full(self, at: float) -> None:
        for key, bucket in list(self._buckets.items()):
            capacity = self.limit.per_job_type if key[0] == "job_type" else self.limit.per_client
            rate = (capacity or 1) / self.limit.window_seconds
            if bucket.tokens + (at - bucket.updated) * rate >= (capacity or 1):
                del self._buckets[key]

    def acquire(self, job_type: str, client: str | None) -> tuple[str, int] | None:
        """Take one token from each applicable bucket, or none if any is empty.

        Returns:
            ``None`` when the request may proceed, else ``(scope, retry_after_seconds)``
            where scope is ``"job_type"`` or ``"client"``.
        """
        at = self._now().timestamp()
        wanted: list[tuple[_Bucket, str, int]] = []
        if self.limit.per_job_type is not None:
            capacity = self.limit.per_job_type
            wanted.append(
                (self._refilled(("job_type", job_type), capacity, at), "job_type", capacity)
            )
        if self.limit.per_client is not None and client is not None:
            capacity = self.limit.per_client
            wanted.append((self._refilled(("client", client), capacity, at), "client", capacity))
        for bucket, scope, capacity in wanted:
            if bucket.tokens < 1:
                rate = capacity / self.limit.window_seconds
                return scope, max(1, math.ceil((1 - bucket.tokens) / rate))
        for bucket, _scope, _capacity in wanted:
            bucket.tokens -= 1
        return None
