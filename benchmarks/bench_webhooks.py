"""Webhook intake benchmark: WebhookTrigger against a bare FastAPI endpoint, same run.

Both run under the same uvicorn settings (one process, ``loop="asyncio"``,
``http="h11"``, access log off) on 127.0.0.1, driven by the same load generator: a
closed-loop, keep-alive HTTP/1.1 client over raw asyncio sockets with N connections for a
fixed duration (so the generator is not the bottleneck), sending pre-signed requests.

* ``bare``: the peer at its best: a FastAPI endpoint that parses the same pydantic body
  (WebhookJobRequest) and answers a constant ``{"job_id": ...}``; it keeps nothing.
* ``trigger``: ``create_app([WebhookTrigger(...)])`` at its default configuration
  (the library's default logging included: standard ``logging`` as the application left
  it, here unconfigured, so info lines are dropped and warnings would go to stderr), with
  a Standard Webhooks signature check, an idempotency key per request (the signed
  ``webhook-id``) and job creation through ``JobService`` into the in-memory queue.
* ``trigger+sqlite``: the same, creating the jobs in ``SQLiteJobQueue`` at its default
  full durability (``synchronous=FULL``: every answered job is on disk).

Every request is different (its own webhook-id and signature). The servers run one at a
time, their order alternating from round to round (the load average is printed before
and after); the report gives, per mode, the median over rounds of the ratio to ``bare``
*in the same round* (throughput and p99), with the min-max.

Targets: trigger throughput >= 1.0x bare, p99 <= 1.2x; trigger+sqlite >= 0.85x, p99 <= 1.5x.

    python benchmarks/bench_webhooks.py --rounds 5    # the measurement (8 s per server)
    python benchmarks/bench_webhooks.py --quick       # a tiny run (smoke test)
    python benchmarks/bench_webhooks.py --in-process --rounds 7   # no server: CPU per request
    python benchmarks/bench_webhooks.py --profile     # where the trigger's CPU goes
    python benchmarks/bench_webhooks.py --profile-served --duration 5   # ... when served
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import load_average

from portico_rx.adapters.job_trigger.webhook_trigger import WebhookJobRequest

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PATH = "/webhooks/jobs"
MODES = ("bare", "trigger", "trigger+sqlite")
DIAGNOSTIC_MODES = ("trigger", "trigger-info")
"""``--logging-cost``: the trigger as measured, and the same with the application's
standard logging at INFO (a handler writing every line to /dev/null): what turning the
library's info lines on costs (a diagnosis, never a quoted figure)."""


# -- the servers ---------------------------------------------------------------------------


def build_server(mode: str, db: str) -> Any:
    from fastapi import FastAPI

    from portico_rx.adapters.job_queue.memory import MemoryJobQueue
    from portico_rx.adapters.job_queue.sqlite import SQLiteJobQueue
    from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
    from portico_rx.kits.job.job_service import JobService
    from portico_rx.web import create_app
    from portico_rx.webhooks import StandardWebhooksAuth

    if mode == "bare":
        app = FastAPI()
        answer = {"job_id": str(uuid.uuid4())}

        @app.post(PATH, status_code=201)
        async def create(request: WebhookJobRequest) -> dict[str, str]:
            return answer

        return app
    if mode == "trigger-info":
        import logging

        logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    queue = SQLiteJobQueue(db) if mode == "trigger+sqlite" else MemoryJobQueue()
    service = JobService(job_queue=queue)
    trigger = WebhookTrigger(
        job_creator=service,
        config=WebhookConfig(
            allowed_job_types=["email.send"], auth=StandardWebhooksAuth(secrets=[SECRET])
        ),
    )
    app = create_app([trigger])

    @app.get("/count")
    async def count() -> dict[str, int]:
        return {"jobs": trigger.get_health().jobs_created_count}

    return app


def serve(mode: str, port: int, db: str, profile_to: str | None = None) -> None:
    import uvicorn

    app = build_server(mode, db)
    if profile_to is not None:  # --profile-served: from the first request to shutdown
        app.router.lifespan_context = profiled(app.router.lifespan_context, profile_to)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        log_level="warning",
        access_log=False,
    )


