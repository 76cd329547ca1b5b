"""Shared fixtures. Service fixtures skip on a laptop without the service, but fail
under CI (``PORTICO_REQUIRE_SERVICES=1``, set by ``.ci/run``)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, settings

import portico_rx as prx
from portico_rx.errors import QueueUnavailableError

# The suite shares a 2-core machine with other work: Hypothesis' "input generation is
# slow" check measures the machine, not the strategies, so it is off here (each test's
# own settings still apply; every other health check stays on).
settings.register_profile("portico-suite", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("portico-suite")

REQUIRE_SERVICES = os.environ.get("PORTICO_REQUIRE_SERVICES") == "1"

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
    "nats": ("127.0.0.1", 4222),
    "mqtt": ("127.0.0.1", 1883),
}


def service_available(name: str) -> bool:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip (laptop) or fail (CI) when ``name`` is not listening on 127.0.0.1."""
    if service_available(name):
        return
    host, port = SERVICES[name]
    message = f"{name} is not listening on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; CI requires it (PORTICO_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def browser_tools(*modules: str) -> tuple[str, str]:
    """Debian's chromium and chromedriver (and the Python ``modules`` a browser test
    needs): their paths, or skip (laptop) / fail (CI, which installs them in .ci/run)."""
    import importlib.util
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, ok in (("chromium", chromium), ("chromedriver", driver)) if not ok]
    missing += [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        message = f"the browser tests need {', '.join(missing)}"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; CI installs them (.ci/run), so this is a broken CI setup")
        pytest.skip(message)
    assert chromium is not None and driver is not None
    return chromium, driver


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in SERVICES:
        if item.get_closest_marker(name) is not None:
            require_service(name)


@pytest.fixture(autouse=True)
def _library_logging() -> Iterator[None]:
    """Each test starts with structlog unconfigured, as in a user's program, so the library
    logs through the standard ``logging`` (never stdout); its loggers are open at DEBUG so
    every log call runs, and ``structlog.testing.capture_logs`` still captures the events."""
    structlog.reset_defaults()
    top = logging.getLogger("portico_rx")
    saved = top.level
    top.setLevel(logging.DEBUG)
    yield
    top.setLevel(saved)


class FlakyService(prx.JobService):
    """A JobService whose job creation fails while ``down`` (an outage that outlasts
    the sink's retries); its queue, and so its dead letter store, keeps working."""

    def __init__(self, queue: prx.JobQueue) -> None:
        super().__init__(queue)
        self.down = True

    async def create_from_request(self, request: Any, metadata: Any = None) -> Any:
        if self.down:
            raise QueueUnavailableError("the job store is being failed over")
        return await super().create_from_request(request, metadata)
