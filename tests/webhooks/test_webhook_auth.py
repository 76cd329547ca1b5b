"""Authentication: Standard Webhooks, GitHub, Stripe, bearer and API keys. Every forgery
is a 401 and creates no job."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from reactivex.scheduler import HistoricalScheduler
from standardwebhooks import Webhook

from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.testing import RecordingJobCreator, advance
from portico_rx.webhooks import (
    ApiKeyAuth,
    BearerAuth,
    GitHubAuth,
    StandardWebhooksAuth,
    StripeAuth,
    WebhookAuth,
    sign_github,
    sign_standard_webhook,
    sign_stripe,
)

from .conftest import OLD_SECRET, SECRET

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = json.dumps({"job_type": "invoice.send", "payload": {"id": 7}}).encode()


def reference_headers(secret: str, msg_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """Headers as signed by the Standard Webhooks reference library."""
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def started(
    auth: WebhookAuth,
) -> tuple[WebhookTrigger, RecordingJobCreator, FastAPI, HistoricalScheduler]:
    clock = HistoricalScheduler(initial_clock=NOW)
    creator = RecordingJobCreator()
    trigger = WebhookTrigger(job_creator=creator, config=WebhookConfig(auth=auth), scheduler=clock)
    await trigger.start()
    app = FastAPI()
    app.include_router(trigger.router)
    return trigger, creator, app, clock


async def test_standard_webhooks_signed_by_the_reference_library_is_accepted(
    client_for: Any,
) -> None:
    trigger, creator, app, _ = await started(StandardWebhooksAuth(secrets=[SECRET]))
    async with client_for(app) as http:
        response = await http.post(
            "/webhooks/jobs", content=BODY, headers=reference_headers(SECRET, "msg_1", BODY, NOW)
        )
    await trigger.stop()
    assert response.status_code == 201
    assert len(creator.jobs) == 1
    assert creator.jobs[0].idempotency_key == "webhook:webhook:invoice.send:msg_1"


async def test_our_signer_matches_the_reference_library() -> None:
    ours = sign_standard_webhook(SECRET, "msg_9", BODY, NOW)
    assert ours["webhook-signature"] == Webhook(SECRET).sign("msg_9", NOW, BODY.decode())
    fresh = sign_standard_webhook(SECRET, "msg_9", BODY)  # the reference checks wall clock
    Webhook(SECRET).verify(BODY, fresh)
    StandardWebhooksAuth(secrets=SECRET).verify(ours, BODY, NOW)


async def test_rotation_accepts_any_configured_secret(client_for: Any) -> None:
    trigger, creator, app, _ = await started(StandardWebhooksAuth(secrets=[SECRET, OLD_SECRET]))
    async with client_for(app) as http:
        for i, secret in enumerate([SECRET, OLD_SECRET]):
            headers = reference_headers(secret, f"msg_{i}", BODY, NOW)
            assert (
                await http.post("/webhooks/jobs", content=BODY, headers=headers)
            ).status_code == 201
        both = reference_headers(SECRET, "msg_both", BODY, NOW)
        both["webhook-signature"] = (
            sign_standard_webhook(OLD_SECRET, "msg_both", BODY, NOW)["webhook-signature"]
            + " "
            + both["webhook-signature"]
        )
        assert (await http.post("/webhooks/jobs", content=BODY, headers=both)).status_code == 201
    await trigger.stop()
    assert len(creator.jobs) == 3


def _forgeries() -> dict[str, Any]:
    def good() -> dict[str, str]:
        return reference_headers(SECRET, "msg_1", BODY, NOW)

    def with_(**changes: str | None) -> dict[str, str]:
        headers = good()
        for name, value in changes.items():
            key = name.replace("_", "-")
            if value is None:
                headers.pop(key)
            else:
                headers[key] = value
        return headers

    sig = good()["webhook-signature"]
    raw = base64.b64decode(sig[3:])
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    stale = NOW - timedelta(minutes=6)
    future = NOW + timedelta(minutes=6)
    return {
        "wrong secret": (reference_headers(OLD_SECRET, "msg_1", BODY, NOW), BODY),
        "altered body": (good(), BODY.replace(b"7", b"8")),
        "truncated signature": (with_(webhook_signature=sig[:-8]), BODY),
        "signature cut to one byte": (
            with_(webhook_signature="v1," + base64.b64encode(raw[:1]).decode()),
            BODY,
        ),
        "flipped bit": (with_(webhook_signature="v1," + base64.b64encode(flipped).decode()), BODY),
        "wrong version": (with_(webhook_signature="v2," + sig[3:]), BODY),
        "not base64": (with_(webhook_signature="v1,!!!notbase64!!!"), BODY),
        "empty signature": (with_(webhook_signature=""), BODY),
        "other id": (with_(webhook_id="msg_2"), BODY),
        "timestamp moved": (with_(webhook_timestamp=str(int(NOW.timestamp()) + 1)), BODY),
        "stale (6 min old)": (reference_headers(SECRET, "msg_1", BODY, stale), BODY),
        "from the future": (reference_headers(SECRET, "msg_1", BODY, future), BODY),
        "timestamp not a number": (with_(webhook_timestamp="yesterday"), BODY),
        "missing webhook-id": (with_(webhook_id=None), BODY),
        "missing webhook-timestamp": (with_(webhook_timestamp=None), BODY),
        "missing webhook-signature": (with_(webhook_signature=None), BODY),
        "no headers at all": ({"content-type": "application/json"}, BODY),
    }


@pytest.mark.parametrize("case", list(_forgeries()))
async def test_forged_standard_webhooks_are_401_and_create_nothing(
    client_for: Any, case: str
) -> None:
    headers, body = _forgeries()[case]
    trigger, creator, app, _ = await started(StandardWebhooksAuth(secrets=[SECRET]))
    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", content=body, headers=headers)
    await trigger.stop()
    assert response.status_code == 401, case
    assert response.headers["www-authenticate"] == "Signature"
    assert creator.calls == []
    assert SECRET not in response.text


async def test_replays_are_answered_idempotently_then_refused_once_stale(client_for: Any) -> None:
    """A captured request replayed within the tolerance gets the same job (no second one);
    replayed later it is stale: 401."""
    trigger, creator, app, clock = await started(
        StandardWebhooksAuth(secrets=[SECRET], tolerance_seconds=300)
    )
    headers = reference_headers(SECRET, "msg_1", BODY, NOW)
    async with client_for(app) as http:
        first = await http.post("/webhooks/jobs", content=BODY, headers=headers)
        await advance(clock, 60)
        replay = await http.post("/webhooks/jobs", content=BODY, headers=headers)
        await advance(clock, 300)
        late = await http.post("/webhooks/jobs", content=BODY, headers=headers)
    await trigger.stop()
    assert (first.status_code, replay.status_code, late.status_code) == (201, 200, 401)
    assert replay.json() == first.json()
    assert "older than" in late.json()["detail"]
    assert len(creator.jobs) == 1


async def test_github_preset(client_for: Any) -> None:
    trigger, creator, app, _ = await started(GitHubAuth(secrets=["gh-secret", "gh-old"]))
    signed = {**sign_github("gh-secret", BODY), "X-GitHub-Delivery": "d-1"}
    async with client_for(app) as http:
        ok = await http.post("/webhooks/jobs", content=BODY, headers=signed)
        again = await http.post("/webhooks/jobs", content=BODY, headers=signed)
        old = await http.post("/webhooks/jobs", content=BODY, headers=sign_github("gh-old", BODY))
        bad = [
            await http.post("/webhooks/jobs", content=BODY, headers=headers)
            for headers in [
                sign_github("wrong", BODY),
                sign_github("gh-secret", BODY + b" "),
                {"X-Hub-Signature-256": signed["X-Hub-Signature-256"][:-2]},
                {"X-Hub-Signature-256": signed["X-Hub-Signature-256"].replace("sha256=", "sha1=")},
                {"X-Hub-Signature-256": "sha256=é".encode("latin-1")},
                {},
            ]
        ]
    await trigger.stop()
    assert (ok.status_code, again.status_code, old.status_code) == (201, 200, 201)
    assert again.json() == ok.json()  # X-GitHub-Delivery is the idempotency key
    assert [r.status_code for r in bad] == [401] * 6
    assert len(creator.jobs) == 2


async def test_stripe_preset(client_for: Any) -> None:
    secret = "whsec_stripe_test"
    trigger, creator, app, _ = await started(StripeAuth(secrets=[secret]))
    async with client_for(app) as http:
        ok = await http.post("/webhooks/jobs", content=BODY, headers=sign_stripe(secret, BODY, NOW))
        header = sign_stripe(secret, BODY, NOW)["Stripe-Signature"]
        bad = [
            await http.post("/webhooks/jobs", content=BODY, headers=headers)
            for headers in [
                sign_stripe("whsec_other", BODY, NOW),
                sign_stripe(secret, BODY, NOW - timedelta(minutes=10)),
                {
                    "Stripe-Signature": header.replace(
                        f"t={int(NOW.timestamp())}", f"t={int(NOW.timestamp()) - 1}"
                    )
                },
                {"Stripe-Signature": header.split(",")[1]},
                {"Stripe-Signature": header[:-4]},
                {"Stripe-Signature": "garbage"},
                {},
            ]
        ]
    await trigger.stop()
    assert ok.status_code == 201
    assert [r.status_code for r in bad] == [401] * 7
    assert len(creator.jobs) == 1


async def test_bearer_and_api_key_modes(client_for: Any) -> None:
    bearer, bearer_jobs, bearer_app, _ = await started(BearerAuth(tokens=["t0k3n", "next-t0k3n"]))
    key, key_jobs, key_app, _ = await started(ApiKeyAuth(keys="k3y", header="X-Portico-Key"))
    async with client_for(bearer_app) as http:
        codes = [
            (await http.post("/webhooks/jobs", content=BODY, headers=headers)).status_code
            for headers in [
                {"Authorization": "Bearer t0k3n"},
                {"Authorization": "bearer next-t0k3n"},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "Basic dDBrM246"},
                {"Authorization": "Bearer t0k3"},
                {},
            ]
        ]
    async with client_for(key_app) as http:
        key_codes = [
            (await http.post("/webhooks/jobs", content=BODY, headers=headers)).status_code
            for headers in [
                {"X-Portico-Key": "k3y"},
                {"X-Portico-Key": "k3y-"},
                {"X-API-Key": "k3y"},
            ]
        ]
    await bearer.stop()
    await key.stop()
    assert codes == [201, 201, 401, 401, 401, 401]
    assert key_codes == [201, 401, 401]
    assert len(bearer_jobs.jobs) == 2 and len(key_jobs.jobs) == 1


async def test_header_auth_refuses_before_reading_the_body(client_for: Any) -> None:
    """A bearer check needs no body: an unauthenticated endless upload is never read."""
    trigger, creator, app, _ = await started(BearerAuth(tokens=["t"]))
    chunks = 0

    async def endless() -> Any:
        nonlocal chunks
        while True:
            chunks += 1
            yield b"x" * 1024

    async with client_for(app) as http:
        response = await http.post("/webhooks/jobs", content=endless())
    await trigger.stop()
    assert response.status_code == 401
    assert chunks <= 1
    assert creator.calls == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: StandardWebhooksAuth(secrets=[]),
        lambda: StandardWebhooksAuth(secrets=["whsec_***"]),
        lambda: StandardWebhooksAuth(secrets=[SECRET], tolerance_seconds=0),
        lambda: GitHubAuth(secrets=[""]),
        lambda: BearerAuth(tokens=[]),
        lambda: StripeAuth(secrets=["x"], extra=1),
    ],
)
def test_bad_auth_settings_are_rejected(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


def test_secrets_do_not_leak_in_repr() -> None:
    auth = StandardWebhooksAuth(secrets=[SECRET])
    assert SECRET not in repr(auth) and SECRET not in repr(WebhookConfig(auth=auth))


def test_unpadded_base64_signature_is_the_same_signature() -> None:
    """The reference library accepts a signature without base64 padding; so do we."""
    headers = sign_standard_webhook(SECRET, "msg_pad", BODY, NOW)
    headers["webhook-signature"] = headers["webhook-signature"].rstrip("=")
    StandardWebhooksAuth(secrets=[SECRET]).verify(headers, BODY, NOW)


def test_secrets_are_one_str_or_secretstr_or_any_sequence_of_them() -> None:
    """What the typed ``__init__`` accepts is what runs; the field holds SecretStr."""
    from pydantic import SecretStr

    rotated = GitHubAuth(secrets=("old-secret", SecretStr("new-secret")))
    assert [s.get_secret_value() for s in rotated.secrets] == ["old-secret", "new-secret"]
    assert all(isinstance(s, SecretStr) for s in rotated.secrets)
    rotated.verify(sign_github("new-secret", BODY), BODY, NOW)
    assert [s.get_secret_value() for s in GitHubAuth(secrets="one").secrets] == ["one"]
    with pytest.raises(ValueError, match="give one secret or a list of secrets"):
        GitHubAuth(secrets=b"raw-bytes")  # type: ignore[arg-type]  # bytes is no secret
