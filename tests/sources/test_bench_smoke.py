"""The sources benchmark runs (``--quick``) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sources.py"


def test_bench_sources_quick_prints_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ratios = [line for line in result.stdout.splitlines() if line.startswith("ratio ")]
    assert [line.split()[1] for line in ratios] == ["files", "http", "db"], result.stdout
    assert "bodies after the first: 0" in result.stdout
