"""The pytest plugin (``_portico_rx_plugins.pytest_fixtures``): free until a fixture is used.

Each test runs pytest in a fresh project folder, with the plugin found through the entry
point pyproject.toml declares (see ``site`` in conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

RunPython = Callable[..., subprocess.CompletedProcess[str]]  # the run_python fixture

ROOT = Path(__file__).resolve().parents[2]
# hypothesis is not listed: other plugins (hypothesis' own, schemathesis) import it, and
# then portico_rx's hypothesis entry point runs; it must not load portico_rx either.
HEAVY = ("portico_rx", "reactivex", "pydantic", "structlog", "rich")

TRIVIAL = """
import sys

def test_trivial():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
    assert loaded == [], loaded
"""

USES_FIXTURES = """
import sys
import pytest

def test_recording_creator(recording_creator):
    assert recording_creator.jobs == []
    assert "portico_rx" in sys.modules

def test_virtual_time(virtual_time):
    assert virtual_time.now.isoformat() == "2025-01-01T00:00:00+00:00"

@pytest.mark.asyncio
async def test_job_service(job_service, request):
    kind = request.node.callspec.params["job_service"]
    job = await job_service.create_job("a.b", {"n": 1}, idempotency_key="k")
    again = await job_service.create_job("a.b", {"n": 2}, idempotency_key="k")
    assert again.id == job.id
    assert type(job_service.job_queue).__name__ == {
        "memory": "MemoryJobQueue", "sqlite": "SQLiteJobQueue"}[kind]
"""

STRICT_INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"


def project(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pytest.ini").write_text(STRICT_INI)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def outcome(stdout: str) -> str:
    return re.findall(r"^=*\s*(\d+ passed.*?) in ", stdout, re.M)[-1]


def test_the_entry_point_names_the_plugin_outside_the_package(
    entry_points: dict[str, dict[str, str]],
) -> None:
    assert entry_points["pytest11"] == {"portico_rx": "_portico_rx_plugins.pytest_fixtures"}


def test_loading_the_plugin_imports_nothing_heavy(run_python: RunPython, tmp_path: Path) -> None:
    code = (
        "import sys, _portico_rx_plugins.pytest_fixtures as plugin\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
        "print(sorted(n for n in vars(plugin) if not n.startswith('_')))"
    )
    done = run_python(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    loaded, names = done.stdout.splitlines()
    assert loaded == "[]"
    for fixture in ("job_service", "recording_creator", "virtual_time"):
        assert f"'{fixture}'" in names


def test_a_test_that_uses_no_fixture_loads_no_portico_rx(
    run_python: RunPython, tmp_path: Path
) -> None:
    folder = project(tmp_path, test_trivial=TRIVIAL.format(heavy=HEAVY))
    done = run_python(["-m", "pytest", "-p", "no:cacheprovider", "-q"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcome(done.stdout) == "1 passed"
    # the plugin was loaded (by its entry point), it just imported nothing yet
    listing = run_python(["-m", "pytest", "--fixtures", "-p", "no:cacheprovider"], folder)
    assert "job_service" in listing.stdout and "_portico_rx_plugins" in listing.stdout


def test_the_fixtures_work_in_strict_mode(run_python: RunPython, tmp_path: Path) -> None:
    folder = project(tmp_path, test_fixtures=USES_FIXTURES)
    done = run_python(["-m", "pytest", "-p", "no:cacheprovider", "-q"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcome(done.stdout) == "4 passed"  # job_service: memory and sqlite


def test_the_docs_fixture_example_passes_in_strict_mode(
    run_python: RunPython, tmp_path: Path
) -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    [block] = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
        if "def test_signup_creates_one_job" in b
    ]
    folder = project(tmp_path, test_signup=block)
    done = run_python(["-m", "pytest", "-p", "no:cacheprovider", "-q"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcome(done.stdout) == "2 passed"


def test_no_portico_rx_turns_the_plugin_off(run_python: RunPython, tmp_path: Path) -> None:
    folder = project(tmp_path, test_fixtures=USES_FIXTURES)
    done = run_python(
        ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:portico_rx"], folder
    )
    assert done.returncode != 0
    assert "fixture 'recording_creator' not found" in done.stdout
