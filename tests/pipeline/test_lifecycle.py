"""The one lifecycle state machine: idempotent start, shared stop, failed start, drain timeout."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.kits.job.job_service import JobService
from portico_rx.kits.job.worker import JobWorker
from portico_rx.models import Job, JobStatus, RunState
from portico_rx.pipeline.lifecycle import Lifecycle


class Owner:
    """A fake owner that records which step ran, in order, with the machine's state."""

    def __init__(self, *, drain_for: float = 0.0, fail_in: str | None = None) -> None:
        self.steps: list[tuple[str, RunState]] = []
        self.drain_for = drain_for
        self.fail_in = fail_in
        self.drain_cancelled = False
        self.unfinished = 0
        self.lifecycle = Lifecycle(
            "owner",
            kind="trigger",
            on_start=self.start,
            on_running=self.running,
            on_stopping=self.stopping,
            on_drain=self.drain,
            on_teardown=self.teardown,
            stats=lambda: {"in_flight": self.unfinished},
        )

    def _step(self, name: str) -> None:
        self.steps.append((name, self.lifecycle.state))
        if self.fail_in == name:
            raise OSError(f"{name} failed")

    async def start(self) -> None:
        await asyncio.sleep(0.01)
        self._step("start")

    async def running(self) -> None:
        self._step("running")

    async def stopping(self) -> None:
        self._step("stopping")

    async def drain(self) -> None:
        self._step("drain")
        try:
            await asyncio.sleep(self.drain_for)
        except asyncio.CancelledError:
            self.drain_cancelled = True
            raise

    async def teardown(self) -> int:
        self._step("teardown")
        return self.unfinished

    def names(self) -> list[str]:
        return [name for name, _state in self.steps]


async def test_start_then_stop_runs_every_step_in_order_with_its_state() -> None:
    owner = Owner()
    assert owner.lifecycle.state is RunState.STOPPED and not owner.lifecycle.is_running
    assert await owner.lifecycle.start() is True
    assert owner.lifecycle.is_running
    await owner.lifecycle.stop(1.0)
    assert owner.steps == [
        ("start", RunState.STARTING),
        ("running", RunState.RUNNING),
        ("stopping", RunState.STOPPING),
        ("drain", RunState.STOPPING),
        ("teardown", RunState.STOPPING),
    ]
    assert owner.lifecycle.state is RunState.STOPPED


async def test_a_second_start_logs_already_running_and_does_nothing() -> None:
    owner = Owner()
    await owner.lifecycle.start()
    with capture_logs() as logs:
        assert await owner.lifecycle.start() is False
    assert [(e["event"], e["trigger"]) for e in logs] == [("trigger_already_running", "owner")]
    assert owner.names() == ["start", "running"]
    await owner.lifecycle.stop(1.0)


async def test_concurrent_starts_start_once() -> None:
    owner = Owner()
    with capture_logs() as logs:
        results = await asyncio.gather(owner.lifecycle.start(), owner.lifecycle.start())
    assert sorted(results) == [False, True]
    assert owner.names() == ["start", "running"]
    assert [e["event"] for e in logs] == ["trigger_already_running"]
    await owner.lifecycle.stop(1.0)


async def test_concurrent_stops_share_one_graceful_stop() -> None:
    owner = Owner(drain_for=0.05)
    await owner.lifecycle.start()

    async def stop_and_look() -> RunState:
        await owner.lifecycle.stop(1.0)
        return owner.lifecycle.state

    with capture_logs() as logs:
        seen = await asyncio.gather(*(stop_and_look() for _ in range(3)))
    assert seen == [RunState.STOPPED] * 3  # every caller returns once the stop is done
    assert owner.names().count("teardown") == 1 and owner.names().count("drain") == 1
    assert not owner.drain_cancelled  # the drain finished: a graceful stop
    assert [e["event"] for e in logs] == ["stopping_trigger", "trigger_stopped"]
    assert owner.lifecycle.state is RunState.STOPPED


async def test_stop_on_a_stopped_machine_does_nothing() -> None:
    owner = Owner()
    with capture_logs() as logs:
        await owner.lifecycle.stop(1.0)
    assert owner.steps == [] and logs == []
    await owner.lifecycle.start()
    await owner.lifecycle.stop(1.0)
    await owner.lifecycle.stop(1.0)
    assert owner.names().count("teardown") == 1


