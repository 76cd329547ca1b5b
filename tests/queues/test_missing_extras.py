"""Without a broker's extra, importing its source or trigger says which extra to install
(``MissingDependencyError``), never a bare ``ModuleNotFoundError`` of some transitive
dependency (such as aio-pika's ``yarl``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

# What each extra brings that portico_rx's own dependencies do not.
EXTRAS = {
    "rabbitmq": ["aio_pika", "aiormq", "pamqp", "yarl", "multidict", "propcache"],
    "redis": ["redis"],
    "nats": ["nats", "nkeys"],
    "mqtt": ["aiomqtt", "paho"],
}

# Each broker's trigger, its source, and the source through the lazy facade.
IMPORTS = {
    "rabbitmq": [
        "portico_rx.adapters.job_trigger.rabbitmq_trigger",
        "portico_rx.sources.queues.rabbitmq",
        "portico_rx.sources:rabbitmq",
    ],
    "redis": [
        "portico_rx.adapters.job_trigger.redis_stream_trigger",
        "portico_rx.sources.queues.redis_stream",
        "portico_rx.sources:redis_stream",
    ],
    "nats": [
        "portico_rx.adapters.job_trigger.nats_trigger",
        "portico_rx.sources.queues.nats",
        "portico_rx.sources:nats",
    ],
    "mqtt": [
        "portico_rx.adapters.job_trigger.mqtt_trigger",
        "portico_rx.sources.queues.mqtt",
        "portico_rx.sources:mqtt",
    ],
}

PROBE = textwrap.dedent(
    """
    import importlib, importlib.abc, json, sys

    blocked = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    outcomes = {}
    for target in json.loads(sys.argv[2]):
        module, _, attribute = target.partition(":")
        try:
            imported = importlib.import_module(module)
            if attribute:
                getattr(imported, attribute)
        except ImportError as exc:
            outcomes[target] = {"type": type(exc).__name__, "message": str(exc),
                                "extra": getattr(exc, "extra", None)}
        else:
            outcomes[target] = {"type": None}
    print(json.dumps(outcomes))
    """
)


def import_without(blocked: list[str], targets: list[str]) -> dict[str, dict[str, Any]]:
    """Import ``targets`` (``module`` or ``module:attribute``) in a fresh interpreter in
    which the top-level packages ``blocked`` are not installed."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), json.dumps(targets)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    outcomes: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcomes


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_importing_without_the_extra_names_the_extra(extra: str) -> None:
    outcomes = import_without(EXTRAS[extra], IMPORTS[extra])
    for target, outcome in outcomes.items():
        assert outcome["type"] == "MissingDependencyError", (target, outcome)
        assert outcome["extra"] == extra, (target, outcome)
        assert f"pip install 'portico_rx[{extra}]'" in outcome["message"], (target, outcome)


def test_with_the_extras_installed_every_module_imports() -> None:
    """The probe blocks only what it is told to (so the test above can fail)."""
    targets = [target for group in IMPORTS.values() for target in group]
    assert import_without([], targets) == {target: {"type": None} for target in targets}
