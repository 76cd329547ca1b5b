"""Quickstart: events in, jobs created in portico.db, jobs processed — no server needed.

    portico-rx run examples/quickstart.py --duration 10     # stops by itself
    portico-rx run examples/quickstart.py                   # Ctrl-C to stop
    portico-rx jobs                                         # what was created and done

``build(service)`` returns the triggers; the CLI passes its JobService (over the
embedded SQLite queue). ``handlers`` maps job types to the functions that process them.

Four triggers run side by side:

* ``welcome-emails``: a pipeline over a stream of sign-ups (filter -> to_job);
* ``schedules``: a cron schedule every 5 seconds (seconds field first);
* ``inbox``: a job per file dropped into the inbox folder once it stops changing: the
  folder named by ``$QUICKSTART_INBOX``, else a fresh temporary folder (removed at exit;
  its path is in the ``file_watch_started`` log line);
* ``webhooks``: POST /webhooks/jobs.

The webhook trigger is served on http://127.0.0.1:8000 (``--port`` to change it)
while ``run`` runs; other systems ask for a welcome email with::

    curl -X POST http://127.0.0.1:8000/webhooks/jobs -H 'content-type: application/json' \
         -d '{"job_type": "email.welcome", "payload": {"user": 1, "email": "a@example.com"}}'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import reactivex
from pydantic import BaseModel

import portico_rx as prx
from portico_rx.adapters.job_trigger.file_trigger import FileTrigger
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookConfig, WebhookTrigger
from portico_rx.kits.job.job_service import JobService

PLANS = ("free", "pro", "team")
_temporary: list[tempfile.TemporaryDirectory[str]] = []  # kept alive until exit


def inbox_folder() -> Path:
    """``$QUICKSTART_INBOX`` (created if missing), else a new temporary folder."""
    configured = os.environ.get("QUICKSTART_INBOX")
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    _temporary.append(tempfile.TemporaryDirectory(prefix="portico-quickstart-inbox-"))
    return Path(_temporary[-1].name)


class Signup(TypedDict):
    """The event: one sign-up."""

    id: int
    email: str
    plan: str


def fake_signup(n: int) -> Signup:
    """A stand-in for a real event source: one sign-up per tick."""
    return {"id": n, "email": f"user{n}@example.com", "plan": PLANS[n % len(PLANS)]}


class WelcomePayload(BaseModel):
    """What a webhook must send to ask for a welcome email (else it gets a 400)."""

    user: int
    email: str


def build(service: JobService) -> list[prx.JobTrigger]:
    """The triggers this app runs."""
    # ``prx.flow`` types every lambda below by the event (a Signup), for mypy and pyright
    signups = prx.flow(reactivex.interval(1.0)).map(fake_signup)
    welcome_emails = prx.PipelineTrigger(
        signups.filter(lambda s: s["plan"] != "free").to_job(
            "email.welcome",
            payload=lambda s: {"user": s["id"], "email": s["email"]},
            priority=lambda s: 5 if s["plan"] == "team" else 0,
            idempotency_key=lambda s: f"welcome:{s['id']}",
        ),
        job_creator=service,
        name="welcome-emails",
    )
    welcome_webhook = WebhookTrigger(
        job_creator=service,
        config=WebhookConfig(allowed_job_types=["email.welcome"]),
        payload_schemas={"email.welcome": WelcomePayload},
    )
    heartbeat = ScheduleTrigger(
        job_creator=service,
        schedules=[
            ScheduleConfig(
                cron="*/5 * * * * *",
                seconds="first",  # every 5 s (seconds last would be every 5th minute)
                job_type="health.check",
                payload={"target": "quickstart"},
                queue_name="default",
                priority=1,
            )
        ],
    )
    uploads = FileTrigger(service, inbox_folder(), "file.process", queue_name="default")
    return [welcome_emails, heartbeat, uploads, welcome_webhook]


async def send_welcome_email(job: prx.Job) -> dict[str, Any]:
    """The handler: a real app would send the email here."""
    return {"sent_to": job.payload["email"]}


async def check_health(job: prx.Job) -> dict[str, Any]:
    return {"ok": True, "scheduled_at": job.metadata.get("scheduled_at")}


def process_file(job: prx.Job) -> dict[str, Any]:
    """A plain (blocking) handler: the worker runs it in a thread."""
    path = Path(job.payload["file_path"])
    return {"bytes": path.stat().st_size if path.exists() else None}


handlers = {
    "email.welcome": send_welcome_email,
    "health.check": check_health,
    "file.process": process_file,
}
