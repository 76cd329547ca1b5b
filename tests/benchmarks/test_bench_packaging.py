"""The packaging benchmark runs (``--quick``) and prints its three comparisons."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_packaging.py"


@pytest.mark.timeout(300)  # ~40 s alone: it times fresh interpreters, slower on a busy machine
def test_bench_packaging_quick_prints_each_comparison() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = [line.split(":")[0] for line in done.stdout.splitlines()]
    assert names == [
        "pytest, a trivial test",
        "import hypothesis",
        "import portico_rx (for scale) vs a bare interpreter",
    ]
    assert all(" ratio " in line and "3 rounds" in line for line in done.stdout.splitlines())
