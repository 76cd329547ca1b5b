"""The dashboard over real HTTP (uvicorn on 127.0.0.1, httpx): authentication, the
refusal of forged or cross-site POSTs, security headers, configuration errors."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from dashboard_site import SESSION, Site
from fastapi import Depends, HTTPException

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger
from portico_rx.dashboard import dashboard_router
from portico_rx.errors import ConfigurationError
from portico_rx.kits.job.job_service import JobService
from portico_rx.models import JobStatus
from portico_rx.web import create_app

PAGES = ["", "/schedules", "/jobs", "/dead-letters", "/outcomes"]


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    """Logged in (the session cookie), holding the dashboard's CSRF cookie once it got a page."""
    with httpx.Client(base_url=site.url, cookies={"session": SESSION}) as logged_in:
        yield logged_in


def token_of(client: httpx.Client, page: str = "") -> str:
    response = client.get(f"/dashboard{page}")
    response.raise_for_status()
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', response.text)
    assert match, response.text
    return match.group(1)


def pause_form(token: str) -> dict[str, str]:
    return {"csrf": token, "trigger": "webhook", "page": "triggers"}


def test_every_page_and_action_needs_the_apps_authentication(site: Site) -> None:
    with httpx.Client(base_url=site.url) as anonymous:
        for page in PAGES:
            assert anonymous.get(f"/dashboard{page}").status_code == 401
        response = anonymous.post("/dashboard/triggers/pause", data={"trigger": "webhook"})
        assert response.status_code == 401
        assert anonymous.get("/health/triggers").status_code == 200  # only the dashboard
    assert site.read(lambda: site.webhook.paused) is False


def test_pages_are_served_with_headers_that_keep_them_out_of_frames_and_caches(
    client: httpx.Client,
) -> None:
    for page in PAGES:
        response = client.get(f"/dashboard{page}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
        assert nonce and f'<script nonce="{nonce.group(1)}">' in response.text
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    cookie = client.get("/dashboard").headers.get("set-cookie")
    assert cookie is None  # issued once, on the first page
    fresh = httpx.get(f"{client.base_url}/dashboard", cookies={"session": SESSION})
    set_cookie = fresh.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    assert "path=/dashboard" in set_cookie


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"csrf": None}, "missing CSRF token"),
        ({"csrf": "0" * 64}, "invalid CSRF token"),
        ({"headers": {"Origin": "http://evil.example"}}, "Origin does not match Host"),
        ({"headers": {"Origin": "null"}}, "Origin does not match Host"),
        ({"headers": {"Sec-Fetch-Site": "same-site"}}, "Sec-Fetch-Site: same-site"),
        ({"headers": {"Sec-Fetch-Site": "cross-site"}}, "Sec-Fetch-Site: cross-site"),
        ({"no_cookie": True}, "missing CSRF token"),
    ],
    ids=["no-token", "wrong-token", "foreign-origin", "null-origin", "same-site", "cross-site",
         "token-without-its-cookie"],
)  # fmt: skip
def test_a_forged_or_cross_site_post_is_refused_and_changes_nothing(
    site: Site, client: httpx.Client, change: dict[str, object], reason: str
) -> None:
    form = pause_form(token_of(client))
    if "csrf" in change:
        if change["csrf"] is None:
            del form["csrf"]
        else:
            form["csrf"] = str(change["csrf"])
    headers = change.get("headers", {})
    assert isinstance(headers, dict)
    if change.get("no_cookie"):
        with httpx.Client(base_url=site.url, cookies={"session": SESSION}) as other:
            response = other.post("/dashboard/triggers/pause", data=form)
    else:
        response = client.post("/dashboard/triggers/pause", data=form, headers=headers)
    assert response.status_code == 403
    assert reason in response.text
    assert site.read(lambda: site.webhook.paused) is False


def test_a_post_that_is_not_the_dashboards_form_is_refused(client: httpx.Client) -> None:
    token = token_of(client)
    response = client.post("/dashboard/triggers/pause", json=pause_form(token))
    assert response.status_code == 400
    big = {**pause_form(token), "pad": "x" * 20_000}
    assert client.post("/dashboard/triggers/pause", data=big).status_code == 400


