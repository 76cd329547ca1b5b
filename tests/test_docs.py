"""Every ```python block in README.md and docs/*.md runs, so the docs cannot rot; the
typed pages' blocks also pass ``mypy --strict`` and basedpyright's strict mode.

Blocks of one file run in order in one namespace (top-level ``await`` allowed), in a
fresh temporary working directory. Mark a block that must not run with ```text.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


async def run_blocks(blocks: list[str], namespace: dict[str, Any]) -> None:
    for source in blocks:
        code = compile(source, "<doc>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            await result


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
async def test_doc_examples_run(path: Path, tmp_path: Path) -> None:
    blocks = python_blocks(path)
    assert blocks
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        await run_blocks(blocks, {"__name__": "__doc__"})
    finally:
        os.chdir(cwd)


# Pages whose code is user code as mypy --strict and pyright (strict) see it, checked
# against the installed package: every page with python blocks, unless UNTYPED says why.
TYPED = [
    "README.md",
    "accounting.md",
    "adding-a-source.md",
    "cli.md",
    "dashboard.md",
    "dead-letters.md",
    "foundation.md",
    "logging.md",
    "notebooks.md",
    "observability.md",
    "operators.md",
    "queues.md",
    "scaling.md",  # celery ships no type hints: its one import has a narrow ignore
    "schedules.md",
    "sources.md",
    "testing.md",
    "webhooks.md",
]
UNTYPED: dict[str, str] = {}  # page -> why its blocks cannot be typed (none today)


def test_every_page_with_code_is_typed_or_says_why() -> None:
    pages = {p.name for p in DOCS if python_blocks(p)}
    assert pages - set(TYPED) - set(UNTYPED) == set()


def as_module(blocks: list[str]) -> str:
    """A page's blocks as one module for mypy, in one ``async def`` (mypy cannot parse a
    top-level ``async with``): one namespace, as when the blocks run."""
    lines = "\n".join(blocks).splitlines()
    return "async def _page() -> None:\n" + "".join(f"    {line}\n" for line in lines)


def as_notebook(blocks: list[str]) -> str:
    """A page's blocks as a notebook, one cell each (pyright allows top-level await)."""
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "metadata": {}, "source": b, "outputs": [], "execution_count": None}
        for b in blocks
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.mark.timeout(600)  # two type checkers over the package and its dependencies
def test_typed_doc_examples_pass_mypy_strict_and_pyright(tmp_path: Path) -> None:
    pages = [p for p in DOCS if p.name in TYPED]
    assert sorted(p.name for p in pages) == sorted(TYPED)  # every listed page exists
    for page in pages:
        name = "doc_" + page.stem.replace("-", "_")
        (tmp_path / f"{name}.py").write_text(as_module(python_blocks(page)))
        (tmp_path / f"{name}.ipynb").write_text(as_notebook(python_blocks(page)))
    (tmp_path / "pyrightconfig.json").write_text(
        json.dumps({"typeCheckingMode": "strict", "pythonVersion": "3.11"})
    )
    modules = sorted(p.name for p in tmp_path.glob("*.py"))
    notebooks = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    cache = ROOT / ".mypy_cache" / "docs"  # kept between runs: a warm run takes seconds
    checks = {  # both at once
        "mypy --strict": subprocess.Popen(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *modules],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
        "basedpyright (strict)": subprocess.Popen(
            [sys.executable, "-m", "basedpyright", *notebooks],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    }
    failures = []
    for name, process in checks.items():
        output, _ = process.communicate()
        if process.returncode != 0:
            failures.append(f"{name}:\n{output}")
    assert not failures, "\n".join(failures)
