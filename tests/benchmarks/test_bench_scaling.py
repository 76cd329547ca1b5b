"""The scaling benchmark runs (``--quick``) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scaling.py"


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_scaling_quick_prints_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "ratio" in line]
    cases = {(line.split()[0], line.split()[1]) for line in lines}
    assert cases == {
        ("postgres", "create_job"),
        ("postgres", "dequeue+complete"),
        ("redis", "create_job"),
        ("redis", "dequeue+complete"),
    }
    assert all("x (target >= 0.5x" in line for line in lines)
