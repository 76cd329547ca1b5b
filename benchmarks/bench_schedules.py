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


async def lateness_portico(seconds: float, count: int) -> dict[str, Any]:
    from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
    from portico_rx.models import Job
    from portico_rx.ports.job_creator import JobCreator

    created: list[float] = []
    recorded: list[float] = []
    done = Job(job_type="bench.done")  # the creator's own cost is not what is measured

    class LatencyCreator(JobCreator):
        async def create_job(
            self,
            job_type: str,
            payload: dict[str, Any],
            queue_name: str = "default",
            priority: int = 0,
            metadata: dict[str, Any] | None = None,
        ) -> Job:
            now = time.time()
            meta = metadata or {}
            created.append(now - datetime.fromisoformat(meta["scheduled_at"]).timestamp())
            recorded.append(meta["lateness_s"])
            return done

        async def get_job(self, job_id: Any) -> Job | None:
            return None

    trigger = ScheduleTrigger(
        job_creator=LatencyCreator(),
        schedules=[ScheduleConfig(cron="* * * * * *", job_type=f"bench.{i}") for i in range(count)],
        name="bench",
    )
    gc.collect()  # every engine starts measuring after one full collection (see module doc)
    cpu = time.process_time()
    await trigger.start()
    await asyncio.sleep(seconds)
    await trigger.stop()
    cpu = time.process_time() - cpu
    return {"created": created, "recorded": recorded, "cpu_per_run": cpu / max(1, len(created))}


async def lateness_apscheduler(seconds: float, count: int) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    observed: list[float] = []

    async def job() -> None:
        now = time.time()
        observed.append(now - math.floor(now))

    scheduler = AsyncIOScheduler(timezone="UTC")
    for i in range(count):
        scheduler.add_job(job, CronTrigger(second="*", timezone="UTC"), id=f"bench.{i}")
    gc.collect()
    cpu = time.process_time()
    scheduler.start()
    await asyncio.sleep(seconds)
    scheduler.shutdown(wait=False)
    cpu = time.process_time() - cpu
    return {"created": observed, "cpu_per_run": cpu / max(1, len(observed))}


async def lateness_call_later(seconds: float, count: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    observed: list[float] = []
    end = time.time() + seconds

    def fire(target: float) -> None:
        observed.append(time.time() - target)
        if target + 1 < end:
            loop.call_later(target + 1 - time.time(), fire, target + 1)

    first = math.floor(time.time()) + 1
    gc.collect()
    cpu = time.process_time()
    for _ in range(count):
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
        result = asyncio.run(globals()[mode](options["seconds"], options["count"]))
    elif mode.startswith("start_"):
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


def lateness_rounds(rounds: int, seconds: float, count: int) -> None:
    engines = (
        ("portico_rx", "lateness_portico"),
        ("apscheduler", "lateness_apscheduler"),
        ("call_later", "lateness_call_later"),
    )
    print(
        f"== lateness: {count} schedules firing every second for {seconds:g} s, "
        f"{rounds} round(s), engines alternating; median (min-max) over rounds =="
    )
    per: dict[str, dict[str, list[float]]] = {
        name: {"p50": [], "p99": [], "cpu": []} for name in (*dict(engines), "portico_rx_fire")
    }
    for index in range(rounds):
        order = engines if index % 2 == 0 else tuple(reversed(engines))
        for name, mode in order:
            data = run_child(mode, seconds=seconds, count=count)
            per[name]["p50"].append(percentile(data["created"], 0.5))
            per[name]["p99"].append(percentile(data["created"], 0.99))
            per[name]["cpu"].append(data["cpu_per_run"])
            if "recorded" in data:
                per["portico_rx_fire"]["p50"].append(percentile(data["recorded"], 0.5))
                per["portico_rx_fire"]["p99"].append(percentile(data["recorded"], 0.99))
    for name, where in (
        ("portico_rx", "at create_job"),
        ("portico_rx_fire", "at fire (lateness_s in job metadata)"),
        ("apscheduler", "in the job"),
        ("call_later", "in the callback"),
    ):
        data = per[name]
        cpu = f" cpu/run={spread(data['cpu'], 1e6, ' us')}" if data["cpu"] else ""
        print(
            f"lateness {name:15s} {where}: p50={spread(data['p50'], 1e3, ' ms')} "
            f"p99={spread(data['p99'], 1e3, ' ms')}{cpu}"
        )
    ours, theirs, fire = per["portico_rx"], per["apscheduler"], per["portico_rx_fire"]
    p99 = statistics.median(ours["p99"])
    verdict = "met" if p99 <= 0.005 else "NOT met"
    print(f"TARGET lateness p99 <= 5 ms at create_job: {ms(p99)} median ({verdict})")

    def ratio(label: str, a: list[float], b: list[float], note: str = "") -> None:
        print(f"RATIO {label} = {spread([x / y for x, y in zip(a, b, strict=True)], 1, 'x')}{note}")

    ratio("lateness p99 apscheduler/portico_rx(create_job)", theirs["p99"], ours["p99"])
    ratio("lateness p50 apscheduler/portico_rx(create_job)", theirs["p50"], ours["p50"])
    ratio("lateness p99 apscheduler/portico_rx(fire)", theirs["p99"], fire["p99"])
    ratio(
        "cpu_per_run apscheduler/portico_rx",
        theirs["cpu"],
        ours["cpu"],
        " (CPU time, robust to load)",
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
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        quiet_logs()
        child(args.child[0], json.loads(args.child[1]))
        return
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    lateness_rounds(rounds, 2.0 if quick else 20.0, 200)
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
