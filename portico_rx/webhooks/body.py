"""Reading a request body with a size limit enforced while it streams in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portico_rx.errors import PorticoError, require

require("starlette", "webhook")

from starlette.requests import ClientDisconnect  # noqa: E402

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["BodyTooLargeError", "read_limited_body"]


class BodyTooLargeError(PorticoError, ValueError):
    """The request body is larger than the route accepts (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body is larger than max_body_bytes={limit}; send less, "
            "or raise max_body_bytes on the route"
        )
        self.limit = limit


async def read_limited_body(
    request: Request, max_bytes: int, content_length: str | None = None
) -> bytes:
    """Read the body of ``request``, refusing it as soon as it exceeds ``max_bytes``.

    A declared ``Content-Length`` above the limit is refused before anything is read;
    a chunked (or lying) body is refused at the first chunk past the limit, so an
    endless body costs at most ``max_bytes`` plus one chunk of memory.

    Args:
        request: the request.
        max_bytes: the limit.
        content_length: the ``Content-Length`` header if the caller already has it
            (default: read from ``request``).

    Returns:
        The complete body.

    Raises:
        BodyTooLargeError: the body is (or says it is) larger than ``max_bytes``.
        ClientDisconnect: the client went away before the body was complete (Starlette's
            exception, as ``request.stream()`` raises it).
    """
    declared = (
        content_length if content_length is not None else request.headers.get("content-length")
    )
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLargeError(max_bytes)
    # The ASGI messages, read directly (``request.stream()`` does the same through an
    # async generator, which costs more than reading the usual single message).
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(max_bytes)
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
