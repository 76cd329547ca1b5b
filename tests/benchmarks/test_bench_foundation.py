"""The foundation benchmark runs (tiny) and prints its ratio lines; no timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_foundation.py"


def test_bench_foundation_quick_prints_its_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ratios = re.findall(r"ratio (pipeline/bare|create_job/raw) .*?: (\d+\.\d+)x", done.stdout)
    kinds = [kind for kind, _ in ratios]
    assert kinds.count("pipeline/bare") == 2, done.stdout
    assert kinds.count("create_job/raw") == 2, done.stdout
    assert all(float(value) > 0 for _, value in ratios)
