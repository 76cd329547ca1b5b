"""The webhook benchmark runs (tiny) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_webhooks.py"


def run(*options: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bench_webhooks_quick_prints_ratios() -> None:
    out = run()
    assert "throughput ratio trigger/bare:" in out
    assert "p99 ratio trigger/bare:" in out
    assert "throughput ratio trigger+sqlite/bare:" in out
    assert "p99 ratio trigger+sqlite/bare:" in out
    assert "paired median throughput ratio trigger/bare:" in out
    assert "paired median CPU ratio trigger/bare:" in out


def test_bench_webhooks_in_process_prints_the_paired_cpu_ratio() -> None:
    out = run("--in-process")
    assert "paired median in-process CPU ratio bare/trigger:" in out
    assert "trigger    CPU us/request: median" in out
