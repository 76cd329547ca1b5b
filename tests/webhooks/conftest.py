"""Helpers for the webhook tests: an ASGI client on an app, and a signing secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_c2VjcmV0LXRoYXQtd2FzLXJvdGF0ZWQtb3V0"

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_for() -> ClientFactory:
    """``async with client_for(app, client=("10.0.0.1", 5000)) as http: ...``

    The client sends ``Content-Type: application/json`` unless a request says otherwise,
    as webhook senders do (``content_type=None``: no default, for the 415 tests).
    """

    @asynccontextmanager
    async def make(
        app: FastAPI,
        client: tuple[str, int] = ("127.0.0.1", 40000),
        content_type: str | None = "application/json",
    ) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=client)
        headers = {} if content_type is None else {"content-type": content_type}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as http:
            yield http

    return make