def profiled(lifespan: Any, path: str) -> Any:
    """``lifespan`` with cProfile on while the app serves, written to ``path`` at shutdown.

    The profiler's clock is the wall clock (a CPU-time clock costs a system call per
    profiled call and would inflate the many small ones): the waits in ``epoll`` are
    idle time, which :func:`breakdown` leaves out."""
    import contextlib
    import cProfile

    @contextlib.asynccontextmanager
    async def run(app: Any) -> Any:
        async with lifespan(app) as state:
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                yield state
            finally:
                profiler.disable()
                profiler.dump_stats(path)

    return run


# -- the load generator --------------------------------------------------------------------


def signed_requests(count: int, port: int) -> list[bytes]:
    from portico_rx.webhooks import sign_standard_webhook

    requests = []
    for i in range(count):
        body = json.dumps(
            {
                "job_type": "email.send",
                "payload": {"recipient": f"user{i}@example.com", "subject": "hi", "n": i},
                "queue_name": "emails",
                "priority": 5,
            }
        ).encode()
        headers = sign_standard_webhook(SECRET, f"msg_{uuid.uuid4().hex}", body)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        requests.append(head.encode() + body)
    return requests


@dataclass
class Result:
    mode: str
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    server_cpu: float = 0.0

    @property
    def cpu_per_request_us(self) -> float:
        """Server CPU time per answered request (robust on a busy, shared machine)."""
        return self.server_cpu / self.answered * 1e6 if self.answered else 0.0

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(
    port: int, requests: list[bytes], connections: int, warmup: float, duration: float, mode: str
) -> Result:
    result = Result(mode)
    position = 0
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration

    async def connection() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                sent = time.perf_counter()
                if sent >= end or position >= len(requests):
                    return
                request = requests[position]
                position += 1
                writer.write(request)
                status = await read_response(reader)
                done = time.perf_counter()
                result.answered += 1
                if sent >= measure_from:
                    if status in (200, 201):
                        result.completed += 1
                        result.latencies.append(done - sent)
                    else:
                        result.failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = min(time.perf_counter(), end) - measure_from
    return result


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def count_jobs(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /count HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    count: int = json.loads(data.split(b"\r\n\r\n", 1)[1])["jobs"]
    return count


async def measure(
    mode: str, args: argparse.Namespace, workdir: Path, profile_to: Path | None = None
) -> Result:
    port = free_port()
    db = str(workdir / f"bench-{uuid.uuid4().hex[:8]}.db")
    profiling = ["--profile-to", str(profile_to)] if profile_to is not None else []
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port), "--db", db, *profiling],
        stdout=subprocess.DEVNULL,  # the library's default log lines: rendered, discarded
    )
    try:
        await wait_until_listening(port, process)
        expected = int((args.warmup + args.duration) * 20_000) + 1000
        requests = signed_requests(min(expected, args.max_requests), port)
        cpu_before = process_cpu_seconds(process.pid)
        result = await load(port, requests, args.connections, args.warmup, args.duration, mode)
        result.server_cpu = process_cpu_seconds(process.pid) - cpu_before
        jobs = await count_jobs(port) if mode != "bare" else result.completed
        if jobs < result.completed:
            raise RuntimeError(f"{mode}: {result.completed} answered 2xx but {jobs} jobs exist")
        return result
    finally:
        process.terminate()
        process.wait(timeout=30)


TARGETS = {"trigger": (1.0, 1.2), "trigger+sqlite": (0.85, 1.5)}
"""mode -> (minimum throughput ratio, maximum p99 ratio) against bare in the same round."""


def ratios(results: dict[str, list[Result]], mode: str, value: str) -> list[float]:
    """``mode``'s ratio to ``bare`` in each round (``value``: ``"rate"``, ``"p99"``, or
    ``"cpu"`` as bare/this), sorted."""

    def one(run: Result, bare: Result) -> float:
        if value == "rate":
            return run.rate / bare.rate
        if value == "p99":
            return run.percentile(0.99) / bare.percentile(0.99)
        return bare.cpu_per_request_us / run.cpu_per_request_us

    return sorted(
        one(run, bare)
        for run, bare in zip(results[mode], results["bare"], strict=True)
        if bare.rate and run.rate and run.cpu_per_request_us and bare.percentile(0.99)
    )


