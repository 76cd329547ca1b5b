"""The scaling benchmark runs (``--quick``): a paired ratio with its verdict for each store
and case. No timing is asserted."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.postgres
@pytest.mark.redis
def test_bench_scaling_quick_prints_a_paired_ratio_per_store_and_case(quick: Any) -> None:
    run = quick("bench_scaling.py", timeout=120)
    assert set(run.ratios) == {
        f"{store} {case} adapter/raw"
        for store in ("postgres", "redis")
        for case in ("create_job", "dequeue+complete")
    }, run.ratios
    assert set(run.verdicts.values()) <= {"PASS", "FAIL"}
