"""Only JSON bodies (``application/json``, ``application/*+json``) unless configured: a web
page can POST ``text/plain``, form data or multipart to any URL without a CORS preflight,
so those get 415 and create nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI

import portico_rx as prx
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.errors import ConfigurationError
from portico_rx.sources._webhook import webhook
from portico_rx.testing import RecordingJobCreator

BODY = json.dumps({"job_type": "order.ship", "payload": {"order": 1}}).encode()


async def post_all(client_for: Any, app: FastAPI, path: str) -> dict[str, int]:
    answers: dict[str, int] = {}
    async with client_for(app, content_type=None) as http:
        for media in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "application/json-patch",  # not a +json suffix
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
        ]:
            answers[media] = (
                await http.post(path, content=BODY, headers={"content-type": media})
            ).status_code
        answers["(none)"] = (await http.post(path, content=BODY)).status_code
        form = await http.post(path, data={"job_type": "order.ship"})
        files = await http.post(path, files={"f": ("a.json", BODY, "application/json")})
        answers["form (httpx data=)"] = form.status_code
        answers["multipart (httpx files=)"] = files.status_code
    return answers


REFUSED = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/json-patch",
    "(none)",
    "form (httpx data=)",
    "multipart (httpx files=)",
]


async def test_the_trigger_accepts_json_types_only(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(creator)
    app = FastAPI()
    app.include_router(trigger.router)
    await trigger.start()
    answers = await post_all(client_for, app, "/webhooks/jobs")
    rejected = trigger.get_health().details["rejected"]
    await trigger.stop()
    assert {m: answers[m] for m in REFUSED} == dict.fromkeys(REFUSED, 415)
    assert [answers[m] for m in answers if m not in REFUSED] == [201, 201, 201]
    assert len(creator.jobs) == 3
    assert rejected == {"415": len(REFUSED)}


async def test_the_source_accepts_json_types_only(client_for: Any) -> None:
    creator = RecordingJobCreator()
    events = webhook("/events")
    trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job("e.v")), job_creator=creator, name="events"
    )
    app = FastAPI()
    app.include_router(events.router)
    await trigger.start()
    answers = await post_all(client_for, app, "/events")
    await trigger.stop()
    assert {m: answers[m] for m in REFUSED} == dict.fromkeys(REFUSED, 415)
    assert len(creator.jobs) == 3


async def test_415_names_what_is_accepted(client_for: Any) -> None:
    trigger = WebhookTrigger(RecordingJobCreator())
    app = FastAPI()
    app.include_router(trigger.router)
    await trigger.start()
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs", content=BODY, headers={"content-type": "text/plain"}
        )
    await trigger.stop()
    assert response.json()["detail"] == (
        "Content-Type 'text/plain' is not accepted: send the body as application/json or "
        "application/*+json (or configure content_types=)"
    )


async def test_configured_content_types(client_for: Any) -> None:
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(creator, WebhookConfig(content_types=["text/plain"]))
    events = webhook("/events", content_types=["application/vnd.acme"])
    source_trigger = prx.PipelineTrigger(
        events.pipe(prx.to_job("e.v")), job_creator=creator, name="events"
    )
    app = FastAPI()
    app.include_router(trigger.router)
    app.include_router(events.router)
    await trigger.start()
    await source_trigger.start()
    async with client_for(app) as http:
        plain = await http.post(
            "/webhooks/jobs", content=BODY, headers={"content-type": "text/plain"}
        )
        json_now = await http.post("/webhooks/jobs", content=BODY)
        vendor = await http.post(
            "/events", content=BODY, headers={"content-type": "application/vnd.acme"}
        )
    await trigger.stop()
    await source_trigger.stop()
    assert (plain.status_code, json_now.status_code, vendor.status_code) == (201, 415, 201)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["Application/JSON"], "'Application/JSON' is not a media type"),
        (["json"], "'json' is not a media type"),
        (["application/json; charset=utf-8"], "without parameters"),
        ([], "accept at least one"),
    ],
)
def test_bad_content_types_are_configuration_errors(value: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebhookConfig(content_types=value)
    with pytest.raises(ConfigurationError, match=message):
        webhook("/events", content_types=value)
