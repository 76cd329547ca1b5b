"""A FastAPI route whose endpoint takes the raw ``Request`` and returns a ``Response``.

Webhook endpoints read the body themselves (to bound it while it streams in and to
check signatures over the exact bytes), so FastAPI's request handling adds nothing but
time *unless dependencies apply to the route*. The route therefore serves the endpoint
directly when no dependency applies, and hands the request to FastAPI's own handler
(``APIRoute.get_route_handler``: FastAPI solves the dependencies, security included, and
then calls the endpoint with the ``Request``) when one does — whether it was given to the
route, to its router, to ``include_router(..., dependencies=[...])`` or to
``FastAPI(dependencies=[...])``.

The one reach into FastAPI beyond its public API is isolated in
:func:`_inclusion_dependencies` (tested in ``tests/webhooks/test_webhook_dependencies.py``,
which fails loudly when FastAPI changes): it only decides *speed*. When it cannot tell,
the route uses FastAPI's handler, which is always correct.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from portico_rx.errors import require

require("fastapi", "webhook")

import fastapi.routing  # noqa: E402
from fastapi.routing import APIRoute  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

__all__ = ["JSONBytesResponse", "RawRequestRoute"]

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class RawRequestRoute(APIRoute):
    """An ``APIRoute`` for ``async def endpoint(request: Request) -> Response``.

    Without dependencies the endpoint is called directly (no dependency solving, exit
    stacks or response model, which such an endpoint does not use); with dependencies
    (of the route, its routers or the app) FastAPI's own handler solves them first.
    Raising ``HTTPException`` works as usual (the app's exception handlers answer).

    Attributes:
        direct: ``True`` when the route, as declared, is served without FastAPI's
            handler (no dependencies of its own or of the router it was declared on).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self._declaring = True
        super().__init__(path, endpoint, **kwargs)
        self._declaring = False
        self.direct = not self.dependencies
        if self.direct:
            self.app = self._serve

    def get_route_handler(self) -> Endpoint:
        """The endpoint itself when no dependency applies, else FastAPI's handler.

        FastAPI calls this when the route is declared and again for every router that
        includes it (with that inclusion's dependencies).
        """
        if self._declaring:
            dependencies: list[Any] | None = list(self.dependencies)
        else:
            dependencies = _inclusion_dependencies(self)
        if dependencies == []:
            endpoint: Endpoint = self.endpoint
            return endpoint
        return super().get_route_handler()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def _inclusion_dependencies(route: APIRoute) -> list[Any] | None:
    """The dependencies of the inclusion FastAPI is building ``route``'s handler for.

    FastAPI (0.1xx with lazy ``include_router``) builds an included route's handler while
    a context variable holds the inclusion's effective route (its ``dependencies``
    merged from the app, the including routers and the route). ``None`` when that cannot
    be read: the caller then uses FastAPI's handler, which solves whatever applies.
    """
    variable = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = variable.get() if variable is not None else None
    if context is None or getattr(context, "original_route", None) is not route:
        return None
    dependencies = getattr(context, "dependencies", None)
    return list(dependencies) if isinstance(dependencies, list) else None


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
