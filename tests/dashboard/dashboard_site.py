"""The dashboard tests' site: uvicorn on a free 127.0.0.1 port in a thread (its own
event loop, where the triggers run), and headless Chromium driven by Selenium.

Chromium needs Debian's ``chromium`` and ``chromium-driver`` packages
(``apt-get install -y chromium chromium-driver``) and ``pip install selenium``; the
browser tests are skipped (with the reason) where they are missing, and fail instead
when ``PORTICO_REQUIRE_SERVICES=1`` (CI installs them).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from fastapi import Depends, HTTPException, Request

from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_trigger.schedule_trigger import ScheduleConfig, ScheduleTrigger
from portico_rx.adapters.job_trigger.webhook_trigger import WebhookTrigger
from portico_rx.kits.job.job_service import JobService
from portico_rx.web import create_app
from tests.conftest import browser_tools

T = TypeVar("T")

SESSION = "dashboard-test-session-7f3a"
"""The value of the ``session`` cookie the test app's authentication accepts."""

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
"""Where the browser tests keep a screenshot of each page (git-ignored)."""


def session_auth(request: Request) -> None:
    """The test app's authentication: a session cookie, as a login page would set."""
    if request.cookies.get("session") != SESSION:
        raise HTTPException(status_code=401, detail="log in first")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """The app served by uvicorn in a thread; ``call`` runs a coroutine on its loop."""

    def __init__(self) -> None:
        self.service = JobService(MemoryJobQueue())
        self.schedules = ScheduleTrigger(
            job_creator=self.service,
            schedules=[
                ScheduleConfig(cron="0 9 * * *", job_type="report.daily", name="daily"),
                ScheduleConfig(cron="0 * * * *", job_type="cleanup.temp", name="hourly"),
            ],
            name="reports",
        )
        self.webhook = WebhookTrigger(job_creator=self.service)
        self.app = create_app(
            [self.schedules, self.webhook],
            dashboard=True,
            dashboard_auth=[Depends(session_auth)],
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self._serve, name="dashboard-server", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(20)

    def read(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the server's loop (the triggers' state is the loop's)."""

        async def run() -> T:
            return fn()

        return self.call(run())


def chromium_tools() -> tuple[str, str]:
    return browser_tools("selenium")
