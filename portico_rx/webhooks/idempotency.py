"""In-process idempotency: one creation at a time per key, and remembered answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

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
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    async def once(self, key: str, create: Callable[[], Awaitable[str]]) -> tuple[str, bool]:
        """Run ``create()`` once for ``key`` and share its job id with duplicates.

        A duplicate arriving while the first call runs waits for it and gets its job id;
        if the first call fails, the duplicate tries itself. Without contention this
        costs one dict lookup and one future.

        Returns:
            ``(job_id, repeated)``: ``repeated`` is ``True`` when the id came from an
            earlier or concurrent call with the same key.
        """
        while True:
            known = self.answer(key)
            if known is not None:
                return known, True
            pending = self._pending.get(key)
            if pending is None:
                break
            job_id = await asyncio.shield(pending)
            if job_id is not None:
                return job_id, True
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            job_id = await create()
        except BaseException:
            future.set_result(None)
            raise
        finally:
            del self._pending[key]
        self.remember(key, job_id)
        future.set_result(job_id)
        return job_id, False

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
