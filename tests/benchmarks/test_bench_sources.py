"""The sources benchmark runs (``--quick``): files, http and db each print a paired ratio
(db with its PASS/FAIL verdict). No timing is asserted."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.postgres
def test_bench_sources_quick_prints_a_paired_ratio_per_section(quick: Any) -> None:
    run = quick("bench_sources.py")
    assert set(run.ratios) == {
        "files latency p50 watchdog/FileTrigger",
        "http body bytes plain/http_poll",
        "db rows/s DatabasePollingTrigger/raw loop",
    }, run.ratios
    assert run.verdicts["db rows/s DatabasePollingTrigger/raw loop"] in {"PASS", "FAIL"}
    assert run.ratios["http body bytes plain/http_poll"] == 100.0  # one body in 100 polls
    assert "bodies after the first: 0" in run.stdout
