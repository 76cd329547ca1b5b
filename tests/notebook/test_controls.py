"""Display card, pause/resume, the re-run registry and the live ipywidgets panel."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import pytest
import reactivex

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.errors import TriggerNotRunningError, TriggerStartError
from portico_rx.frames import JobHistory
from portico_rx.notebook.registry import TriggerRegistry
from portico_rx.notebook.registry import registry as default_registry
from portico_rx.notebook.widget import TriggerPanel, panel
from portico_rx.testing import RecordingJobCreator, settle


def make_trigger(
    creator: Any, name: str = "signups"
) -> tuple[reactivex.Subject[dict[str, Any]], prx.PipelineTrigger]:
    subject: reactivex.Subject[dict[str, Any]] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(
            prx.to_job("email.welcome", payload=lambda e: {"user": e["id"]}, queue_name="emails")
        ),
        job_creator=creator,
        name=name,
    )
    return subject, trigger


async def test_repr_html_shows_name_state_counts_sources_and_jobs() -> None:
    creator = RecordingJobCreator()
    subject, trigger = make_trigger(creator)
    assert "stopped" in trigger._repr_html_()
    await trigger.start()
    subject.on_next({"id": 7})
    await settle()
    card = trigger._repr_html_()
    await trigger.stop()
    assert "<b>signups</b>" in card and "running" in card
    assert "jobs created</th><td style='text-align:left'>1<" in card
    assert "sources" in card and "observable" in card
    assert "email.welcome" in card and "{&#x27;user&#x27;: 7}" in card


async def test_repr_html_lists_next_fire_times_of_triggers_with_upcoming() -> None:
    from datetime import UTC, datetime

    creator = RecordingJobCreator()
    _, trigger = make_trigger(creator, name="nightly")
    fire = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    trigger.upcoming = lambda n: [fire][:n]  # type: ignore[attr-defined]
    assert "next fire times" in trigger._repr_html_()
    assert "2025-06-01T02:00+00:00" in trigger._repr_html_()


async def test_history_is_a_list_that_renders_and_becomes_a_frame() -> None:
    creator = RecordingJobCreator()
    subject, trigger = make_trigger(creator)
    await trigger.start()
    for user in (1, 2, 3):
        subject.on_next({"id": user})
    await trigger.stop()
    history = trigger.history()
    assert isinstance(history, JobHistory) and isinstance(history, list)
    assert [job.payload["user"] for job in history] == [1, 2, 3]
    frame = history.to_frame()
    assert frame["payload"].tolist() == [{"user": 1}, {"user": 2}, {"user": 3}]
    assert set(frame["trigger"]) == {"signups"} and set(frame["queue_name"]) == {"emails"}
    assert "email.welcome" in history._repr_html_()


async def test_history_and_outcomes_keep_their_types_without_a_presenter() -> None:
    """The declared return types (with ``to_frame()``) hold with no presenter registered."""
    from portico_rx.frames import OutcomeList
    from portico_rx.pipeline import presentation

    active = presentation.presenter()
    presentation.register_presenter(None)
    try:
        subject, trigger = make_trigger(RecordingJobCreator())
        await trigger.start()
        subject.on_next({"id": 1})
        await trigger.stop()
        history, outcomes = trigger.history(), trigger.outcomes()
        assert isinstance(history, JobHistory) and isinstance(outcomes, OutcomeList)
        assert history.to_frame()["payload"].tolist() == [{"user": 1}]
        assert outcomes.to_frame()["outcome"].tolist() == ["created"]
    finally:
        presentation.register_presenter(active)


async def test_pause_holds_jobs_without_losing_them_and_resume_creates_them() -> None:
    creator = RecordingJobCreator()
    subject, trigger = make_trigger(creator)
    with pytest.raises(TriggerNotRunningError, match="start it with"):
        trigger.pause()
    await trigger.start()
    subject.on_next({"id": 1})
    await settle()
    trigger.pause()
    subject.on_next({"id": 2})
    subject.on_next({"id": 3})
    await settle()
    assert [j.payload["user"] for j in creator.jobs] == [1]
    assert trigger.paused and trigger.held == 2
    assert "paused" in trigger._repr_html_()
    assert trigger.resume() == 2
    await settle()
    assert [j.payload["user"] for j in creator.jobs] == [1, 2, 3]
    trigger.pause()
    subject.on_next({"id": 4})
    await trigger.stop()  # held requests are created before draining
    assert [j.payload["user"] for j in creator.jobs] == [1, 2, 3, 4]
    assert not trigger.paused


async def test_registry_replace_stops_the_previous_copy_of_a_rerun_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Running a cell twice: the first copy is stopped when the second starts."""
    monkeypatch.setattr(default_registry, "enabled", True)
    monkeypatch.setattr(default_registry, "_triggers", {})
    creator = RecordingJobCreator()
    first_subject, first = make_trigger(creator, name="rerun")
    await first.start()
    second_subject, second = make_trigger(creator, name="rerun")
    await second.start()
    assert not first.is_running and second.is_running
    first_subject.on_next({"id": 1})
    second_subject.on_next({"id": 2})
    await second.start()  # pressing start twice on the same object: nothing happens
    assert list(default_registry.running()) == ["rerun"]
    assert default_registry.notices[-1].startswith("stopped the previous copy of 'rerun'")
    await default_registry.stop_all()
    assert not second.is_running
    assert [j.payload["user"] for j in creator.jobs] == [2]