def paired(results: dict[str, list[Result]], mode: str, value: str) -> str:
    """The median over rounds of ``mode``'s ratio to ``bare`` in the same round, with
    the min-max beside it."""
    found = ratios(results, mode, value)
    if not found:
        return "n/a"
    return (
        f"{statistics.median(found):.2f}x (min-max {found[0]:.2f}-{found[-1]:.2f} "
        f"over {len(found)} rounds)"
    )


def report(results: dict[str, list[Result]]) -> None:
    print(
        f"{'server':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}"
        f"{'server CPU us/req':>20}   (median over rounds)"
    )
    for mode, runs in results.items():
        print(
            f"{mode:<16}{statistics.median(r.rate for r in runs):>10.0f}"
            f"{statistics.median(r.percentile(0.5) for r in runs):>10.2f}"
            f"{statistics.median(r.percentile(0.99) for r in runs):>10.2f}"
            f"{sum(r.failed for r in runs):>8}"
            f"{statistics.median(r.cpu_per_request_us for r in runs):>20.0f}"
        )
    for mode, (rate_goal, p99_goal) in TARGETS.items():
        if mode not in results:
            continue
        rounds = ", ".join(f"{r.rate:.0f}" for r in results[mode])
        bare = ", ".join(f"{r.rate:.0f}" for r in results["bare"])
        print(
            f"paired median throughput ratio {mode}/bare: {paired(results, mode, 'rate')} "
            f"(target >= {rate_goal}x; req/s per round: {rounds} vs bare {bare})"
        )
        print(
            f"paired median p99 ratio {mode}/bare: {paired(results, mode, 'p99')} "
            f"(target <= {p99_goal}x)"
        )
        print(
            f"paired median CPU ratio {mode}/bare: {paired(results, mode, 'cpu')} "
            "(server CPU per request, bare / this; >= 1.0x: as cheap as bare)"
        )


# -- in process: the route's own CPU cost, without an HTTP server --------------------------


async def in_process(args: argparse.Namespace) -> None:
    """``bare`` and ``trigger`` (in-memory queue) called as ASGI apps in this process, in
    alternating rounds; prints the median of the paired CPU-per-request ratios.

    Without uvicorn and the socket the ratio isolates what the library adds per request
    (and is steadier on a shared machine than the served throughput).
    """
    load_average("before")
    servers = {mode: build_server(mode, "") for mode in ("bare", "trigger")}
    contexts = [app.router.lifespan_context(app) for app in servers.values()]
    for context in contexts:
        await context.__aenter__()
    cpu: dict[str, list[float]] = {mode: [] for mode in servers}
    try:
        for round_ in range(args.rounds):  # bare first in even rounds, trigger in odd ones
            order = list(servers.items())
            for mode, app in order if round_ % 2 == 0 else reversed(order):
                cpu[mode].append(await asgi_round(app, args.requests, args.connections))
    finally:
        for context in reversed(contexts):
            await context.__aexit__(None, None, None)
    ratios = sorted(b / t for b, t in zip(cpu["bare"], cpu["trigger"], strict=True))
    print(
        f"in process: {args.requests} requests per round, {args.connections} concurrent, "
        f"{args.rounds} rounds alternating"
    )
    for mode, values in cpu.items():
        print(
            f"{mode:<10} CPU us/request: median {statistics.median(values):.1f} "
            f"(rounds {', '.join(f'{v:.0f}' for v in values)})"
        )
    print(
        f"paired median in-process CPU ratio bare/trigger: {statistics.median(ratios):.2f}x "
        f"(min-max {ratios[0]:.2f}-{ratios[-1]:.2f}; >= 1.0x means the trigger is as cheap)"
    )
    load_average("after")


