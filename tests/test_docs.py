"""Every ```python block in README.md and docs/*.md runs, so the docs cannot rot.

Blocks of one file run in order in one namespace (top-level ``await`` allowed), in a
fresh temporary working directory. Mark a block that must not run with ```text.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
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
