"""sources.cron / interval / at: ticks in virtual time, keys, windows, jitter, misfires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx import sources
from portico_rx.errors import InvalidCronError, InvalidScheduleError
from portico_rx.models import JobRequest
from portico_rx.pipeline.provenance import lateness
from portico_rx.pipeline.to_job import job_request_claim
from portico_rx.schedule.misfire import MisfirePolicy
from portico_rx.schedule.tick import Tick
from portico_rx.testing import RecordingJobCreator, advance

START = datetime(2025, 1, 1, tzinfo=UTC)


def collect(
    source: Any, scheduler: HistoricalScheduler, until: datetime
) -> tuple[list[Tick], list[str]]:
    ticks: list[Tick] = []
    events: list[str] = []
    source.subscribe(ticks.append, on_completed=lambda: events.append("completed"))
    scheduler.advance_to(until)
    return ticks, events


async def test_cron_pipeline_creates_jobs_keyed_by_trigger_job_type_and_fire_time() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        sources.cron("0 9 * * *", "Europe/Berlin").pipe(
            prx.to_job("report.daily", payload=lambda t: {"day": t.scheduled_at.date().isoformat()})
        ),
        job_creator=creator,
        name="reports",
        scheduler=vt,
    )
    await trigger.start()
    await advance(vt, timedelta(days=3), step=3600)
    await trigger.stop()
    assert [j.idempotency_key for j in creator.jobs] == [
        "reports:report.daily:2025-01-01T08:00:00Z",
        "reports:report.daily:2025-01-02T08:00:00Z",
        "reports:report.daily:2025-01-03T08:00:00Z",
    ]
    first = creator.jobs[0]
    assert first.payload == {"day": "2025-01-01"}
    assert first.metadata["scheduled_at"] == "2025-01-01T08:00:00+00:00"
    assert first.metadata["lateness_s"] == 0.0
    assert first.metadata["source"] == "cron:0 9 * * *"
    assert first.metadata["catch_up"] is False


def test_tick_fields() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    ticks, _ = collect(
        sources.cron("*/30 * * * * *", "Asia/Kolkata", seconds="first", scheduler=vt),
        vt,
        START + timedelta(seconds=61),
    )
    assert [t.sequence for t in ticks] == [1, 2, 3]
    assert ticks[1].scheduled_at.isoformat() == "2025-01-01T05:30:30+05:30"
    assert ticks[1].fired_at == START + timedelta(seconds=30)
    assert ticks[1].lateness_s == 0 and ticks[1].jitter_s == 0
    assert ticks[1].expression == "*/30 * * * * *"
    assert ticks[1].key == "2025-01-01T00:00:30Z"


def test_start_and_end_bound_the_ticks_and_end_completes() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    source = sources.cron(
        "0 * * * *",
        start=START + timedelta(hours=2),
        end=START + timedelta(hours=5),
        scheduler=vt,
    )
    ticks, events = collect(source, vt, START + timedelta(days=1))
    assert [t.key for t in ticks] == [
        "2025-01-01T02:00:00Z",
        "2025-01-01T03:00:00Z",
        "2025-01-01T04:00:00Z",
    ]
    assert events == ["completed"]


def test_naive_start_is_local_time_in_the_zone() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    source = sources.cron(
        "0 * * * *", "America/New_York", start=datetime(2024, 12, 31, 22, 0), scheduler=vt
    )
    ticks, _ = collect(source, vt, START + timedelta(hours=5))
    assert ticks[0].key == "2025-01-01T03:00:00Z"


def test_interval_sits_on_a_grid_shared_by_every_replica() -> None:
    vt = HistoricalScheduler(initial_clock=START + timedelta(seconds=7))
    ticks, _ = collect(sources.interval(20, scheduler=vt), vt, START + timedelta(seconds=61))
    assert [t.key for t in ticks] == [
        "2025-01-01T00:00:20Z",
        "2025-01-01T00:00:40Z",
        "2025-01-01T00:01:00Z",
    ]
    assert ticks[0].expression == "every 20s"
    vt2 = HistoricalScheduler(initial_clock=START)
    anchored = sources.interval(
        timedelta(minutes=1), anchor=START + timedelta(seconds=5), scheduler=vt2
    )
    ticks2, _ = collect(anchored, vt2, START + timedelta(minutes=2))
    assert [t.key for t in ticks2] == ["2025-01-01T00:00:05Z", "2025-01-01T00:01:05Z"]


def test_sub_second_interval_keys_keep_the_fraction() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    ticks, _ = collect(sources.interval(0.5, scheduler=vt), vt, START + timedelta(seconds=1))
    assert [t.key for t in ticks] == [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00.500000Z",
        "2025-01-01T00:00:01Z",
    ]


def test_at_fires_once_then_completes() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    when = START + timedelta(hours=3)
    ticks, events = collect(sources.at(when, scheduler=vt), vt, START + timedelta(days=1))
    assert [(t.key, t.fired_at) for t in ticks] == [("2025-01-01T03:00:00Z", when)]
    assert events == ["completed"]


def test_at_in_the_past_fires_at_once_within_grace_else_only_completes() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    ticks, events = collect(
        sources.at(START - timedelta(minutes=5), scheduler=vt), vt, START + timedelta(seconds=1)
    )
    assert len(ticks) == 1 and ticks[0].lateness_s == 300 and ticks[0].catch_up
    assert events == ["completed"]
    vt2 = HistoricalScheduler(initial_clock=START)
    too_old = sources.at(START - timedelta(days=2), scheduler=vt2)
    ticks2, events2 = collect(too_old, vt2, START + timedelta(seconds=1))
    assert ticks2 == [] and events2 == ["completed"]


def test_jitter_delays_each_fire_but_keeps_the_nominal_key() -> None:
    vt = HistoricalScheduler(initial_clock=START)
    source = sources.cron("0 * * * *", jitter=600, seed=7, scheduler=vt)
    ticks, _ = collect(source, vt, START + timedelta(hours=10))
    assert len(ticks) == 10
    for tick in ticks:
        nominal = tick.scheduled_at.astimezone(UTC)
        assert tick.key == nominal.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert 0 <= tick.jitter_s <= 600
        assert tick.fired_at == nominal + timedelta(seconds=tick.jitter_s)
        assert tick.lateness_s == tick.jitter_s  # late by the jitter, on time otherwise
    assert len({t.jitter_s for t in ticks}) > 1


class StalledScheduler(HistoricalScheduler):
    """A virtual clock whose next timer fires ``stall`` late (a blocked loop, a laptop
    that slept)."""

    def __init__(self, initial_clock: datetime, stall: timedelta) -> None:
        super().__init__(initial_clock=initial_clock)
        self.stall: timedelta | None = stall

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        if self.stall is not None and duetime:
            duetime, self.stall = self.to_timedelta(duetime) + self.stall, None
        return super().schedule_relative(duetime, action, state)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (MisfirePolicy(), ["00:10"]),
        (MisfirePolicy(coalesce="earliest"), ["00:01"]),
        (MisfirePolicy(coalesce="all", max_catchup=3), ["00:08", "00:09", "00:10"]),
        (MisfirePolicy(coalesce="skip"), []),
        (MisfirePolicy(grace_time=150, coalesce="all"), ["00:08", "00:09", "00:10"]),
    ],
    ids=["latest", "earliest", "all-max3", "skip", "grace"],
)
def test_a_late_timer_applies_the_misfire_policy(
    policy: MisfirePolicy, expected: list[str]
) -> None:
    vt = StalledScheduler(START + timedelta(seconds=30), stall=timedelta(minutes=9))
    ticks, _ = collect(
        sources.cron("* * * * *", misfire=policy, scheduler=vt),
        vt,
        START + timedelta(minutes=10, seconds=30),
    )
    late = [t for t in ticks if t.fired_at == START + timedelta(minutes=10)]
    assert [t.scheduled_at.strftime("%H:%M") for t in late] == expected
    assert all(t.catch_up for t in late)
    assert [t.scheduled_at.strftime("%H:%M") for t in ticks if t not in late] == []


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: sources.cron("0 25 * * *"), InvalidCronError, ["'0 25 * * *'", "hour"]),
        (
            lambda: sources.cron("0 * * * *", "Mars/Olympus"),
            InvalidScheduleError,
            ["Mars/Olympus", "IANA"],
        ),
        (
            lambda: sources.cron("0 * * * *", start=START, end=START),
            InvalidScheduleError,
            ["end=", "start="],
        ),
        (lambda: sources.cron("0 * * * *", jitter=-1), InvalidScheduleError, ["jitter=-1"]),
        (lambda: sources.interval(0), InvalidScheduleError, ["every=0", "positive"]),
        (lambda: sources.interval("5"), InvalidScheduleError, ["every='5'"]),
        (lambda: sources.at("tomorrow"), InvalidScheduleError, ["when='tomorrow'"]),
        (lambda: MisfirePolicy(coalesce="sometimes"), ValueError, ["coalesce"]),
    ],
)
def test_bad_input_is_rejected_at_construction(
    call: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as caught:
        call()
    for word in words:
        assert word in str(caught.value)


async def test_without_a_scheduler_it_runs_on_the_asyncio_loop() -> None:
    ticks: list[Tick] = []
    subscription = sources.interval(0.01).subscribe(ticks.append)
    try:
        for _ in range(200):
            if len(ticks) >= 2:
                break
            import asyncio

            await asyncio.sleep(0.01)
    finally:
        subscription.dispose()
    assert len(ticks) >= 2
    assert ticks[1].scheduled_at - ticks[0].scheduled_at == timedelta(seconds=0.01)
    assert all(t.lateness_s >= 0 for t in ticks)


@pytest.mark.parametrize(
    ("spin", "words"),
    [
        (-0.001, ["timer_spin=-0.001", "0 (off)"]),
        (2, ["timer_spin=2"]),
        (True, ["timer_spin=True"]),
    ],
)
def test_timer_spin_is_checked(spin: Any, words: list[str]) -> None:
    for call in (
        lambda: sources.cron("* * * * *", timer_spin=spin),
        lambda: prx.ScheduleTrigger(RecordingJobCreator(), [], timer_spin=spin),
    ):
        with pytest.raises(InvalidScheduleError) as caught:
            call()
        for word in words:
            assert word in str(caught.value)


class RecordingAsyncIOScheduler(__import__("reactivex").scheduler.eventloop.AsyncIOScheduler):
    """The asyncio scheduler, noting each relative delay and each immediate action."""

    def __init__(self, loop: Any) -> None:
        super().__init__(loop)
        self.delays: list[float] = []
        self.immediate = 0

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        self.delays.append(self.to_seconds(duetime))
        return super().schedule_relative(duetime, action, state)

    def schedule(self, action: Any, state: Any = None) -> Any:
        self.immediate += 1
        return super().schedule(action, state)


async def run_interval(every: float, spin: float) -> tuple[list[Tick], RecordingAsyncIOScheduler]:
    """Three ticks of ``interval(every)`` on the real asyncio loop."""
    import asyncio

    scheduler = RecordingAsyncIOScheduler(asyncio.get_running_loop())
    ticks: list[Tick] = []
    source = sources.interval(every, timer_spin=spin, scheduler=scheduler)
    subscription = source.subscribe(ticks.append)
    try:
        for _ in range(300):
            if len(ticks) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        subscription.dispose()
    assert len(ticks) >= 3
    return ticks, scheduler


async def test_the_spinning_timer_wakes_early_but_never_fires_early() -> None:
    ticks, scheduler = await run_interval(0.25, spin=0.002)
    # every run fires at or after its time, never before, however early the timer woke
    assert all(t.fired_at >= t.scheduled_at and t.lateness_s >= 0 for t in ticks)
    # it woke before the fire time and yielded to the loop (call_soon) until it
    assert scheduler.immediate > 0
    # between runs it armed for ~0.25 s minus the lead: 2 ms capped at 1% of 0.25 s
    later = scheduler.delays[1:]
    assert later and all(0.2 < d < 0.25 for d in later)


async def test_without_spin_the_timer_never_yields_in_between() -> None:
    ticks, scheduler = await run_interval(0.05, spin=0)
    assert scheduler.immediate == 0
    assert all(t.lateness_s >= 0 for t in ticks)


def test_spin_lead_is_capped_at_one_percent_of_the_gap_and_off_in_virtual_time() -> None:
    import asyncio

    from portico_rx.schedule.timer import ScheduleTimer

    loop = asyncio.new_event_loop()
    try:
        timer = ScheduleTimer(RecordingAsyncIOScheduler(loop), spin=0.002)
        timer._last_wake_us = 0
        assert timer._lead_us(1_000_000, 999_000) == 2_000  # 1 s since the last wake: 2 ms
        assert timer._lead_us(10_000, 5_000) == 100  # 10 ms since the last wake: 0.1 ms
    finally:
        loop.close()
    virtual = ScheduleTimer(HistoricalScheduler(initial_clock=START), spin=0.002)
    assert virtual._lead_us(1_000_000, 0) == 0


class CreepingClock(HistoricalScheduler):
    """Virtual time whose clock moves 1 ms each time it is read: as if emitting took time."""

    @property
    def now(self) -> datetime:
        self._creep = getattr(self, "_creep", 0) + 1
        return super().now + timedelta(milliseconds=self._creep)


def test_runs_of_one_wake_share_the_timers_fire_time() -> None:
    vt = CreepingClock(initial_clock=START)
    creator = RecordingJobCreator()
    trigger = prx.ScheduleTrigger(
        creator,
        [prx.ScheduleConfig(cron="*/5 * * * *", job_type=f"job.{i}") for i in range(20)],
        scheduler=vt,
    )
    requests: list[JobRequest] = []
    trigger.pipeline.subscribe(requests.append, scheduler=vt)
    vt.advance_to(START + timedelta(minutes=5, seconds=1))
    runs = [
        delivery
        for request in requests
        for _claim, delivery in [job_request_claim(request)]
        if delivery is not None and delivery.idempotency_key == "2025-01-01T00:05:00Z"
    ]
    assert len(runs) == 20
    # the clock moved while the 20 runs were emitted; they all carry the timer's wake time
    assert len({d.seen_at for d in runs}) == 1
    assert len({lateness(d) for d in runs}) == 1
    assert lateness(runs[0]) >= 0


async def test_a_wall_clock_set_back_mid_spin_sleeps_again_instead_of_spinning() -> None:
    import asyncio

    from portico_rx.schedule.timer import ScheduleTimer

    class SettableClock(RecordingAsyncIOScheduler):
        moment = START

        @property
        def now(self) -> datetime:
            return self.moment

    scheduler = SettableClock(asyncio.get_running_loop())
    timer = ScheduleTimer(scheduler, spin=0.002)
    fired: list[int] = []
    due = to_us(START + timedelta(seconds=1))
    timer.add("once", iter([due]), lambda _e, runs, _now: fired.extend(n for n, _ in runs))
    try:
        assert scheduler.delays == [pytest.approx(0.998)]  # armed 2 ms early
        scheduler.moment = START + timedelta(seconds=1) - timedelta(milliseconds=1)
        timer._on_timer()  # the early wake: 1 ms to go, so it spins
        assert scheduler.immediate == 1 and fired == []
        scheduler.moment = START  # the wall clock steps back a second
        timer._on_timer()
        assert scheduler.immediate == 1  # no spin for a second ...
        assert scheduler.delays[-1] == pytest.approx(0.998)  # ... it sleeps again
        scheduler.moment = START + timedelta(seconds=1)
        timer._on_timer()
        assert fired == [due]
    finally:
        timer.dispose()


def to_us(moment: datetime) -> int:
    from portico_rx.schedule.timer import to_micros

    return to_micros(moment)
