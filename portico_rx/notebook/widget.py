"""A live ipywidgets panel for a trigger: status, counters, last jobs, start/stop/pause.

The panel refreshes itself from a task on the notebook's own asyncio loop (the kernel's),
so no cell blocks while it updates. Buttons run ``start()`` / ``stop()`` / ``pause()``
on that loop too; a press that makes no sense (start while running, pause while
stopped) shows a message in the panel instead of raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import Any

from portico_rx.errors import ConfigurationError, PorticoError, require
from portico_rx.frames import jobs_table_html
from portico_rx.logs import get_logger
from portico_rx.notebook.display import next_fire_times, state_label

__all__ = ["TriggerPanel", "panel"]

logger = get_logger("portico_rx.notebook.widget")


class TriggerPanel:
    """An ipywidgets ``VBox`` showing ``trigger`` live, with Start / Stop / Pause buttons.

    Display it as the last expression of a cell (or with ``display(panel)``). It
    refreshes every ``refresh`` seconds while an asyncio loop runs (always, in Jupyter);
    :meth:`refresh` redraws on demand; :meth:`close` stops the updates.

    Args:
        trigger: a ``PipelineTrigger`` (any ``JobTrigger`` works, minus pause).
        jobs: how many recent jobs the table shows (default 10).
        refresh: seconds between redraws (default 0.5).

    Raises:
        MissingDependencyError: ipywidgets is not installed (extra ``notebook``).
        ConfigurationError: ``jobs`` < 0 or ``refresh`` not positive.
    """

    def __init__(self, trigger: Any, *, jobs: int = 10, refresh: float = 0.5) -> None:
        widgets: Any = require("ipywidgets", "notebook")
        if jobs < 0:
            raise ConfigurationError(f"jobs={jobs!r}: use 0 or more")
        if not refresh > 0:
            raise ConfigurationError(f"refresh={refresh!r}: use a positive number of seconds")
        self.trigger = trigger
        self.jobs = jobs
        self.refresh_every = refresh
        self.header = widgets.HTML()
        self.counters = widgets.HTML()
        self.table = widgets.HTML()
        self.message = widgets.HTML()
        self.start_button = widgets.Button(description="Start", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop")
        self.pause_button = widgets.Button(description="Pause", icon="pause")
        self.start_button.on_click(lambda _b: self._spawn(self.press_start()))
        self.stop_button.on_click(lambda _b: self._spawn(self.press_stop()))
        self.pause_button.on_click(lambda _b: self._spawn(self.press_pause()))
        buttons = widgets.HBox([self.start_button, self.stop_button, self.pause_button])
        self.box = widgets.VBox([self.header, buttons, self.counters, self.table, self.message])
        self._tasks: set[asyncio.Future[Any]] = set()
        self._updater: asyncio.Task[None] | None = None
        self.refresh()
        with contextlib.suppress(RuntimeError):  # no running loop: refresh() by hand
            self._updater = asyncio.get_running_loop().create_task(self._update_forever())

    # -- display -------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)

    def refresh(self) -> None:
        """Redraw status, counters, next fire times and the jobs table now."""
        trigger = self.trigger
        state = state_label(trigger)
        name = html.escape(str(getattr(trigger, "name", type(trigger).__name__)))
        self.header.value = f"<b>{name}</b> — <span class='portico-state'>{state}</span>"
        health = trigger.get_health()
        parts = [
            f"jobs created: <b>{health.jobs_created_count}</b>",
            f"events seen: {health.events_seen}",
            f"errors: {health.errors_count}",
            f"dead letters: {health.dead_lettered_count}",
            f"in flight: {health.in_flight}",
        ]
        held = getattr(trigger, "held", 0)
        if held:
            parts.append(f"held: {held}")
        fire_times = next_fire_times(trigger, 3)
        if fire_times:
            parts.append("next: " + ", ".join(t.isoformat(timespec="minutes") for t in fire_times))
        self.counters.value = " · ".join(parts)
        self.table.value = jobs_table_html(
            list(getattr(trigger, "recent_jobs", ())), limit=self.jobs
        )
        running = bool(trigger.is_running)
        self.start_button.disabled = False
        self.stop_button.disabled = not running
        self.pause_button.disabled = not running
        self.pause_button.description = "Resume" if getattr(trigger, "paused", False) else "Pause"

    def say(self, text: str, *, level: str = "info") -> None:
        """Show ``text`` under the panel (``level`` ``"info"`` or ``"warning"``)."""
        colour = "#b71c1c" if level == "warning" else "#37474f"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    # -- buttons ---------------------------------------------------------------------

    async def press_start(self) -> None:
        """What the Start button does: start, or say it is already running."""
        if self.trigger.is_running:
            self.say(f"{self.trigger.name!r} is already running; press Stop first", level="warning")
            return
        try:
            await self.trigger.start()
        except PorticoError as exc:
            self.say(f"could not start: {exc}", level="warning")
        else:
            self.say(f"started {self.trigger.name!r}")
        self.refresh()

    async def press_stop(self) -> None:
        """What the Stop button does: stop (drains in-flight jobs), or say it is stopped."""
        if not self.trigger.is_running:
            self.say(f"{self.trigger.name!r} is not running", level="warning")
            return
        await self.trigger.stop()
        self.say(f"stopped {self.trigger.name!r}")
        self.refresh()

    async def press_pause(self) -> None:
        """What the Pause/Resume button does."""
        trigger = self.trigger
        if not hasattr(trigger, "pause"):
            self.say(f"{type(trigger).__name__} cannot pause", level="warning")
        elif getattr(trigger, "paused", False):
            released = trigger.resume()
            self.say(f"resumed; {released} held job(s) released")
        elif not trigger.is_running:
            self.say(f"{trigger.name!r} is not running, so it cannot pause", level="warning")
        else:
            trigger.pause()
            self.say("paused: new jobs are held until Resume")
        self.refresh()

    # -- loop plumbing ---------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.error("panel_action_failed", error=str(error))
            self.say(f"{type(error).__name__}: {error}", level="warning")

    async def _update_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_every)
            try:
                self.refresh()
            except Exception as exc:  # a redraw must never kill the updater
                logger.error("panel_refresh_failed", error=str(exc))

    async def wait_idle(self) -> None:
        """Wait until every button action started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        """Stop refreshing and close the widgets (the trigger keeps running)."""
        if self._updater is not None:
            self._updater.cancel()
            self._updater = None
        self.box.close()


def panel(trigger: Any, *, jobs: int = 10, refresh: float = 0.5) -> TriggerPanel:
    """A :class:`TriggerPanel` for ``trigger`` (same as ``trigger.widget()``)."""
    return TriggerPanel(trigger, jobs=jobs, refresh=refresh)
