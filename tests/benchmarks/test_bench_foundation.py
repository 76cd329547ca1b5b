"""The foundation benchmark runs (``--quick``): two pipeline ratios (one per creator), two
SQLite create_job ratios and two SQLite dequeue+complete ratios (one per durability each),
each a paired median with its verdict. No timing is asserted."""

from __future__ import annotations

from typing import Any


def test_bench_foundation_quick_prints_its_paired_ratios(quick: Any) -> None:
    run = quick("bench_foundation.py")
    assert set(run.ratios) == {
        "pipeline/bare speed (no-op creator)",
        "pipeline/bare speed (JobService(MemoryJobQueue))",
        "create_job/raw rate (FULL)",
        "create_job/raw rate (NORMAL)",
        "dequeue+complete/raw rate (FULL)",
        "dequeue+complete/raw rate (NORMAL)",
    }, run.ratios
    assert set(run.verdicts.values()) <= {"PASS", "FAIL"}
