"""Lifecycle: the one start/stop state machine behind every trigger and the worker.

::

    STOPPED --start()--> STARTING --on_start ok--> RUNNING --on_running ok--> (started)
       ^                    |                         |
       |      on_start / on_running raised: on_teardown, re-raise
       +--------------------+-------------------------+
       ^                                              |
       +-- on_teardown <-- on_drain (≤ timeout) <-- STOPPING <--stop()--+

* ``start()`` on a running machine logs ``<kind>_already_running`` and returns.
  Concurrent ``start()`` calls are serialised: the second one sees RUNNING.
* A start that raises (in ``on_start`` or ``on_running``) runs ``on_teardown``, returns
  to STOPPED and re-raises: nothing is left half-started.
* ``stop()`` is idempotent: on a stopped machine it returns at once; concurrent calls
  share one graceful stop (one task, shielded, so a cancelled caller does not cut the
  stop short). A ``stop()`` during ``start()`` waits for the start, then stops.
* A stop is graceful: ``on_stopping`` (stop taking new work), then ``on_drain`` (wait for
  the work in hand) for at most ``timeout`` seconds — cancelled if it takes longer, which
  logs ``<kind>_drain_timeout`` — then ``on_teardown`` (abandon what is left, release
  resources; returns how many units of work were unfinished), then STOPPED.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from portico_rx.logs import get_logger
from portico_rx.models import RunState

__all__ = ["Lifecycle"]

logger = get_logger("portico_rx.lifecycle")

Hook = Callable[[], Awaitable[None]]


class Lifecycle:
    """A start/stop state machine; the owner supplies what each transition does.

    Args:
        name: the owner's name, logged as ``<kind>=name``.
        kind: ``"trigger"`` or ``"worker"``: the log key and event prefix
            (``trigger_already_running``, ``stopping_trigger``, ``trigger_stopped`` …).
        on_start: runs in STARTING (open connections, build the sink).
        on_teardown: releases everything ``on_start`` acquired and abandons unfinished
            work; returns how many units were unfinished. Runs after the drain of a
            stop and after a failed start, so it must cope with a partial start.
        on_running: runs once RUNNING (subscribe, wait for a connection, log "started").
        on_stopping: runs first in STOPPING, whatever the timeout (stop taking work).
        on_drain: waits for the work in hand; bounded by ``stop(timeout)``.
        stats: fields added to the ``stopping_<kind>`` and ``<kind>_stopped`` logs.
    """

    __slots__ = (
        "_lock",
        "_on_drain",
        "_on_running",
        "_on_start",
        "_on_stopping",
        "_on_teardown",
        "_state",
        "_stats",
        "_stopping",
        "kind",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        kind: str,
        on_start: Hook,
        on_teardown: Callable[[], Awaitable[int]],
        on_running: Hook | None = None,
        on_stopping: Hook | None = None,
        on_drain: Hook | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self._on_start = on_start
        self._on_running = on_running
        self._on_stopping = on_stopping
        self._on_drain = on_drain
        self._on_teardown = on_teardown
        self._stats = stats
        self._state = RunState.STOPPED
        self._lock = asyncio.Lock()
        self._stopping: asyncio.Future[None] | None = None

    @classmethod
    def of(cls, owner: Any, name: str, *, kind: str) -> Lifecycle:
        """The lifecycle of ``owner`` (a trigger, the worker), whose hooks are its
        ``_on_start``, ``_on_running``, ``_on_stopping``, ``_on_drain``, ``_on_teardown``
        methods and whose log fields are its ``_lifecycle_stats()``."""
        return cls(
            name,
            kind=kind,
            on_start=owner._on_start,
            on_running=owner._on_running,
            on_stopping=owner._on_stopping,
            on_drain=owner._on_drain,
            on_teardown=owner._on_teardown,
            stats=owner._lifecycle_stats,
        )

    @property
    def state(self) -> RunState:
        return self._state

    @property
    def is_running(self) -> bool:
        return self._state is RunState.RUNNING

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {self.kind: self.name}
        if self._stats is not None:
            fields.update(self._stats())
        return fields

    async def start(self) -> bool:
        """Start; ``False`` (and a warning) if it was running already.

        Raises:
            Whatever ``on_start`` or ``on_running`` raised, after ``on_teardown``.
        """
        async with self._lock:
            if self._state is RunState.RUNNING:
                logger.warning(f"{self.kind}_already_running", **{self.kind: self.name})
                return False
            self._state = RunState.STARTING
            try:
                await self._on_start()
                self._state = RunState.RUNNING
                if self._on_running is not None:
                    await self._on_running()
            except BaseException:
                try:
                    await self._on_teardown()
                finally:
                    self._state = RunState.STOPPED
                raise
            return True

    async def stop(self, timeout: float) -> None:
        """Stop gracefully, giving the drain at most ``timeout`` seconds. Idempotent."""
        if self._stopping is None:
            if self._state is RunState.STOPPED and not self._lock.locked():
                return
            stopping = asyncio.ensure_future(self._stop(timeout))
            self._stopping = stopping
            stopping.add_done_callback(self._stopped)
        await asyncio.shield(self._stopping)

    def _stopped(self, task: asyncio.Future[None]) -> None:
        if self._stopping is task:
            self._stopping = None

    async def _stop(self, timeout: float) -> None:
        async with self._lock:
            if self._state is RunState.STOPPED:
                return
            self._state = RunState.STOPPING
            logger.info(f"stopping_{self.kind}", **self._fields())
            unfinished = 0
            try:
                if self._on_stopping is not None:
                    await self._on_stopping()
                if self._on_drain is not None:
                    await self._drain(self._on_drain, timeout)
            finally:
                try:
                    unfinished = await self._on_teardown()
                finally:
                    self._state = RunState.STOPPED
            logger.info(
                f"{self.kind}_stopped", is_running=False, unfinished=unfinished, **self._fields()
            )

    async def _drain(self, drain: Hook, timeout: float) -> None:
        task = asyncio.ensure_future(drain())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            logger.warning(f"{self.kind}_drain_timeout", timeout_s=timeout, **self._fields())
            return
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error(
                f"{self.kind}_drain_failed",
                error=str(error),
                error_type=type(error).__name__,
                **{self.kind: self.name},
            )
