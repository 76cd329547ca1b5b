"""Every optional extra, missing: the object that needs it raises
``MissingDependencyError`` naming the extra and the pip command, at the latest when it
is constructed (through the one helper, ``portico_rx.errors.require``), never later
at ``start()`` or in a retry loop, never a bare ``ModuleNotFoundError``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

# extra -> (top-level packages the extra brings, code that builds what needs them)
CASES: dict[str, tuple[list[str], str]] = {
    "files": (
        ["watchfiles"],
        "from portico_rx.adapters.job_trigger.file_trigger import FileTrigger\n"
        "from portico_rx.testing import RecordingJobCreator\n"
        "FileTrigger(RecordingJobCreator(), '.')",
    ),
    "files-source": (
        ["watchfiles"],
        "from portico_rx import sources\nsources.files('.')",
    ),
    "http": (
        ["httpx", "sniffio"],
        "from portico_rx import sources\nsources.http_poll('http://127.0.0.1:1/', every=5)",
    ),
    "webhook": (
        ["fastapi", "starlette", "uvicorn", "standardwebhooks"],
        "from portico_rx import sources\nsources.webhook('/hooks')",
    ),
    "db": (
        ["sqlalchemy", "aiosqlite", "asyncpg"],
        "from portico_rx import sources\nsources.db_rows('sqlite+aiosqlite:///x.db', 'items')",
    ),
    "db-notify": (
        ["sqlalchemy", "aiosqlite", "asyncpg"],
        "from portico_rx import sources\nsources.pg_notify('postgresql://127.0.0.1/test', 'c')",
    ),
    "rabbitmq": (
        ["aio_pika", "aiormq", "pamqp", "yarl", "multidict", "propcache"],
        "from portico_rx import sources\nsources.rabbitmq('amqp://127.0.0.1/', 'q')",
    ),
    "redis": (
        ["redis"],
        "from portico_rx import sources\nsources.redis_stream('redis://127.0.0.1/', 's', 'g', 'c')",
    ),
    "redis-queue": (
        ["redis"],
        "from portico_rx.adapters.job_queue.redis import RedisJobQueue\n"
        "RedisJobQueue('redis://127.0.0.1/')",
    ),
    "nats": (
        ["nats", "nkeys"],
        "from portico_rx import sources\nsources.nats('nats://127.0.0.1:4222', 'a.b')",
    ),
    "otel": (
        ["opentelemetry"],
        "from portico_rx import telemetry\ntelemetry.enable()",
    ),
    "otel-metrics": (
        ["prometheus_client"],
        "from portico_rx.web import create_app\ncreate_app(metrics=True)",
    ),
    "mqtt": (
        ["aiomqtt", "paho"],
        "from portico_rx import sources\nsources.mqtt('127.0.0.1', 'a/b')",
    ),
    "postgres": (
        ["asyncpg"],
        "from portico_rx.adapters.job_queue.postgres import PostgresJobQueue\n"
        "PostgresJobQueue('postgresql://127.0.0.1/test')",
    ),
    "celery": (
        ["celery", "kombu"],
        "from portico_rx.adapters.job_creator.celery_bridge import CeleryJobCreator\n"
        "CeleryJobCreator(object())",
    ),
    "notebook": (
        ["pandas", "matplotlib", "ipywidgets"],
        "from portico_rx.notebook.simulate import simulate\n"
        "simulate(lambda events: events, events=[{'time': '2025-01-01'}])",
    ),
}

PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    blocked = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    try:
        exec(sys.argv[2], {})
    except ImportError as exc:
        outcome = {"type": type(exc).__name__, "message": str(exc),
                   "extra": getattr(exc, "extra", None)}
    except Exception as exc:
        outcome = {"type": type(exc).__name__, "message": str(exc), "extra": None}
    else:
        outcome = {"type": None}
    print(json.dumps(outcome))
    """
)


def run_without(blocked: list[str], code: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_extra_is_named_at_construction(case: str) -> None:
    blocked, code = CASES[case]
    extra = case.split("-")[0]
    outcome = run_without(blocked, code)
    assert outcome["type"] == "MissingDependencyError", outcome
    assert outcome["extra"] == extra, outcome
    assert f"pip install 'portico_rx[{extra}]'" in outcome["message"], outcome


@pytest.mark.parametrize("case", sorted(CASES))
def test_with_the_extra_installed_it_builds(case: str) -> None:
    """The probe blocks only what it is told to, so the test above can fail."""
    outcome = run_without([], CASES[case][1])
    assert outcome["type"] in (None, "ConfigurationError", "InvalidScheduleError"), outcome
