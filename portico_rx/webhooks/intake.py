"""The first steps of every webhook route: authenticate, read the body within its limit,
and find the request's idempotency key. Failures become HTTP errors (401, 413, 400)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from portico_rx.errors import require
from portico_rx.webhooks.auth import WebhookAuth, WebhookAuthError
from portico_rx.webhooks.body import BodyTooLargeError, read_limited_body

require("starlette", "webhook")

from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402

__all__ = ["MAX_KEY_LENGTH", "authenticated_body", "idempotency_key", "request_headers"]

MAX_KEY_LENGTH = 255


def request_headers(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict with lower-case names (one pass; a repeated
    header keeps its last value)."""
    return {
        name.decode("latin-1"): value.decode("latin-1") for name, value in request.scope["headers"]
    }


async def authenticated_body(
    request: Request,
    auth: WebhookAuth | None,
    max_bytes: int,
    now: datetime,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body of an authentic request.

    Header-only schemes are checked before the body is read; signature schemes after
    it was read (within ``max_bytes``), against the exact bytes received.

    Raises:
        HTTPException: 401 (not authentic, with ``WWW-Authenticate``) or 413 (too large).
    """
    if headers is None:
        headers = request_headers(request)
    try:
        if auth is not None and not auth.needs_body:
            auth.verify(headers, b"", now)
        body = await read_limited_body(request, max_bytes, headers.get("content-length"))
        if auth is not None and auth.needs_body:
            auth.verify(headers, body, now)
    except WebhookAuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Signature"}) from None
    except BodyTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    return body


def idempotency_key(headers: Mapping[str, str], auth: WebhookAuth | None) -> str | None:
    """The request's idempotency key: ``Idempotency-Key``, else the scheme's delivery id
    (``webhook-id``, ``X-GitHub-Delivery``), else a bare ``webhook-id`` header.

    Raises:
        HTTPException: 400 when the key is empty, longer than 255 characters or not
            printable ASCII.
    """
    key = headers.get("idempotency-key")
    if key is None and auth is not None:
        key = auth.delivery_id(headers)
    if key is None:
        key = headers.get("webhook-id")
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise HTTPException(
            400,
            f"invalid Idempotency-Key {key[:40]!r}: use 1-{MAX_KEY_LENGTH} printable ASCII "
            "characters, e.g. a UUID",
        )
    return key
