"""The webhook intake's own fast paths: flat mounting, direct body reads, the lazy guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import ClientDisconnect, Request

from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app, mount
from portico_rx.webhooks import BodyTooLargeError, IdempotencyGuard, read_limited_body
from portico_rx.webhooks.intake import finite_json
from portico_rx.webhooks.route import RawRequestRoute

# -- mounting --------------------------------------------------------------------------


def test_create_app_mounts_a_trigger_route_itself() -> None:
    """The trigger's route object is one of the app's routes: matched once, directly."""
    trigger = WebhookTrigger(job_creator=RecordingJobCreator())
    app = create_app([trigger])
    [route] = trigger.router.routes
    assert route in app.router.routes
    assert isinstance(route, RawRequestRoute) and route.path == "/webhooks/jobs"


async def test_flat_mounted_route_serves_and_is_documented(client_for: Any) -> None:
    trigger = WebhookTrigger(job_creator=RecordingJobCreator(), config=WebhookConfig(prefix="/p"))
    app = FastAPI()
    mount(app, trigger.router)
    assert "/p/jobs" in app.openapi()["paths"]
    await trigger.start()
    async with client_for(app) as http:
        created = await http.post("/p/jobs", json={"job_type": "a.b"})
        wrong_method = await http.get("/p/jobs")
    await trigger.stop()
    assert created.status_code == 201
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


async def test_other_routers_are_included_as_fastapi_does(client_for: Any) -> None:
    """A router with its own dependencies (or plain routes) is left to include_router."""
    calls: list[str] = []

    def dependency() -> None:
        calls.append("dependency")

    guarded = APIRouter(dependencies=[Depends(dependency)])

    @guarded.get("/guarded")
    async def guarded_route() -> dict[str, str]:
        return {"ok": "yes"}

    app = FastAPI()
    mount(app, guarded)
    assert guarded.routes[0] not in app.router.routes
    async with client_for(app) as http:
        answer = await http.get("/guarded")
    assert answer.json() == {"ok": "yes"} and calls == ["dependency"]


# -- the body --------------------------------------------------------------------------


def request_with(messages: list[dict[str, Any]]) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/", "query_string": b""}
    return Request(scope, receive)


async def test_body_in_one_message_or_many() -> None:
    one = request_with([{"type": "http.request", "body": b"abc", "more_body": False}])
    assert await read_limited_body(one, 10) == b"abc"
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    assert await read_limited_body(request_with(chunks), 10) == b"abcd"
    assert await read_limited_body(request_with([{"type": "http.request"}]), 10) == b""


async def test_body_over_the_limit_in_the_last_message_is_refused() -> None:
    chunks = [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"ef", "more_body": False},
    ]
    with pytest.raises(BodyTooLargeError):
        await read_limited_body(request_with(chunks), 5)


async def test_client_gone_before_the_end_of_the_body() -> None:
    gone = request_with(
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]
    )
    with pytest.raises(ClientDisconnect):
        await read_limited_body(gone, 10)


# -- the idempotency guard ---------------------------------------------------------------


async def test_guard_without_duplicates_keeps_nothing_pending() -> None:
    guard = IdempotencyGuard()

    async def create(job_id: str) -> str:
        assert guard._pending == {"k": None}  # no future until a duplicate waits
        return job_id

    assert await guard.once("k", create, "job-1") == ("job-1", False)
    assert guard._pending == {}
    assert guard.answer("k") == "job-1"  # remembered; the caller decides if it fits


async def test_guard_of_size_zero_remembers_nothing() -> None:
    guard: IdempotencyGuard[str] = IdempotencyGuard(0)

    async def create(job_id: str) -> str:
        return job_id

    assert await guard.once("k", create, "job-1") == ("job-1", False)
    assert guard.answer("k") is None


async def test_guard_duplicates_wait_for_the_first_and_share_its_id() -> None:
    guard = IdempotencyGuard()
    release = asyncio.Event()
    created: list[str] = []

    async def create(job_id: str) -> str:
        created.append(job_id)
        await release.wait()
        return job_id

    first = asyncio.ensure_future(guard.once("k", create, "first"))
    await asyncio.sleep(0)
    duplicates = [asyncio.ensure_future(guard.once("k", create, f"dup{i}")) for i in range(3)]
    await asyncio.sleep(0)
    release.set()
    answers = await asyncio.gather(first, *duplicates)
    assert answers == [("first", False)] + [("first", True)] * 3
    assert created == ["first"] and guard._pending == {}


async def test_guard_duplicate_creates_itself_when_the_first_fails() -> None:
    guard = IdempotencyGuard()
    release = asyncio.Event()

    async def failing() -> str:
        await release.wait()
        raise RuntimeError("store down")

    async def working() -> str:
        return "second"

    first = asyncio.ensure_future(guard.once("k", failing))
    await asyncio.sleep(0)
    duplicate = asyncio.ensure_future(guard.once("k", working))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(RuntimeError, match="store down"):
        await first
    assert await duplicate == ("second", False)
    assert guard._pending == {}


# -- the response --------------------------------------------------------------------------


def test_json_bytes_response_is_the_generic_response() -> None:
    from starlette.responses import Response

    from portico_rx.webhooks.route import JSONBytesResponse

    body = b'{"job_id":"x"}'
    fast = JSONBytesResponse(body, 201)
    slow = Response(body, status_code=201, media_type="application/json")
    assert (fast.status_code, fast.body, fast.raw_headers) == (201, body, slow.raw_headers)
    assert fast.headers["content-type"] == "application/json" and fast.background is None


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        ({"a": 1, "b": "NaN", "c": [True, None, 1.5, {"d": -2e300}]}, True),
        ({}, True),
        ([], True),
        (1.0, True),
        (float("inf"), False),
        ({"a": float("nan")}, False),
        ({"a": [1, {"b": [float("-inf")]}]}, False),
        ([[[{"deep": [0.5, float("inf")]}]]], False),
    ],
)
def test_finite_json_finds_every_non_finite_float(value: object, finite: bool) -> None:
    assert finite_json(value) is finite


def test_finite_json_walks_any_depth() -> None:
    """Deeper than the interpreter's recursion limit: walked without recursion."""
    nested: object = float("inf")
    for _ in range(5_000):
        nested = {"x": [nested]}
    assert finite_json(nested) is False
