"""The JobQueue contract of ``greatest_keys``, on every adapter in ``JOB_QUEUE_FACTORIES``:
the greatest key under each of many prefixes, in one lookup, equal to the port's default
(one ``list`` per prefix) and to a brute-force answer."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portico_rx.errors import ConfigurationError
from portico_rx.models import Job
from portico_rx.ports.job_queue import JobQueue


def brute_force(keys: list[str], prefixes: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for prefix in prefixes:
        under = [key for key in keys if key.startswith(prefix)]
        if under:
            found[prefix] = max(under)
    return found


async def store_keys(queue: JobQueue, keys: list[str]) -> None:
    for key in keys:
        await queue.enqueue(Job(job_type="contract.keys", idempotency_key=key))


SCHEDULE_KEYS = [
    "schedules:sync:2025-01-01T00:00:00Z",
    "schedules:sync:2025-01-01T01:00:00Z",
    "schedules:sync:2024-12-31T23:00:00Z",
    "schedules:sync.eu:2025-06-01T00:00:00Z",  # shares "schedules:sync" but not the ':'
    "schedules:synced:2026-01-01T00:00:00Z",
    "other:sync:2030-01-01T00:00:00Z",
    "schedules:żółw:2025-01-01T00:00:00Z",
    "a%b_:2025-01-01T00:00:00Z",
]


async def test_the_greatest_key_of_each_schedule_prefix(job_queue: JobQueue) -> None:
    await store_keys(job_queue, SCHEDULE_KEYS)
    await job_queue.enqueue(Job(job_type="contract.keys"))  # a job without a key
    prefixes = [
        "schedules:sync:",
        "schedules:sync.eu:",
        "schedules:synced:",
        "schedules:żółw:",
        "schedules:never:",
        "a%b_:",
        "a%",
    ]
    got = await job_queue.greatest_keys(prefixes)
    assert got == {
        "schedules:sync:": "schedules:sync:2025-01-01T01:00:00Z",
        "schedules:sync.eu:": "schedules:sync.eu:2025-06-01T00:00:00Z",
        "schedules:synced:": "schedules:synced:2026-01-01T00:00:00Z",
        "schedules:żółw:": "schedules:żółw:2025-01-01T00:00:00Z",
        "a%b_:": "a%b_:2025-01-01T00:00:00Z",
        "a%": "a%b_:2025-01-01T00:00:00Z",  # a prefix is literal, never a pattern
    }
    assert got == await JobQueue.greatest_keys(job_queue, prefixes)  # the port's default


async def test_no_prefixes_and_an_empty_store_give_nothing(job_queue: JobQueue) -> None:
    assert await job_queue.greatest_keys([]) == {}
    assert await job_queue.greatest_keys(["schedules:sync:"]) == {}


@pytest.mark.parametrize("bad", [[""], "schedules:", [None]])
async def test_bad_prefixes_are_rejected(job_queue: JobQueue, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        await job_queue.greatest_keys(bad)


async def test_a_thousand_prefixes_in_one_call(job_queue: JobQueue) -> None:
    keys = [f"t:s{n}:2025-01-01T{n % 24:02d}:00:00Z" for n in range(1200)]
    for key in keys:
        await job_queue.enqueue(Job(job_type="contract.keys", idempotency_key=key))
    prefixes = [f"t:s{n}:" for n in range(1300)]
    assert await job_queue.greatest_keys(prefixes) == brute_force(keys, prefixes)


_examples = itertools.count()
alphabet = st.sampled_from(list("ab:%_Zż\U0001f600"))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(st.text(alphabet, min_size=1, max_size=6), max_size=25, unique=True),
    prefixes=st.lists(st.text(alphabet, min_size=1, max_size=3), min_size=1, max_size=8),
)
async def test_greatest_keys_equal_the_brute_force_answer(
    job_queue: JobQueue, keys: list[str], prefixes: list[str]
) -> None:
    namespace = f"h{next(_examples)}-"  # each example its own keys in the shared store
    keys = [namespace + key for key in keys]
    prefixes = [namespace + prefix for prefix in prefixes]
    await store_keys(job_queue, keys)
    assert await job_queue.greatest_keys(prefixes) == brute_force(keys, prefixes)