async def test_registry_refuse_policy_keeps_the_first_copy() -> None:
    registry = TriggerRegistry(policy="refuse", enabled=True)
    creator = RecordingJobCreator()
    _, first = make_trigger(creator, name="only-one")
    _, second = make_trigger(creator, name="only-one")
    await first.start()
    await registry.claim(first)
    with pytest.raises(TriggerStartError, match=r"already running.*registry.stop\('only-one'\)"):
        await registry.claim(second)
    assert first.is_running
    assert "only-one" in registry._repr_html_()
    assert await registry.stop("only-one") is True
    assert await registry.stop("only-one") is False
    with pytest.raises(prx.ConfigurationError, match="policy"):
        registry.policy = "ignore"  # type: ignore[assignment]


async def test_registry_stays_out_of_the_way_outside_a_notebook() -> None:
    """Outside a kernel two replicas with one name may run side by side."""
    assert default_registry.enabled is None and not default_registry.active
    creator = RecordingJobCreator()
    _, one = make_trigger(creator, name="replica")
    _, two = make_trigger(creator, name="replica")
    await one.start()
    await two.start()
    assert one.is_running and two.is_running
    await one.stop()
    await two.stop()


def shown(widget: Any) -> str:
    return html.unescape(widget.value)


async def test_panel_updates_live_and_buttons_start_pause_stop() -> None:
    service = prx.JobService(job_queue=MemoryJobQueue())
    subject, trigger = make_trigger(service, name="live")
    view = trigger.widget(jobs=5, refresh=0.01)
    assert isinstance(view, TriggerPanel)
    assert "stopped" in view.header.value and view.stop_button.disabled
    view.start_button.click()
    await view.wait_idle()
    assert trigger.is_running and "started 'live'" in shown(view.message)
    view.start_button.click()  # pressing start twice: a message, not an exception
    await view.wait_idle()
    assert "already running" in shown(view.message)
    subject.on_next({"id": 41})
    for _ in range(100):  # the panel's own task redraws it while the loop runs
        await asyncio.sleep(0.01)
        if "jobs created: <b>1</b>" in view.counters.value:
            break
    assert "jobs created: <b>1</b>" in view.counters.value
    assert "{&#x27;user&#x27;: 41}" in view.table.value
    view.pause_button.click()
    await view.wait_idle()
    assert view.pause_button.description == "Resume" and "paused" in view.header.value
    subject.on_next({"id": 42})
    await settle()
    view.refresh()
    assert "held: 1" in view.counters.value
    view.pause_button.click()
    await view.wait_idle()
    assert "1 held job(s) released" in shown(view.message)
    view.stop_button.click()
    await view.wait_idle()
    assert not trigger.is_running and "stopped 'live'" in shown(view.message)
    view.stop_button.click()
    await view.wait_idle()
    assert "is not running" in shown(view.message)
    jobs = await service.list_jobs()
    assert sorted(j.payload["user"] for j in jobs) == [41, 42]
    assert "application/vnd.jupyter.widget-view+json" in view._repr_mimebundle_()
    view.close()


async def test_panel_function_and_bad_arguments() -> None:
    _, trigger = make_trigger(RecordingJobCreator(), name="p")
    view = panel(trigger)
    assert view.trigger is trigger
    view.close()
    with pytest.raises(prx.ConfigurationError, match="refresh"):
        panel(trigger, refresh=0)


async def test_schedule_trigger_card_and_panel_show_next_fire_times() -> None:
    """Issue 9's ScheduleTrigger: its upcoming() (a dict per schedule) feeds the card."""
    from datetime import UTC, datetime

    from reactivex.scheduler import HistoricalScheduler

    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.testing import advance

    creator = RecordingJobCreator()
    scheduler = HistoricalScheduler(initial_clock=datetime(2025, 1, 1, 8, 30, tzinfo=UTC))
    trigger = ScheduleTrigger(
        job_creator=creator,
        schedules=[
            ScheduleConfig(cron="0 9 * * *", job_type="report.daily"),
            ScheduleConfig(cron="30 9 * * *", job_type="report.late"),
        ],
        scheduler=scheduler,
    )
    await trigger.start()
    card = trigger._repr_html_()
    assert "2025-01-01T09:00+00:00, 2025-01-01T09:30+00:00, 2025-01-02T09:00" in card
    await advance(scheduler, by=3900, step=300)
    view = trigger.widget()
    assert "jobs created: <b>2</b>" in view.counters.value
    assert "next: 2025-01-02T09:00" in view.counters.value
    view.pause_button.click()
    await view.wait_idle()
    assert trigger.paused and view.pause_button.description == "Resume"
    view.close()
    await trigger.stop()
    assert [j.job_type for j in creator.jobs] == ["report.daily", "report.late"]
