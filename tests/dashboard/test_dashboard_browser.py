"""The dashboard in headless Chromium: every action clicked, the store's change asserted,
a screenshot of each page kept in ``artifacts/dashboard/``.

``PORTICO_DOCS_SCREENSHOT=1`` also writes the triggers page to ``docs/dashboard.png``.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_site import SESSION, Site, free_port

from portico_rx.models import JobRequest, JobStatus
from portico_rx.pipeline.outcomes import OUTCOME_KINDS
from portico_rx.ports.dead_letter_store import DeadLetterRecord

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(exc: Exception) -> bool:
    """``exc`` says the element is no longer in the page: Selenium's stale element, or
    Chromium's form of it ("node ... does not belong to the document")."""
    from selenium.common.exceptions import StaleElementReferenceException

    return isinstance(exc, StaleElementReferenceException) or (
        "does not belong to the document" in str(exc)
    )


def click(browser: Any, selector: str) -> None:
    """Click the button at ``selector`` and wait for the page it leads to; the page's
    polling may swap the button for a fresh copy in between, so look it up again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    old = browser.find_element(By.TAG_NAME, "html")
    for _ in range(20):
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            break
        except WebDriverException as exc:
            if not gone(exc):
                raise
    else:
        raise AssertionError(f"{selector} kept going stale")

    def navigated() -> bool:
        try:
            old.tag_name  # noqa: B018  gone once the browser loaded the next page
        except WebDriverException as exc:
            if not gone(exc):
                raise
            return True
        return False

    wait_for(navigated, f"the page after clicking {selector}")


def texts(browser: Any, selector: str, attribute: str | None = None) -> list[str]:
    """The text (or ``attribute``) of every element at ``selector``, read in one script:
    the page's polling swaps its tables, which makes held element references stale."""
    script = (
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => arguments[1] ? e.getAttribute(arguments[1]) : e.innerText.trim())"
    )
    return list(browser.execute_script(script, selector, attribute))


def flash(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.ID, "flash").text)


