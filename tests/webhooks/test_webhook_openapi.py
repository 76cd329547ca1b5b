"""The OpenAPI document of the webhook routes: each job type's payload schema in a union
discriminated on ``job_type``, the allow-list as an enum, every answer with its model,
descriptions without doctest lines, and real schemas for ``sources.webhook`` routes."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import BaseModel, Field

from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.sources._webhook import webhook
from portico_rx.testing import RecordingJobCreator
from portico_rx.web import create_app
from portico_rx.webhooks import RateLimit, StandardWebhooksAuth

from .conftest import SECRET


class Address(BaseModel):
    city: str


class Email(BaseModel):
    """An email to send.

    Example:
        >>> Email(recipient="a@b.c").subject
        ''
    """

    recipient: str = Field(min_length=3)
    subject: str = ""
    address: Address | None = None


class Report(BaseModel):
    """A report.

    Args:
        month: which month.
    """

    month: int = Field(ge=1, le=12)


def documented(trigger: WebhookTrigger) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = create_app([trigger]).openapi()
    return spec, spec["paths"][f"{trigger.config.prefix}/jobs"]["post"]


def body_schema(post: dict[str, Any]) -> dict[str, Any]:
    return post["requestBody"]["content"]["application/json"]["schema"]


def test_payload_schemas_are_a_union_discriminated_on_job_type() -> None:
    trigger = WebhookTrigger(
        RecordingJobCreator(),
        WebhookConfig(allowed_job_types=["email.send", "report.generate", "ping"]),
        payload_schemas={"email.send": Email, "report.generate": Report},
    )
    _, post = documented(trigger)
    schema = body_schema(post)
    assert schema["discriminator"] == {"propertyName": "job_type"}
    by_type = {v["properties"]["job_type"]["enum"][0]: v for v in schema["oneOf"]}
    assert sorted(by_type) == ["email.send", "ping", "report.generate"]
    email = by_type["email.send"]["properties"]["payload"]
    assert email["properties"]["recipient"] == {
        "minLength": 3,
        "title": "Recipient",
        "type": "string",
    }
    assert email["description"] == "An email to send."
    assert "$ref" not in json.dumps(schema) and "$defs" not in json.dumps(schema)
    assert (
        by_type["report.generate"]["properties"]["payload"]["properties"]["month"]["maximum"] == 12
    )
    assert by_type["ping"]["properties"]["job_type"] == {"type": "string", "enum": ["ping"]}
    assert by_type["ping"]["properties"]["payload"]["type"] == "object"
    # The document's schema accepts what the route accepts and refuses what it refuses
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"job_type": "email.send", "payload": {"recipient": "a@b.c"}})
    assert not validator.is_valid({"job_type": "email.send", "payload": {"recipient": 1}})
    assert not validator.is_valid({"job_type": "other", "payload": {}})
    assert validator.is_valid({"job_type": "ping"})


def test_without_an_allow_list_other_job_types_are_a_pattern_excluding_the_typed_ones() -> None:
    trigger = WebhookTrigger(RecordingJobCreator(), payload_schemas={"email.send": Email})
    _, post = documented(trigger)
    validator = jsonschema.Draft202012Validator(body_schema(post))
    assert validator.is_valid({"job_type": "anything.else", "payload": {"x": 1}})
    assert not validator.is_valid({"job_type": "email.send", "payload": {"x": 1}})
    assert not validator.is_valid({"job_type": "a b", "payload": {}})


def test_the_allow_list_is_an_enum() -> None:
    trigger = WebhookTrigger(
        RecordingJobCreator(), WebhookConfig(allowed_job_types=["b.job", "a.job"])
    )
    _, post = documented(trigger)
    assert body_schema(post)["properties"]["job_type"] == {
        "type": "string",
        "enum": ["a.job", "b.job"],
    }


def test_every_status_is_documented_with_its_body_model() -> None:
    trigger = WebhookTrigger(
        RecordingJobCreator(),
        WebhookConfig(
            auth=StandardWebhooksAuth(secrets=[SECRET]), rate_limit=RateLimit(per_client=10)
        ),
    )
    _, post = documented(trigger)
    models = {
        code: answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for code, answer in post["responses"].items()
    }
    assert models == {
        "200": "WebhookJobResponse",
        "201": "WebhookJobResponse",
        **{
            code: "WebhookErrorResponse"
            for code in ("400", "401", "403", "409", "413", "415", "422", "429", "500", "503")
        },
    }


def test_no_doctest_lines_or_argument_sections_in_the_document() -> None:
    trigger = WebhookTrigger(
        RecordingJobCreator(), payload_schemas={"email.send": Email, "report.generate": Report}
    )
    app = create_app([trigger], routers=[webhook("/hooks/any")])
    text = json.dumps(app.openapi())
    for leftover in (">>>", "Example:", "Args:", "Returns:", "Raises:"):
        assert leftover not in text, leftover
    schemas = app.openapi()["components"]["schemas"]
    assert schemas["WebhookJobResponse"]["description"] == "The answer once the job exists."


def test_webhook_source_routes_have_a_request_schema_and_a_named_response_model() -> None:
    class Push(BaseModel):
        """A GitHub push."""

        ref: str
        after: str

    app = create_app(routers=[webhook("/hooks/any"), webhook("/hooks/push", body_schema=Push)])
    spec = app.openapi()
    anything = spec["paths"]["/hooks/any"]["post"]
    push = spec["paths"]["/hooks/push"]["post"]
    any_body = body_schema(anything)
    assert any_body["title"] == "WebhookEventBody" and any_body["description"]
    assert body_schema(push)["required"] == ["ref", "after"]
    assert body_schema(push)["description"] == "A GitHub push."
    for post in (anything, push):
        refs = {
            code: answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            for code, answer in post["responses"].items()
        }
        assert refs["201"] == refs["200"] == refs["503"] == "WebhookEventResponse"
        assert refs["415"] == refs["422"] == "WebhookErrorResponse"
    assert "_Response" not in spec["components"]["schemas"]


async def test_a_source_with_a_body_schema_refuses_other_bodies(client_for: Any) -> None:
    import portico_rx as prx

    class Push(BaseModel):
        ref: str

    events = webhook("/hooks/push", body_schema=Push)
    creator = RecordingJobCreator()
    trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job("ci.build")), job_creator=creator, name="ci"
    )
    app = create_app([trigger], routers=[events])
    async with app.router.lifespan_context(app), client_for(app) as http:
        ok = await http.post("/hooks/push", json={"ref": "main"})
        bad = await http.post("/hooks/push", json={"branch": "main"})
    assert (ok.status_code, bad.status_code) == (201, 422)
    assert bad.json()["detail"][0]["loc"] == ["body", "ref"]
    assert len(creator.jobs) == 1
