"""The notebook's presenter: what every trigger shows and does in Jupyter.

Registered with :mod:`portico_rx.pipeline.presentation` when ``portico_rx.notebook`` is
imported (``import portico_rx`` does). It imports nothing heavy: pandas and ipywidgets
load only when a frame or a panel is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from portico_rx.models import Job
from portico_rx.pipeline.presentation import register_presenter

if TYPE_CHECKING:
    from portico_rx.frames import JobHistory, OutcomeList
    from portico_rx.pipeline.outcomes import EventOutcome

__all__ = ["NotebookPresenter"]


class NotebookPresenter:
    """HTML cards, live panels, job tables and the re-run registry, for any trigger."""

    def html(self, trigger: Any) -> str:
        from portico_rx.notebook.display import trigger_html

        return trigger_html(trigger)

    def widget(self, trigger: Any, *, jobs: int, refresh: float) -> Any:
        from portico_rx.notebook.widget import TriggerPanel

        return TriggerPanel(trigger, jobs=jobs, refresh=refresh)

    def history(self, jobs: Iterable[Job]) -> JobHistory:
        from portico_rx.frames import JobHistory

        return JobHistory(jobs)

    def outcomes(self, outcomes: list[EventOutcome]) -> OutcomeList:
        from portico_rx.frames import OutcomeList

        return OutcomeList(outcomes)

    async def claim_name(self, trigger: Any) -> None:
        from portico_rx.notebook.registry import registry

        await registry.claim(trigger)


register_presenter(NotebookPresenter())
