"""What every PipelineTrigger gains for interactive use: display, panel, pause, registry.

:class:`NotebookControls` is a mixin of :class:`~portico_rx.PipelineTrigger`. It imports
nothing heavy: pandas and ipywidgets load only when a frame or a panel is asked for.

Pause holds the job requests the pipeline emits instead of creating jobs; their events
stay unsettled (a queue message is not acked), so nothing is lost. ``resume()`` creates
the held jobs in order; ``stop()`` while paused creates them before draining.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from portico_rx.errors import TriggerNotRunningError

__all__ = ["NotebookControls"]

logger = structlog.get_logger("portico_rx.notebook")


class NotebookControls:
    """Mixin: ``_repr_html_``, ``widget()``, ``pause()``/``resume()`` and the registry."""

    _paused: bool = False
    _held: list[Any] | None = None

    # -- pause -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether job requests are being held (see :meth:`pause`)."""
        return self._paused

    @property
    def held(self) -> int:
        """How many job requests are held while paused."""
        return len(self._held or ())

    def pause(self) -> None:
        """Hold new job requests instead of creating jobs, until :meth:`resume`.

        Raises:
            TriggerNotRunningError: the trigger is not running (start it first).
        """
        if not getattr(self, "is_running", False):
            raise TriggerNotRunningError(
                f"trigger {getattr(self, 'name', '?')!r} is not running, so it cannot be "
                "paused; start it with `await trigger.start()` first"
            )
        if self._paused:
            return
        self._paused = True
        self._held = []
        logger.info("trigger_paused", trigger=getattr(self, "name", None))

    def resume(self) -> int:
        """Create the held jobs (in order) and take new events again.

        Returns:
            How many held job requests were released.
        """
        if not self._paused:
            return 0
        self._paused = False
        submit: Callable[[Any], None] | None = getattr(getattr(self, "_sink", None), "submit", None)
        released = self._release_held(submit) if submit is not None else 0
        logger.info("trigger_resumed", trigger=getattr(self, "name", None), released=released)
        return released

    def _hold(self, item: Any) -> bool:
        """Called for every pipeline item: ``True`` if it was held (paused)."""
        if not self._paused or self._held is None:
            return False
        self._held.append(item)
        return True

    def _release_held(self, submit: Callable[[Any], None]) -> int:
        """Un-pause and hand every held item to ``submit``; returns how many."""
        held, self._held = self._held or [], None
        self._paused = False
        for item in held:
            submit(item)
        return len(held)

    # -- registry --------------------------------------------------------------------

    async def _claim_name(self) -> None:
        """Called by ``start()``: in a notebook, one running copy per trigger name."""
        from portico_rx.notebook.registry import registry

        await registry.claim(self)

    # -- display ---------------------------------------------------------------------

    def _repr_html_(self) -> str:
        from portico_rx.notebook.display import trigger_html

        return trigger_html(self)

    def widget(self, *, jobs: int = 10, refresh: float = 0.5) -> Any:
        """A live ipywidgets panel: status, counters, the last ``jobs`` jobs, buttons.

        See :class:`portico_rx.notebook.widget.TriggerPanel`.
        """
        from portico_rx.notebook.widget import TriggerPanel

        return TriggerPanel(self, jobs=jobs, refresh=refresh)
