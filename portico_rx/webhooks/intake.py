"""The first steps of every webhook route: authenticate, read the body within its limit,
and find the request's idempotency key. Failures become HTTP errors (401, 413, 400)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from math import isfinite
from typing import Any

from portico_rx.errors import ConfigurationError, require
from portico_rx.webhooks.auth import WebhookAuth, WebhookAuthError
from portico_rx.webhooks.body import BodyTooLargeError, read_limited_body

require("starlette", "webhook")

from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402

__all__ = [
    "JSON_CONTENT_TYPES",
    "MAX_KEY_LENGTH",
    "accepted_content_types",
    "authenticated_body",
    "check_content_type",
    "finite_json",
    "idempotency_key",
    "request_headers",
]

MAX_KEY_LENGTH = 255
JSON_CONTENT_TYPES = ("application/json", "application/*+json")
"""What a webhook route accepts by default (``application/*+json``: any ``+json`` type)."""


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
    content_types: tuple[str, ...] | None = JSON_CONTENT_TYPES,
) -> bytes:
    """The body of an authentic request of an accepted content type.

    Header-only schemes are checked before the body is read, then the content type
    (:func:`check_content_type`; ``None`` accepts any); signature schemes after the body
    was read (within ``max_bytes``), against the exact bytes received.

    Raises:
        HTTPException: 401 (not authentic, with ``WWW-Authenticate``), 415 (content
            type) or 413 (too large).
    """
    if headers is None:
        headers = request_headers(request)
    try:
        if auth is not None and not auth.needs_body:
            auth.verify(headers, b"", now)
        if content_types is not None:
            check_content_type(headers, content_types)
        body = await read_limited_body(request, max_bytes, headers.get("content-length"))
        if auth is not None and auth.needs_body:
            auth.verify(headers, body, now)
    except WebhookAuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Signature"}) from None
    except BodyTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    return body


def idempotency_key(
    headers: Mapping[str, str], auth: WebhookAuth | None, body: bytes = b""
) -> str | None:
    """The request's idempotency key.

    A signed delivery id wins (:meth:`WebhookAuth.signed_id`: Standard Webhooks'
    ``webhook-id``, the event ``id`` of a Stripe body): a replay with a new unsigned
    header keeps its key. Without one: ``Idempotency-Key``, else the scheme's unsigned
    delivery id (``X-GitHub-Delivery``), else a bare ``webhook-id`` header.

    Raises:
        HTTPException: 400 when the key is empty, longer than 255 characters or not
            printable ASCII.
    """
    key = auth.signed_id(headers, body) if auth is not None else None
    if key is None:
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


def finite_json(value: Any) -> bool:
    """``False`` if ``value``, made of parsed JSON (dicts, lists, strings, numbers,
    booleans, ``None``), holds a float that is NaN or infinite anywhere.

    A JSON parser makes such floats from ``NaN``/``Infinity`` (Python's and pydantic's
    accept them) and from numbers too large for a float (``1e400``), which every parser
    accepts; neither is JSON a store or a consumer can read back. Walked without
    recursion: any depth a parser accepts is checked.
    """
    pending = [value]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is dict:
            value = value.values()
        elif kind is float:
            if not isfinite(value):
                return False
            continue
        elif kind is not list:
            continue
        for item in value:
            kind = type(item)
            if kind is float:
                if not isfinite(item):
                    return False
            elif kind is dict or kind is list:
                pending.append(item)
    return True


def accepted_content_types(value: object, argument: str = "content_types") -> tuple[str, ...]:
    """``value`` checked as a list of media types a route accepts.

    Raises:
        ConfigurationError: empty, or an entry is not a lower-case ``type/subtype``.
    """
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigurationError(
            f"{argument}={value!r}: give a list of media types, e.g. ['application/json']"
        )
    if not value:
        raise ConfigurationError(f"{argument}=[]: accept at least one, e.g. 'application/json'")
    for media in value:
        if (
            not isinstance(media, str)
            or media != media.strip().lower()
            or media.count("/") != 1
            or ";" in media
            or media.startswith("/")
            or media.endswith("/")
        ):
            raise ConfigurationError(
                f"{argument}: {media!r} is not a media type; use lower-case "
                "'type/subtype' without parameters, e.g. 'application/json'"
            )
    return tuple(value)


def check_content_type(headers: Mapping[str, str], accepted: tuple[str, ...]) -> None:
    """Refuse a body whose ``Content-Type`` is not one of ``accepted`` (415).

    ``accepted`` holds media types, lower case; ``"application/*+json"`` accepts any
    ``+json`` suffix type (``application/cloudevents+json``). Parameters
    (``; charset=utf-8``) are ignored. A missing ``Content-Type`` is refused too: a web
    page can send JSON text as ``text/plain``, form data or with no type at all without
    a CORS preflight, so accepting only JSON types keeps other sites' pages out.

    Raises:
        HTTPException: 415 with the accepted types.
    """
    raw = headers.get("content-type")
    if raw is not None:
        media = raw.split(";", 1)[0].strip().lower()
        if media in accepted:
            return
        if (
            "application/*+json" in accepted
            and media.startswith("application/")
            and media.endswith("+json")
            and "/" not in media[12:]
        ):
            return
    raise HTTPException(
        415,
        f"Content-Type {raw!r} is not accepted: send the body as "
        + " or ".join(accepted)
        + " (or configure content_types=)",
    )
