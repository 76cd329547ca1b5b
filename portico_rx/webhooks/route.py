"""A FastAPI route whose endpoint takes the raw ``Request`` and returns a ``Response``.

Webhook endpoints read the body themselves (to bound it while it streams in and to
check signatures over the exact bytes), so FastAPI's dependency solving and response
serialisation would only cost time. The route still carries everything FastAPI puts in
the OpenAPI document (request body schema, responses, parameters), declared with
``openapi_extra`` and ``responses``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from portico_rx.errors import require

require("fastapi", "webhook")

from fastapi.routing import APIRoute  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

__all__ = ["JSONBytesResponse", "RawRequestRoute"]


class RawRequestRoute(APIRoute):
    """An ``APIRoute`` that calls ``endpoint(request)`` directly.

    The endpoint must be ``async def endpoint(request: Request) -> Response``; raising
    ``HTTPException`` works as usual (the app's exception handlers answer). The route
    skips FastAPI's per-request machinery (dependency solving, exit stacks, response
    model), which such an endpoint does not use.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = self._serve

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await super().handle(scope, receive, send)  # 405 with Allow
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


class JSONBytesResponse(Response):
    """A JSON response whose body is already encoded: ``Response(body, status_code,
    media_type="application/json")`` with its two headers built directly rather than
    through ``Response``'s generic rendering and header inspection."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
        ]