CATEGORIES = (
    # (category, substrings of a function's file or name): the first that matches wins
    ("logging", ("/logging/", "portico_rx/logs.py", "structlog")),
    ("HMAC signature check", ("portico_rx/webhooks/auth.py", "/hmac.py", "_hashlib", "binascii")),
    ("body read", ("portico_rx/webhooks/body.py",)),
    ("pydantic body validation", ("pydantic", "validate_json")),
    ("idempotency (key, guard)", ("portico_rx/webhooks/idempotency.py", "(idempotency_key)")),
    (
        "job creation (pipeline, job service, store, models)",
        (
            "portico_rx/pipeline/",
            "portico_rx/kits/",
            "portico_rx/adapters/job_queue/",
            "portico_rx/models.py",
            "/uuid.py",
        ),
    ),
    ("intake checks (headers, content type, payload)", ("portico_rx/webhooks/intake.py",)),
    ("response encoding", ("portico_rx/webhooks/route.py:1", "starlette/responses.py")),
    ("trigger endpoint (its own lines)", ("webhook_trigger.py", "portico_rx/webhooks/route.py")),
    (
        "FastAPI/Starlette request handling",
        ("fastapi/", "starlette/", "opentelemetry", "contextlib"),
    ),
    ("uvicorn/h11 HTTP parsing and protocol", ("h11/", "uvicorn/")),
    ("asyncio loop, sockets", ("asyncio/", "selectors.py", "socket", "select", "epoll")),
    ("the benchmark's ASGI client (in process only)", ("bench_webhooks.py",)),
)


def _category(function: tuple[str, int, str]) -> str | None:
    """The category of a profiled function; ``None`` for a C function or a standard
    library helper (``os.environ``, ``enum``, ``namedtuple``): it counts for its callers."""
    filename, line, name = function
    if filename == "~":
        if "validate_json" in name or "_hashlib" in name or "binascii" in name:
            return _category((name, 0, name))
        return None
    where = f"{filename}:{line}({name})"
    if "portico_rx/webhooks/route.py" in filename and "JSONBytesResponse" in where:
        return "response encoding"
    for category, marks in CATEGORIES:
        if any(mark in where for mark in marks):
            return category
    return None


def _shares(
    function: tuple[str, int, str], entries: dict[Any, Any], depth: int = 0
) -> dict[str, float]:
    """Which categories ``function``'s time counts for: its own, else its callers'
    (weighted by the time spent in it from each caller)."""
    category = _category(function)
    if category is not None:
        return {category: 1.0}
    callers = entries.get(function, (0, 0, 0.0, 0.0, {}))[4]
    weights = {caller: stats[3] for caller, stats in callers.items()}
    whole = sum(weights.values())
    if depth > 20 or not whole:
        return {"other": 1.0}
    shares: dict[str, float] = {}
    for caller, weight in weights.items():
        for name, share in _shares(caller, entries, depth + 1).items():
            shares[name] = shares.get(name, 0.0) + share * weight / whole
    return shares


def breakdown(stats: Any, us_per_request: float) -> None:
    """Print the profiled self time per category, as a share and scaled to the CPU time
    per request measured without the profiler (C functions and standard library helpers
    count for their callers; the event loop's waits in ``epoll`` are left out).

    The profiler adds a cost per call, so many small calls weigh more than they do
    unprofiled: the shares say where the time goes, not to the microsecond."""
    totals: dict[str, float] = {}
    entries = stats.stats  # pstats' table: func -> (cc, nc, tottime, cumtime, callers)
    for function, (_cc, _nc, tottime, _ct, _callers) in entries.items():
        if function[0] == "~" and function[2] == "<method 'poll' of 'select.epoll' objects>":
            continue  # the event loop waiting for the network: idle, not CPU
        for category, share in _shares(function, entries).items():
            totals[category] = totals.get(category, 0.0) + tottime * share
    whole = sum(totals.values()) or 1.0
    print(f"\nwhere the CPU goes ({us_per_request:.0f} us/request measured unprofiled):")
    for category, spent in sorted(totals.items(), key=lambda item: -item[1]):
        share = spent / whole
        print(f"  {share * 100:5.1f}%  {share * us_per_request:6.1f} us  {category}")


async def profile(args: argparse.Namespace) -> None:
    """The trigger (in-memory queue) as an ASGI app under cProfile: where its CPU goes
    (no HTTP server: ``--profile-served`` profiles the uvicorn process)."""
    import cProfile
    import pstats

    app = build_server("trigger", "")
    async with app.router.lifespan_context(app):
        await asgi_round(app, 2000, args.connections)  # warm up
        unprofiled = statistics.median(
            [await asgi_round(app, args.requests, args.connections) for _ in range(3)]
        )
        signed = signed_requests(args.requests, 80)  # signed before profiling
        profiler = cProfile.Profile()
        profiler.enable()
        await asgi_round(app, args.requests, args.connections, signed)
        profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    breakdown(stats, unprofiled)


