"""The one backoff formula and the retry policy built on it."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portico_rx.errors import ConfigurationError
from portico_rx.pipeline.retry import RetryPolicy, backoff

delays = st.floats(0, 1e6, allow_nan=False)
multipliers = st.floats(1, 10, allow_nan=False)
jitters = st.floats(0, 1, allow_nan=False)
failure_counts = st.integers(1, 5000)


@given(failure_counts, delays, delays, multipliers)
def test_without_jitter_the_wait_grows_until_the_cap(
    failures: int, initial: float, maximum: float, multiplier: float
) -> None:
    """One more failure never shortens the wait, and the wait never passes the cap."""
    this = backoff(failures, initial, maximum, multiplier=multiplier)
    following = backoff(failures + 1, initial, maximum, multiplier=multiplier)
    assert this <= following <= maximum


@given(failure_counts, delays, delays, multipliers, jitters, st.integers())
def test_jittered_wait_stays_within_its_bounds(
    failures: int, initial: float, maximum: float, multiplier: float, jitter: float, seed: int
) -> None:
    """Jitter spreads a wait by at most ``jitter`` either way: never negative, never
    above ``maximum * (1 + jitter)``."""
    exact = backoff(failures, initial, maximum, multiplier=multiplier)
    wait = backoff(
        failures, initial, maximum, multiplier=multiplier, jitter=jitter, rng=random.Random(seed)
    )
    assert 0 <= wait <= maximum * (1 + jitter)
    assert exact * (1 - jitter) * (1 - 1e-12) <= wait <= exact * (1 + jitter) * (1 + 1e-12)


@given(st.integers(), st.lists(failure_counts, min_size=1, max_size=20))
def test_a_seeded_random_source_gives_the_same_waits(seed: int, failures: list[int]) -> None:
    """The same seed gives the same jittered waits, so tests can pin them."""
    first, second = random.Random(seed), random.Random(seed)
    assert [backoff(n, 0.5, 30, jitter=0.3, rng=first) for n in failures] == [
        backoff(n, 0.5, 30, jitter=0.3, rng=second) for n in failures
    ]


def test_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    """The default multiplier doubles: 0.5, 1, 2, 4, then the cap of 5 for good."""
    assert [backoff(n, 0.5, 5.0) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_a_huge_failure_count_waits_the_cap() -> None:
    """No overflow after many failures in a row (a broker down for days)."""
    assert backoff(10**6, 0.5, 15.0) == 15.0
    assert backoff(10**6, 0.5, 15.0, multiplier=1.0) == 0.5


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 1.0, 2.0), {}, "failures=0"),
        ((1, -1.0, 2.0), {}, "cannot be negative"),
        ((1, 1.0, -2.0), {}, "cannot be negative"),
        ((1, 1.0, 2.0), {"multiplier": 0.5}, "multiplier=0.5"),
        ((1, 1.0, 2.0), {"jitter": 1.5}, "jitter=1.5"),
    ],
)
def test_bad_arguments_name_the_value(
    args: tuple[int, float, float], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        backoff(*args, **kwargs)


def test_retry_policy_waits_what_backoff_gives() -> None:
    """``RetryPolicy.delay`` is :func:`backoff` with the policy's numbers and seed."""
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.2, seed=3)
    rng = random.Random(3)
    assert [policy.delay(n) for n in range(1, 10)] == [
        backoff(n, 0.1, 1.0, jitter=0.2, rng=rng) for n in range(1, 10)
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_attempts": 0}, "max_attempts=0"),
        ({"initial_delay": -1}, "initial_delay=-1"),
        ({"max_delay": -1}, "max_delay=-1"),
        ({"multiplier": 0.9}, "multiplier=0.9"),
        ({"jitter": -0.1}, "jitter=-0.1"),
    ],
)
def test_retry_policy_rejects_bad_numbers_when_built(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RetryPolicy(**kwargs)
