"""The sink's work queue: FIFO, wakes waiting workers, survives cancellation, joins."""

from __future__ import annotations

import asyncio

import pytest

from portico_rx.pipeline.sink import _WorkQueue


async def test_items_come_out_in_order_and_a_waiting_getter_is_woken() -> None:
    queue = _WorkQueue()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    for item in ("a", "b", "c"):
        queue.put_nowait(item)
    assert await waiting == "a"
    assert [await queue.get(), queue.get_nowait()] == ["b", "c"]
    assert queue.empty()
    with pytest.raises(IndexError):
        queue.get_nowait()


async def test_an_item_woken_for_a_cancelled_getter_goes_to_the_next_one() -> None:
    queue = _WorkQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("only")  # wakes ``first`` ...
    first.cancel()  # ... which is cancelled before it runs
    assert await second == "only"
    assert first.cancelled()
    assert queue.empty()


async def test_join_waits_for_every_task_done() -> None:
    queue = _WorkQueue()
    await asyncio.wait_for(queue.join(), 1)  # nothing unfinished: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)


async def test_a_timed_out_join_leaves_the_queue_usable() -> None:
    queue = _WorkQueue()
    queue.put_nowait("x")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.join(), 0.01)
    assert queue.get_nowait() == "x"
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)
