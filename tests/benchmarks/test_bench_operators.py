"""The operators benchmark runs (``--quick``): a paired ratio with a verdict for every
keyed operator on 1 and on 10,000 keys, and the dedupe memory line. No timing is asserted."""

from __future__ import annotations

from typing import Any

NAMES = ("debounce_by", "throttle_by", "dedupe", "changed", "rate_limit", "batch", "absent")


def test_bench_operators_quick_prints_a_paired_ratio_per_operator_and_keys(quick: Any) -> None:
    run = quick("bench_operators.py")
    expected = {f"{name} {keys} key(s) ours/peer" for name in NAMES for keys in (1, 10000)}
    assert set(run.ratios) == expected, run.ratios
    assert set(run.verdicts.values()) <= {"PASS", "FAIL"}
    assert "memory dedupe(ttl)/unbounded" in run.stdout