async def test_a_cancelled_stop_caller_does_not_cut_the_stop_short() -> None:
    owner = Owner(drain_for=0.05)
    await owner.lifecycle.start()
    impatient = asyncio.ensure_future(owner.lifecycle.stop(1.0))
    await asyncio.sleep(0.01)
    impatient.cancel()
    await owner.lifecycle.stop(1.0)  # joins the stop already under way
    assert owner.names().count("teardown") == 1 and not owner.drain_cancelled
    assert owner.lifecycle.state is RunState.STOPPED


async def test_a_stop_during_start_waits_for_the_start_then_stops() -> None:
    owner = Owner()
    starting = asyncio.ensure_future(owner.lifecycle.start())
    await asyncio.sleep(0)
    assert owner.lifecycle.state is RunState.STARTING
    await owner.lifecycle.stop(1.0)
    assert await starting is True
    assert owner.names() == ["start", "running", "stopping", "drain", "teardown"]
    assert owner.lifecycle.state is RunState.STOPPED


@pytest.mark.parametrize("step", ["start", "running"])
async def test_a_failed_start_tears_down_returns_to_stopped_and_reraises(step: str) -> None:
    owner = Owner(fail_in=step)
    with pytest.raises(OSError, match=f"{step} failed"):
        await owner.lifecycle.start()
    assert owner.names()[-1] == "teardown"
    assert "drain" not in owner.names()
    assert owner.lifecycle.state is RunState.STOPPED
    owner.fail_in = None
    assert await owner.lifecycle.start() is True  # it can be started again
    assert owner.lifecycle.is_running
    await owner.lifecycle.stop(1.0)


async def test_a_drain_longer_than_the_timeout_is_cancelled_then_torn_down() -> None:
    owner = Owner(drain_for=10.0)
    owner.unfinished = 2
    await owner.lifecycle.start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with capture_logs() as logs:
        await owner.lifecycle.stop(0.05)
    assert loop.time() - began < 5  # bounded by the timeout, not the 10 s drain
    assert owner.drain_cancelled
    assert owner.names()[-2:] == ["drain", "teardown"]
    assert owner.lifecycle.state is RunState.STOPPED
    events = {e["event"]: e for e in logs}
    assert events["trigger_drain_timeout"]["timeout_s"] == 0.05
    assert events["trigger_stopped"]["unfinished"] == 2


async def test_a_zero_timeout_still_runs_stopping_and_teardown() -> None:
    owner = Owner()
    await owner.lifecycle.start()
    with capture_logs() as logs:
        await owner.lifecycle.stop(0)
    assert owner.names()[2:] == ["stopping", "drain", "teardown"]
    assert "trigger_drain_timeout" not in [e["event"] for e in logs]  # nothing to wait for


async def test_a_failing_drain_is_logged_and_the_machine_still_stops() -> None:
    owner = Owner(fail_in="drain")
    await owner.lifecycle.start()
    with capture_logs() as logs:
        await owner.lifecycle.stop(1.0)
    assert owner.names()[-1] == "teardown"
    assert owner.lifecycle.state is RunState.STOPPED
    failed = [e for e in logs if e["event"] == "trigger_drain_failed"]
    assert failed and failed[0]["error"] == "drain failed"


async def test_a_failing_teardown_still_ends_stopped_and_raises() -> None:
    owner = Owner(fail_in="teardown")
    await owner.lifecycle.start()
    with pytest.raises(OSError, match="teardown failed"):
        await owner.lifecycle.stop(1.0)
    assert owner.lifecycle.state is RunState.STOPPED


async def test_the_worker_stops_within_its_timeout_even_with_every_slot_stuck() -> None:
    """One slot, one stuck job: the dispatcher waits for a slot that never frees."""
    queue = MemoryJobQueue()
    stuck_job = await JobService(queue).create_job("stuck.job", {})
    await JobService(queue).create_job("stuck.job", {})
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = JobWorker(queue, {"stuck.job": stuck}, concurrency=1, stop_timeout=0.05)
    await worker.start()
    await started.wait()
    with capture_logs() as logs:
        await asyncio.wait_for(worker.stop(), 5)
    assert worker.state is RunState.STOPPED
    stored = await queue.get(stuck_job.id)
    assert stored is not None and stored.status is JobStatus.SCHEDULED  # rescheduled
    stopped = next(e for e in logs if e["event"] == "worker_stopped")
    assert stopped["unfinished"] == 1
    assert "worker_drain_timeout" in [e["event"] for e in logs]