def shot(browser: Any, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000  # a rendered page, not an empty canvas
    return path


def test_triggers_page_pauses_and_resumes_a_trigger(
    site: Site, browser: Any, artifacts: Path
) -> None:

    httpx.post(f"{site.url}/webhooks/jobs", json={"job_type": "email.send"}).raise_for_status()
    browser.get(f"{site.url}/dashboard")
    row = 'tr[data-trigger="webhook"]'
    assert texts(browser, f'{row} [data-field="state"]') == ["running"]
    created = site.read(lambda: site.webhook.get_health().jobs_created_count)
    assert created >= 1 and texts(browser, f'{row} [data-field="jobs_created"]') == [str(created)]
    click(browser, 'tr[data-trigger="webhook"] button[data-action="/triggers/pause"]')
    assert site.read(lambda: site.webhook.paused) is True
    assert "paused trigger 'webhook'" in flash(browser)
    badge = 'tr[data-trigger="webhook"] [data-field="paused"]'
    assert texts(browser, badge) == ["paused"]
    path = shot(browser, artifacts, "triggers")
    if os.environ.get("PORTICO_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(path, DOCS / "dashboard.png")
    click(browser, 'tr[data-trigger="webhook"] button[data-action="/triggers/resume"]')
    assert site.read(lambda: site.webhook.paused) is False
    assert "resumed trigger 'webhook'" in flash(browser)


def test_schedules_page_pauses_resumes_and_runs_a_schedule_now(
    site: Site, browser: Any, artifacts: Path
) -> None:

    browser.get(f"{site.url}/dashboard/schedules")
    daily = 'tr[data-trigger="reports"][data-schedule="daily"]'
    [next_fire] = site.read(lambda: site.schedules.upcoming(1)["daily"])
    [row] = texts(browser, daily)
    assert next_fire.strftime("%Y-%m-%d %H:%M:%S UTC") in row
    click(browser, f'{daily} button[data-action="/schedules/pause"]')
    assert site.read(lambda: site.schedules.paused_schedules) == ["daily"]
    assert texts(browser, f'{daily} [data-field="state"]') == ["paused"]
    shot(browser, artifacts, "schedules")
    click(browser, f'{daily} button[data-action="/schedules/resume"]')
    assert site.read(lambda: site.schedules.paused_schedules) == []

    hourly = 'tr[data-trigger="reports"][data-schedule="hourly"]'
    click(browser, f'{hourly} button[data-action="/schedules/run"]')
    assert "ran schedule 'hourly' now: job " in flash(browser)
    job_id = flash(browser).rsplit(" ", 1)[-1]
    [job] = site.call(site.service.find_jobs(key_prefix="reports:hourly:+run-now:"))
    assert str(job.id) == job_id
    assert job.job_type == "cleanup.temp" and job.metadata["run_now"] is True


def test_jobs_page_filters_updates_live_and_cancels_a_job(
    site: Site, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    job = site.call(site.service.create_job("invoice.send", {"n": 1}, queue_name="billing"))
    browser.get(f"{site.url}/dashboard/jobs")
    field = browser.find_element(By.NAME, "job_type")
    field.send_keys("invoice.send")
    field.submit()
    wait_for(lambda: "job_type=invoice.send" in browser.current_url, "the filtered page")
    assert texts(browser, "#jobs tr[data-job]", "data-job") == [str(job.id)]

    browser.execute_script("window.notReloaded = true")  # gone if the page reloads
    second = site.call(site.service.create_job("invoice.send", {"n": 2}, queue_name="billing"))
    wait_for(
        lambda: texts(browser, f'#jobs tr[data-job="{second.id}"]'),
        "the new job to appear by polling",
    )
    assert browser.execute_script("return window.notReloaded") is True
    shot(browser, artifacts, "jobs")

    click(browser, f'tr[data-job="{job.id}"] button[data-action="/jobs/cancel"]')
    stored = site.call(site.service.get_job(job.id))
    assert stored is not None and stored.status is JobStatus.CANCELLED
    assert f"cancelled job {job.id}" in flash(browser)
    assert "job_type=invoice.send" in browser.current_url  # back on the filtered page
    status = f'tr[data-job="{job.id}"] [data-field="status"]'
    assert texts(browser, status) == ["cancelled"]
    assert not texts(browser, f'tr[data-job="{job.id}"] button')


def test_dead_letters_page_redrives_and_discards(site: Site, browser: Any, artifacts: Path) -> None:
    from selenium.webdriver.common.by import By

    store = site.service.dead_letter_store
    assert store is not None
    now = datetime.now(UTC)
    redrive = DeadLetterRecord(
        trigger="webhook",
        stage="create",
        error="QueueUnavailableError: store down",
        at=now,
        attempts=5,
        request=JobRequest(job_type="email.send", payload={"to": "a@b.c"}),
        source="webhook:/webhooks/jobs",
        event_id="evt-1",
    )
    discard = DeadLetterRecord(
        trigger="webhook",
        stage="operator",
        error='<img src=x id="injected" onerror="window.pwned=1"> bad event',
        at=now,
        event={"raw": "<script>window.pwned=1</script>"},
    )
    for letter in (redrive, discard):
        site.call(store.add_dead_letter(letter))
    browser.get(f"{site.url}/dashboard/dead-letters")
    assert len(texts(browser, "#dead-letters tr[data-dead-letter]")) == 2
    [text] = texts(browser, f'tr[data-dead-letter="{discard.id}"]')
    assert '<img src=x id="injected"' in text  # shown as text, not markup
    assert not browser.find_elements(By.ID, "injected")
    assert browser.execute_script("return window.pwned") is None
    shot(browser, artifacts, "dead_letters")

    click(browser, f'[data-dead-letter="{redrive.id}"] [data-action="/dead-letters/redrive"]')
    record = site.call(site.service.get_dead_letter(redrive.id))
    assert record is not None and record.status == "redriven" and record.job_id is not None
    job = site.call(site.service.get_job(record.job_id))
    assert job is not None and job.job_type == "email.send" and job.payload == {"to": "a@b.c"}
    assert f"redrove dead letter {redrive.id}: job {job.id}" in flash(browser)

    click(browser, f'[data-dead-letter="{discard.id}"] [data-action="/dead-letters/discard"]')
    record = site.call(site.service.get_dead_letter(discard.id))
    assert record is not None and record.status == "discarded" and record.job_id is None
    assert not texts(browser, "#dead-letters tr[data-dead-letter]")

    browser.get(f"{site.url}/dashboard/dead-letters?status=all")
    rows = "#dead-letters tr[data-dead-letter]"
    ids = texts(browser, rows, "data-dead-letter")
    statuses = dict(zip(ids, texts(browser, f"{rows} [data-field=status]"), strict=True))
    assert statuses == {str(redrive.id): "redriven", str(discard.id): "discarded"}


def test_outcomes_page_lists_recent_event_outcomes(
    site: Site, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    for _ in range(3):
        response = httpx.post(
            f"{site.url}/webhooks/jobs",
            json={"job_type": "sms.send", "payload": {"to": "+4917"}},
            headers={"Idempotency-Key": "sms-1"},  # the same delivery three times
        )
        response.raise_for_status()
    browser.get(f"{site.url}/dashboard/outcomes?trigger=webhook&outcome=duplicate")
    rows = texts(browser, "#outcomes tbody tr")
    assert len(rows) == 2 and all("duplicate" in row for row in rows)
    [counts] = texts(browser, "#outcome-counts tbody tr")
    summary = site.read(site.webhook.recorder.summary)
    assert summary["duplicate"] == 2
    shown = [str(summary.get(kind, 0)) for kind in (*OUTCOME_KINDS, "held")]
    assert counts.split() == ["webhook", *shown]
    shot(browser, artifacts, "outcomes")
    browser.get(f"{site.url}/dashboard/outcomes?outcome=nonsense")
    assert "outcome='nonsense'" in browser.find_element(By.ID, "problem").text


@pytest.fixture
def attacker_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Another origin on 127.0.0.1 (another port: same-site, so SameSite cookies are
    sent): a plain static file server."""
    port = free_port()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_a_form_posted_from_another_origin_is_refused_even_with_a_leaked_token(
    site: Site, browser: Any, attacker_site: tuple[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    attacker, folder = attacker_site
    browser.get(f"{site.url}/dashboard")
    token = browser.find_element(By.NAME, "csrf").get_attribute("value")  # worst case
    (folder / "evil.html").write_text(
        f'<form id="f" method="post" action="{site.url}/dashboard/triggers/pause">'
        f'<input name="csrf" value="{token}"><input name="trigger" value="webhook"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    browser.get(f"{attacker}/evil.html")
    wait_for(lambda: "refused" in browser.find_element(By.TAG_NAME, "body").text, "the refusal")
    assert site.read(lambda: site.webhook.paused) is False
    assert SESSION  # the browser was logged in all along (the cookie is same-site)
