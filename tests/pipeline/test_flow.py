"""``prx.flow``: the same operators as ``pipe``, with isolated filter/map, and method
signatures that stay those of the operators they apply."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import reactivex

import portico_rx as prx
from portico_rx import operators
from portico_rx.pipeline.flow import Flow


def items(flow: Any) -> list[Any]:
    out: list[Any] = []
    observable = flow if isinstance(flow, reactivex.Observable) else flow.observable
    observable.subscribe(out.append)
    return out


def test_filter_and_map_isolate_a_raising_function_and_pass_failures_on() -> None:
    events = reactivex.of({"n": 1}, {"n": 0}, {"x": 1}, {"n": 2})
    out = items(prx.flow(events).filter(lambda e: e["n"] != 1).map(lambda e: 10 // e["n"]))
    failed = [o for o in out if isinstance(o, prx.EventFailed)]
    assert [o for o in out if not isinstance(o, prx.EventFailed)] == [5]
    assert [(f.stage, type(f.error)) for f in failed] == [
        ("map", ZeroDivisionError),  # {"n": 0}
        ("filter", KeyError),  # {"x": 1}: its failure passes the map untouched
    ]


def test_to_job_and_keyed_operators_apply_the_same_operators() -> None:
    events = reactivex.of({"id": 1}, {"id": 1}, {"id": 2})
    via_flow = items(prx.flow(events).dedupe(lambda e: e["id"]).to_job("a.b"))
    via_pipe = items(events.pipe(operators.dedupe(lambda e: e["id"]), prx.to_job("a.b")))
    assert [r.payload for r in via_flow] == [r.payload for r in via_pipe] == [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize(
    ("method", "function"),
    [
        ("dedupe", operators.dedupe),
        ("debounce_by", operators.debounce_by),
        ("throttle_by", operators.throttle_by),
        ("rate_limit", operators.rate_limit),
        ("changed", operators.changed),
        ("to_job", prx.to_job),
    ],
)
def test_methods_take_exactly_the_operators_arguments(method: str, function: Any) -> None:
    def shape(callable_: Any, skip_self: bool) -> list[tuple[str, Any, Any]]:
        parameters = list(inspect.signature(callable_).parameters.values())[int(skip_self) :]
        return [(p.name, p.kind, p.default) for p in parameters]

    assert shape(getattr(Flow, method), True) == shape(function, False)
