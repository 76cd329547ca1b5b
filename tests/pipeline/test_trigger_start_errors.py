"""What a source raises on its first subscription that a retry cannot fix fails
``start()``: a missing extra (``MissingDependencyError``) or a refused configuration,
never a trigger that reports running and restarts forever."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import reactivex

import portico_rx as prx
from portico_rx import to_job
from portico_rx.errors import require
from portico_rx.pipeline import PipelineTrigger
from portico_rx.testing import RecordingJobCreator


def source_needing(module: str, extra: str) -> reactivex.Observable[Any]:
    """A source that imports its dependency only when subscribed (as a user's might)."""

    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        require(module, extra)
        raise AssertionError("the dependency is blocked, require() must raise")

    return reactivex.create(subscribe)


async def test_a_missing_extra_on_subscribe_fails_start_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # "not installed"
    trigger = PipelineTrigger(
        source_needing("watchfiles", "files").pipe(to_job("x")),
        RecordingJobCreator(),
        name="needs-files",
        restart_delay=0.01,
    )
    with pytest.raises(prx.MissingDependencyError, match=r"pip install 'portico_rx\[files\]'"):
        await trigger.start()
    assert not trigger.is_running
    assert trigger.get_health().restarts_count == 0


def test_file_trigger_without_watchfiles_fails_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portico_rx.adapters.job_trigger.file_trigger import FileTrigger

    monkeypatch.setitem(sys.modules, "watchfiles", None)
    with pytest.raises(prx.MissingDependencyError) as raised:
        FileTrigger(RecordingJobCreator(), tmp_path)
    assert raised.value.extra == "files"
    assert "pip install 'portico_rx[files]'" in str(raised.value)
    assert "_rust_notify" not in str(raised.value)  # the extra, not a private module
