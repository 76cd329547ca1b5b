"""job_store_health: what a trigger's health says of the store behind its creator."""

from __future__ import annotations

import warnings
from typing import Any
from unittest.mock import AsyncMock

import pytest

from portico_rx import JobService
from portico_rx.adapters.job_queue.memory import MemoryJobQueue
from portico_rx.adapters.job_queue.postgres import PostgresJobQueue
from portico_rx.models import RunState
from portico_rx.pipeline.health import HealthCounters, job_store_health
from portico_rx.ports.job_creator import JobCreator


def test_a_store_with_a_server_reports_its_link_and_one_without_reports_nothing() -> None:
    postgres = PostgresJobQueue("postgresql://app:secret@127.0.0.1:1/jobs")
    health = job_store_health(JobService(postgres))
    assert health is not None and health["available"] is True
    assert health["url"] == "postgresql://app:***@127.0.0.1:1/jobs"
    assert job_store_health(JobService(MemoryJobQueue())) is None


def test_mocks_and_broken_health_methods_do_not_break_get_health() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an un-awaited coroutine would warn
        assert job_store_health(AsyncMock()) is None
        assert job_store_health(AsyncMock(spec=JobCreator)) is None

    class Broken:
        def health(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    assert job_store_health(Broken()) == {"available": False, "last_error": "RuntimeError: boom"}


@pytest.mark.parametrize(("available", "healthy"), [(True, True), (False, False)])
def test_an_unavailable_store_makes_a_running_trigger_unhealthy(
    available: bool, healthy: bool
) -> None:
    snapshot = HealthCounters().snapshot(
        name="t", state=RunState.RUNNING, details={"x": 1}, job_store={"available": available}
    )
    assert snapshot.healthy is healthy and snapshot.is_running
    assert snapshot.details == {"x": 1, "job_store": {"available": available}}
