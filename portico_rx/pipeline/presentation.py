"""Where interactive features plug into triggers, without the core importing them.

A trigger shows itself in Jupyter (``_repr_html_``), offers a live panel (``widget()``)
and a table of its recent jobs (``history()``), and in a notebook kernel it claims its
name at ``start()`` so a re-run cell replaces the previous copy. Those features live in
:mod:`portico_rx.notebook`, which registers a :class:`Presenter` here when it is
imported (``import portico_rx`` does). The core only calls the registered presenter;
with none, a trigger shows as its ``repr``; ``history()`` and ``outcomes()`` are still the
list types of :mod:`portico_rx.frames` (core, pandas-free until ``to_frame()``), so
their declared types hold either way.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from portico_rx.errors import MissingDependencyError
from portico_rx.models import Job

if TYPE_CHECKING:
    from portico_rx.frames import JobHistory, OutcomeList
    from portico_rx.pipeline.outcomes import EventOutcome

__all__ = ["Presenter", "presenter", "register_presenter"]


class Presenter(Protocol):
    """What the notebook package provides to every trigger."""

    def html(self, trigger: Any) -> str:
        """An HTML card for ``trigger``."""

    def widget(self, trigger: Any, *, jobs: int, refresh: float) -> Any:
        """A live panel for ``trigger``."""

    def history(self, jobs: Iterable[Job]) -> JobHistory:
        """``jobs`` as a list that shows as a table (and has ``to_frame()``)."""

    async def claim_name(self, trigger: Any) -> None:
        """Called by ``start()``: one running copy per trigger name (in a notebook)."""

    def outcomes(self, outcomes: list[EventOutcome]) -> OutcomeList:
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


def outcome_list(outcomes: list[EventOutcome]) -> OutcomeList:
    """A trigger's event outcomes as the presenter shows them (an ``OutcomeList`` always:
    its type is the one a user's type checker sees)."""
    active = _presenter
    if active is not None:
        return active.outcomes(outcomes)
    # A list with to_frame() even without a presenter: the module needs neither pandas
    # nor ipywidgets to import (pandas is imported by to_frame()).
    from portico_rx.frames import OutcomeList

    return OutcomeList(outcomes)


def job_history(jobs: Iterable[Job]) -> JobHistory:
    """A trigger's recent jobs as the presenter shows them (a ``JobHistory`` always)."""
    active = _presenter
    if active is not None:
        return active.history(jobs)
    from portico_rx.frames import JobHistory

    return JobHistory(jobs)


async def claim_name(trigger: Any) -> None:
    active = _presenter
    if active is not None:
        await active.claim_name(trigger)
