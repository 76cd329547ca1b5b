"""The notebook benchmark runs (``--quick``): simulate against the plain virtual-time loop,
one paired ratio with its verdict. No timing is asserted."""

from __future__ import annotations

from typing import Any


def test_bench_notebook_quick_prints_the_paired_ratio(quick: Any) -> None:
    run = quick("bench_notebook.py", "--rows", "3000")
    assert "notebook: 3,000 rows -> 2,400 jobs per round" in run.stdout
    assert set(run.ratios) == {"simulate/loop rows per second"}
    assert "rows/s (median)" in run.stdout
