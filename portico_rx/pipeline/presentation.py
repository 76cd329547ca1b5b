"""Where interactive features plug into triggers, without the core importing them.

A trigger shows itself in Jupyter (``_repr_html_``), offers a live panel (``widget()``)
and a table of its recent jobs (``history()``), and in a notebook kernel it claims its
name at ``start()`` so a re-run cell replaces the previous copy. Those features live in
:mod:`portico_rx.notebook`, which registers a :class:`Presenter` here when it is
imported (``import portico_rx`` does). The core only calls the registered presenter;
with none, a trigger shows as its ``repr`` and ``history()`` is a plain list.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any, Protocol

from portico_rx.errors import MissingDependencyError
from portico_rx.models import Job

__all__ = ["Presenter", "presenter", "register_presenter"]


class Presenter(Protocol):
    """What the notebook package provides to every trigger."""

    def html(self, trigger: Any) -> str:
        """An HTML card for ``trigger``."""

    def widget(self, trigger: Any, *, jobs: int, refresh: float) -> Any:
        """A live panel for ``trigger``."""

    def history(self, jobs: Iterable[Job]) -> list[Job]:
        """``jobs`` as a list that shows as a table (and has ``to_frame()``)."""

    async def claim_name(self, trigger: Any) -> None:
        """Called by ``start()``: one running copy per trigger name (in a notebook)."""

    def outcomes(self, outcomes: list[Any]) -> list[Any]:
        """A trigger's ``EventOutcome`` list as a list that shows as a table (and has
        ``to_frame()``)."""


_presenter: Presenter | None = None


def register_presenter(value: Presenter | None) -> None:
    """Install (or, with ``None``, remove) the presenter every trigger uses."""
    global _presenter
    _presenter = value


def presenter() -> Presenter | None:
    """The registered presenter, if any."""
    return _presenter


def trigger_html(trigger: Any) -> str:
    active = _presenter
    return (
        active.html(trigger) if active is not None else f"<pre>{html.escape(repr(trigger))}</pre>"
    )


def trigger_widget(trigger: Any, *, jobs: int, refresh: float) -> Any:
    active = _presenter
    if active is None:
        raise MissingDependencyError("portico_rx.notebook", "notebook")
    return active.widget(trigger, jobs=jobs, refresh=refresh)


def outcome_list(outcomes: list[Any]) -> list[Any]:
    """A trigger's event outcomes as the presenter shows them (a plain list without one)."""
    active = _presenter
    show = getattr(active, "outcomes", None)
    return show(outcomes) if show is not None else outcomes


def job_history(jobs: Iterable[Job]) -> list[Job]:
    active = _presenter
    return active.history(jobs) if active is not None else list(jobs)


async def claim_name(trigger: Any) -> None:
    active = _presenter
    if active is not None:
        await active.claim_name(trigger)
