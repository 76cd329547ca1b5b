"""The one harness every benchmark uses: A and B alternate in rounds, the headline is the
median of the paired ratios (min-max beside it), the load average is printed, and the
verdict is PASS/FAIL against a target.

Use it like this (one benchmark, one pair)::

    from harness import Pair, compare, library_defaults, load_average

    def ours() -> float:          # one round of A: returns its measure (seconds, or a rate)
        ...
    def peer() -> float:          # one round of B: the same work, the peer at its best
        ...

    load_average("before")
    result = compare(
        Pair("dedupe(key) on 1 key", ours, "distinct(key)", peer),
        rounds=9,
        measure="seconds",        # or "rate": higher is better
        target=0.5,               # ours/peer speed ratio must be >= target
    )
    load_average("after")

* ``compare`` runs ``warmup`` rounds of each side first, then ``rounds`` rounds in which A
  and B alternate (A first in even rounds, B first in odd ones) and pairs each A with
  the B of the same round. The headline is ``median(ours speed / peer speed)``; with
  ``measure="seconds"`` that is ``peer seconds / ours seconds``, with ``"rate"``
  ``ours rate / peer rate``, so a ratio above 1 always means "ours is faster". The
  line ends in ``PASS`` or ``FAIL`` against ``target`` (no target: ``INFO``).
* A side may be an ``async def`` (or return a coroutine): the harness runs it with
  ``asyncio.run`` per round, so each round gets a fresh loop and no state leaks.
* ``library_defaults()`` is the context in which rounds run: the library at its default
  configuration, logging included (structlog is never configured by a benchmark), with
  stdout and stderr sent to /dev/null so the rendered log lines cost what they cost but
  do not flood the terminal. ``compare`` uses it for every round; use it yourself for
  anything else that runs library code.
* ``Result`` holds every figure; ``result.passed`` feeds the exit code
  (``sys.exit(exit_code(results))``).

Nothing here is a unit test: ``tests/benchmarks`` runs each benchmark's ``--quick`` mode
and checks its lines are printed, never a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Pair",
    "Result",
    "compare",
    "exit_code",
    "library_defaults",
    "load_average",
    "run_side",
    "timer",
]

Measure = Literal["seconds", "rate", "lower", "higher"]
"""``seconds``/``lower``: lower is better (peer/ours); ``rate``/``higher``: higher is better."""


@dataclass(frozen=True)
class Pair:
    """A (ours) and B (the peer): labels and one-round callables returning their measure."""

    ours_label: str
    ours: Callable[[], Any]
    peer_label: str
    peer: Callable[[], Any]


@dataclass
class Result:
    """The paired ratios of one comparison and its verdict."""

    name: str
    measure: Measure
    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    target: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def passed(self) -> bool:
        return self.target is None or self.median >= self.target

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "INFO"
        return "PASS" if self.passed else "FAIL"


def load_average(when: str) -> tuple[float, float, float]:
    """Print (and return) the machine's 1/5/15-minute load average."""
    load = os.getloadavg()
    cores = os.cpu_count() or 1
    print(f"load average {when} (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          f" on {cores} cores", flush=True)  # fmt: skip
    return load


@contextlib.contextmanager
def library_defaults() -> Iterator[None]:
    """Run library code at its default configuration, logging included, its output hidden.

    structlog is left unconfigured (its default console renderer writes every line);
    stdout and stderr point at /dev/null meanwhile (at the file-descriptor level too, so
    anything that writes to fd 1/2 is hidden alike)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            with contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_side(side: Callable[[], Any]) -> float:
    """One round of one side, under :func:`library_defaults`, after a garbage collection."""
    gc.collect()
    with library_defaults():
        value = side()
        if inspect.iscoroutine(value):  # an async side (or a lambda returning a coroutine)
            value = asyncio.run(value)
    return float(value)


def _speed_ratio(measure: Measure, ours: float, peer: float) -> float:
    return peer / ours if measure in ("seconds", "lower") else ours / peer


def compare(
    pair: Pair,
    *,
    rounds: int,
    measure: Measure = "seconds",
    target: float | None = None,
    warmup: int = 1,
    unit: str | None = None,
    scale: float = 1.0,
    name: str | None = None,
) -> Result:
    """Alternate ``pair.ours`` and ``pair.peer`` for ``rounds`` rounds; print and return the
    median of the paired speed ratios (ours/peer, >1 = ours faster), min-max beside it.

    ``unit``/``scale`` only format the per-side medians (e.g. ``unit="us/event"``,
    ``scale=1e6 / events`` for seconds per round)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    result = Result(name or pair.ours_label, measure, target=target)
    for _ in range(warmup):
        run_side(pair.ours)
        run_side(pair.peer)
    for round_ in range(rounds):
        if round_ % 2 == 0:
            ours, peer = run_side(pair.ours), run_side(pair.peer)
        else:
            peer = run_side(pair.peer)
            ours = run_side(pair.ours)
        result.ours.append(ours)
        result.peer.append(peer)
        result.ratios.append(_speed_ratio(measure, ours, peer))
    report(result, pair, unit=unit, scale=scale)
    return result


def report(result: Result, pair: Pair, *, unit: str | None = None, scale: float = 1.0) -> None:
    """Print the per-side medians and the headline ratio line of ``result``."""
    unit = unit or {"seconds": "s/round", "rate": "per s"}.get(result.measure, "")
    width = max(len(pair.ours_label), len(pair.peer_label))
    for label, values in ((pair.ours_label, result.ours), (pair.peer_label, result.peer)):
        print(f"    {label:{width}}  {statistics.median(values) * scale:12.2f} {unit} (median)")
    goal = f"; target >= {result.target:g}x" if result.target is not None else ""
    print(
        f"  ratio {result.name}: {result.median:.3f}x "
        f"(min {min(result.ratios):.3f}x - max {max(result.ratios):.3f}x, "
        f"{len(result.ratios)} paired rounds{goal}) {result.verdict}",
        flush=True,
    )


def exit_code(results: list[Result]) -> int:
    """0 when every result met its target, else 1 (for ``sys.exit``)."""
    return 0 if all(result.passed for result in results) else 1


def timer() -> Callable[[], float]:
    """A stopwatch: ``elapsed = timer(); ...; seconds = elapsed()`` (perf_counter)."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
