"""The examples in the operators' and testing helpers' docstrings run and are right."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "portico_rx.operators._absent",
    "portico_rx.operators._batch",
    "portico_rx.operators._changed",
    "portico_rx.operators._debounce_by",
    "portico_rx.operators._dedupe",
    "portico_rx.operators._rate_limit",
    "portico_rx.operators._throttle_by",
    "portico_rx.testing.marbles",
    "portico_rx.testing.strategies",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name.startswith("portico_rx.operators"):
        assert result.attempted >= 2, "each operator documents an example"


def test_public_names_are_exactly_the_intended_ones() -> None:
    import portico_rx.operators as operators
    import portico_rx.testing as testing

    assert operators.__all__ == [
        "Absence",
        "BatchDelivery",
        "Excess",
        "RateLimitExceededError",
        "absent",
        "batch",
        "changed",
        "debounce_by",
        "dedupe",
        "rate_limit",
        "throttle_by",
    ]
    assert testing.__all__ == sorted(testing.__all__)
    for name in (*operators.__all__, *testing.__all__):
        module = operators if name in operators.__all__ else testing
        assert getattr(module, name) is not None
