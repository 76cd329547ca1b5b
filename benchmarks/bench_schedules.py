"""Schedules benchmark: portico_rx vs APScheduler 3 (AsyncIOScheduler), same run.

    python benchmarks/bench_schedules.py              # full run, 3 rounds (~6 minutes)
    python benchmarks/bench_schedules.py --rounds 5   # more rounds
    python benchmarks/bench_schedules.py --quick      # a few seconds, for the smoke test

Each measurement runs in a fresh child process with the same setup for both engines;
before the lateness runs each child imports its engine, builds its schedules and collects
garbage once (gc.collect()), so CPython's first full collection of import-time objects
does not land inside one engine's measurement and not the other's.
Printed: lateness p50/p99 of 200 every-second schedules; start time, RSS per schedule
and idle CPU of 10,000 cron schedules; preview rate vs raw croniter iteration, and
whether the preview equals the brute-force oracle. The engines run alternately, in
rounds (the order reversed each round); each figure is the median over rounds with the
min-max beside, and each ``RATIO`` line is the median of the per-round (paired) ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import library_defaults, load_average

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- children ------------------------------------------------------------------------


def _spec(count: int, per: str, index: int) -> tuple[str, int]:
    """Schedule ``index`` of a scenario: every second, or once a minute at its own second
    (``index % 60``: the minute's runs spread over its seconds, ~count/60 per second)."""
    return ("* * * * * *", 0) if per == "second" else (f"{index % 60} * * * * *", index % 60)


async def lateness_portico(seconds: float, count: int, per: str, store: str) -> dict[str, Any]:
    """ScheduleTrigger -> JobService -> a real store, all defaults (SQLite: FULL sync).
    Lateness is taken when the store call that wrote the job returned: the job exists."""
    import tempfile

    from portico_rx.adapters.job_queue.memory import MemoryJobQueue
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.kits.job.job_service import JobService

    created: list[float] = []
    recorded: list[float] = []

    def seen(jobs: list[Any]) -> None:
        now = time.time()
        for job, new in jobs:
            if new:
                meta = job.metadata
                created.append(now - datetime.fromisoformat(meta["scheduled_at"]).timestamp())
                recorded.append(meta["lateness_s"])

    def timed(base: type) -> type:
        class Timed(base):  # type: ignore[misc, valid-type]
            async def enqueue(self, job: Any) -> tuple[Any, bool]:
                outcome = await super().enqueue(job)
                seen([outcome])
                return outcome

            async def enqueue_many(self, jobs: Any) -> list[tuple[Any, bool]]:
                outcomes = await super().enqueue_many(jobs)
                seen(outcomes)
                return outcomes

        return Timed

    with tempfile.TemporaryDirectory() as folder:
        queue = (
            timed(MemoryJobQueue)()
            if store == "memory"
            else timed(SQLiteJobQueue)(Path(folder) / "jobs.db")
        )
        schedules = []
        for i in range(count):
            cron, _ = _spec(count, per, i)
            schedules.append(
                ScheduleConfig(cron=cron, seconds="first", job_type=f"bench.{i}", name=f"s{i}")
            )
        trigger = ScheduleTrigger(job_creator=JobService(queue), schedules=schedules, name="bench")
        gc.collect()  # every engine starts measuring after one full collection (module doc)
        cpu = time.process_time()
        await trigger.start()
        await asyncio.sleep(seconds)
        await trigger.stop()
        cpu = time.process_time() - cpu
        await queue.close()
    return {"created": created, "recorded": recorded, "cpu_per_run": cpu / max(1, len(created))}


async def lateness_apscheduler(seconds: float, count: int, per: str, store: str) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    observed: list[float] = []

    async def job() -> None:
        now = time.time()
        observed.append(now - math.floor(now))

    scheduler = AsyncIOScheduler(timezone="UTC")
    for i in range(count):
        second = "*" if per == "second" else str(_spec(count, per, i)[1])
        scheduler.add_job(job, CronTrigger(second=second, timezone="UTC"), id=f"bench.{i}")
    gc.collect()
    cpu = time.process_time()
    scheduler.start()
    await asyncio.sleep(seconds)
    scheduler.shutdown(wait=False)
    cpu = time.process_time() - cpu
    return {"created": observed, "cpu_per_run": cpu / max(1, len(observed))}


async def lateness_call_later(seconds: float, count: int, per: str, store: str) -> dict[str, Any]:
    """The floor: one ``loop.call_later`` per schedule, re-armed for its next fire."""
    loop = asyncio.get_running_loop()
    observed: list[float] = []
    end = time.time() + seconds
    period = 1 if per == "second" else 60

    def fire(target: float) -> None:
        observed.append(time.time() - target)
        if target + period < end:
            loop.call_later(target + period - time.time(), fire, target + period)

    now = time.time()
    gc.collect()
    cpu = time.process_time()
    for i in range(count):
        second = _spec(count, per, i)[1]
        if per == "second":
            first = math.floor(now) + 1
        else:
            minute = math.floor(now / 60) * 60
            first = minute + second if minute + second > now else minute + 60 + second
        loop.call_later(first - time.time(), fire, first)
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu
    return {"created": observed, "cpu_per_run": cpu / max(1, len(observed))}


def idle_hour() -> int:
    return (datetime.now(UTC).hour + 12) % 24


async def start_portico(count: int, idle_seconds: float) -> dict[str, Any]:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.testing import RecordingJobCreator

    hour = idle_hour()
    expressions = [f"{i % 60} {hour} {1 + i % 28} * *" for i in range(count)]
    walls, cpus = [], []
    result: dict[str, Any] = {}
    for attempt in range(REPEATS):
        gc.collect()
        before = rss_bytes()
        began, began_cpu = time.perf_counter(), time.process_time()
        configs = [ScheduleConfig(cron=e, job_type=f"job.{i}") for i, e in enumerate(expressions)]
        trigger = ScheduleTrigger(job_creator=RecordingJobCreator(), schedules=configs)
        await trigger.start()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
        if attempt == 0:
            gc.collect()
            result["rss_per_schedule"] = (rss_bytes() - before) / count
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(idle_seconds)
            result["idle_cpu"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await trigger.stop()
        del trigger, configs
    return {**result, "start_s": min(walls), "start_cpu_s": min(cpus)}


async def start_apscheduler(count: int, idle_seconds: float) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    async def job() -> None:
        return None

    hour = idle_hour()
    expressions = [f"{i % 60} {hour} {1 + i % 28} * *" for i in range(count)]
    walls, cpus = [], []
    result: dict[str, Any] = {}
    for attempt in range(REPEATS):
        gc.collect()
        before = rss_bytes()
        began, began_cpu = time.perf_counter(), time.process_time()
        scheduler = AsyncIOScheduler(timezone="UTC")
        for i, expression in enumerate(expressions):
            trigger = CronTrigger.from_crontab(expression, timezone="UTC")
            scheduler.add_job(job, trigger, id=f"job.{i}")
        scheduler.start()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
        if attempt == 0:
            gc.collect()
            result["rss_per_schedule"] = (rss_bytes() - before) / count
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(idle_seconds)
            result["idle_cpu"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        del scheduler
    return {**result, "start_s": min(walls), "start_cpu_s": min(cpus)}


def preview_rates(
    schedules: int, days: int, croniter_schedules: int, oracle_days: int
) -> dict[str, Any]:
    from croniter import croniter

    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.testing import RecordingJobCreator

    sys.path.insert(0, str(ROOT / "tests" / "schedules"))
    from schedule_oracle import oracle_fires

    from portico_rx.schedule.cron_expression import parse_cron

    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=days)
    expressions = [f"{i % 60} * * * *" for i in range(schedules)]
    trigger = ScheduleTrigger(
        job_creator=RecordingJobCreator(),
        schedules=[ScheduleConfig(cron=e, job_type=f"job.{i}") for i, e in enumerate(expressions)],
    )
    trigger.preview(start, start + timedelta(days=1))  # import pandas outside the timing
    began = time.perf_counter()
    frame = trigger.preview(start, end)
    ours_s = time.perf_counter() - began
    rows = len(frame)

    began = time.perf_counter()
    iterated = 0
    croniter_ok = True
    for i, expression in enumerate(expressions[:croniter_schedules]):
        iterator = croniter(expression, start - timedelta(seconds=1))
        got = []
        while True:
            moment = iterator.get_next(datetime)
            if moment >= end:
                break
            got.append(moment)
        iterated += len(got)
        ours = list(frame.loc[frame["schedule"] == f"job.{i}", "scheduled_at"])
        croniter_ok = croniter_ok and [t.to_pydatetime() for t in ours] == got
    croniter_s = time.perf_counter() - began

    oracle_end = start + timedelta(days=oracle_days)
    window = trigger.preview(start, oracle_end)
    oracle_ok = True
    for i, expression in enumerate(expressions[:3]):
        expected = oracle_fires(
            parse_cron(expression), __import__("zoneinfo").ZoneInfo("UTC"), start, oracle_end
        )
        got = [
            t.to_pydatetime() for t in window.loc[window["schedule"] == f"job.{i}", "scheduled_at"]
        ]
        oracle_ok = oracle_ok and got == expected
    berlin = ScheduleTrigger(
        job_creator=RecordingJobCreator(),
        schedules=[ScheduleConfig(cron="*/30 1-3 * * *", job_type="dst", tz="Europe/Berlin")],
    )
    dst_start, dst_end = datetime(2025, 3, 25, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC)
    dst_frame = berlin.preview(dst_start, dst_end)
    dst_expected = oracle_fires(
        parse_cron("*/30 1-3 * * *"),
        __import__("zoneinfo").ZoneInfo("Europe/Berlin"),
        dst_start,
        dst_end,
    )
    oracle_ok = oracle_ok and [t.to_pydatetime() for t in dst_frame["scheduled_at"]] == dst_expected
    return {
        "rows": rows,
        "ours_s": ours_s,
        "ours_rate": rows / ours_s,
        "croniter_fires": iterated,
        "croniter_s": croniter_s,
        "croniter_rate": iterated / croniter_s,
        "croniter_equal": croniter_ok,
        "oracle_equal": oracle_ok,
    }


def child(mode: str, options: dict[str, Any]) -> None:
    if mode.startswith("lateness_"):
        # the library at its defaults, logging included (harness.library_defaults): the
        # log lines are rendered and written, to /dev/null; the result is printed after
        run = globals()[mode]
        with library_defaults():
            result = asyncio.run(
                run(options["seconds"], options["count"], options["per"], options["store"])
            )
        print(json.dumps(result))
        return
    quiet_logs()
    if mode.startswith("start_"):
        result = asyncio.run(globals()[mode](options["count"], options["idle"]))
    else:
        result = preview_rates(**options)
    print(json.dumps(result))


def run_child(mode: str, **options: Any) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def quiet_logs() -> None:
    """Production-like logging for both engines: warnings and errors only."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.basicConfig(level=logging.WARNING)


def spread(values: list[float], scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    """``median (min-max)`` of per-round values."""
    low, mid, high = (v * scale for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


LATENESS_ENGINES = (
    ("portico_rx/memory", "lateness_portico", "memory"),
    ("portico_rx/sqlite", "lateness_portico", "sqlite"),
    ("apscheduler", "lateness_apscheduler", ""),
    ("call_later", "lateness_call_later", ""),
)
LATENESS_TARGETS = {"portico_rx/memory": 0.005, "portico_rx/sqlite": 0.015}


def lateness_rounds(rounds: int, seconds: float, count: int, per: str) -> None:
    """One scenario: ``count`` schedules firing every ``per`` (second, or minute spread
    over its seconds), the engines alternating in rounds (order reversed each round)."""
    what = "every second" if per == "second" else "once a minute, spread over its seconds"
    print(
        f"== lateness: {count} schedules firing {what}, {seconds:g} s per run, "
        f"{rounds} round(s), engines alternating; median (min-max) over rounds =="
    )
    load_average("before")
    names = [name for name, _, _ in LATENESS_ENGINES]
    per_engine: dict[str, dict[str, list[float]]] = {
        name: {"p50": [], "p99": [], "cpu": [], "n": []} for name in (*names, "fire")
    }
    for index in range(rounds):
        order = LATENESS_ENGINES if index % 2 == 0 else tuple(reversed(LATENESS_ENGINES))
        for name, mode, store in order:
            data = run_child(mode, seconds=seconds, count=count, per=per, store=store)
            figures = per_engine[name]
            figures["p50"].append(percentile(data["created"], 0.5))
            figures["p99"].append(percentile(data["created"], 0.99))
            figures["cpu"].append(data["cpu_per_run"])
            figures["n"].append(len(data["created"]))
            if store == "memory":
                per_engine["fire"]["p99"].append(percentile(data["recorded"], 0.99))
    load_average("after")
    for name, where in (
        ("portico_rx/memory", "when the job exists (store call returned)"),
        ("portico_rx/sqlite", "when the job exists (committed, synchronous=FULL)"),
        ("apscheduler", "in the job"),
        ("call_later", "in the callback"),
    ):
        data = per_engine[name]
        print(
            f"lateness {name:18s} {where}: p50={spread(data['p50'], 1e3, ' ms')} "
            f"p99={spread(data['p99'], 1e3, ' ms')} "
            f"cpu/run={spread(data['cpu'], 1e6, ' us')} runs/round={spread(data['n'], 1, '', 0)}"
        )
    fire = per_engine["fire"]["p99"]
    print(f"lateness portico_rx/memory at the timer (lateness_s): p99={spread(fire, 1e3, ' ms')}")
    for name, target in LATENESS_TARGETS.items():
        p99 = statistics.median(per_engine[name]["p99"])
        verdict = "PASS" if p99 <= target else "FAIL"
        print(f"TARGET {name} p99 <= {target * 1e3:g} ms: {ms(p99)} median {verdict}")

    def ratio(label: str, a: list[float], b: list[float]) -> None:
        values = [x / y for x, y in zip(a, b, strict=True)]
        print(f"RATIO {label} = {spread(values, 1, 'x')} (paired per round, >1: ours less late)")

    for ours in ("portico_rx/memory", "portico_rx/sqlite"):
        for peer in ("apscheduler", "call_later"):
            ratio(
                f"lateness p99 {peer}/{ours}",
                per_engine[peer]["p99"],
                per_engine[ours]["p99"],
            )


def start_rounds(rounds: int, schedules: int, idle: float) -> None:
    print(
        f"== {schedules} cron schedules: start, RSS per schedule, idle CPU over {idle:g} s, "
        f"{rounds} round(s), engines alternating =="
    )
    per: dict[str, list[dict[str, Any]]] = {"portico_rx": [], "apscheduler": []}
    for index in range(rounds):
        order = ("start_portico", "start_apscheduler")
        for mode in order if index % 2 == 0 else tuple(reversed(order)):
            name = "portico_rx" if mode == "start_portico" else "apscheduler"
            per[name].append(run_child(mode, count=schedules, idle=idle))
    for name, data in per.items():
        print(
            f"start {name:12s} {spread([d['start_s'] for d in data], 1, ' s', 3)} wall, "
            f"{spread([d['start_cpu_s'] for d in data], 1, ' s', 3)} CPU  "
            f"rss/schedule={spread([d['rss_per_schedule'] for d in data], 1, ' B', 0)}  "
            f"idle_cpu={spread([d['idle_cpu'] for d in data], 100, '%')}"
        )
    pairs = list(zip(per["apscheduler"], per["portico_rx"], strict=True))
    for label, key, note in (
        ("start", "start_s", " (wall)"),
        ("start_cpu", "start_cpu_s", " (CPU time, robust to machine load)"),
        ("rss_per_schedule", "rss_per_schedule", ""),
    ):
        ratios = [a[key] / max(b[key], 1e-9) for a, b in pairs]
        print(f"RATIO {label} apscheduler/portico_rx = {spread(ratios, 1, 'x')}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run for smoke tests")
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating rounds (default 3, quick 1)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds per lateness run (default 20)"
    )
    parser.add_argument(
        "--lateness-only", action="store_true", help="only the two lateness scenarios"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    seconds = args.seconds or (2.0 if quick else 20.0)
    lateness_rounds(rounds, seconds, 200, "second")
    lateness_rounds(rounds, seconds, 1_000 if quick else 10_000, "minute")
    if args.lateness_only:
        return
    start_rounds(rounds, 500 if quick else 10_000, 1.0 if quick else 30.0)

    preview = run_child(
        "preview",
        schedules=10 if quick else 100,
        days=30 if quick else 365,
        croniter_schedules=1 if quick else 5,
        oracle_days=2 if quick else 14,
    )
    print("== preview: hourly schedules over a window vs raw croniter iteration ==")
    print(
        f"preview portico_rx   {preview['rows']} rows in {preview['ours_s']:.3f} s "
        f"= {preview['ours_rate']:,.0f} rows/s"
    )
    print(
        f"preview croniter     {preview['croniter_fires']} fires in {preview['croniter_s']:.3f} s "
        f"= {preview['croniter_rate']:,.0f} fires/s (same schedules, equal results: "
        f"{preview['croniter_equal']})"
    )
    print(f"preview equals brute-force oracle (UTC + Europe/Berlin DST): {preview['oracle_equal']}")
    ratio = preview["ours_rate"] / preview["croniter_rate"]
    print(f"RATIO preview portico_rx/croniter = {ratio:.1f}x")


if __name__ == "__main__":
    main()
