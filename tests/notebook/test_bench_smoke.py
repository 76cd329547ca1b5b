"""The notebook benchmark runs (tiny) and prints its figures and ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_notebook.py"


def test_bench_notebook_quick_prints_rates_and_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--rows", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = result.stdout
    assert "rows: 3,000" in out
    assert "plain loop:" in out and "simulate:" in out and "rows/s" in out
    assert "ratio simulate/loop rows per second:" in out