async def profile_served(args: argparse.Namespace) -> None:
    """The trigger served by uvicorn, profiled in the server process: the server CPU per
    request is measured unprofiled first, then the same load runs under cProfile and
    the profile is split by category (uvicorn/h11 and asyncio included)."""
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        plain = await measure("trigger", args, Path(tmp))
        out = Path(tmp) / "served.prof"
        await measure("trigger", args, Path(tmp), profile_to=out)
        stats = pstats.Stats(str(out))
    print(
        f"served trigger: {plain.rate:.0f} req/s unprofiled, "
        f"{plain.cpu_per_request_us:.0f} us server CPU per request"
    )
    stats.sort_stats("tottime").print_stats(25)
    breakdown(stats, plain.cpu_per_request_us)


async def asgi_round(
    app: Any, count: int, connections: int, signed: list[bytes] | None = None
) -> float:
    """CPU microseconds per request for ``count`` signed POSTs sent straight to ``app``
    (``signed``: the requests, already signed)."""
    signed = signed if signed is not None else signed_requests(count, 80)
    requests = [request.split(b"\r\n\r\n", 1) for request in signed]
    statuses: list[int] = []

    async def one(head: bytes, body: bytes) -> None:
        headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    pending = iter(requests)

    async def connection() -> None:
        for head, body in pending:
            await one(head, body)

    started = time.process_time()
    await asyncio.gather(*(connection() for _ in range(connections)))
    spent = time.process_time() - started
    if set(statuses) != {201}:
        raise RuntimeError(f"in-process round answered {sorted(set(statuses))}, not only 201")
    return spent / count * 1e6


async def logging_cost(args: argparse.Namespace) -> None:
    """Paired rounds of ``trigger`` and ``trigger-info``: what INFO logging would cost."""
    cpu: dict[str, list[float]] = {mode: [] for mode in DIAGNOSTIC_MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for mode in DIAGNOSTIC_MODES:
                cpu[mode].append((await measure(mode, args, Path(tmp))).cpu_per_request_us)
    for mode, values in cpu.items():
        print(
            f"{mode:<14} server CPU us/request: median {statistics.median(values):.0f} "
            f"(rounds {', '.join(f'{v:.0f}' for v in values)})"
        )
    extra = sorted(b - a for a, b in zip(cpu["trigger"], cpu["trigger-info"], strict=True))
    print(
        f"INFO logging costs {statistics.median(extra):.0f} us/request more than the default "
        f"(min-max {extra[0]:.0f}-{extra[-1]:.0f}, paired rounds)"
    )


async def main(args: argparse.Namespace) -> None:
    results: dict[str, list[Result]] = {mode: [] for mode in MODES}
    print(
        f"webhook intake: {args.connections} keep-alive connections, {args.duration:g} s "
        f"measured after {args.warmup:g} s warm-up, {args.rounds} round(s), servers interleaved"
    )
    load_average("before")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):  # the order alternates from round to round
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                results[mode].append(await measure(mode, args, Path(tmp)))
    report(results)
    load_average("after")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call the apps as ASGI in this process (CPU per request, paired rounds)",
    )
    parser.add_argument("--requests", type=int, default=10_000, help="per in-process round")
    parser.add_argument("--profile", action="store_true", help="cProfile the trigger in process")
    parser.add_argument(
        "--profile-served",
        action="store_true",
        help="cProfile the trigger's uvicorn process (HTTP parsing included), by category",
    )
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    parser.add_argument(
        "--logging-cost",
        action="store_true",
        help="diagnosis: served CPU per request with the default logging and with INFO on",
    )
    parser.add_argument("--serve", choices=MODES + DIAGNOSTIC_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.connections, args.rounds = 0.5, 0.2, 4, 1
        args.max_requests, args.requests = 5_000, 500
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.db, arguments.profile_to)
    elif arguments.profile_served:
        asyncio.run(profile_served(arguments))
    elif arguments.logging_cost:
        asyncio.run(logging_cost(arguments))
    elif arguments.profile:
        asyncio.run(profile(arguments))
    elif arguments.in_process:
        asyncio.run(in_process(arguments))
    else:
        asyncio.run(main(arguments))
