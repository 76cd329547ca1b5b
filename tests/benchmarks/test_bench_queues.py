"""The queue benchmark runs (``--quick``): RabbitMQ and Redis Streams triggers against bare
consumers that batch their acks, a paired ratio with its verdict each. No timing is
asserted."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.rabbitmq
@pytest.mark.redis
@pytest.mark.slow
def test_bench_queues_quick_prints_a_paired_ratio_per_broker(quick: Any) -> None:
    run = quick("bench_queues.py", timeout=110)
    assert set(run.ratios) == {"rabbitmq trigger/bare", "redis trigger/bare"}, run.ratios
    assert set(run.verdicts.values()) <= {"PASS", "FAIL"}
