"""The full pipeline path per event, against the bare Rx bridge; and a 1M-event burst's RSS.

(a) cost: N events from a source that emits each one through ``deliver`` with its own
    ``Delivery`` (id, idempotency key, ack) -> ``to_job`` -> ``PipelineTrigger``'s
    ``JobSink`` -> ``JobService(MemoryJobQueue())``, until every delivery is acked;
    against the bare bridge: a reactivex ``Subject`` -> ``asyncio.Queue`` -> one consumer
    awaiting the same ``create_job`` (same job type, payload, queue, priority and
    idempotency key) on its own ``JobService(MemoryJobQueue())``. A and B run
    alternately, ``--rounds`` pairs in one process; the headline is the median of the
    paired ratios (min-max beside). Target: full path <= 2x the bare bridge. The sink
    writes the requests queued behind one in one store call (up to ``MAX_BATCH``), so a
    third side, reported beside the target, is the bridge batching the same way: its
    consumer drains the queue and calls ``create_many_from_requests`` once per batch.
(b) burst: 1,000,000 events pushed synchronously into a hot ``Subject`` pipeline (no
    back-pressure is possible) with the trigger's default ``max_pending`` and overflow
    policy; the creator (a ``JobService`` that yields before each job) is slower than
    the burst, so the bound decides: 100,000 are pending, 900,000 overflow and are
    dead-lettered. Peak RSS of that child process. Target: < 250 MB.
    Every overflowed event is a dead letter its creator's store keeps, and the push
    is synchronous: all 900,000 letters (each with its job request) are made before the
    loop runs again, so they wait in the sink's writer queue until it does
    (``peak_rss_after_push_mb``). Then the writer writes them: over ``MemoryJobQueue``
    (the first line, the target's) the store keeps a record of each in the process;
    over ``SQLiteJobQueue`` (the second line, reported) they leave the process. Both
    are printed with the peak per overflowed event.

Cost is the process's CPU time (``time.process_time``) per event, so the other load of
a shared machine slows neither side; the wall-clock ratio is printed beside it.

The library runs at its default configuration, logging included: structlog is not
configured, so job creation is logged and rendered by structlog's default console
renderer (``job_created``, or one ``jobs_created`` line for the jobs created in one
loop iteration); the rendered lines go to /dev/null (stdout is redirected during the
rounds) so the terminal shows only results.

    python benchmarks/bench_pipeline.py              # 20 rounds of 20k events, 1M burst
    python benchmarks/bench_pipeline.py --quick      # a tiny run (smoke test)
    python benchmarks/bench_pipeline.py --profile    # cProfile one full-path round
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import reactivex

import portico_rx as prx
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
from portico_rx.models import JobRequest
from portico_rx.pipeline import clock
from portico_rx.pipeline.delivery import Delivery, deliver
from portico_rx.pipeline.sink import MAX_BATCH

JOB_TYPE = "bench.event"
RSS_LIMIT_MB = 250.0
COST_TARGET = 2.0


def _payload(n: int) -> dict[str, Any]:
    return {"n": n}


async def full_path(events: int) -> tuple[float, float]:
    """CPU and wall seconds: ``events`` via deliver -> to_job -> JobSink -> JobService, acked."""
    creator = prx.JobService(MemoryJobQueue())
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job(JOB_TYPE, payload=_payload)), job_creator=creator, name="bench"
    )
    await trigger.start()
    scheduler = trigger.scheduler
    assert scheduler is not None
    done = asyncio.Event()
    acked = 0

    def ack() -> None:
        nonlocal acked
        acked += 1
        if acked == events:
            done.set()

    started, wall = time.process_time(), time.perf_counter()
    for n in range(events):  # what a source does per event
        event_id = str(n)
        delivery = Delivery(
            source="bench",
            seen_at=clock.now(scheduler),
            event_id=event_id,
            idempotency_key=event_id,
            ack=ack,
        )
        deliver(subject, n, delivery)
    await done.wait()
    elapsed, wall = time.process_time() - started, time.perf_counter() - wall
    await trigger.stop()
    assert trigger.counters.jobs_created == events, trigger.get_health()
    return elapsed, wall


async def _bridge(events: int, consume: Any) -> tuple[float, float]:
    """CPU and wall seconds: ``events`` via Subject -> asyncio.Queue -> ``consume``."""
    creator = prx.JobService(MemoryJobQueue())
    subject: reactivex.Subject[int] = reactivex.Subject()
    queue: asyncio.Queue[int] = asyncio.Queue()
    subject.subscribe(queue.put_nowait)
    done = asyncio.Event()
    task = asyncio.ensure_future(consume(queue, creator, events, done))
    started, wall = time.process_time(), time.perf_counter()
    for n in range(events):
        subject.on_next(n)
    await done.wait()
    elapsed, wall = time.process_time() - started, time.perf_counter() - wall
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed, wall


async def bare_bridge(events: int) -> tuple[float, float]:
    """Subject -> asyncio.Queue -> one consumer awaiting ``create_job`` per event."""

    async def consume(
        queue: asyncio.Queue[int], creator: Any, events: int, done: asyncio.Event
    ) -> None:
        created = 0
        while True:
            n = await queue.get()
            await creator.create_job(
                JOB_TYPE,
                _payload(n),
                queue_name="default",
                priority=0,
                metadata={"idempotency_key": f"bench:{JOB_TYPE}:{n}"},
            )
            created += 1
            if created == events:
                done.set()

    return await _bridge(events, consume)


async def batched_bridge(events: int) -> tuple[float, float]:
    """The bridge batching as the sink does: its consumer drains what is queued (up to
    ``MAX_BATCH``) and writes it in one ``create_many_from_requests`` call; each request
    a validated ``JobRequest`` with the same fields and key."""

    def entry(n: int) -> tuple[JobRequest, dict[str, Any]]:
        request = JobRequest(job_type=JOB_TYPE, payload=_payload(n), queue_name="default")
        return request, {"idempotency_key": f"bench:{JOB_TYPE}:{n}"}

    async def consume(
        queue: asyncio.Queue[int], creator: Any, events: int, done: asyncio.Event
    ) -> None:
        created = 0
        while True:
            batch = [entry(await queue.get())]
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(entry(queue.get_nowait()))
            await creator.create_many_from_requests(batch)
            created += len(batch)
            if created == events:
                done.set()

    return await _bridge(events, consume)


def timed(run: Any, events: int) -> tuple[float, float]:
    gc.collect()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        cpu, wall = asyncio.run(run(events))
    return float(cpu), float(wall)


def bench_cost(events: int, rounds: int) -> bool:
    print(
        f"(a) cost: {events} events per round, {rounds} alternating rounds, "
        "creator JobService(MemoryJobQueue())"
    )
    timed(full_path, min(events, 2_000))  # warm-up: imports, caches
    timed(bare_bridge, min(events, 2_000))
    timed(batched_bridge, min(events, 2_000))
    ratios, wall_ratios, batched_ratios, fulls, bares, batched = [], [], [], [], [], []
    for round_ in range(rounds):
        order = [full_path, bare_bridge, batched_bridge]
        if round_ % 2:
            order.reverse()
        measured = {side: timed(side, events) for side in order}
        (full, full_wall), (bare, bare_wall) = measured[full_path], measured[bare_bridge]
        fulls.append(full / events * 1e6)
        bares.append(bare / events * 1e6)
        batched.append(measured[batched_bridge][0] / events * 1e6)
        ratios.append(full / bare)
        wall_ratios.append(full_wall / bare_wall)
        batched_ratios.append(full / measured[batched_bridge][0])
    ratio = statistics.median(ratios)
    passed = ratio <= COST_TARGET
    bare_us, full_us = statistics.median(bares), statistics.median(fulls)
    print(f"    bare Rx -> asyncio.Queue -> consumer: {bare_us:7.2f} us/event (CPU)")
    print(f"    deliver -> to_job -> JobSink:         {full_us:7.2f} us/event (CPU)")
    print(
        f"    full/bare, median of paired ratios:   {ratio:.2f}x "
        f"(min {min(ratios):.2f}x - max {max(ratios):.2f}x; target <= {COST_TARGET:.1f}x) "
        f"{'PASS' if passed else 'FAIL'}"
    )
    print(
        f"    (wall clock: median {statistics.median(wall_ratios):.2f}x, "
        f"min {min(wall_ratios):.2f}x - max {max(wall_ratios):.2f}x)"
    )
    print(
        f"    the bridge batching its writes too:   {statistics.median(batched):7.2f} us/event; "
        f"full/batched {statistics.median(batched_ratios):.2f}x "
        f"(min {min(batched_ratios):.2f}x - max {max(batched_ratios):.2f}x; reported: the "
        "sink batches the requests queued behind one, up to MAX_BATCH, in one store call)"
    )
    return passed


# -- (b) burst -------------------------------------------------------------------------


async def burst(events: int, store: str) -> dict[str, Any]:
    """Push ``events`` into a hot Subject at once; return what the trigger decided.

    ``store``: ``"memory"`` (``MemoryJobQueue()``) or a SQLite file's path."""

    class SlowCreator(prx.JobService):
        """Yields to the loop before each job, so the burst outruns it."""

        async def create_job(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await super().create_job(*args, **kwargs)

    queue = MemoryJobQueue() if store == "memory" else SQLiteJobQueue(store)
    creator = SlowCreator(queue)
    subject: reactivex.Subject[int] = reactivex.Subject()
    trigger = prx.PipelineTrigger(
        subject.pipe(prx.to_job(JOB_TYPE, payload=_payload)),
        job_creator=creator,
        name="burst",
    )
    await trigger.start()
    started = time.perf_counter()
    for n in range(events):
        subject.on_next(n)
    pushed = time.perf_counter() - started
    pushed_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    health = trigger.get_health()
    await trigger.stop()
    stopped = time.perf_counter() - started - pushed
    await creator.close()
    return {
        "store": type(queue).__name__,
        "pushed_s": round(pushed, 2),
        "stop_s": round(stopped, 2),
        "max_pending": trigger.max_pending,
        "overflow": trigger.overflow,
        "pending_after_burst": health.in_flight,
        "overflowed": trigger.counters.overflowed,
        "jobs_created": trigger.counters.jobs_created,
        "dead_letters_kept": len(trigger.dead_letters),
        "dead_letters_stored": trigger.counters.dead_letters_stored,
        "dead_letters_unstored": trigger.counters.dead_letters_unstored,
        "peak_rss_after_push_mb": round(pushed_rss, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def burst_child(events: int, store: str) -> None:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        result = asyncio.run(burst(events, store))
    print(repr(result))


def _burst_line(events: int, store: str) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, __file__, "--burst-child", str(events), "--burst-store", store],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = eval(child.stdout.strip().splitlines()[-1])  # our own repr
    for key, value in result.items():
        print(f"    {key:22} {value}")
    if result["overflowed"]:
        per_letter = result["peak_rss_mb"] * 1024 / result["overflowed"]
        print(f"    peak RSS / overflowed events: {per_letter:.2f} KB (pending and base included)")
    return result


def bench_burst(events: int) -> bool:
    print(f"(b) burst: {events} events from a hot Subject, default max_pending and overflow")
    print("    creator JobService(MemoryJobQueue()), its dead letter store:")
    result = _burst_line(events, "memory")
    passed = bool(result["peak_rss_mb"] < RSS_LIMIT_MB)
    print(
        f"    peak RSS {result['peak_rss_mb']} MB (target < {RSS_LIMIT_MB:.0f} MB) "
        f"{'PASS' if passed else 'FAIL'} (the store keeps every overflowed event's letter)"
    )
    with tempfile.TemporaryDirectory() as folder:
        print("    creator JobService(SQLiteJobQueue(file)), its dead letter store (reported):")
        sqlite = _burst_line(events, str(Path(folder) / "burst.db"))
    print(f"    peak RSS {sqlite['peak_rss_mb']} MB (reported beside the target)")
    return passed


def profile(events: int) -> None:
    profiler = cProfile.Profile()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        profiler.enable()
        asyncio.run(full_path(events))
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--events", type=int, default=None, help="events per cost round")
    parser.add_argument("--rounds", type=int, default=None, help="alternating round pairs")
    parser.add_argument("--burst", type=int, default=None, help="events in the burst")
    parser.add_argument("--profile", action="store_true", help="cProfile one full-path run")
    parser.add_argument("--burst-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--burst-store", default="memory", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.burst_child is not None:
        burst_child(args.burst_child, args.burst_store)
        return 0
    events = args.events or (2_000 if args.quick else 20_000)
    if args.profile:
        profile(events)
        return 0
    rounds = args.rounds or (2 if args.quick else 20)
    burst_events = args.burst or (20_000 if args.quick else 1_000_000)
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    cost_ok = bench_cost(events, rounds)
    burst_ok = bench_burst(burst_events)
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0 if cost_ok and burst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
