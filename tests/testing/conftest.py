"""Helpers for running pytest and hypothesis as a user's project would, with portico_rx's
entry points taken from pyproject.toml (not from whatever install the test runs under)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _declared_entry_points() -> dict[str, dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["entry-points"])


@pytest.fixture
def entry_points() -> dict[str, dict[str, str]]:
    """pyproject's ``[project.entry-points]``: group -> name -> object reference."""
    return _declared_entry_points()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder that reads as an installed distribution whose only content is
    pyproject's entry points; first on PYTHONPATH, it wins over any other install."""
    folder = tmp_path / "site"
    info = folder / "portico_rx_entry_points-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portico_rx_entry_points\nVersion: 0.0\n"
    )
    lines = []
    for group, entries in _declared_entry_points().items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return folder


RunPython = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_python(site: Path) -> RunPython:
    """``run_python(args, cwd)``: ``python args...`` with ``site`` and the checkout first
    on the path."""

    def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return _run(args, site, cwd, timeout)

    return run


def _run(
    args: list[str], site: Path, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("HYPOTHESIS_NO_PLUGINS", None)
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
