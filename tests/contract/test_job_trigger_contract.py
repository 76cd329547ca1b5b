"""The JobTrigger lifecycle contract, run against every trigger in ``TRIGGER_FACTORIES``.

Written to the port (``portico_rx.ports.job_trigger``): ``start`` / ``stop`` /
``is_running`` / ``get_health``, with real events from real services, never to a
trigger's internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from portico_rx.models import RunState, TriggerHealth
from portico_rx.ports.job_trigger import JobTrigger

from .conftest_triggers import TRIGGER_FACTORIES, TriggerCase, TriggerFactory


@pytest.fixture(params=TRIGGER_FACTORIES)
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TriggerCase]:
    """A stopped trigger of each kind in ``TRIGGER_FACTORIES``, with its event maker."""
    factory: TriggerFactory = request.param
    async with factory(tmp_path) as made:
        yield made


async def until(case: TriggerCase, condition: Callable[[], bool], what: str) -> None:
    """Pump the case's time until ``condition()``; fail after 15 s of wall clock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{type(case.trigger).__name__}: {what} within 15 s")
        await case.pump()


async def quiet(case: TriggerCase, pumps: int = 5) -> None:
    """A few more periods, so a job on its way (a duplicate) would have arrived."""
    for _ in range(pumps):
        await case.pump()


def assert_health(trigger: JobTrigger, *, running: bool) -> TriggerHealth:
    health = trigger.get_health()
    assert isinstance(health, TriggerHealth)
    assert health.is_running is running is trigger.is_running
    assert (health.state is RunState.RUNNING) is running
    return health


async def test_start_and_stop_are_idempotent_and_health_follows(case: TriggerCase) -> None:
    trigger = case.trigger
    assert trigger.is_running is False
    assert_health(trigger, running=False)
    await trigger.stop()  # stopping a trigger that never started does nothing
    assert_health(trigger, running=False)

    await trigger.start()
    assert trigger.is_running is True
    assert_health(trigger, running=True)
    with capture_logs() as logs:
        await trigger.start()
    assert trigger.is_running is True
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["trigger_already_running"]
    assert_health(trigger, running=True)

    await trigger.stop()
    assert trigger.is_running is False
    assert_health(trigger, running=False)
    await trigger.stop()
    assert_health(trigger, running=False)


async def test_second_start_adds_no_second_consumer(case: TriggerCase) -> None:
    """Two ``start()`` calls, one event: one ``create_job`` call, one job."""
    await case.trigger.start()
    await case.ready()
    await case.trigger.start()
    await case.ready()
    case.check_answer(await case.fire(1))
    await until(case, lambda: len(case.creator.jobs) == 1, "the event's job")
    await quiet(case)
    assert case.creator.entered == 1
    assert len(case.creator.jobs) == 1
    if case.consumers is not None:
        assert await case.consumers() == 1
    await case.trigger.stop()


async def test_start_after_stop_creates_jobs_from_real_events(case: TriggerCase) -> None:
    trigger = case.trigger
    await trigger.start()
    await case.ready()
    case.check_answer(await case.fire(1))
    await until(case, lambda: len(case.creator.jobs) == 1, "the first event's job")
    await trigger.stop()
    assert_health(trigger, running=False)

    await trigger.start()
    assert_health(trigger, running=True)
    await case.ready()
    case.check_answer(await case.fire(2))
    await until(case, lambda: len(case.creator.jobs) == 2, "the job of the event after restart")
    await quiet(case)
    assert case.creator.entered == 2
    assert len({job.id for job in case.creator.jobs}) == 2
    health = assert_health(trigger, running=True)
    assert health.jobs_created_count == 2
    await trigger.stop()
    assert assert_health(trigger, running=False).jobs_created_count == 2


async def test_stop_drains_an_in_flight_creation(case: TriggerCase) -> None:
    """``stop()`` waits for a ``create_job`` in flight; the job exists when it returns."""
    trigger = case.trigger
    await trigger.start()
    await case.ready()
    case.creator.gate.clear()
    firing = asyncio.ensure_future(case.fire(1))
    await until(case, lambda: case.creator.entered == 1, "the event's create_job call")
    stopping = asyncio.ensure_future(trigger.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stop() returned while a job creation was in flight"
    assert case.creator.jobs == []
    case.creator.gate.set()
    await asyncio.wait_for(stopping, 15)
    assert len(case.creator.jobs) == 1
    case.check_answer(await asyncio.wait_for(firing, 15))
    health = assert_health(trigger, running=False)
    assert health.in_flight == 0
    assert health.jobs_created_count == 1

    # the drained event was settled with its source: started again, the trigger does
    # not see it again (a queue message was acked, a row marked, a file remembered …)
    await trigger.start()
    await case.ready()
    await quiet(case)
    assert case.creator.entered == 1, "the drained event came back after a restart"
    await trigger.stop()
