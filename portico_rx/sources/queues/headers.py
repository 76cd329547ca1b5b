"""Broker header values as JSON values, so they can travel in job metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["json_headers", "json_value"]


def json_value(value: Any) -> Any:
    """``value`` as a JSON value: bytes are decoded (or shown), times become ISO strings,
    decimals floats, containers are converted item by item, anything else ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    return str(value)


def json_headers(headers: Mapping[Any, Any] | None) -> dict[str, Any]:
    """A header mapping with string keys and JSON values (``{}`` for ``None``)."""
    if not headers:
        return {}
    return {str(json_value(k)): json_value(v) for k, v in headers.items()}