def test_a_same_origin_post_acts_and_redirects_to_its_page_with_the_message(
    site: Site, client: httpx.Client
) -> None:
    token = token_of(client)
    headers = {"Origin": site.url, "Sec-Fetch-Site": "same-origin"}  # what a browser sends
    response = client.post("/dashboard/triggers/pause", data=pause_form(token), headers=headers)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert site.read(lambda: site.webhook.paused) is True
    page = client.get("/dashboard")
    assert "paused trigger &#39;webhook&#39;" in page.text
    assert "paused trigger" not in client.get("/dashboard").text  # shown once
    client.post("/dashboard/triggers/resume", data=pause_form(token))
    assert site.read(lambda: site.webhook.paused) is False


def test_a_failed_action_is_shown_as_an_error_and_back_keeps_only_a_query(
    site: Site, client: httpx.Client
) -> None:
    job = site.call(site.service.create_job("done.job", {}))
    site.call(site.service.job_queue.dequeue(["default"]))
    site.call(site.service.job_queue.complete(job.id))
    token = token_of(client)  # one token for every form of this browser session
    response = client.post(
        "/dashboard/jobs/cancel",
        data={"csrf": token, "job_id": str(job.id), "page": "jobs", "back": "status=completed"},
    )
    assert response.headers["location"] == "/dashboard/jobs?status=completed"
    page = client.get(response.headers["location"])
    assert 'class="flash error"' in page.text and str(job.id) in page.text
    stored = site.call(site.service.get_job(job.id))
    assert stored is not None and stored.status is JobStatus.COMPLETED
    for back in ("//evil.example", "https://evil.example", "x\r\nSet-Cookie: a=b"):
        response = client.post(
            "/dashboard/jobs/cancel",
            data={"csrf": token, "job_id": "nope", "page": "jobs", "back": back},
        )
        assert response.headers["location"] == "/dashboard/jobs"
    unknown = client.post(
        "/dashboard/schedules/pause",
        data={"csrf": token, "trigger": "webhook", "schedule": "x", "page": "schedules"},
    )
    assert "no schedule trigger" in client.get(unknown.headers["location"]).text


def test_bad_filters_are_named_on_the_page(client: httpx.Client) -> None:
    assert (
        "status=&#39;nope&#39; is not a job status"
        in client.get("/dashboard/jobs?status=nope").text
    )
    assert (
        "use open, redriven, discarded or all"
        in client.get("/dashboard/dead-letters?status=nope").text
    )


async def test_mounting_without_authentication_is_a_configuration_error() -> None:
    hook = WebhookTrigger(job_creator=JobService(MemoryJobQueue()))
    with pytest.raises(ConfigurationError, match="dashboard_auth=\\[Depends\\(your_auth\\)\\]"):
        create_app([hook], dashboard=True)
    with pytest.raises(ConfigurationError, match="allow_unauthenticated"):
        dashboard_router([hook])
    with pytest.raises(ConfigurationError, match="prefix='dashboard'"):
        dashboard_router([hook], allow_unauthenticated=True, prefix="dashboard")
    with pytest.raises(ConfigurationError, match="refresh=-1"):
        dashboard_router([hook], allow_unauthenticated=True, refresh=-1)
    other = WebhookTrigger(job_creator=JobService(MemoryJobQueue()), name="other")
    with pytest.raises(ConfigurationError, match="2 job services: pass dashboard_jobs="):
        create_app([hook, other], dashboard=True, dashboard_allow_unauthenticated=True)

    def auth() -> None:
        return None

    def denied() -> None:
        raise HTTPException(status_code=403)

    for app, status in (
        (create_app([hook], dashboard=True, dependencies=[Depends(auth)]), 200),
        (create_app([hook], dashboard=True, dependencies=[Depends(denied)]), 403),
        (create_app([hook], dashboard=True, dashboard_allow_unauthenticated=True), 200),
        (create_app([hook]), 404),
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as asgi:
            assert (await asgi.get("/dashboard")).status_code == status
        assert "/dashboard" not in app.openapi()["paths"]
