"""http_poll / HttpPollingTrigger against a real local HTTP server, in virtual time."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler

import portico_rx as prx
from portico_rx import sources
from portico_rx.adapters.job_trigger.http_polling_trigger import HttpPollingTrigger
from portico_rx.sources._http_poll import (
    ChangeDetector,
    HttpPollStats,
    _pool,
    retry_after_seconds,
)
from portico_rx.testing import RecordingJobCreator, advance


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


def scheduler() -> HistoricalScheduler:
    return HistoricalScheduler(initial_clock=datetime(2025, 1, 1, tzinfo=UTC))


async def poll(vt: HistoricalScheduler, stats: HttpPollStats, seconds: float) -> None:
    """Advance virtual time by ``seconds`` and wait for the poll that falls due."""
    done = stats.completed
    await advance(vt, seconds, step=seconds)
    await wait_for(lambda: stats.completed > done)


async def test_changes_become_jobs_and_304_costs_no_body(
    http_resource: tuple[Any, str],
) -> None:
    resource, url = http_resource
    resource.etag = '"v1"'
    vt = scheduler()
    creator = RecordingJobCreator()
    trigger = HttpPollingTrigger(
        creator, url, "feed.changed", every=30, queue_name="feeds", priority=2, scheduler=vt
    )
    await trigger.start()
    stats = trigger.stats
    await wait_for(lambda: stats.completed == 1 and len(creator.jobs) == 1)
    for _ in range(5):
        await poll(vt, stats, 30)
    resource.body, resource.etag = b"v2", '"v2"'
    await poll(vt, stats, 30)
    await wait_for(lambda: len(creator.jobs) == 2)
    await trigger.stop()

    assert [j.payload["etag"] for j in creator.jobs] == ['"v1"', '"v2"']
    first = creator.jobs[0]
    assert (first.job_type, first.queue_name, first.priority) == ("feed.changed", "feeds", 2)
    assert first.payload["url"] == url and first.payload["status_code"] == 200
    assert (
        first.idempotency_key == f"{trigger.name}:feed.changed:{url}:{first.payload['fingerprint']}"
    )
    assert stats.requests == 7 and stats.not_modified == 5
    assert resource.bodies_sent == 2  # nothing transferred for the unchanged polls
    assert [r.get("if-none-match") for r in resource.requests] == [None] + ['"v1"'] * 6
    details = trigger.get_health().details
    assert details["not_modified"] == 5 and details["url"] == url


async def test_without_validators_the_body_hash_detects_changes(
    http_resource: tuple[Any, str],
) -> None:
    resource, url = http_resource
    vt = scheduler()
    stats = HttpPollStats()
    events: list[Any] = []
    subscription = sources.http_poll(url, 10, stats=stats, scheduler=vt).subscribe(events.append)
    try:
        await wait_for(lambda: stats.completed == 1)
        await poll(vt, stats, 10)
        resource.body = b"v2"
        await poll(vt, stats, 10)
        await poll(vt, stats, 10)
    finally:
        subscription.dispose()
    assert [e.text for e in events] == ["v1", "v2"]
    assert stats.unchanged == 2 and stats.not_modified == 0


async def test_last_modified_sends_if_modified_since(http_resource: tuple[Any, str]) -> None:
    resource, url = http_resource
    stamp = format_datetime(datetime(2025, 1, 1, tzinfo=UTC), usegmt=True)
    resource.last_modified = stamp
    vt = scheduler()
    stats = HttpPollStats()
    events: list[Any] = []
    subscription = sources.http_poll(url, 5, stats=stats, scheduler=vt).subscribe(events.append)
    try:
        await wait_for(lambda: stats.completed == 1)
        await poll(vt, stats, 5)
    finally:
        subscription.dispose()
    assert len(events) == 1 and events[0].last_modified == stamp
    assert resource.requests[1]["if-modified-since"] == stamp
    assert stats.not_modified == 1


async def test_new_items_of_a_json_feed_each_become_one_job(
    http_resource: tuple[Any, str],
) -> None:
    resource, url = http_resource
    resource.content_type = "application/json"
    feed: list[dict[str, Any]] = [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]
    resource.body = json.dumps({"results": feed}).encode()
    vt = scheduler()
    creator = RecordingJobCreator()

    def make() -> HttpPollingTrigger:
        return HttpPollingTrigger(
            creator,
            url,
            "order.import",
            every=60,
            items=lambda body: body["results"],
            payload=lambda change: {"order": change.item["id"]},
            name="orders-feed",
            scheduler=vt,
        )

    trigger = make()
    await trigger.start()
    await wait_for(lambda: len(creator.jobs) == 2)
    feed = [*feed, {"id": 3, "t": "c"}]
    resource.body = json.dumps({"results": feed[1:]}).encode()  # item 1 scrolled away
    await poll(vt, trigger.stats, 60)
    await wait_for(lambda: len(creator.jobs) == 3)
    await trigger.stop()
    restarted = make()  # a restart sees items 2 and 3 again: deduplicated by their keys
    await restarted.start()
    await wait_for(lambda: restarted.stats.completed == 1)
    await asyncio.sleep(0.05)
    await restarted.stop()
    assert [j.payload for j in creator.jobs] == [{"order": 1}, {"order": 2}, {"order": 3}]
    assert creator.jobs[2].idempotency_key == f"orders-feed:order.import:{url}:item:3"


async def test_backoff_on_5xx_and_429_honours_retry_after_and_health_recovers(
    http_resource: tuple[Any, str],
) -> None:
    resource, url = http_resource
    resource.plan = [(500, {}), (503, {}), (502, {}), (429, {"Retry-After": "120"})]
    vt = scheduler()
    creator = RecordingJobCreator()
    trigger = HttpPollingTrigger(creator, url, "x.y", every=10, unhealthy_after=3, scheduler=vt)
    await trigger.start()
    stats = trigger.stats
    await wait_for(lambda: stats.completed == 1)
    assert stats.next_delay == 20  # 10 * 2**1
    assert trigger.get_health().healthy
    await poll(vt, stats, 20)
    assert stats.next_delay == 40
    await poll(vt, stats, 40)
    assert stats.next_delay == 80
    health = trigger.get_health()
    assert not health.healthy and health.details["consecutive_failures"] == 3
    assert "HTTP 502" in (health.last_error or "")
    await poll(vt, stats, 80)
    assert stats.next_delay == 160  # 10 * 2**4 is longer than Retry-After: 120
    resource.plan = [(429, {"Retry-After": "600"})]
    await poll(vt, stats, 160)
    assert stats.next_delay == 600  # the server's Retry-After wins over max_backoff (300)
    await advance(vt, 599, step=599)
    await asyncio.sleep(0.05)
    assert stats.completed == 5  # no request before the server said so
    await poll(vt, stats, 1)
    assert stats.next_delay == 10
    assert trigger.get_health().healthy
    await trigger.stop()
    assert len(creator.jobs) == 1
    assert len(resource.requests) == 6


async def test_unreachable_server_is_retried_and_reported(unused_port: int) -> None:
    vt = scheduler()
    trigger = HttpPollingTrigger(
        RecordingJobCreator(), f"http://127.0.0.1:{unused_port}/x", "x.y", every=1, scheduler=vt
    )
    await trigger.start()  # polling an unreachable URL is not a start failure: it retries
    stats = trigger.stats
    await wait_for(lambda: stats.completed == 1)
    await poll(vt, stats, 2)
    await poll(vt, stats, 4)
    health = trigger.get_health()
    assert trigger.is_running and not health.healthy
    assert "ConnectError" in (health.details["last_error"] or "")
    await trigger.stop()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_pollers_of_one_host_share_one_client(http_resource: tuple[Any, str]) -> None:
    _resource, url = http_resource
    vt = scheduler()
    first = sources.http_poll(url, 5, scheduler=vt).subscribe(lambda _: None)
    second = sources.http_poll(url + "?page=2", 5, scheduler=vt).subscribe(lambda _: None)
    try:
        loop_id = id(asyncio.get_running_loop())
        mine = [key for key in _pool._clients if key[0] == loop_id]
        assert len(mine) == 1
        assert _pool._clients[mine[0]][1] == 2
    finally:
        first.dispose()
        second.dispose()
    assert not [key for key in _pool._clients if key[0] == loop_id]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.com/x"}, "only http"),
        ({"url": "file:///etc/passwd"}, "only http"),
        ({"url": "example.com/x"}, "only http"),
        ({"url": 42}, "http"),
        ({"every": 0}, "every=0"),
        ({"every": -5}, "every"),
        ({"every": float("inf")}, "every"),
        ({"every": "30"}, "every"),
        ({"timeout": 0}, "timeout"),
        ({"method": "FETCH"}, "method"),
        ({"max_backoff": 1}, "max_backoff"),
    ],
)
def test_bad_arguments_are_rejected_at_once(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"url": "https://example.com/x", "every": 30, **kwargs}
    with pytest.raises(prx.ConfigurationError, match=message):
        sources.http_poll(**arguments)
    with pytest.raises(prx.ConfigurationError, match=message):
        HttpPollingTrigger(RecordingJobCreator(), job_type="x.y", **arguments)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Wed, 01 Jan 2025 00:02:00 GMT", now) == 120
    assert retry_after_seconds("Tue, 31 Dec 2024 00:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


# -- change detection, as properties --------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(versions=st.lists(st.sampled_from("abcd"), min_size=1, max_size=30), initial=st.booleans())
def test_whole_resource_emits_exactly_on_each_change(versions: list[str], initial: bool) -> None:
    detector = ChangeDetector(emit_initial=initial)
    emitted = [i for i, version in enumerate(versions) if detector.whole(version)]
    expected = [i for i in range(len(versions)) if i > 0 and versions[i] != versions[i - 1]]
    if initial:
        expected = [0, *expected]
    assert emitted == expected


@settings(max_examples=300, deadline=None)
@given(
    pages=st.lists(st.lists(st.integers(0, 40), max_size=10), min_size=1, max_size=20),
    initial=st.booleans(),
)
def test_items_are_each_emitted_once_on_first_sight(pages: list[list[int]], initial: bool) -> None:
    detector = ChangeDetector(emit_initial=initial)
    emitted: list[str] = []
    for page in pages:
        emitted += detector.new_items(str(n) for n in page)
    first_sight: list[str] = []
    for page in pages:
        first_sight += [str(n) for n in page if str(n) not in first_sight]
        first_sight = list(dict.fromkeys(first_sight))
    if not initial:
        first_sight = [k for k in first_sight if k not in {str(n) for n in pages[0]}]
    assert emitted == first_sight
    assert len(emitted) == len(set(emitted))


async def test_a_key_function_ignores_noise_and_emit_initial_false_skips_the_first(
    http_resource: tuple[Any, str],
) -> None:
    """Only the "version" field matters: a new timestamp alone is no change."""
    resource, url = http_resource
    resource.body = b'{"version": 1, "generated_at": 1}'
    vt = scheduler()
    stats = HttpPollStats()
    events: list[Any] = []
    source = sources.http_poll(
        url,
        10,
        key=lambda response: response.json()["version"],
        emit_initial=False,
        stats=stats,
        scheduler=vt,
    )
    subscription = source.subscribe(events.append)
    try:
        await wait_for(lambda: stats.completed == 1)
        resource.body = b'{"version": 1, "generated_at": 2}'
        await poll(vt, stats, 10)
        resource.body = b'{"version": 2, "generated_at": 3}'
        await poll(vt, stats, 10)
    finally:
        subscription.dispose()
    assert [(e.fingerprint, e.json()["generated_at"]) for e in events] == [("2", 3)]
