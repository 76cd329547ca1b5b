"""In-process idempotency: one creation at a time per key, and remembered answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["IdempotencyGuard"]

T = TypeVar("T")


class IdempotencyGuard(Generic[T]):
    """Serialises requests that share an idempotency key and remembers their answers.

    The job store's unique key is what guarantees one job per key across processes and
    restarts, and what decides whether a key is new; this guard is the in-process fast
    path inside that mechanism: concurrent duplicates inside one process wait for the
    first one and share its answer, and answered keys are remembered (an answer is only
    ever about a job the store holds: keys are never reused).

    Args:
        max_keys: how many answered keys are remembered (least recently used are
            forgotten first; the store still deduplicates them). Default 10 000; 0
            remembers none.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._answers: OrderedDict[str, T] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # key -> the future its duplicates wait on (None until a duplicate arrives)
        self._pending: dict[str, asyncio.Future[T | None] | None] = {}

    async def once(
        self, key: str, create: Callable[..., Awaitable[T]], *args: Any
    ) -> tuple[T, bool]:
        """Run ``create(*args)`` for ``key`` unless a call for it runs already.

        A duplicate arriving while the first call runs waits for it and gets its answer;
        if the first call fails, the duplicate tries itself. The answer is remembered.
        Without contention this costs two dict operations: the future duplicates wait on
        is only made when a duplicate arrives. Remembered answers are not consulted here
        (see :meth:`answer`): the caller decides whether one fits its request.

        Returns:
            ``(answer, shared)``: ``shared`` is ``True`` when the answer came from a
            concurrent call with the same key.
        """
        pending = self._pending
        while key in pending:
            waiter = pending[key]
            if waiter is None:
                waiter = pending[key] = asyncio.get_running_loop().create_future()
            answer = await asyncio.shield(waiter)
            if answer is not None:
                return answer, True
        pending[key] = None
        try:
            answer = await create(*args)
        except BaseException:
            waiter = pending.pop(key)
            if waiter is not None:
                waiter.set_result(None)
            raise
        waiter = pending.pop(key)
        self.remember(key, answer)
        if waiter is not None:
            waiter.set_result(answer)
        return answer, False

    def answer(self, key: str) -> T | None:
        """The answer remembered for ``key`` in this process, if any."""
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def remember(self, key: str, answer: T) -> None:
        """Record ``key``'s answer."""
        if self.max_keys <= 0:
            return
        answers = self._answers
        if key in answers:
            answers.move_to_end(key)
        answers[key] = answer  # a new key goes to the end by itself
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
