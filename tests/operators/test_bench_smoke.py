"""The operators benchmark runs (``--quick``) and prints a ratio for every pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_operators.py"


def test_bench_operators_quick_prints_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = done.stdout.splitlines()
    ratios = [line for line in lines if "   ratio " in line and line.rstrip().endswith("x")]
    assert len(ratios) == 7, done.stdout
    names = ("debounce_by", "throttle_by", "dedupe", "changed", "rate_limit", "batch", "absent")
    for name in names:
        assert any(line.startswith(name) for line in ratios), name
    assert any(line.startswith("memory ratio dedupe(ttl)/unbounded") for line in lines)
