"""Running a benchmark's ``--quick`` smoke mode and reading the harness's lines."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RATIO = re.compile(
    r"^  ratio (?P<name>.+?): (?P<median>\d+\.\d+)x \(min (?P<min>\d+\.\d+)x - max "
    r"(?P<max>\d+\.\d+)x, (?P<rounds>\d+) paired rounds(?:; target >= [\d.]+x)?\) "
    r"(?P<verdict>PASS|FAIL|INFO)$"
)


@dataclass
class QuickRun:
    stdout: str
    ratios: dict[str, float]
    verdicts: dict[str, str]


def run_quick(script: str, *args: str, timeout: float = 300) -> QuickRun:
    """Run ``benchmarks/<script> --quick``; it must exit 0 and print the harness's load
    averages and at least one paired-ratio line."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("load average before") for line in lines), done.stdout
    assert any(line.startswith("load average after") for line in lines), done.stdout
    assert "best of" not in done.stdout, "a best-of headline crept back in"
    matches = [m for m in map(RATIO.match, lines) if m]
    assert matches, done.stdout
    ratios = {m["name"]: float(m["median"]) for m in matches}
    assert all(value > 0 for value in ratios.values()), ratios
    for m in matches:
        assert float(m["min"]) <= float(m["median"]) <= float(m["max"]), m.group(0)
    return QuickRun(done.stdout, ratios, {m["name"]: m["verdict"] for m in matches})


@pytest.fixture
def quick() -> object:
    return run_quick
