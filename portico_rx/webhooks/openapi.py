"""What webhook routes put in the OpenAPI document: bodies, answers, clean descriptions.

The routes read their bodies themselves (see :mod:`portico_rx.webhooks.route`), so their
request schemas are declared here, inline in the operation (``openapi_extra``): pydantic's
schema with every ``$defs`` reference resolved in place, so the document needs no
component FastAPI does not know of. Descriptions are docstrings without their doctest
examples and argument lists.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ERROR_DESCRIPTIONS",
    "WebhookErrorResponse",
    "clean_description",
    "error_responses",
    "inline_schema",
]

_SECTION = re.compile(r"^\s*(Example|Examples|Args|Arguments|Attributes|Returns|Raises)s?:\s*$")


def clean_description(text: str | None) -> str | None:
    """``text`` (a docstring) up to its first doctest line or Google-style section
    (``Example:``, ``Args:`` …), dedented, without trailing blank lines."""
    if not text:
        return text
    kept: list[str] = []
    for line in text.strip("\n").splitlines():
        if line.lstrip().startswith(">>>") or _SECTION.match(line):
            break
        kept.append(line)
    indent = min((len(x) - len(x.lstrip()) for x in kept[1:] if x.strip()), default=0)
    lines = [kept[0].strip()] + [x[indent:] for x in kept[1:]] if kept else []
    return "\n".join(lines).strip() or None


def _clean_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    description = clean_description(cls.__doc__)
    if description:
        schema["description"] = description
    else:
        schema.pop("description", None)


class CleanSchema(BaseModel):
    """A model whose JSON schema description is its docstring without examples."""

    model_config = ConfigDict(json_schema_extra=_clean_schema)


class WebhookErrorResponse(CleanSchema):
    """Every refusal: ``detail`` says what was wrong (a list of field errors for 400/422)."""

    detail: str | list[dict[str, Any]]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "payload not JSON, fails its schema, or bad Idempotency-Key",
    401: "the sender is not authentic, or a signed timestamp is outside the tolerance",
    403: "job type not allowed, or a dependency of the route refused the request",
    409: "the idempotency key was already used for a different request",
    413: "body larger than max_body_bytes",
    415: "the body is not sent as an accepted content type (JSON by default)",
    422: "malformed JSON or wrong field types",
    429: "rate limit exceeded (see Retry-After)",
    500: "the job could not be created",
    503: "the trigger is not running (see Retry-After)",
}


def error_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for refusals: each with :class:`WebhookErrorResponse`."""
    return {
        code: {"model": WebhookErrorResponse, "description": description}
        for code, description in codes.items()
    }


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (pydantic's, with ``$defs``) with every ``#/$defs/...`` reference
    replaced by its definition, and every description cleaned of examples.

    A recursive model refers to itself: its inner occurrences become ``{}`` (any
    value) with the model's title, so the document stays finite.
    """
    definitions = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            name = reference.removeprefix("#/$defs/")
            if name in seen or name not in definitions:
                return {"title": name}
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**resolve(definitions[name], (*seen, name)), **resolve(siblings, seen)}
        resolved: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$defs":
                continue
            if key == "description" and isinstance(value, str):
                cleaned = clean_description(value)
                if cleaned:
                    resolved[key] = cleaned
                continue
            # properties map names to schemas: a property may be called "description"
            resolved[key] = (
                {k: resolve(v, seen) for k, v in value.items()}
                if key == "properties" and isinstance(value, dict)
                else resolve(value, seen)
            )
        return resolved

    inlined: dict[str, Any] = resolve(copy.deepcopy(schema), ())
    return inlined
