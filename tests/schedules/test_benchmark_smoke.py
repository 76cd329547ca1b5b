"""The schedules benchmark runs (``--quick``) and prints its comparison lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_schedules.py"


def test_quick_benchmark_prints_ratios() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for line in [
        "RATIO lateness p99 apscheduler/portico_rx",
        "RATIO start apscheduler/portico_rx",
        "RATIO rss_per_schedule apscheduler/portico_rx",
        "RATIO preview portico_rx/croniter",
    ]:
        assert line in out, out
    assert "preview equals brute-force oracle (UTC + Europe/Berlin DST): True" in out
    assert "equal results: True" in out
