"""In-process idempotency: one creation at a time per key, and remembered answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

__all__ = ["IdempotencyGuard"]


class IdempotencyGuard:
    """Serialises requests that share an idempotency key and remembers their job ids.

    The job store's unique key is what guarantees one job per key across processes;
    this guard makes concurrent duplicates inside one process wait for the first one
    and answer with its job id, even with a creator that does not enforce keys.

    Args:
        max_keys: how many answered keys are remembered (least recently used are
            forgotten first; the store still deduplicates them). Default 10 000.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._answers: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def answer(self, key: str) -> str | None:
        """The job id already created for ``key`` in this process, if remembered."""
        job_id = self._answers.get(key)
        if job_id is not None:
            self._answers.move_to_end(key)
        return job_id

    def remember(self, key: str, job_id: str) -> None:
        """Record that ``key`` produced ``job_id``."""
        self._answers[key] = job_id
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_keys:
            self._answers.popitem(last=False)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the key's lock: duplicates of ``key`` wait until this block ends."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
