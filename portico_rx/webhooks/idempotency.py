"""In-process idempotency: one creation at a time per key, and remembered answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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
        # key -> the future its duplicates wait on (None until a duplicate arrives)
        self._pending: dict[str, asyncio.Future[str | None] | None] = {}

    async def once(
        self, key: str, create: Callable[..., Awaitable[str]], *args: Any
    ) -> tuple[str, bool]:
        """Run ``create(*args)`` once for ``key`` and share its job id with duplicates.

        A duplicate arriving while the first call runs waits for it and gets its job id;
        if the first call fails, the duplicate tries itself. Without contention this
        costs two dict operations: the future duplicates wait on is only made when a
        duplicate arrives.

        Returns:
            ``(job_id, repeated)``: ``repeated`` is ``True`` when the id came from an
            earlier or concurrent call with the same key.
        """
        pending = self._pending
        while True:
            known = self.answer(key)
            if known is not None:
                return known, True
            if key not in pending:
                break
            waiter = pending[key]
            if waiter is None:
                waiter = pending[key] = asyncio.get_running_loop().create_future()
            job_id = await asyncio.shield(waiter)
            if job_id is not None:
                return job_id, True
        pending[key] = None
        try:
            job_id = await create(*args)
        except BaseException:
            waiter = pending.pop(key)
            if waiter is not None:
                waiter.set_result(None)
            raise
        waiter = pending.pop(key)
        self.remember(key, job_id)
        if waiter is not None:
            waiter.set_result(job_id)
        return job_id, False

    def answer(self, key: str) -> str | None:
        """The job id already created for ``key`` in this process, if remembered."""
        job_id = self._answers.get(key)
        if job_id is not None:
            self._answers.move_to_end(key)
        return job_id

    def remember(self, key: str, job_id: str) -> None:
        """Record that ``key`` produced ``job_id``."""
        answers = self._answers
        if key in answers:
            answers.move_to_end(key)
        answers[key] = job_id  # a new key goes to the end by itself
        while len(answers) > self.max_keys:
            answers.popitem(last=False)

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
