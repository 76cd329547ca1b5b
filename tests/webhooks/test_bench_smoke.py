"""The webhook benchmark runs (tiny) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_webhooks.py"


def test_bench_webhooks_quick_prints_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "throughput ratio trigger/bare:" in out
    assert "p99 ratio trigger/bare:" in out
    assert "throughput ratio trigger+sqlite/bare:" in out
    assert "p99 ratio trigger+sqlite/bare:" in out
