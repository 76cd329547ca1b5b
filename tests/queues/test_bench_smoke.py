"""The queue benchmark runs (``--quick``) and prints its ratio lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_queues.py"


@pytest.mark.rabbitmq
@pytest.mark.redis
@pytest.mark.slow
def test_bench_queues_quick_prints_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ratio rabbitmq trigger/bare: ") for line in lines), lines
    assert any(line.startswith("ratio redis trigger/bare: ") for line in lines), lines
