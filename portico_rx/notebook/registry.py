"""Cell re-run safety: one running trigger per name in a notebook kernel.

Running a cell twice builds a second trigger object with the same name while the first
one, no longer bound to a variable, keeps running. The registry remembers the running
trigger of each name; when another trigger of that name starts, the registry either
stops the previous copy first (``policy="replace"``, the default: re-running a cell
is how notebooks are edited) or refuses the new one (``policy="refuse"``).

The registry acts automatically inside an IPython kernel (``enabled=None``), so plain
``await trigger.start()`` is safe to re-run; in servers and tests it stays out of the
way (several replicas of one trigger may legitimately share a name in one process)
unless enabled explicitly.
"""

from __future__ import annotations

import html
import sys
from typing import Any, Literal

from portico_rx.errors import ConfigurationError, TriggerStartError
from portico_rx.logs import get_logger

__all__ = ["TriggerRegistry", "in_notebook", "registry"]

logger = get_logger("portico_rx.notebook.registry")

Policy = Literal["replace", "refuse"]


def in_notebook() -> bool:
    """``True`` inside an IPython kernel (Jupyter, VS Code notebooks, nbclient)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class TriggerRegistry:
    """The running trigger of each name, and what to do when another copy starts.

    Args:
        policy: ``"replace"`` (default: stop the previous copy, start the new one) or
            ``"refuse"`` (the new one's ``start()`` raises ``TriggerStartError``).
        enabled: ``True``/``False``, or ``None`` (default) to act only inside an IPython
            kernel.
    """

    def __init__(self, *, policy: Policy = "replace", enabled: bool | None = None) -> None:
        self.policy = policy
        self.enabled = enabled
        self._triggers: dict[str, Any] = {}
        self.notices: list[str] = []

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, value: Policy) -> None:
        if value not in ("replace", "refuse"):
            raise ConfigurationError(f"policy={value!r}: use 'replace' or 'refuse'")
        self._policy = value

    @property
    def active(self) -> bool:
        """Whether the registry acts now (``enabled``, or auto-detected in a kernel)."""
        return in_notebook() if self.enabled is None else self.enabled

    def running(self) -> dict[str, Any]:
        """The registered triggers that are still running, by name."""
        self._triggers = {
            name: trigger
            for name, trigger in self._triggers.items()
            if trigger.is_running or getattr(trigger, "state", None) == "starting"
        }
        return dict(self._triggers)

    async def claim(self, trigger: Any) -> None:
        """Called by ``start()``: make ``trigger`` the one running copy of its name.

        Raises:
            TriggerStartError: ``policy="refuse"`` and another copy is running.
        """
        if not self.active:
            return
        name = trigger.name
        previous = self.running().get(name)
        if previous is not None and previous is not trigger:
            if self.policy == "refuse":
                raise TriggerStartError(
                    f"a trigger named {name!r} is already running (started by an earlier run "
                    f"of this cell?); stop it first with "
                    f"`await portico_rx.notebook.registry.stop({name!r})`, or set "
                    "registry.policy = 'replace'"
                )
            notice = f"stopped the previous copy of {name!r} before starting this one"
            logger.warning("previous_trigger_copy_stopped", trigger=name)
            self.notices.append(notice)
            await previous.stop()
        self._triggers[name] = trigger

    async def stop(self, name: str) -> bool:
        """Stop the running trigger called ``name``; ``False`` if there was none."""
        trigger = self.running().get(name)
        if trigger is None:
            return False
        await trigger.stop()
        self._triggers.pop(name, None)
        return True

    async def stop_all(self) -> list[str]:
        """Stop every registered trigger; returns the names stopped."""
        names = list(self.running())
        for name in names:
            await self.stop(name)
        return names

    def forget(self, name: str) -> None:
        """Drop ``name`` from the registry without stopping it."""
        self._triggers.pop(name, None)

    def _repr_html_(self) -> str:
        running = self.running()
        if not running:
            return "<p><em>no triggers running</em></p>"
        items = "".join(
            f"<li><b>{html.escape(name)}</b> ({html.escape(type(t).__name__)})</li>"
            for name, t in sorted(running.items())
        )
        return f"<p>running triggers:</p><ul>{items}</ul>"

    def __repr__(self) -> str:
        return (
            f"TriggerRegistry(policy={self.policy!r}, active={self.active}, "
            f"running={sorted(self.running())})"
        )


registry = TriggerRegistry()
"""The process-wide registry every ``PipelineTrigger.start()`` consults."""
