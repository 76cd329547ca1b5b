"""Fuzz the whole app through its own OpenAPI schema. No input may cause a 5xx, and a
request that is refused creates no job.

Two fuzzers: schemathesis (its own generator, valid and invalid cases, a few hundred)
and a fast hypothesis fuzzer that builds bodies from the OpenAPI request schemas, then
mutates them (wrong types, extra and missing fields, broken JSON, raw bytes, odd
headers): thousands of cases.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis import checks

import portico_rx as prx
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.sources._webhook import webhook
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app
from portico_rx.webhooks import RateLimit

SCHEMATHESIS_EXAMPLES = 100
HYPOTHESIS_EXAMPLES = 2000


class Email(BaseModel):
    recipient: str
    subject: str = ""


def build_app() -> tuple[Any, RecordingJobCreator]:
    creator = RecordingJobCreator()
    events = webhook("/events", max_body_bytes=8192)
    app = create_app(
        [
            WebhookTrigger(
                job_creator=creator,
                config=WebhookConfig(max_body_bytes=8192, priority_map={"email.send": 5}),
                payload_schemas={"email.send": Email},
            ),
            WebhookTrigger(
                job_creator=creator,
                name="strict",
                config=WebhookConfig(
                    prefix="/strict",
                    allowed_job_types=["email.send", "report.generate"],
                    rate_limit=RateLimit(per_job_type=100_000, per_client=100_000),
                ),
                payload_schemas={"email.send": Email},
            ),
            prx.PipelineTrigger(
                events.pipe(prx.to_job("event.received")), job_creator=creator, name="events"
            ),
        ],
        routers=[events],
    )
    return app, creator


def check(status: int, created: int, path: str, text: str) -> None:
    assert status < 500, (path, status, text)
    if status in (200, 201) and path != "/health/triggers":
        assert created <= 1, (path, status, created)
        if status == 201 and path != "/events":  # /events answers 201 for a redelivery too
            assert created == 1, (path, status, text)
    else:
        assert created == 0, (path, status, created, text)


# -- schemathesis ----------------------------------------------------------------------

st_app, st_creator = build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", st_app)


@schema.parametrize()
@settings(
    max_examples=SCHEMATHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_schemathesis_finds_no_server_error_no_schema_violation_and_no_stray_job(
    case: Any,
) -> None:
    """Every answer is documented: its status, content type, headers and body schema."""
    before = len(st_creator.jobs)
    response = case.call_and_validate(
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ]
    )
    check(response.status_code, len(st_creator.jobs) - before, case.path, response.text)


# -- hypothesis from the OpenAPI schema ---------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy a (simple) JSON schema node, as pydantic writes them."""
    if "oneOf" in node:
        return st.one_of([from_schema(variant) for variant in node["oneOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "string":
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= node.get("maxLength", 200)
            )
        return st.text(max_size=node.get("maxLength", 30))
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**40)), node.get("maximum", 2**40))
    if kind == "object":
        properties = node.get("properties")
        if not properties:
            return st.dictionaries(st.text(max_size=8), JSON, max_size=4)
        required = set(node.get("required", []))
        fields = {
            name: from_schema(sub) if name in required else st.none() | from_schema(sub)
            for name, sub in properties.items()
        }
        return st.fixed_dictionaries(fields).map(
            lambda d: {k: v for k, v in d.items() if v is not None or k in required}
        )
    return JSON


def mutated(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """A valid body with one field retyped, one extra field, or one field removed."""

    def retype(data: st.DataObject, body: dict[str, Any]) -> Any:
        if body and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(body)))
            if data.draw(st.booleans()):
                return {k: v for k, v in body.items() if k != key}
            return {**body, key: data.draw(JSON)}
        return {**body, data.draw(st.text(max_size=8)): data.draw(JSON)}

    return st.tuples(st.data(), valid).map(lambda pair: retype(*pair))


def body_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def requests_for(spec: dict[str, Any]) -> st.SearchStrategy[tuple[str, bytes, dict[str, str]]]:
    routes = []
    for path, item in sorted(spec["paths"].items()):
        post = item.get("post")
        if post is None:
            continue
        schema_node = post["requestBody"]["content"]["application/json"]["schema"]
        valid = from_schema(schema_node)
        bodies = st.one_of(
            valid.map(body_bytes),
            mutated(valid).map(body_bytes)
            if schema_node.get("properties") or schema_node.get("oneOf")
            else JSON.map(body_bytes),
            JSON.map(body_bytes),
            valid.map(body_bytes).map(lambda b: b[: max(1, len(b) // 2)]),
            st.binary(max_size=64),
            st.just(b'{"job_type": "email.send", "payload": {"x": NaN}}'),
            st.just(b"[1, Infinity]"),
            st.just(b'{"job_type": "not.allowed", "payload": {}}'),
        )
        routes.append(st.tuples(st.just(path), bodies))
    headers = st.dictionaries(
        st.sampled_from(["Idempotency-Key", "webhook-id", "content-type", "X-GitHub-Delivery"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=300),
        max_size=3,
    )
    return st.tuples(st.one_of(routes), headers).map(lambda r: (r[0][0], r[0][1], r[1]))


def test_thousands_of_generated_requests_find_no_server_error_and_no_stray_job() -> None:
    app, creator = build_app()
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz")
    loop.run_until_complete(lifespan.__aenter__())
    statuses: dict[int, int] = {}
    try:
        strategy = requests_for(app.openapi())

        @given(strategy)
        @settings(
            max_examples=HYPOTHESIS_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def one(request: tuple[str, bytes, dict[str, str]]) -> None:
            path, body, headers = request
            before = len(creator.jobs)
            sent = {"content-type": "application/json", **headers}  # a drawn type wins
            encoded = [(k.encode(), v.encode("latin-1")) for k, v in sent.items()]
            response = loop.run_until_complete(http.post(path, content=body, headers=encoded))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            check(response.status_code, len(creator.jobs) - before, path, response.text)

        one()
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
    assert sum(statuses.values()) >= HYPOTHESIS_EXAMPLES // 2
    assert {201, 400, 403, 422} <= set(statuses), statuses  # the fuzzer reached every stage
