"""A queue source waits between reconnects as the one backoff says: from
``reconnect_delay``, doubling, spread by ±20 %, capped at ``reconnect_max_delay``; a
connection that comes back starts over."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from portico_rx.sources.queues.consumer import RECONNECT_JITTER, Consumer, QueueSource


def flaky_source(up_on: set[int]) -> QueueSource:
    """A source whose sessions all fail; those numbered in ``up_on`` connect first."""
    sessions = 0

    async def session(consumer: Consumer) -> None:
        nonlocal sessions
        sessions += 1
        if sessions in up_on:
            consumer.connected()
        raise ConnectionError(f"broker gone (session {sessions})")

    return QueueSource(
        broker="fake",
        destination="q",
        session=session,
        describe="fake queue 'q'",
        max_in_flight=1,
        reconnect_delay=0.01,
        reconnect_max_delay=0.04,
    )


async def reconnect_waits(source: QueueSource, count: int) -> list[tuple[int, float]]:
    with capture_logs() as logs:
        subscription = source.subscribe(lambda _m: None, lambda _e: None)
        for _ in range(500):
            lost = [log for log in logs if log["event"] == "queue_connection_lost"]
            if len(lost) >= count:
                break
            await asyncio.sleep(0.01)
        subscription.dispose()
        await source.wait_closed(timeout=5)
    return [(log["attempt"], log["retry_in_s"]) for log in lost[:count]]


def within_jitter(wait: float, exact: float) -> bool:
    slack = 0.001  # the log rounds to milliseconds
    return exact * (1 - RECONNECT_JITTER) - slack <= wait <= exact * (1 + RECONNECT_JITTER) + slack


async def test_reconnect_waits_double_up_to_the_cap() -> None:
    waits = await reconnect_waits(flaky_source(up_on={1}), 5)
    assert [attempt for attempt, _ in waits] == [1, 2, 3, 4, 5]
    for (attempt, wait), exact in zip(waits, [0.01, 0.02, 0.04, 0.04, 0.04], strict=True):
        assert within_jitter(wait, exact), (attempt, wait, exact)


async def test_a_connection_that_comes_back_starts_the_backoff_over() -> None:
    waits = await reconnect_waits(flaky_source(up_on={1, 4}), 5)
    assert [attempt for attempt, _ in waits] == [1, 2, 3, 1, 2]
    for (attempt, wait), exact in zip(waits, [0.01, 0.02, 0.04, 0.01, 0.02], strict=True):
        assert within_jitter(wait, exact), (attempt, wait, exact)
