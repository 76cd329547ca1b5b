"""Bad arguments fail at construction, naming the argument; a raising key function
isolates its event and the operator keeps working."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import reactivex
from reactivex import operators as rx_ops

import portico_rx as prx
from portico_rx.operators import (
    absent,
    batch,
    changed,
    debounce_by,
    dedupe,
    rate_limit,
    throttle_by,
)
from portico_rx.pipeline.isolation import EventFailed
from portico_rx.testing import trace_pipeline


def key(event: Any) -> Any:
    return event


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda v: debounce_by(key, v), "duration"),
        (lambda v: throttle_by(key, v), "duration"),
        (lambda v: dedupe(key, ttl=v), "ttl"),
        (lambda v: rate_limit(2, per=v), "per"),
        (lambda v: batch(10, max_time=v), "max_time"),
        (lambda v: absent(v), "within"),
    ],
)
@pytest.mark.parametrize("value", [0, -1, -0.5, timedelta(0), float("nan"), float("inf"), "5"])
def test_non_positive_durations_name_the_argument(make: Any, argument: str, value: Any) -> None:
    with pytest.raises(prx.ConfigurationError, match=argument) as caught:
        make(value)
    assert isinstance(caught.value, ValueError)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda v: rate_limit(v, per=1), "count"),
        (lambda v: rate_limit(1, per=1, max_delayed=v), "max_delayed"),
        (lambda v: batch(v, max_time=1), "max_count"),
        (lambda v: dedupe(key, max_keys=v), "max_keys"),
        (lambda v: changed(max_groups=v), "max_groups"),
    ],
)
@pytest.mark.parametrize("value", [0, -3, 1.5, True])
def test_non_positive_counts_name_the_argument(make: Any, argument: str, value: Any) -> None:
    with pytest.raises(prx.ConfigurationError, match=argument):
        make(value)


def test_unknown_excess_policy_names_the_choices() -> None:
    with pytest.raises(prx.ConfigurationError, match=r"excess=.queue.*.drop., .delay."):
        rate_limit(1, per=1, excess="queue")  # type: ignore[arg-type]


def picky(event: dict[str, Any]) -> Any:
    return event["id"]


@pytest.mark.parametrize(
    "operator, stage",
    [
        (debounce_by(picky, 1), "debounce_by.key"),
        (throttle_by(picky, 1), "throttle_by.key"),
        (dedupe(picky), "dedupe.key"),
        (rate_limit(10, per=1, key=picky), "rate_limit.key"),
        (changed(group=picky), "changed.group"),
        (changed(key=picky), "changed.key"),
        (absent(100, key=picky), "absent.key"),
    ],
)
def test_a_raising_key_function_isolates_only_its_event(operator: Any, stage: str) -> None:
    """The event without an ``id`` becomes an EventFailed (nacked); the rest flow on."""
    events = [(0, {"id": 1}), (1, {"nope": 2}), (2, {"id": 3}), (3, {"id": [4]})]
    trace = trace_pipeline(operator, events, until=10)
    failures = trace.failures
    assert [f.stage for f in failures][:1] == [stage]
    assert failures[0].event == {"nope": 2}
    assert isinstance(failures[0].error, KeyError)
    assert trace.settlements[1] == "failed"
    assert trace.error is None
    passed = [item for item in trace.items if not isinstance(item, EventFailed)]
    if stage != "absent.key":
        assert {"id": 1} in passed and {"id": 3} in passed
    if stage in ("debounce_by.key", "throttle_by.key", "dedupe.key", "rate_limit.key"):
        # a list is unhashable: that event fails alone too
        assert trace.settlements[3] == "failed"
        assert any(isinstance(f.error, TypeError) for f in failures)


def test_event_failed_items_pass_through_every_operator_untouched() -> None:
    failed = EventFailed(event="x", error=RuntimeError("upstream"), stage="upstream")
    for operator in (
        debounce_by(key, 1),
        throttle_by(key, 1),
        dedupe(),
        rate_limit(1, per=1),
        batch(2, max_time=1),
        changed(),
        absent(5),
    ):
        out = trace_pipeline(operator, [(0, failed), (0, failed)], until=1).items
        assert out[:2] == [failed, failed], operator


def test_operators_work_without_a_scheduler_outside_asyncio() -> None:
    """No scheduler and no loop: reactivex's timeout scheduler keeps timers working."""
    result = (
        reactivex.of(1, 2, 3).pipe(rate_limit(1, per=0.01, excess="delay"), rx_ops.to_list()).run()
    )
    assert result == [1, 2, 3]
